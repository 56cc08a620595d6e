"""The board top: the accelerator behind a UART, :class:`BoardTop`, and its build.

::

    uart_rx ─ sync ─ UartRx ─ BytesToWords(8) ─ command FIFO ─ sample gate ─┐
                  └─ BreakDetector ── reset                         Accelerator
    uart_tx ─────── UartTx ─ WordsToBytes(40) ─ frame mux ─ result FIFO ────┘

**The link** (8N1, :func:`~quickspike.hw.uart.uart_divisor` cycles per bit; 1 Mbaud by
default on every board):

* host → board: every command word of :mod:`quickspike.hw.protocol` as
  :data:`CMD_BYTES` = 8 bytes, least significant first (``word.to_bytes(8, "little")``).
  There is no marker: a *break* (the line held low for :data:`BREAK_BITS` bit periods
  or more, ``serial.send_break()``) resets the whole board top (accelerator, FIFOs,
  UART, byte counter), which puts the framing back in step. The loaded weights stay in
  RAM but the registers do not, so a host sends the configuration after every break.
* board → host: every result word (36 bits) as :data:`RES_BYTES` = 5 bytes, least
  significant first, of ``(mark << 36) | word``: ``mark`` is :data:`RESULT_MARK`
  (``0xA``) for a result word and :data:`ERROR_MARK` (``0xE``) for a link error frame
  whose low bits are :data:`ERR_OVERRUN` (the host sent faster than the board takes
  words: a byte was lost) and :data:`ERR_FRAMING` (a byte with a bad stop bit). The
  top nibble of every fifth byte lets the host check that it is in step.

**Flow control.** The command FIFO holds ``cmd_fifo_words`` words. REG, WADDR, WDATA
and NOP words are taken one per cycle while the accelerator is idle, and PIXEL words
at the accumulate rate (a few cycles each), both far faster than a word arrives (80 bit
periods, 960 cycles at 12 MHz / 1 Mbaud). The accelerator only stops taking words for
long at a START, while the previous sample still runs or its results wait for the
UART. So a host never overflows the FIFO when the words of samples it has sent whose
``CYCLES`` word has not come back never exceed ``cmd_fifo_words`` (one sample larger
than that may always be sent when nothing else is outstanding). The host client
(:mod:`quickspike.run_client`) keeps that window.

**Exact cycle counts.** The *sample gate* holds a START word at the head of the FIFO
until the sample's RUN word is in the FIFO too (or the FIFO is full), the accelerator
is idle and the previous sample's results have left the result FIFO; a START once
presented stays presented until taken. So the accelerator gets a whole sample back to
back, one word per cycle, and the result FIFO (``res_fifo_words``) takes every result
word the cycle it comes, exactly as in the simulations: a sample whose words fit the
command FIFO and whose results fit the result FIFO reports the same ``CYCLES`` as
under :mod:`quickspike.cosim` (``tests/test_uart.py`` checks this word for word). A
larger sample streams through at the UART's pace and its ``CYCLES`` includes that
wait. The next sample's words keep arriving while the previous results go out, so
little link time is lost to the gate.

**Clock and reset.** The board's oscillator clocks everything (no PLL: 12 MHz on the
iCEBreaker, 25 MHz on the ULX3S, far below what the accelerator reaches). A power-on
counter holds the design in reset for ``por_cycles`` (default 10 µs: iCE40 block RAM
needs about 3 µs after configuration), and a break on ``uart_rx`` holds it in reset
while it lasts. ``led_busy`` shows the accelerator's ``busy``, ``led_error`` a link
error since the last reset.

:func:`board_verilog` writes the Verilog (top module :data:`BOARD_TOP_NAME`) and
:func:`build_board` synthesizes it with the board's pin constraints into a bitstream
(yosys, nextpnr with the PCF/LPF of :mod:`quickspike.hw.boards`, icepack/ecppack),
writing ``board.json`` (what the host needs: hwcfg, baud, FIFO depth) beside it.
"""


