"""The host side of the board link: ``quickspike run``.

A bundle's test samples go to the accelerator on an FPGA board over its UART
(:mod:`quickspike.hw.board_top` describes the link), the results come back and are
compared bit for bit with the golden model (every output potential, the class and the
timesteps), and the accuracy and the cycle counts are reported.

The pieces are separate so the transport is pluggable:

* :class:`HostSession` is the protocol without any I/O ("sans-IO"): the configuration
  bytes, the next sample's bytes when the flow-control window allows it, and
  :meth:`HostSession.feed` for whatever bytes came back, which returns the samples
  that completed. The cocotb board test (``tests/cocotb_tests/uart_tb.py``) drives the
  same object through a bit-banged UART in simulation.
* :class:`Transport`: ``write``, ``read`` (what arrived within a timeout),
  ``send_break``, ``flush_input``, ``close``. :class:`SerialTransport` is a serial
  port (pyserial; any ``serial_for_url`` URL such as ``socket://host:port`` works);
  :func:`open_transport` picks it.
* :func:`run_session` loops a session over a transport; :func:`run_board` adds the
  bundle, the data set, the golden model and the report.

Use::

    python -m quickspike.hw.board_top mlp.qsb --board icebreaker --out build/board
    iceprog build/board/design.bin            # or openFPGALoader for the ULX3S
    quickspike run mlp.qsb --port /dev/ttyUSB1 --board-json build/board/board.json \
        --dataset mnist5k --samples 100 --json run.json

``--board-json`` gives the host the design's configuration, baud rate and FIFO depth;
without it the configuration is sized as ``quickspike generate`` sizes it (``--lanes``)
and the board top's defaults are assumed.

**Flow control** (the window): the words of samples sent whose ``CYCLES`` word has not
come back never exceed the board's command FIFO (``cmd_fifo_words`` in ``board.json``),
except that one sample may always be sent when none is outstanding. So the board's
FIFO never overflows, the next sample is already waiting in it when the previous one
ends, and a sample that fits the FIFO runs back to back (exact ``CYCLES``, see
:mod:`quickspike.hw.board_top`).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from quickspike.errors import UsageError, UserError

__all__ = ["LinkError", "command_bytes", "ResultReader", "HostSession", "Transport", "SerialTransport",
           "open_transport", "run_session", "run_board", "load_board_json", "add_arguments", "run_command"]

# the link constants of quickspike.hw.board_top, repeated here so that the host side
# imports no Amaranth (tests/test_uart.py checks they agree)
CMD_BYTES = 8
RES_BYTES = 5
RESULT_MARK = 0xA
ERROR_MARK = 0xE
ERR_OVERRUN = 1
ERR_FRAMING = 2
DEFAULT_BAUD = 1_000_000
DEFAULT_CMD_FIFO_WORDS = 512
DEFAULT_RES_FIFO_WORDS = 256
_CYCLES_TAG = 4
_WORD_MASK = (1 << 36) - 1


class LinkError(UserError):
    """The board link failed: no answer, a garbled stream or an error frame."""


def command_bytes(words) -> bytes:
    """Command words as the bytes the board takes: 8 per word, least significant first."""
    return b"".join(int(w).to_bytes(CMD_BYTES, "little") for w in words)


def _error_text(flags: int) -> str:
    what = []
    if flags & ERR_OVERRUN:
        what.append("its receive buffer overflowed (the host sent too fast: a byte was lost)")
    if flags & ERR_FRAMING:
        what.append("it received a byte with a bad stop bit (wrong baud rate or a noisy line)")
    return " and ".join(what) or f"error flags {flags:#x}"


class ResultReader:
    """Bytes from the board -> result words (5 bytes each), checked for the frame mark."""

    def __init__(self):
        self._buf = bytearray()
        self.frames = 0

    def feed(self, data: bytes) -> list[int]:
        self._buf += data
        words = []
        n = len(self._buf) // RES_BYTES * RES_BYTES
        for i in range(0, n, RES_BYTES):
            frame = int.from_bytes(self._buf[i:i + RES_BYTES], "little")
            mark = frame >> 36
            if mark == ERROR_MARK:
                raise LinkError(f"the board reports a link error: {_error_text(frame & 0xFF)}; "
                                "the run is lost (rerun it; lower --window or the baud rate if it repeats)")
            if mark != RESULT_MARK:
                raise LinkError(f"garbled result stream: frame {self.frames} is {frame:#012x}, not marked "
                                f"{RESULT_MARK:#x} (wrong baud rate, or another program on the port?)")
            words.append(frame & _WORD_MASK)
            self.frames += 1
        del self._buf[:n]
        return words

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame."""
        return len(self._buf)


