"""cocotb testbench of the accelerator (``quickspike_top``), driven by the word protocol.

Run by :func:`quickspike.cosim.engines.run_jobs` (engine ``cocotb``) through
:func:`quickspike.cosim.cocotb_runner.run_cocotb`; never the Makefile flow. The
parameters come from the JSON file named by ``$QUICKSPIKE_ACCEL_TB``::

    {"jobs": [{"config": [word, ...],            # registers + weights, sent once
               "samples": [[word, ...], ...],     # START, PIXEL..., RUN per sample
               "n_out": 10, "spec": {...IntSpec...},
               "budget": 5000,                    # most cycles one sample may take
               "expected": [{...Expected...}] | null}],
     "stalls": {"valid": 0.3, "ready": 0.3, "max_cycles": 3, "seed": 1} | null,
     "clock_ns": 10, "out": "results.json", "progress": "progress.txt" | null}

and the results go to ``out``: per job the raw result words of every sample and the
wall times of loading the network and of running the samples, plus the scoreboard's
mismatches (when ``expected`` is given, the test fails on the first one of any
sample, after writing the file).

Python touches the simulation only per stream beat: the driver presents a word and,
while ``cmd.ready`` is low, sleeps until it rises; the monitor holds ``res.ready`` high
and sleeps until ``res.valid`` rises. Random stalls (a per-word ``valid`` gap, a
per-cycle ``ready`` coin) switch to cycle-by-cycle loops.
"""

import json
import os
import random
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, with_timeout

from quickspike.cosim.compare import Expected, Scoreboard
from quickspike.hw.protocol import TAG, decode_results
from quickspike.sw.spec import IntSpec

CONFIG_ENV = "QUICKSPIKE_ACCEL_TB"
_CYCLES = TAG["CYCLES"]


class StreamDriver:
    """Drives ``cmd`` (payload/valid/ready), optionally with random ``valid`` gaps."""

    def __init__(self, clk, payload, valid, ready, *, stall: float = 0.0, max_stall: int = 3,
                 rng: random.Random | None = None):
        self.clk, self.payload, self.valid, self.ready = clk, payload, valid, ready
        self.stall, self.max_stall, self.rng = stall, max_stall, rng or random.Random(0)
        self.sent = 0
        valid.value = 0

    async def send(self, words) -> None:
        """Send ``words`` in order; returns right after the clock edge that moved the last."""
        clk, payload, valid, ready = self.clk, self.payload, self.valid, self.ready
        rng, stall = self.rng, self.stall
        for word in words:
            if stall and rng.random() < stall:
                valid.value = 0
                await ClockCycles(clk, rng.randint(1, self.max_stall))
            payload.value = word
            valid.value = 1
            await ReadOnly()
            if not ready.value:
                await RisingEdge(ready)     # rises after a clock edge; holds until the next
            await RisingEdge(clk)           # the word moves on this edge
            self.sent += 1
        valid.value = 0


class StreamMonitor:
    """Collects ``res`` words, one list per sample (split at the ``CYCLES`` word)."""

    def __init__(self, clk, payload, valid, ready, *, stall: float = 0.0, rng: random.Random | None = None):
        self.clk, self.payload, self.valid, self.ready = clk, payload, valid, ready
        self.stall, self.rng = stall, rng or random.Random(1)
        ready.value = 0

    async def collect(self, count: int, on_sample=None) -> list[list[int]]:
        """Words of the next ``count`` samples; ``on_sample(index, words)`` after each."""
        clk, payload, valid, ready = self.clk, self.payload, self.valid, self.ready
        samples, cur = [], []
        if count == 0:
            return samples
        if not self.stall:
            ready.value = 1
            while True:
                await ReadOnly()
                if valid.value:
                    word = int(payload.value)
                    await RisingEdge(clk)   # ready is high: the word moves on this edge
                    cur.append(word)
                    if word >> 32 == _CYCLES:
                        samples.append(cur)
                        if on_sample is not None:
                            on_sample(len(samples) - 1, cur)
                        cur = []
                        if len(samples) == count:
                            ready.value = 0
                            return samples
                else:
                    await RisingEdge(valid)
        rng = self.rng
        while True:
            take = rng.random() >= self.stall
            ready.value = int(take)
            await ReadOnly()
            word = int(payload.value) if take and valid.value else None
            await RisingEdge(clk)
            if word is not None:
                cur.append(word)
                if word >> 32 == _CYCLES:
                    samples.append(cur)
                    if on_sample is not None:
                        on_sample(len(samples) - 1, cur)
                    cur = []
                    if len(samples) == count:
                        ready.value = 0
                        return samples