import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.hdl import Cat, ClockDomain, Const, DomainRenamer, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from quickspike.hw import protocol as P
from quickspike.hw.boards import Board, get_board
from quickspike.hw.config import HwConfig
from quickspike.hw.top import Accelerator
from quickspike.hw.uart import (MIN_DIVISOR, BreakDetector, BytesToWords, UartRx, UartTx, WordsToBytes,
                               uart_divisor)

__all__ = ["CMD_BYTES", "RES_BYTES", "RESULT_MARK", "ERROR_MARK", "ERR_OVERRUN", "ERR_FRAMING", "BREAK_BITS",
           "DEFAULT_BAUD", "DEFAULT_CMD_FIFO_WORDS", "DEFAULT_RES_FIFO_WORDS", "BOARD_TOP_NAME",
           "BoardTop", "board_verilog", "BoardBuild", "build_board", "main"]

CMD_BYTES = 8
RES_BYTES = 5
RESULT_MARK = 0xA
ERROR_MARK = 0xE
ERR_OVERRUN = 1
ERR_FRAMING = 2
#: A break: the line low for at least this many bit periods (a frame is 10).
BREAK_BITS = 24
DEFAULT_BAUD = 1_000_000
DEFAULT_CMD_FIFO_WORDS = 512
DEFAULT_RES_FIFO_WORDS = 256
BOARD_TOP_NAME = "quickspike_board"

_OP_SHIFT = 60
_RESULT_BITS = P.OUT_WIDTH + 4


def _positive(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} = {value!r} must be an integer of at least {minimum}")
    return value