@dataclass
class HostSession:
    """The link protocol for one configuration and a list of samples, without I/O."""

    config_words: list
    samples: list
    n_out: int
    spec: object
    #: Command-FIFO words of the board (the flow-control window); 0: one sample at a time.
    window_words: int = DEFAULT_CMD_FIFO_WORDS
    #: Raw result words of every completed sample.
    words: list = field(default_factory=list)
    results: list = field(default_factory=list)

    def __post_init__(self):
        if isinstance(self.window_words, bool) or not isinstance(self.window_words, int) or self.window_words < 0:
            raise UsageError(f"window = {self.window_words!r} must be a number of words >= 0")
        self.sent = 0
        self._outstanding: deque[int] = deque()
        self._reader = ResultReader()
        self._cur: list[int] = []
        self.bytes_out = 0
        self.bytes_in = 0

    @property
    def config(self) -> bytes:
        return command_bytes(self.config_words)

    @property
    def all_sent(self) -> bool:
        return self.sent == len(self.samples)

    @property
    def finished(self) -> bool:
        return len(self.results) == len(self.samples)

    @property
    def outstanding_words(self) -> int:
        return sum(self._outstanding)

    def next_sample(self) -> bytes | None:
        """The next sample's bytes, or ``None`` (all sent, or the window is full)."""
        if self.all_sent:
            return None
        n = len(self.samples[self.sent])
        if self._outstanding and self.outstanding_words + n > self.window_words:
            return None
        self._outstanding.append(n)
        data = command_bytes(self.samples[self.sent])
        self.sent += 1
        self.bytes_out += len(data)
        return data

    def feed(self, data: bytes) -> list:
        """Bytes from the board; returns the :class:`SampleResult` of the samples they completed."""
        from quickspike.hw.protocol import decode_results

        self.bytes_in += len(data)
        done = []
        for word in self._reader.feed(data):
            self._cur.append(word)
            if word >> 32 == _CYCLES_TAG:
                index = len(self.results)
                if index >= self.sent:
                    raise LinkError(f"the board sent the results of sample {index}, which was never sent")
                try:
                    result = decode_results(self._cur, self.n_out, self.spec)
                except ValueError as e:
                    raise LinkError(f"sample {index}: undecodable results ({e})") from None
                self.words.append(self._cur)
                self.results.append(result)
                self._outstanding.popleft()
                self._cur = []
                done.append(result)
        return done


class Transport(Protocol):
    """A byte pipe to the board."""

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes:
        """Whatever arrives within ``timeout`` seconds (at least one byte), or ``b""``."""

    def send_break(self) -> None: ...

    def flush_input(self) -> None: ...

    def close(self) -> None: ...


class SerialTransport:
    """A serial port (or a pyserial URL) at ``baud``, 8N1, no flow control."""

    def __init__(self, port: str, baud: int = DEFAULT_BAUD):
        try:
            import serial
        except ImportError:
            raise UserError("pyserial is not installed: pip install pyserial") from None
        try:
            self.port = serial.serial_for_url(port, baudrate=baud, bytesize=8, parity="N", stopbits=1,
                                              timeout=1.0, write_timeout=None)
        except (serial.SerialException, ValueError) as e:
            raise UsageError(f"cannot open {port}: {e}") from None
        self.name = port

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read(self, timeout: float) -> bytes:
        self.port.timeout = timeout
        first = self.port.read(1)
        if not first:
            return b""
        return first + self.port.read(self.port.in_waiting)

    def send_break(self) -> None:
        self.port.send_break(0.01)

    def flush_input(self) -> None:
        self.port.reset_input_buffer()

    def close(self) -> None:
        self.port.close()


def open_transport(port: str, baud: int) -> Transport:
    """The transport for ``--port`` (a device such as ``/dev/ttyUSB1`` or a pyserial URL)."""
    return SerialTransport(port, baud)


def run_session(transport: Transport, session: HostSession, *, timeout: float = 5.0,
                on_sample=None, reset: bool = True) -> HostSession:
    """Reset the board (a break), configure it and run every sample of ``session``.

    ``on_sample(index, result)`` after each completed sample. Raises
    :class:`LinkError` when the board stays silent for ``timeout`` seconds while
    results are due.
    """
    if reset:
        transport.send_break()
        time.sleep(0.02)
        transport.flush_input()
    transport.write(session.config)
    session.bytes_out += len(session.config)
    while not session.finished:
        while (chunk := session.next_sample()) is not None:
            transport.write(chunk)
        data = transport.read(timeout)
        if not data:
            raise LinkError(f"no answer from the board for {timeout:g} s after {len(session.results)} of "
                            f"{len(session.samples)} samples (is the bitstream loaded, the port and baud "
                            "rate right?)")
        for result in session.feed(data):
            if on_sample is not None:
                on_sample(len(session.results) - 1, result)
    return session


