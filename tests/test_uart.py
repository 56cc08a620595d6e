"""The UART board link: components, framing, host client, and the board top under cocotb.

* :mod:`quickspike.hw.uart` under ``amaranth.sim``: the transmitter's waveform bit by
  bit, the receiver on waveforms made in Python (every divisor phase, glitches,
  framing errors, breaks, overrun), a TX -> RX loopback, the byte/word framers with
  random stalls.
* :mod:`quickspike.run_client` without hardware: frames, error frames, the
  flow-control window, ``run_session`` and ``quickspike run`` against a fake board.
* The board top (:class:`~quickspike.hw.board_top.BoardTop`) as Verilog under cocotb +
  Verilator, driven by the real host session through a bit-banged UART
  (``tests/cocotb_tests/uart_tb.py``): garbage then a break, two configurations,
  samples in flight, a bad stop bit; every result bit-exact with the golden model and
  every ``CYCLES`` word equal to the bare accelerator's.

The 50-sample mnist5k run is ``tests/test_uart_mnist.py`` (opt-in: it takes minutes).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from quickspike.errors import UsageError
from quickspike.hw import board_top as BT
from quickspike.hw import protocol as P
from quickspike.hw.uart import (BreakDetector, BytesToWords, UartRx, UartTx, WordsToBytes,
                                uart_divisor)
from quickspike import run_client as RC

TB_DIR = Path(__file__).parent / "cocotb_tests"


# ------------------------------------------------------------------------ helpers

def line_bits(data: bytes, stop: int = 1) -> list[int]:
    """The 8N1 bits of ``data`` (one entry per bit period)."""
    bits = []
    for b in data:
        bits += [0] + [(b >> i) & 1 for i in range(8)] + [stop]
    return bits


def waveform(bits, divisor: int, idle_before: int = 3, idle_after: int = 0) -> list[int]:
    """One line level per clock cycle."""
    return [1] * idle_before + [b for b in bits for _ in range(divisor)] + [1] * idle_after


def decode_line(levels, divisor: int) -> list[int]:
    """Bytes of a per-cycle line (ideal receiver: samples the middle of each bit)."""
    out, i = [], 0
    while i < len(levels):
        if levels[i]:
            i += 1
            continue
        mid = i + divisor // 2
        bits = [levels[mid + k * divisor] for k in range(10)]
        assert bits[0] == 0 and bits[9] == 1, f"bad frame at cycle {i}: {bits}"
        out.append(sum(b << k for k, b in enumerate(bits[1:9])))
        i += 10 * divisor - divisor // 2
    return out


def run_sim(dut, bench, *extra):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    for proc in extra:
        sim.add_process(proc)
    sim.run()


# ---------------------------------------------------------------------- divisors

@pytest.mark.parametrize("clk, baud, divisor", [
    (12e6, 1_000_000, 12), (12e6, 115_200, 104), (12e6, 3_000_000, 4), (12e6, 921_600, 13),
    (25e6, 1_000_000, 25), (25e6, 115_200, 217),
])
def test_uart_divisor(clk, baud, divisor):
    assert uart_divisor(clk, baud) == divisor


@pytest.mark.parametrize("clk, baud, message", [
    (12e6, 4_000_000, "too fast"), (25e6, 3_000_000, "baud rate 3000000 is off by 4.2 %"), (0, 9600, "clock frequency"),
    (12e6, -1, "baud rate -1"),
])
def test_uart_divisor_refused(clk, baud, message):
    with pytest.raises(ValueError, match=message):
        uart_divisor(clk, baud)


def test_bad_component_parameters():
    with pytest.raises(ValueError, match="divisor 1 is below"):
        UartRx(1)
    with pytest.raises(TypeError, match="divisor must be an integer"):
        UartTx(4.0)
    with pytest.raises(ValueError, match="at least 11 bit periods"):
        BreakDetector(4, bits=5)
    with pytest.raises(ValueError, match="cmd_fifo_words"):
        BT.BoardTop(_tiny_hwcfg(), divisor=4, cmd_fifo_words=1)
    with pytest.raises(ValueError, match="needs a board, clk_hz or divisor"):
        BT.BoardTop(_tiny_hwcfg())
    with pytest.raises(ValueError, match="divisor = 1 must be"):
        BT.BoardTop(_tiny_hwcfg(), divisor=1)
    with pytest.raises(ValueError, match="off by"):
        BT.BoardTop(_tiny_hwcfg(), "ulx3s-25f", baud=3_000_000)
    with pytest.raises(TypeError, match="hwcfg must be a HwConfig"):
        BT.BoardTop({}, divisor=4)


# ------------------------------------------------------------------- transmitter

@pytest.mark.parametrize("divisor", [2, 3, 12])
def test_tx_waveform(divisor):
    data = bytes([0x55, 0x00, 0xFF, 0xA3, 0x01])
    dut = UartTx(divisor)
    levels = []

    async def bench(ctx):
        assert ctx.get(dut.tx) == 1
        for byte in data:
            ctx.set(dut.data.payload, byte)
            ctx.set(dut.data.valid, 1)
            await ctx.tick().until(dut.data.ready)
        ctx.set(dut.data.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    async def monitor(ctx):
        async for _clk, _rst, tx in ctx.tick().sample(dut.tx):
            levels.append(tx)

    run_sim(dut, bench, monitor)
    start = levels.index(0)
    # back to back: exactly 10 bit periods per byte, each bit exactly `divisor` cycles
    want = line_bits(data)
    got = levels[start:start + len(want) * divisor]
    assert got == [b for b in want for _ in range(divisor)]
    assert set(levels[start + len(want) * divisor:]) == {1}
    assert decode_line(levels, divisor) == list(data)


# ---------------------------------------------------------------------- receiver

def _rx_run(divisor, levels, ready=True):
    """Feed ``levels`` (one per cycle) to a UartRx; bytes taken, error/overrun cycles."""
    dut = UartRx(divisor)
    got, errors, overruns = [], [], []

    async def bench(ctx):
        ctx.set(dut.data.ready, int(ready))
        for cycle, level in enumerate(levels):
            ctx.set(dut.rx, level)
            await ctx.delay(0)
            if ctx.get(dut.error):
                errors.append(cycle)
            if ctx.get(dut.overrun):
                overruns.append(cycle)
            if ready and ctx.get(dut.data.valid):
                got.append(ctx.get(dut.data.payload))
            await ctx.tick()
        if not ready and ctx.get(dut.data.valid):
            got.append(ctx.get(dut.data.payload))

    run_sim(dut, bench)
    return got, errors, overruns


@pytest.mark.parametrize("divisor", [2, 3, 4, 12, 13])
def test_rx_decodes_every_phase(divisor):
    rng = random.Random(divisor)
    data = bytes(rng.randrange(256) for _ in range(6)) + b"\x00\xff"
    for idle in range(divisor):           # every start phase relative to the divisor
        got, errors, overruns = _rx_run(divisor, waveform(line_bits(data), divisor, 2 + idle, 2 * divisor))
        assert (bytes(got), errors, overruns) == (data, [], [])


def test_rx_tolerates_baud_error():
    # the sender 2 % slow and 2 % fast against a divisor of 12 (each bit 11.76 / 12.24 cycles)
    data = bytes([0x5A, 0xC3, 0x00, 0xFF, 0x81])
    for bit_cycles in (11.76, 12.24):
        bits = line_bits(data)
        levels = [1] * 5 + [bits[int(c / bit_cycles)] for c in range(int(len(bits) * bit_cycles))] + [1] * 30
        got, errors, _ = _rx_run(12, levels)
        assert (bytes(got), errors) == (data, [])


def test_rx_ignores_a_glitch_and_flags_framing_errors_but_not_breaks():
    D = 4
    glitch = [1] * 3 + [0] + [1] * 10                        # shorter than half a bit
    bad_stop = waveform(line_bits(b"\x5a", stop=0), D, 0, 0)  # non-zero data, stop bit 0
    brk = [0] * (12 * D)                                       # a break: zero data, stop bit 0
    good = waveform(line_bits(b"\x42"), D, 2, 2 * D)
    got, errors, overruns = _rx_run(D, glitch + bad_stop + [1] * 3 + brk + [1] * 3 + good)
    assert got == [0x42]
    assert len(errors) == 1 and overruns == []


def test_rx_overrun_keeps_the_first_byte():
    got, errors, overruns = _rx_run(4, waveform(line_bits(b"\x11\x22"), 4, 2, 8), ready=False)
    assert got == [0x11] and errors == [] and len(overruns) == 1


def test_break_detector():
    D, bits = 3, 12
    dut = BreakDetector(D, bits)
    seen = []

    async def bench(ctx):
        for level in [1] * 4 + [0] * (bits * D + 5) + [1] * 3 + [0] * (bits * D - 2) + [1] * 2:
            ctx.set(dut.rx, level)
            await ctx.tick()
            seen.append(ctx.get(dut.brk))

    run_sim(dut, bench)
    assert sum(seen) == 6           # high from the (bits·D)-th low cycle through the end of the first break
    assert seen[4 + bits * D - 1] == 1 and seen[4 + bits * D - 2] == 0


@pytest.mark.parametrize("divisor", [2, 5])
def test_tx_rx_loopback(divisor):
    data = bytes(random.Random(3).randrange(256) for _ in range(20))
    m = Module()
    m.submodules.tx = tx = UartTx(divisor)
    m.submodules.rx = rx = UartRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []

    async def bench(ctx):
        ctx.set(rx.data.ready, 1)
        for byte in data:
            ctx.set(tx.data.payload, byte)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    async def monitor(ctx):
        async for _clk, _rst, valid, payload, err in ctx.tick().sample(rx.data.valid, rx.data.payload, rx.error):
            assert not err
            if valid:
                got.append(payload)

    run_sim(m, bench, monitor)
    assert bytes(got) == data


# ----------------------------------------------------------------------- framers

def test_bytes_to_words_and_back_with_stalls():
    rng = random.Random(7)
    words = [rng.randrange(1 << 36) for _ in range(30)]
    m = Module()
    m.submodules.ser = ser = WordsToBytes(40)
    m.submodules.asm = asm = BytesToWords(5)
    m.d.comb += [asm.i.payload.eq(ser.o.payload), asm.i.valid.eq(ser.o.valid), ser.o.ready.eq(asm.i.ready)]
    got = []

    async def producer(ctx):
        for w in words:
            ctx.set(ser.i.payload, w)
            ctx.set(ser.i.valid, 1)
            await ctx.tick().until(ser.i.ready)
            ctx.set(ser.i.valid, 0)
            if gap := rng.randrange(3):
                await ctx.tick().repeat(gap)

    async def consumer(ctx):
        while len(got) < len(words):
            take = rng.random() < 0.5
            ctx.set(asm.o.ready, int(take))
            await ctx.delay(0)
            if take and ctx.get(asm.o.valid):
                got.append(ctx.get(asm.o.payload))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    assert got == words
    assert ser.n == 5


def test_bytes_to_words_is_little_endian_and_clear_drops_a_partial_word():
    dut = BytesToWords(8)
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)

        async def send(byte):
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
            ctx.set(dut.i.valid, 0)
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))

        for byte in b"\x99\x98\x97":
            await send(byte)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for byte in (0x1122334455667788).to_bytes(8, "little"):
            await send(byte)
        await ctx.tick()

    run_sim(dut, bench)
    assert got == [0x1122334455667788]


# --------------------------------------------------------------- host client, no HW

def test_link_constants_agree():
    for name in ("CMD_BYTES", "RES_BYTES", "RESULT_MARK", "ERROR_MARK", "ERR_OVERRUN", "ERR_FRAMING",
                 "DEFAULT_BAUD", "DEFAULT_CMD_FIFO_WORDS", "DEFAULT_RES_FIFO_WORDS"):
        assert getattr(RC, name) == getattr(BT, name), name
    assert RC.command_bytes([0x0102030405060708]) == bytes([8, 7, 6, 5, 4, 3, 2, 1])


def _frame(word, mark=RC.RESULT_MARK):
    return ((mark << 36) | word).to_bytes(RC.RES_BYTES, "little")


def test_result_reader():
    r = RC.ResultReader()
    data = _frame(0x1_0000_0005) + _frame(0x4_0000_0123)
    assert r.feed(data[:3]) == [] and r.pending == 3
    assert r.feed(data[3:7]) == [0x1_0000_0005]
    assert r.feed(data[7:]) == [0x4_0000_0123] and r.pending == 0
    with pytest.raises(RC.LinkError, match="overflowed"):
        r.feed(_frame(RC.ERR_OVERRUN, RC.ERROR_MARK))
    with pytest.raises(RC.LinkError, match="bad stop bit"):
        RC.ResultReader().feed(_frame(RC.ERR_FRAMING, RC.ERROR_MARK))
    with pytest.raises(RC.LinkError, match="garbled result stream: frame 1"):
        RC.ResultReader().feed(_frame(7) + b"\x00" + _frame(7)[:4])


def _tiny_hwcfg():
    from quickspike.hw.config import HwConfig
    from quickspike.hw.testnets import dense_net
    return HwConfig.from_network(dense_net(), 4)


def _result_words(exp, cycles=100):
    """The result words the accelerator sends for a golden ``Expected``."""
    words = [(P.TAG["POT"] << 32) | (v & 0xFFFFFFFF) for row in exp.potentials for v in row]
    return words + [(P.TAG["CLASS"] << 32) | exp.predicted, (P.TAG["STEPS"] << 32) | exp.timesteps,
                    (P.TAG["CYCLES"] << 32) | cycles]


class FakeBoard:
    """A transport that answers each sample with given result words; checks the window."""

    def __init__(self, answers, fifo_words, error_after=None, silent_after=None):
        self.answers, self.fifo_words = answers, fifo_words
        self.error_after, self.silent_after = error_after, silent_after
        self.rx = bytearray()
        self.out = bytearray()
        self.words_in = []
        self.pending = []           # word counts of samples not yet answered
        self.cur = 0
        self.max_pending = 0
        self.breaks = 0
        self.answered = 0
        self.closed = False

    def write(self, data):
        self.rx += data
        while len(self.rx) >= 8:
            word = int.from_bytes(self.rx[:8], "little")
            del self.rx[:8]
            op = word >> 60
            if op == P.OP["START"]:
                self.cur = 0
            self.cur += 1
            if op == P.OP["RUN"]:
                self.pending.append(self.cur)
                self.max_pending = max(self.max_pending, sum(self.pending))
                if len(self.pending) > 1:
                    assert sum(self.pending) <= self.fifo_words, "the host overran the window"

    def read(self, timeout):
        if self.pending and not self.out:
            i = self.answered
            if self.silent_after is not None and i >= self.silent_after:
                return b""
            if self.error_after is not None and i >= self.error_after:
                self.out += _frame(RC.ERR_OVERRUN, RC.ERROR_MARK)
            else:
                self.out += b"".join(_frame(w) for w in self.answers[i])
                self.pending.pop(0)
                self.answered += 1
        data, self.out = bytes(self.out[:7]), self.out[7:]   # partial frames on purpose
        return data

    def send_break(self):
        self.breaks += 1

    def flush_input(self):
        self.out.clear()

    def close(self):
        self.closed = True


def test_host_session_window():
    spec = _tiny_hwcfg().spec
    samples = [[P.cmd("START")] + [P.cmd("PIXEL", 0, 1)] * k + [P.cmd("RUN")] for k in (3, 5, 1, 8, 2)]
    s = RC.HostSession([P.cmd("NOP")], samples, 1, spec, window_words=12)
    assert s.next_sample() is not None and s.next_sample() is not None   # 5 + 7 words
    assert s.next_sample() is None and s.outstanding_words == 12
    with pytest.raises(UsageError, match="window"):
        RC.HostSession([], samples, 1, spec, window_words=-1)
    # stop and wait: one sample at a time, but always one
    s = RC.HostSession([], samples, 1, spec, window_words=0)
    assert s.next_sample() is not None and s.next_sample() is None


@pytest.fixture(scope="module")
def tiny_board_bundle(tmp_path_factory):
    """A tiny dense network saved as a bundle, with a digits-shaped first layer."""
    from quickspike.hw.testnets import dense_net
    from quickspike.sw.bundle import save_bundle

    net = dense_net(seed=5, n_in=64, hidden=12, n_out=10, T=3)
    path = tmp_path_factory.mktemp("board") / "tiny.qsb"
    save_bundle(net, path)
    return path, net


def _answers(net, n, corrupt=None):
    from quickspike.cosim.compare import expected_from_golden
    from quickspike.sw.data import load_dataset
    from quickspike.sw.golden import run_golden

    data = load_dataset("digits")
    x = np.asarray(data.x_test[:n]).reshape(n, *net.input_shape)
    answers = [_result_words(e, cycles=100 + i) for i, e in enumerate(expected_from_golden(run_golden(net, x)))]
    if corrupt is not None:
        answers[corrupt][1] ^= 1
    return answers


def test_run_board_against_a_fake_board(tiny_board_bundle, tmp_path):
    path, net = tiny_board_bundle
    board_json = tmp_path / "board.json"
    board_json.write_text(json.dumps({"hwcfg": _hwcfg_for(net).to_dict(), "cmd_fifo_words": 64,
                                      "res_fifo_words": 64, "baud": 115200, "board": "icebreaker"}))
    fake = FakeBoard(_answers(net, 20), fifo_words=64)
    opts = RC.RunOptions(bundle=path, port="fake", dataset="digits", samples=20, board_json=board_json,
                         progress=False)
    f = RC.run_board(opts, transport=fake)
    assert f["mismatches"] == 0 and f["samples"] == 20 and f["window_words"] == 64 and f["baud"] == 115200
    assert f["accuracy_board"] == f["accuracy_golden"]
    assert f["cycles_per_inference"] == pytest.approx(100 + 19 / 2)
    assert fake.breaks == 1 and fake.max_pending > 20     # several samples were in flight
    assert "mismatches" in RC.run_table(f)


def _hwcfg_for(net):
    from quickspike.cosim.run import hwconfig_for
    return hwconfig_for(net, 8)


def test_run_command_reports_mismatches_and_link_errors(tiny_board_bundle, tmp_path, monkeypatch, capsys):
    from quickspike.cli import main

    path, net = tiny_board_bundle
    boards = {}

    def fake_open(port, baud):
        assert baud == 1_000_000
        return boards[port]

    monkeypatch.setattr(RC, "open_transport", fake_open)
    args = ["run", str(path), "--dataset", "digits", "--samples", "6", "--quiet"]
    boards["ok"] = FakeBoard(_answers(net, 6), fifo_words=RC.DEFAULT_CMD_FIFO_WORDS)
    out = tmp_path / "run.json"
    assert main([*args, "--port", "ok", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["mismatches"] == 0 and boards["ok"].closed

    boards["bad"] = FakeBoard(_answers(net, 6, corrupt=2), fifo_words=RC.DEFAULT_CMD_FIFO_WORDS)
    assert main([*args, "--port", "bad"]) == 1
    err = capsys.readouterr().err
    assert "mismatch: sample 2, timestep 0, neuron 1: output potential" in err
    assert "1 of 6 samples mismatch" in err

    boards["err"] = FakeBoard(_answers(net, 6), fifo_words=RC.DEFAULT_CMD_FIFO_WORDS, error_after=3)
    assert main([*args, "--port", "err"]) == 1
    assert "the board reports a link error: its receive buffer overflowed" in capsys.readouterr().err

    boards["silent"] = FakeBoard(_answers(net, 6), fifo_words=RC.DEFAULT_CMD_FIFO_WORDS, silent_after=4)
    assert main([*args, "--port", "silent", "--timeout", "0.1"]) == 1
    assert "no answer from the board for 0.1 s after 4 of 6 samples" in capsys.readouterr().err

    assert main([*args, "--port", "ok", "--window", "-1"]) == 2
    assert main([*args, "--port", "ok", "--board-json", str(tmp_path / "none.json")]) == 2
    assert "board file" in capsys.readouterr().err


def test_serial_port_errors_are_one_line(tiny_board_bundle):
    pytest.importorskip("serial")
    with pytest.raises(UsageError, match="cannot open /nonexistent/tty"):
        RC.SerialTransport("/nonexistent/tty")
    loop = RC.SerialTransport("loop://", 115200)      # pyserial's loopback: bytes come back
    loop.write(b"abc")
    assert loop.read(0.5) == b"abc" and loop.read(0.01) == b""
    loop.close()


# ------------------------------------------------------------- board top under cocotb

def run_board_cosim(jobs, hwcfg, *, divisor, cmd_fifo_words=BT.DEFAULT_CMD_FIFO_WORDS,
                    res_fifo_words=BT.DEFAULT_RES_FIFO_WORDS, garbage=(), bad_stop_byte=None,
                    work: Path, max_cycles=50_000_000):
    """Run ``jobs`` (``(net, pixels, window_words)``) through the board top's Verilog over its UART.

    Returns ``(per job: list of SampleResult, out dict of the testbench, CocotbResult)``.
    """
    from quickspike.cosim.cocotb_runner import run_cocotb
    from quickspike.synth.prepare import strip_zero_memory_init

    top = BT.BoardTop(hwcfg, divisor=divisor, cmd_fifo_words=cmd_fifo_words, res_fifo_words=res_fifo_words,
                      por_cycles=8)
    # zero initializers say nothing Verilator does not do anyway; they only slow the build
    verilog, _ = strip_zero_memory_init(BT.board_verilog(top))
    encoded = []
    for net, pixels, window in jobs:
        shape = net.input_shape if len(net.input_shape) == 3 else None
        flat = np.asarray(pixels).reshape(len(pixels), -1)
        encoded.append({"config": P.encode_network(net, hwcfg),
                        "samples": [P.encode_sample(img, net.spec, shape=shape) for img in flat],
                        "n_out": net.layers[-1].n_out, "spec": net.spec.to_dict(), "window_words": window})
    work.mkdir(parents=True, exist_ok=True)
    cfg = {"divisor": divisor, "clock_ns": 10, "break_bits": BT.BREAK_BITS, "garbage": list(garbage),
           "jobs": encoded, "bad_stop_byte": bad_stop_byte, "max_cycles": max_cycles,
           "out": str(work / "out.json")}
    (work / "cfg.json").write_text(json.dumps(cfg))
    result = run_cocotb(verilog, BT.BOARD_TOP_NAME, "uart_tb", python_path=[TB_DIR],
                        extra_env={"QUICKSPIKE_UART_TB": str(work / "cfg.json")}, test_dir=work / "sim",
                        build_args=("--output-split", "0"), check=True)
    out = json.loads((work / "out.json").read_text())
    decoded = [[P.decode_results(w, net.layers[-1].n_out, net.spec) for w in res["words"]]
               for (net, _, _), res in zip(jobs, out["jobs"])]
    return decoded, out, result


def test_board_top_over_uart_is_bit_exact(tmp_path):
    from quickspike.cosim.compare import compare_all, expected_from_golden
    from quickspike.hw.config import HwConfig
    from quickspike.hw.sim import simulate
    from quickspike.hw.testnets import dense_net, pixels
    from quickspike.sw.golden import run_golden
    from quickspike.sw.spec import ExitSpec

    a = dense_net(seed=0)
    b = dense_net(seed=3, n_in=10, hidden=9, n_out=4, T=3, reset="zero", leak=1)
    hwcfg = HwConfig.from_network(a, 4, event_words=4)
    xa, xb = pixels(a, 6, seed=1), pixels(b, 5, seed=2)
    t0 = time.perf_counter()
    # window 32 with samples of ~10 words: up to three samples in flight
    decoded, out, result = run_board_cosim([(a, xa, 32), (b, xb, 0)], hwcfg, divisor=3, cmd_fifo_words=32,
                                           res_fifo_words=32, garbage=bytes(range(1, 14)),
                                           bad_stop_byte=0x5A, work=tmp_path)
    seconds = time.perf_counter() - t0
    for (net, x), got in zip(((a, xa), (b, xb)), decoded):
        board = compare_all(got, expected_from_golden(run_golden(net, x)))
        assert board.ok, board.summary()
        # the sample gate and the FIFOs give the accelerator its words back to back: the
        # same CYCLES as the bare accelerator driven word by word
        bare = simulate(net, hwcfg, x, exit=ExitSpec())
        assert [r.cycles for r in got] == [r.cycles for r in bare]
    # the bad stop bit came back as an error frame: ERR_FRAMING, marked 0xE
    frame = int.from_bytes(bytes(out["error_frame"]), "little")
    assert (frame >> 36, frame & 0xFF) == (BT.ERROR_MARK, BT.ERR_FRAMING)
    print(f"board top over UART: {seconds:.1f} s (build hit {result.build.hit}, simulation "
          f"{result.sim_seconds:.1f} s)")