class BoardTop(wiring.Component):
    """The accelerator for ``hwcfg`` behind a UART, for ``board`` (or a bare clock).

    Ports: ``clk`` (the oscillator), ``uart_rx``, ``uart_tx``, ``led_busy``,
    ``led_error`` (active low where the board says so). ``divisor`` (clock cycles per
    bit) defaults to the board's clock over ``baud``; a simulation passes a small one.
    Without a board, ``clk_hz`` or ``divisor`` must be given.
    """

    clk: In(1)
    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    led_busy: Out(1)
    led_error: Out(1)

    def __init__(self, hwcfg: HwConfig, board: "str | Board | None" = None, *, baud: int | None = None,
                 clk_hz: int | None = None, divisor: int | None = None,
                 cmd_fifo_words: int = DEFAULT_CMD_FIFO_WORDS, res_fifo_words: int = DEFAULT_RES_FIFO_WORDS,
                 por_cycles: int | None = None, break_bits: int = BREAK_BITS):
        try:
            self._configure(hwcfg, board, baud, clk_hz, divisor, cmd_fifo_words, res_fifo_words, por_cycles,
                            break_bits)
        except Exception:
            self._MustUse__silence = True       # refused: no "created but never used" warning
            raise
        super().__init__()

    def _configure(self, hwcfg, board, baud, clk_hz, divisor, cmd_fifo_words, res_fifo_words, por_cycles,
                   break_bits):
        if not isinstance(hwcfg, HwConfig):
            raise TypeError(f"hwcfg must be a HwConfig, not {type(hwcfg).__name__}")
        self.hwcfg = hwcfg
        self.board = None if board is None else get_board(board)
        if clk_hz is None and self.board is not None:
            clk_hz = self.board.clk_hz
        if baud is None:
            baud = self.board.baud if self.board is not None else DEFAULT_BAUD
        if divisor is None:
            if clk_hz is None:
                raise ValueError("BoardTop needs a board, clk_hz or divisor")
            divisor = uart_divisor(clk_hz, baud)
        self.clk_hz, self.baud = clk_hz, baud
        self.divisor = _positive("divisor", divisor, MIN_DIVISOR)
        self.cmd_fifo_words = _positive("cmd_fifo_words", cmd_fifo_words, 2)
        self.res_fifo_words = _positive("res_fifo_words", res_fifo_words, 2)
        if por_cycles is None:
            por_cycles = max(16, (clk_hz or 0) // 100_000)
        self.por_cycles = _positive("por_cycles", por_cycles)
        self.break_bits = _positive("break_bits", break_bits, 11)

    def link_info(self) -> dict:
        """What a host needs to talk to this board top (``board.json``)."""
        return {"board": self.board.name if self.board else None, "clk_hz": self.clk_hz, "baud": self.baud,
                "divisor": self.divisor, "cmd_fifo_words": self.cmd_fifo_words,
                "res_fifo_words": self.res_fifo_words, "break_bits": self.break_bits,
                "cmd_bytes": CMD_BYTES, "res_bytes": RES_BYTES, "hwcfg": self.hwcfg.to_dict()}

    def elaborate(self, platform):
        m = Module()
        D = self.divisor
        low = set(self.board.active_low) if self.board else set()

        # ---------------------------------------------------------- clock and reset
        m.domains.por = cd_por = ClockDomain("por", reset_less=True)
        m.domains.sync = cd_sync = ClockDomain("sync")
        m.d.comb += [cd_por.clk.eq(self.clk), cd_sync.clk.eq(self.clk)]
        por = Signal(range(self.por_cycles + 1))
        with m.If(por != self.por_cycles):
            m.d.por += por.eq(por + 1)
        rx = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.uart_rx, rx, o_domain="por", init=1)
        m.submodules.brk = brk = DomainRenamer("por")(BreakDetector(D, self.break_bits))
        m.d.comb += [brk.rx.eq(rx), cd_sync.rst.eq((por != self.por_cycles) | brk.brk)]

        # ---------------------------------------------------------- host -> accelerator
        m.submodules.uart_rx = urx = UartRx(D)
        m.submodules.asm = asm = BytesToWords(CMD_BYTES)
        m.submodules.cmdq = cmdq = SyncFIFOBuffered(width=P.IN_WIDTH, depth=self.cmd_fifo_words)
        m.submodules.accel = acc = Accelerator(self.hwcfg)
        m.d.comb += urx.rx.eq(rx)
        wiring.connect(m, urx.data, asm.i)
        m.d.comb += [cmdq.w_data.eq(asm.o.payload), cmdq.w_en.eq(asm.o.valid), asm.o.ready.eq(cmdq.w_rdy)]

        m.submodules.resq = resq = SyncFIFOBuffered(width=P.OUT_WIDTH, depth=self.res_fifo_words)

        # the sample gate: a START waits at the head until its RUN is in the FIFO (or the
        # FIFO is full) and the previous sample is done and its results have left the
        # result FIFO; once presented it stays presented until taken
        run = P.OP["RUN"]
        runs = Signal(range(self.cmd_fifo_words + 2))
        run_in = Signal()
        run_out = Signal()
        head_op = cmdq.r_data[_OP_SHIFT:]
        is_start = head_op == P.OP["START"]
        start_ok = Signal()
        held = Signal()
        gate = Signal()
        m.d.comb += [
            start_ok.eq(~acc.busy & (resq.level == 0) & ((runs != 0) | ~cmdq.w_rdy)),
            gate.eq(~is_start | start_ok | held),
            acc.cmd.payload.eq(cmdq.r_data),
            acc.cmd.valid.eq(cmdq.r_rdy & gate),
            cmdq.r_en.eq(acc.cmd.ready & gate),
            run_in.eq(cmdq.w_en & cmdq.w_rdy & (asm.o.payload[_OP_SHIFT:] == run)),
            run_out.eq(acc.cmd.valid & acc.cmd.ready & (head_op == run)),
        ]
        m.d.sync += runs.eq(runs + run_in - run_out)
        with m.If(acc.cmd.valid & acc.cmd.ready):
            m.d.sync += held.eq(0)
        with m.Elif(acc.cmd.valid & is_start):
            m.d.sync += held.eq(1)

        # ---------------------------------------------------------- accelerator -> host
        m.submodules.ser = ser = WordsToBytes(_RESULT_BITS)
        m.submodules.uart_tx = utx = UartTx(D)
        m.d.comb += [resq.w_data.eq(acc.res.payload), resq.w_en.eq(acc.res.valid), acc.res.ready.eq(resq.w_rdy)]

        errors = Signal(2)          # sticky since reset
        report = Signal()           # an error frame is due
        new = Signal(2)
        m.d.comb += new.eq(Cat(urx.overrun, urx.error) & ~errors)
        err_frame = Cat(errors | new, Const(0, P.OUT_WIDTH - 2), Const(ERROR_MARK, 4))
        res_frame = Cat(resq.r_data, Const(RESULT_MARK, 4))
        m.d.comb += [
            ser.i.valid.eq(report | resq.r_rdy),
            ser.i.payload.eq(Mux(report, err_frame, res_frame)),
            resq.r_en.eq(ser.i.ready & ~report),
        ]
        m.d.sync += errors.eq(errors | new)
        with m.If(new.any()):
            m.d.sync += report.eq(1)
        with m.Elif(ser.i.ready & report):
            m.d.sync += report.eq(0)
        wiring.connect(m, ser.o, utx.data)

        busy_led = acc.busy
        err_led = errors.any()
        m.d.comb += [
            self.uart_tx.eq(utx.tx),
            self.led_busy.eq(~busy_led if "led_busy" in low else busy_led),
            self.led_error.eq(~err_led if "led_error" in low else err_led),
        ]
        return m


