"""Run the accelerator under ``amaranth.sim`` (slow, ~thousands of cycles/s: tiny nets only).

:func:`simulate` configures the design for a network, streams samples through it and
decodes the results with :mod:`quickspike.hw.protocol`, exactly as a host would.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from quickspike.hw import protocol as P
from quickspike.hw.config import HwConfig
from quickspike.hw.top import Accelerator
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import CompensationSpec, ExitSpec

__all__ = ["simulate", "simulate_jobs"]


def simulate(net: IntNetwork, hwcfg: HwConfig, pixels, timesteps: int | None = None,
             *, exit: ExitSpec | None = None, compensation: CompensationSpec | None = None,
             max_cycles: int = 2_000_000, vcd: str | None = None) -> list[P.SampleResult]:
    """Results of ``pixels`` (B, *input_shape) uint8 on the simulated accelerator.

    ``exit`` overrides the network's early-exit rule (``ExitSpec()``: fixed-T);
    ``compensation`` its coding compensation (``CompensationSpec()``: off).
    """
    return simulate_jobs(hwcfg, [(net, pixels, timesteps, exit, compensation)],
                         max_cycles=max_cycles, vcd=vcd)[0]


def simulate_jobs(hwcfg: HwConfig, jobs, *, max_cycles: int = 2_000_000,
                  vcd: str | None = None, collision_poison: dict | None = None) -> list[list[P.SampleResult]]:
    """Run several ``(net, pixels, timesteps[, exit[, compensation]])`` jobs back to back on ONE
    design instance.

    Each job reloads the configuration and weights at run time, as a host would when
    it switches bundles (``exit`` and ``compensation`` override the network's early-exit
    rule and coding compensation); the result is one list of :class:`SampleResult` per job.
    With ``collision_poison`` (a dict) the design returns inverted bits for every read of a
    RAM word written in the same cycle (:class:`Accelerator`'s ``collision_poison``); the
    dict gets ``"collisions"``, the number of such reads.
    """
    poison = collision_poison is not None
    dut = Accelerator(hwcfg, collision_poison=poison)
    words: list[int] = []
    want = 0
    jobs = [tuple(job) + (None,) * (5 - len(job)) for job in jobs]
    for net, pixels, timesteps, exit, comp in jobs:
        pixels = np.asarray(pixels)
        shape = net.input_shape if len(net.input_shape) == 3 else None
        words += P.encode_network(net, hwcfg, timesteps=timesteps, exit=exit, compensation=comp)
        for img in pixels:
            words += P.encode_sample(img.reshape(-1), net.spec, shape=shape)
        want += len(pixels)
    out: list[int] = []
    state = {"results": 0}

    async def driver(ctx):
        for w in words:
            ctx.set(dut.cmd.payload, w)
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)

    async def monitor(ctx):
        ctx.set(dut.res.ready, 1)
        cycles = 0
        async for clk_edge, rst, valid, payload in ctx.tick().sample(dut.res.valid, dut.res.payload):
            cycles += 1
            if valid:
                out.append(payload)
                if payload >> 32 == P.TAG["CYCLES"]:
                    state["results"] += 1
                    if state["results"] == want:
                        if poison:
                            collision_poison["collisions"] = ctx.get(dut.collisions)
                        return
            if cycles > max_cycles:
                raise TimeoutError(f"no results after {max_cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(monitor)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    results, start = [], 0
    for net, pixels, *_ in jobs:
        n = len(np.asarray(pixels))
        # split the word stream at CYCLES words: job boundaries
        ends = [i for i, w in enumerate(out) if w >> 32 == P.TAG["CYCLES"]]
        stop = ends[start + n - 1] + 1
        first = 0 if start == 0 else ends[start - 1] + 1
        results.append(P.decode_all(out[first:stop], net.layers[-1].n_out, net.spec))
        start += n
    return results