def load_board_json(path: "str | Path") -> dict:
    """``board.json`` as :func:`quickspike.hw.board_top.build_board` writes it."""
    import json

    path = Path(path)
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"board file {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"board file {path} is not readable JSON: {e}") from None
    if not isinstance(info, dict) or "hwcfg" not in info or "cmd_fifo_words" not in info:
        raise UsageError(f"board file {path} has no hwcfg/cmd_fifo_words: not a board.json of quickspike")
    return info


@dataclass(frozen=True)
class RunOptions:
    bundle: Path
    port: str
    dataset: str = "mnist5k"
    samples: int = 100
    baud: int | None = None
    lanes: int = 8
    timesteps: int | None = None
    board_json: Path | None = None
    window: int | None = None
    timeout: float = 5.0
    no_exit: bool = False
    progress: bool = True


def run_board(opts: RunOptions, transport: Transport | None = None) -> dict:
    """Run ``opts.samples`` test samples on the board and compare with the golden model.

    Returns the figures (the ``--json`` file). ``transport`` replaces the serial port
    of ``opts.port`` (a simulated board, a test double).
    """
    import numpy as np

    from quickspike.cosim.compare import compare_all, expected_from_golden
    from quickspike.cosim.run import hwconfig_for
    from quickspike.hw import protocol as P
    from quickspike.hw.config import HwConfig
    from quickspike.hw.fit import check_fits
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.evaluate import check_compatible
    from quickspike.sw.events import network_input
    from quickspike.sw.golden import run_golden
    from quickspike.sw.spec import ExitSpec

    net = load_bundle(opts.bundle)
    data = load_dataset(opts.dataset)
    check_compatible(net, data)
    if opts.samples > len(data.x_test):
        raise UsageError(f"--samples {opts.samples} exceeds the {len(data.x_test)} test samples of {data.name}")
    T = net.timesteps if opts.timesteps is None else opts.timesteps
    info = load_board_json(opts.board_json) if opts.board_json else {}
    if info:
        hwcfg = HwConfig.from_dict(info["hwcfg"])
        check_fits(net, hwcfg, timesteps=T)
    else:
        hwcfg = hwconfig_for(net, opts.lanes, T)
    baud = opts.baud or info.get("baud") or DEFAULT_BAUD
    fifo_words = int(info.get("cmd_fifo_words", DEFAULT_CMD_FIFO_WORDS))
    res_fifo = int(info.get("res_fifo_words", DEFAULT_RES_FIFO_WORDS))
    window = fifo_words if opts.window is None else opts.window
    if window > fifo_words:
        raise UsageError(f"--window {window} exceeds the board's command FIFO of {fifo_words} words")

    n = opts.samples
    x = network_input(net, data, "test", n)
    labels = np.asarray(data.y_test[:n])
    exit = ExitSpec() if opts.no_exit else None
    shape = net.input_shape if len(net.input_shape) == 3 else None
    config = P.encode_network(net, hwcfg, T, exit=exit)
    events = net.input_coding == "events"
    samples = [P.encode_sample(sample.reshape(len(sample), -1) if events else sample.reshape(-1), net.spec,
                               shape=shape, events=events) for sample in x]
    own = transport is None
    if own:
        transport = open_transport(opts.port, baud)
    try:
        golden = run_golden(net, x, T, exit=exit)
    except BaseException:
        if own:
            transport.close()
        raise
    expected = expected_from_golden(golden)
    session = HostSession(config, samples, net.layers[-1].n_out, net.spec, window)

    last = [0.0]

    def progress(i, _result):
        now = time.perf_counter()
        if opts.progress and (i + 1 == n or now - last[0] > 2.0):
            last[0] = now
            print(f"run: {i + 1}/{n} samples", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        run_session(transport, session, timeout=opts.timeout, on_sample=progress)
    finally:
        if own:
            transport.close()
    seconds = time.perf_counter() - t0
    board = compare_all(session.results, expected)
    pred = np.array([r.predicted for r in session.results])
    cycles = np.array([r.cycles for r in session.results], dtype=np.float64)
    # a sample larger than the command FIFO streams at the UART's pace; results beyond the
    # result FIFO wait for it: their CYCLES include link time
    link_bound = {i for i in range(n) if len(samples[i]) > fifo_words or len(session.words[i]) > res_fifo}
    exact = [c for i, c in enumerate(cycles) if i not in link_bound]
    return {
        "bundle": str(opts.bundle), "dataset": data.name, "port": opts.port, "baud": baud,
        "board": info.get("board"), "lanes": hwcfg.lanes, "timesteps": T, "samples": n,
        "mismatches": len(board.mismatches),
        "accuracy_board": float((pred == labels).mean()) if n else 0.0,
        "accuracy_golden": float((golden.predicted.numpy() == labels).mean()) if n else 0.0,
        "avg_timesteps": float(np.mean([r.timesteps for r in session.results])) if n else 0.0,
        "cycles_per_inference": round(float(cycles.mean()), 2) if n else 0.0,
        "cycles_per_inference_exact": round(float(np.mean(exact)), 2) if exact else None,
        "link_bound_samples": len(link_bound),
        "window_words": window, "bytes_sent": session.bytes_out, "bytes_received": session.bytes_in,
        "seconds": round(seconds, 3), "samples_per_second": round(n / seconds, 2) if seconds else None,
        "first_mismatches": [m.to_dict() for m in board.mismatches[:100]],
        "hwcfg": hwcfg.to_dict(),
    }


def run_table(f: dict) -> str:
    """The short table ``quickspike run`` prints."""
    from quickspike.sw.report import table

    rows = [
        ["samples", f["samples"]],
        ["mismatches", f["mismatches"]],
        ["accuracy (board / golden)", f"{f['accuracy_board']:.4f} / {f['accuracy_golden']:.4f}"],
        ["avg timesteps", f"{f['avg_timesteps']:.2f}"],
        ["cycles / inference", f"{f['cycles_per_inference']:.1f}"
         + (f"  ({f['link_bound_samples']} samples include link time)" if f["link_bound_samples"] else "")],
        ["samples / s (link)", f"{f['samples_per_second']:.1f}" if f["samples_per_second"] else "-"],
    ]
    head = f"{f['dataset']}: {f['samples']} test samples on {f['port']} at {f['baud']} baud, T={f['timesteps']}"
    return head + "\n" + table(["figure", "value"], rows)


def add_arguments(p):
    """The options of ``quickspike run``."""
    from quickspike.cli import _positive_int as positive

    p.add_argument("bundle", type=Path)
    p.add_argument("--port", required=True, help="serial port of the board (e.g. /dev/ttyUSB1) or a pyserial URL")
    p.add_argument("--baud", type=positive, default=None, help="default: board.json's, else 1000000")
    p.add_argument("--board-json", type=Path, default=None,
                   help="board.json of the bitstream (hwcfg, baud, FIFO depth); default: size like generate")
    p.add_argument("--dataset", default="mnist5k", help="its test split is used (the first N samples)")
    p.add_argument("--samples", type=positive, default=100)
    p.add_argument("--lanes", type=positive, default=8, help="without --board-json: the design's lanes")
    p.add_argument("--timesteps", type=positive, default=None, help="default: the bundle's")
    p.add_argument("--window", type=int, default=None,
                   help="words of samples in flight (default: the board's command FIFO; 0: one sample at a time)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds without an answer before giving up")
    p.add_argument("--no-exit", action="store_true", help="ignore the bundle's exit rule: run every sample for T")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def run_command(args) -> int:
    """``quickspike run``: returns the exit status (1 on any mismatch)."""
    import json

    from quickspike.sw.files import atomic_write_text

    if args.window is not None and args.window < 0:
        raise UsageError(f"--window {args.window} must be 0 or more")
    if not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout} must be positive")
    opts = RunOptions(bundle=args.bundle, port=args.port, dataset=args.dataset, samples=args.samples,
                      baud=args.baud, lanes=args.lanes, timesteps=args.timesteps, board_json=args.board_json,
                      window=args.window, timeout=args.timeout, no_exit=args.no_exit, progress=not args.quiet)
    figures = run_board(opts)
    print(run_table(figures))
    if args.json:
        atomic_write_text(args.json, json.dumps(figures, indent=2))
    if figures["mismatches"]:
        for m in figures["first_mismatches"][:10]:
            print(f"mismatch: {m['message']}", file=sys.stderr)
        print(f"{figures['mismatches']} of {figures['samples']} samples mismatch the golden model", file=sys.stderr)
        return 1
    return 0
