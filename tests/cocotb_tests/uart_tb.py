"""cocotb testbench of the board top (``quickspike_board``): the host protocol over a UART.

The host is :class:`quickspike.run_client.HostSession`, exactly as ``quickspike run``
uses it with a serial port; here its bytes travel through a UART bit-banged in Python
on the board top's ``uart_rx`` pin and its results are read back from ``uart_tx``.
The model is event-driven: one ``Timer`` per run of equal bits sent (a zero byte and
its start bit are one wait), one ``FallingEdge`` and nine ``Timer`` per byte received;
nothing in Python runs per clock cycle. Bit changes are driven half a clock period
away from the rising edges, and received bits are sampled there too.

Parameters from the JSON file named by ``$QUICKSPIKE_UART_TB``::

    {"divisor": 4, "clock_ns": 10, "break_bits": 24,
     "garbage": [byte, ...],               # sent first, then a break resets the board
     "jobs": [{"config": [word, ...], "samples": [[word, ...], ...], "n_out": 5,
               "spec": {...IntSpec...}, "window_words": 512}],
     "bad_stop_byte": 0x5A | null,          # at the end: a byte with a 0 stop bit
     "max_cycles": 10000000, "out": "results.json"}

Each job reconfigures the board (a break first) and runs its samples; ``out`` receives
per job the raw result words of every sample and the simulated and wall times, and the
error frame the bad stop bit produced. The comparison with the golden model happens in
the pytest process (``tests/test_uart.py``).
"""

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import Event, FallingEdge, Timer, with_timeout
from cocotb.utils import get_sim_time

from quickspike.run_client import RES_BYTES, HostSession
from quickspike.sw.spec import IntSpec

CONFIG_ENV = "QUICKSPIKE_UART_TB"


class UartHost:
    """The host's side of the UART: drives ``uart_rx``, samples ``uart_tx``."""

    def __init__(self, dut, divisor: int, period_ns: int):
        self.dut, self.D, self.period = dut, divisor, period_ns
        self.bit_ns = divisor * period_ns
        dut.uart_rx.value = 1

    async def align(self) -> None:
        """Move to a falling clock edge: every later change is a whole number of periods away."""
        await FallingEdge(self.dut.clk)

    async def send_bits(self, bits) -> None:
        """Drive ``bits`` (one per bit period), one wait per run of equal bits."""
        rx = self.dut.uart_rx
        run_value, run_len = None, 0
        for b in bits:
            if b == run_value:
                run_len += 1
                continue
            if run_len:
                rx.value = run_value
                await Timer(run_len * self.bit_ns, unit="ns")
            run_value, run_len = b, 1
        if run_len:
            rx.value = run_value
            await Timer(run_len * self.bit_ns, unit="ns")

    @staticmethod
    def frame_bits(data: bytes, stop: int = 1) -> list[int]:
        bits = []
        for byte in data:
            bits.append(0)
            bits.extend((byte >> i) & 1 for i in range(8))
            bits.append(stop)
        return bits

    async def send(self, data: bytes) -> None:
        await self.align()
        await self.send_bits(self.frame_bits(data))

    async def send_break(self, bits: int) -> None:
        await self.align()
        await self.send_bits([0] * bits + [1] * 4)

    async def recv_byte(self) -> int:
        tx = self.dut.uart_tx
        await FallingEdge(tx)       # the start bit; tx changes right after a rising clock edge
        D, period = self.D, self.period
        # the middle of data bit 0, moved half a clock period off the edges
        first = (3 * D) // 2 * period + period // 2
        await Timer(first, unit="ns")
        value = 0
        for i in range(8):
            if i:
                await Timer(self.bit_ns, unit="ns")
            value |= int(tx.value) << i
        await Timer(self.bit_ns, unit="ns")
        if not int(tx.value):
            raise AssertionError(f"byte {value:#04x} from the board has a 0 stop bit")
        return value


async def run_job(host: UartHost, job: dict, cfg: dict, log) -> dict:
    spec = IntSpec.from_dict(job["spec"])
    session = HostSession(job["config"], job["samples"], job["n_out"], spec, job.get("window_words", 512))
    await host.send_break(cfg.get("break_bits", 24) + 2)
    ready = Event()
    t0_sim, t0 = get_sim_time("ns"), time.perf_counter()

    async def receive():
        while not session.finished:
            byte = await host.recv_byte()
            if session.feed(bytes([byte])):
                ready.set()

    receiver = cocotb.start_soon(receive())
    await host.send(session.config)
    t_config = time.perf_counter() - t0
    sim_config = get_sim_time("ns") - t0_sim
    while not session.all_sent:
        chunk = session.next_sample()
        if chunk is None:
            ready.clear()
            await ready.wait()
            continue
        await host.send(chunk)
    await receiver
    log.info("job: %d samples, %d bytes out, %d in", len(session.samples), session.bytes_out, session.bytes_in)
    return {"words": session.words, "config_seconds": t_config, "config_sim_ns": sim_config,
            "seconds": time.perf_counter() - t0, "sim_ns": get_sim_time("ns") - t0_sim,
            "bytes_out": session.bytes_out + len(session.config), "bytes_in": session.bytes_in}


@cocotb.test()
async def run_jobs(dut):
    """Garbage, a break, then every job of ``$QUICKSPIKE_UART_TB``; write the result words."""
    cfg = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    period = cfg.get("clock_ns", 10)
    Clock(dut.clk, period, unit="ns").start()
    host = UartHost(dut, cfg["divisor"], period)
    budget = cfg.get("max_cycles", 10_000_000) * period

    async def main():
        out = {"jobs": []}
        await Timer(20 * period, unit="ns")          # power-on reset
        if cfg.get("garbage"):
            await host.send(bytes(cfg["garbage"]))
        for job in cfg["jobs"]:
            out["jobs"].append(await run_job(host, job, cfg, dut._log))
        if cfg.get("bad_stop_byte") is not None:
            frame = cocotb.start_soon(collect_frame())
            await host.align()
            await host.send_bits(host.frame_bits(bytes([cfg["bad_stop_byte"]]), stop=0) + [1] * 2)
            out["error_frame"] = await with_timeout(frame, 100 * host.bit_ns, "ns")
        return out

    async def collect_frame():
        return [await host.recv_byte() for _ in range(RES_BYTES)]

    out = await with_timeout(cocotb.start_soon(main()), budget, "ns")
    tmp = Path(cfg["out"] + ".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, cfg["out"])