def board_verilog(top: BoardTop, name: str = BOARD_TOP_NAME) -> str:
    """Verilog of ``top`` (module ``name``: ports ``clk uart_rx uart_tx led_busy led_error``)."""
    from amaranth.back import verilog

    if not isinstance(top, BoardTop):
        raise TypeError(f"top must be a BoardTop, not {type(top).__name__}")
    return verilog.convert(top, name=name, emit_src=False)


@dataclass
class BoardBuild:
    """What :func:`build_board` produced (``board_build.json``)."""

    board: str
    target: str
    out_dir: str
    link: dict
    fits: bool = False
    luts: int | None = None
    ffs: int | None = None
    bram: int | None = None
    spram: int | None = None
    dsp: int | None = None
    io: int | None = None
    fmax_mhz: float | None = None
    timing_met: bool | None = None
    bitstream: str | None = None
    utilization: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        from dataclasses import asdict
        return asdict(self)


def build_board(hwcfg: HwConfig, board: "str | Board", out_dir: "str | Path", *, baud: int | None = None,
                cmd_fifo_words: int = DEFAULT_CMD_FIFO_WORDS, res_fifo_words: int = DEFAULT_RES_FIFO_WORDS,
                seed: int = 1, progress: bool = True, timeout: float | None = None) -> BoardBuild:
    """Verilog, pin constraints, netlist, place and route and bitstream of the board top.

    Writes into ``out_dir``: ``board.v``, ``board.pcf``/``board.lpf``, ``board.json``
    (:meth:`BoardTop.link_info`), the tools' logs and reports and ``design.bin`` /
    ``design.bit``. Timing is constrained to the board's oscillator.
    """
    from quickspike.synth.prepare import strip_zero_memory_init
    from quickspike.synth.run import netlist_resources, parse_nextpnr_report
    from quickspike.synth.tools import run_tool

    brd = get_board(board)
    tgt = brd.target
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    top = BoardTop(hwcfg, brd, baud=baud, cmd_fifo_words=cmd_fifo_words, res_fifo_words=res_fifo_words)
    verilog, _ = strip_zero_memory_init(board_verilog(top))
    (out / "board.v").write_text(verilog)
    cname, ctext = brd.constraints()
    (out / cname).write_text(ctext)
    info = top.link_info()
    (out / "board.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    result = BoardBuild(brd.name, tgt.name, str(out), info)
    result.times["generate"] = round(time.monotonic() - t0, 2)

    synth = f"{tgt.yosys_command} -top {BOARD_TOP_NAME}"
    script = ["read_verilog board.v", f"hierarchy -check -top {BOARD_TOP_NAME}"]
    if tgt.family == "ecp5":
        script.append("rename -enumerate")   # yosys 0.70 synth_ecp5 can assert on Amaranth's names
    script += [synth, "tee -q -o stat.json stat -json", "write_json netlist.json"]
    (out / "synth.ys").write_text("\n".join(script) + "\n")
    run = run_tool("yosys", ["-q", "-l", "yosys.log", "-s", "synth.ys"], out, "yosys",
                   progress=progress, timeout=timeout)
    result.times["yosys"] = round(run.seconds, 2)
    stat = json.loads((out / "stat.json").read_text())
    design = stat.get("design") or next(iter(stat["modules"].values()))
    cells = {k.lstrip("\\"): int(v) for k, v in design.get("num_cells_by_type", {}).items()}
    result.ffs = netlist_resources(cells, tgt.family)["ffs"]

    freq = brd.clk_hz / 1e6
    common = ["--json", "netlist.json", "--report", "nextpnr_report.json", "--freq", f"{freq:g}",
              "--timing-allow-fail", "--seed", str(seed), "-l", "nextpnr.log", "-q"]
    if tgt.family == "ice40":
        np_tool, pack_tool = "nextpnr-ice40", "icepack"
        args = [tgt.device_arg, "--package", tgt.package, "--pcf", cname, "--asc", "design.asc", *common]
        pack_args, bitstream = ["design.asc", "design.bin"], "design.bin"
    else:
        np_tool, pack_tool = "nextpnr-ecp5", "ecppack"
        args = [tgt.device_arg, "--package", tgt.package, "--speed", str(tgt.speed), "--lpf", cname,
                "--textcfg", "design.config", *common]
        pack_args, bitstream = ["design.config", "design.bit"], "design.bit"
    run = run_tool(np_tool, args, out, "nextpnr", progress=progress, timeout=timeout)
    result.times["nextpnr"] = round(run.seconds, 2)
    parsed = parse_nextpnr_report(json.loads((out / "nextpnr_report.json").read_text()), tgt.family)
    result.utilization = parsed["utilization"]
    for key in ("luts", "ffs", "bram", "spram", "dsp", "io"):
        if key in parsed:
            setattr(result, key, parsed[key])
    result.fmax_mhz = parsed.get("fmax_mhz")
    result.timing_met = None if result.fmax_mhz is None else result.fmax_mhz >= freq
    result.fits = True
    run = run_tool(pack_tool, pack_args, out, "pack", progress=progress, timeout=timeout)
    result.times["pack"] = round(run.seconds, 2)
    result.bitstream = str(out / bitstream)
    result.times["total"] = round(time.monotonic() - t0, 2)
    (out / "board_build.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m quickspike.hw.board_top BUNDLE --board icebreaker --out DIR``: a bitstream."""
    import argparse
    import sys

    from quickspike.errors import UserError
    from quickspike.hw.boards import BOARDS

    ap = argparse.ArgumentParser(prog="python -m quickspike.hw.board_top",
                                 description="Build the UART board top of a bundle's accelerator into a bitstream.")
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--board", required=True, choices=sorted(BOARDS))
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--timesteps", type=int, default=None)
    ap.add_argument("--baud", type=int, default=None)
    ap.add_argument("--cmd-fifo-words", type=int, default=DEFAULT_CMD_FIFO_WORDS)
    ap.add_argument("--res-fifo-words", type=int, default=DEFAULT_RES_FIFO_WORDS)
    args = ap.parse_args(argv)
    try:
        from quickspike.cosim.run import hwconfig_for
        from quickspike.sw.bundle import load_bundle

        net = load_bundle(args.bundle)
        hwcfg = hwconfig_for(net, args.lanes, args.timesteps)
        r = build_board(hwcfg, args.board, args.out, baud=args.baud, cmd_fifo_words=args.cmd_fifo_words,
                        res_fifo_words=args.res_fifo_words)
    except (UserError, ValueError) as e:
        print(f"board_top: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    print(f"{r.board}: {r.luts} LUT, {r.ffs} FF, {r.bram} BRAM, {r.spram} SPRAM, {r.dsp} DSP, "
          f"Fmax {r.fmax_mhz:.1f} MHz -> {r.bitstream} (host settings: {Path(args.out) / 'board.json'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