class TB:
    """Owns the accelerator's clock, reset, command driver, result monitor and scoreboard."""

    def __init__(self, dut, cfg: dict):
        self.dut, self.cfg = dut, cfg
        stalls = cfg.get("stalls") or {}
        seed = stalls.get("seed", 0)
        Clock(dut.clk, cfg.get("clock_ns", 10), unit="ns").start()
        self.driver = StreamDriver(dut.clk, dut.cmd__payload, dut.cmd__valid, dut.cmd__ready,
                                   stall=stalls.get("valid", 0.0), max_stall=stalls.get("max_cycles", 3),
                                   rng=random.Random(seed))
        self.monitor = StreamMonitor(dut.clk, dut.res__payload, dut.res__valid, dut.res__ready,
                                     stall=stalls.get("ready", 0.0), rng=random.Random(seed + 1))
        self.period_ns = cfg.get("clock_ns", 10)
        self.progress = Path(cfg["progress"]) if cfg.get("progress") else None
        self.mismatches = []

    async def reset(self, cycles: int = 2) -> None:
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def _report(self, done: int, total: int) -> None:
        if self.progress is not None:
            tmp = self.progress.with_suffix(".tmp")
            tmp.write_text(f"{done} {total}\n")
            os.replace(tmp, self.progress)

    async def run_job(self, job: dict) -> dict:
        """Configure one network, stream its samples, return words and wall times."""
        samples = job["samples"]
        n = len(samples)
        spec = IntSpec.from_dict(job["spec"])
        board = None
        if job.get("expected") is not None:
            board = Scoreboard([Expected.from_dict(e) for e in job["expected"]])
        step = max(1, n // 100)

        def on_sample(i: int, words: list[int]) -> None:
            if board is not None:
                try:
                    got = decode_results(words, job["n_out"], spec)
                except ValueError as e:
                    self.dut._log.error("sample %d: undecodable result words (%s)", i, e)
                    got = None
                bad = board.check(i, got)
                if bad is not None:
                    self.dut._log.error("mismatch: %s", bad)
            if (i + 1) % step == 0 or i + 1 == n:
                self._report(i + 1, n)

        t0 = time.perf_counter()
        await self._timed(self.driver.send(job["config"]), 4 * len(job["config"]) + 1000)
        t1 = time.perf_counter()
        collector = cocotb.start_soon(self.monitor.collect(n, on_sample))
        await self._timed(self.driver.send([w for s in samples for w in s]),
                          n * (job["budget"] + 4 * max((len(s) for s in samples), default=0)))
        words = await self._timed(collector, job["budget"] + 1000)
        t2 = time.perf_counter()
        if board is not None:
            self.mismatches += [m.to_dict() for m in board.mismatches]
        return {"words": words, "load_seconds": t1 - t0, "sim_seconds": t2 - t1}

    async def _timed(self, awaitable, cycles: int):
        return await with_timeout(awaitable, cycles * self.period_ns, "ns")


@cocotb.test()
async def run_jobs(dut):
    """Configure and run every job of ``$QUICKSPIKE_ACCEL_TB``; write the result words."""
    cfg = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    tb = TB(dut, cfg)
    await tb.reset()
    jobs = [await tb.run_job(job) for job in cfg["jobs"]]
    tmp = Path(cfg["out"] + ".tmp")
    tmp.write_text(json.dumps({"jobs": jobs, "mismatches": tb.mismatches}))
    os.replace(tmp, cfg["out"])
    assert not tb.mismatches, f"{len(tb.mismatches)} samples mismatch; first: {tb.mismatches[0]['message']}"
