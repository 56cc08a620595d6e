"""An 8N1 UART and the byte framing of the board link.

* :func:`uart_divisor`: clock cycles per bit for a clock and a baud rate, refused when
  the rounding error is more than :data:`MAX_BAUD_ERROR` or the divisor is below
  :data:`MIN_DIVISOR`.
* :class:`UartRx`: the receiver. It takes the (already synchronized) line, finds a
  start bit, samples every bit in its middle and hands each byte out on a
  ``lib.stream``. A UART cannot wait, so the byte stays in the output register until
  it is taken; a byte that completes while the previous one is still there is dropped
  and ``overrun`` pulses. A stop bit that reads 0 pulses ``error`` (framing error),
  unless all the data bits were 0 too (that is the start of a *break*, see
  :class:`BreakDetector`), and the receiver then waits for the line to go high.
* :class:`UartTx`: the transmitter: one start bit, eight data bits LSB first, one
  stop bit; back-to-back bytes leave without a gap.
* :class:`BreakDetector`: ``brk`` is high while the line has been low for at least
  ``bits`` bit periods (a UART *break*: the host's ``send_break``).
* :class:`BytesToWords` / :class:`WordsToBytes`: ``n`` bytes little-endian <-> one
  word, with stream flow control on both sides.

Timing of :class:`UartRx` for a divisor ``D``: the first cycle the line reads 0 is the
start; the start bit is checked ``D // 2`` cycles later, every data bit and the stop
bit ``D`` cycles after the previous sample. With a 2-flip-flop synchronizer in front
the samples sit within about a cycle of each bit's middle. On a real line
:func:`uart_divisor` asks for ``D >= 4``, and a few percent of baud error is tolerated
at the divisors used on boards (12 at 12 MHz / 1 Mbaud); ``D = 2`` or 3 only works
with a sender on the same clock, as in a simulation.
"""


from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MIN_DIVISOR", "MIN_LINE_DIVISOR", "MAX_BAUD_ERROR", "uart_divisor", "UartRx", "UartTx", "BreakDetector",
           "BytesToWords", "WordsToBytes"]

#: Smallest clock-cycles-per-bit of :class:`UartRx` / :class:`UartTx`: 2 works only with
#: a sender on the same clock (a simulation); :func:`uart_divisor` asks for
#: :data:`MIN_LINE_DIVISOR` on a real line.
MIN_DIVISOR = 2
#: Smallest divisor :func:`uart_divisor` accepts (a real, asynchronous line).
MIN_LINE_DIVISOR = 4
#: Largest relative baud error :func:`uart_divisor` accepts (2 %: under 0.2 bit over a frame).
MAX_BAUD_ERROR = 0.02


def uart_divisor(clk_hz: float, baud: float) -> int:
    """Clock cycles per bit, ``round(clk_hz / baud)``; ``ValueError`` when unusable."""
    for name, value in (("clock frequency", clk_hz), ("baud rate", baud)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} {value!r} must be a positive number")
    divisor = round(clk_hz / baud)
    if divisor < MIN_LINE_DIVISOR:
        raise ValueError(f"baud rate {baud:.0f} is too fast for a {clk_hz / 1e6:g} MHz clock: "
                         f"{clk_hz / baud:.2f} cycles per bit, at least {MIN_LINE_DIVISOR} needed")
    error = abs(clk_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"baud rate {baud:.0f} is off by {100 * error:.1f} % with a {clk_hz / 1e6:g} MHz clock "
                         f"(divisor {divisor}); at most {100 * MAX_BAUD_ERROR:g} % works")
    return divisor


def _check_divisor(divisor) -> int:
    if isinstance(divisor, bool) or not isinstance(divisor, int):
        raise TypeError(f"divisor must be an integer, not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"divisor {divisor} is below the minimum of {MIN_DIVISOR} cycles per bit")
    return divisor


class UartRx(wiring.Component):
    """8N1 receiver; ``divisor`` clock cycles per bit.

    Ports: ``rx`` (``In(1)``, the synchronized line, idle high), ``data``
    (``Out(stream.Signature(8))``), ``error`` (``Out(1)``, one-cycle pulse: framing
    error), ``overrun`` (``Out(1)``, one-cycle pulse: a byte was dropped because
    ``data`` was not taken in time).
    """

    rx: In(1, init=1)
    data: Out(stream.Signature(8))
    error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        D = self.divisor
        cnt = Signal(range(D))
        bit = Signal(range(8))
        sr = Signal(8)

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(~self.rx):
                    m.d.sync += cnt.eq(D // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(cnt == 0):
                    m.d.sync += [cnt.eq(D - 1), bit.eq(0)]
                    with m.If(self.rx):         # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("DATA"):
                with m.If(cnt == 0):
                    m.d.sync += [sr.eq(Cat(sr[1:], self.rx)), cnt.eq(D - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("STOP"):
                with m.If(cnt == 0):
                    with m.If(self.rx):
                        with m.If(self.data.valid & ~self.data.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.data.payload.eq(sr), self.data.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.error.eq(sr != 0)
                        m.next = "WAIT_HIGH"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("WAIT_HIGH"):         # after a framing error or during a break
                with m.If(self.rx):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter; ``divisor`` clock cycles per bit.

    Ports: ``data`` (``In(stream.Signature(8))``), ``tx`` (``Out(1)``, idle high,
    registered).
    """

    data: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        D = self.divisor
        cnt = Signal(range(D))
        left = Signal(range(10))
        sr = Signal(9)
        busy = Signal()
        # ready while idle, or in the last cycle of the stop bit (no gap between bytes)
        m.d.comb += self.data.ready.eq(~busy | ((cnt == 0) & (left == 0)))
        with m.If(busy & (cnt != 0)):
            m.d.sync += cnt.eq(cnt - 1)
        with m.Elif(busy & (left != 0)):
            m.d.sync += [self.tx.eq(sr[0]), sr.eq(sr >> 1), left.eq(left - 1), cnt.eq(D - 1)]
        with m.Elif(busy):
            m.d.sync += [busy.eq(0), self.tx.eq(1)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [busy.eq(1), self.tx.eq(0), sr.eq(Cat(self.data.payload, Const(1, 1))),
                         left.eq(9), cnt.eq(D - 1)]
        return m


class BreakDetector(wiring.Component):
    """``brk`` high while ``rx`` has been low for ``bits × divisor`` cycles or more."""

    rx: In(1, init=1)
    brk: Out(1)

    def __init__(self, divisor: int, bits: int = 24):
        self.divisor = _check_divisor(divisor)
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 11:
            raise ValueError(f"a break must last at least 11 bit periods (longer than a frame), not {bits!r}")
        self.bits = bits
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        limit = self.bits * self.divisor
        low = Signal(range(limit + 1))
        with m.If(self.rx):
            m.d.sync += low.eq(0)
        with m.Elif(low != limit):
            m.d.sync += low.eq(low + 1)
        m.d.comb += self.brk.eq(low == limit)
        return m


class BytesToWords(wiring.Component):
    """``n`` bytes (first byte = least significant) -> one ``8·n``-bit word.

    ``clear`` drops a partly assembled word.
    """

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"bytes per word must be a positive integer, not {n!r}")
        self.n = n
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8 * n)),
                          "clear": In(1)})

    def elaborate(self, platform):
        m = Module()
        n = self.n
        idx = Signal(range(n))
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.o.payload.eq(Cat(self.o.payload[8:], self.i.payload) if n > 1 else self.i.payload)
            with m.If(idx == n - 1):
                m.d.sync += [idx.eq(0), self.o.valid.eq(1)]
            with m.Else():
                m.d.sync += idx.eq(idx + 1)
        with m.If(self.clear):
            m.d.sync += idx.eq(0)
        return m


class WordsToBytes(wiring.Component):
    """One ``width``-bit word -> ``ceil(width / 8)`` bytes, least significant first."""

    def __init__(self, width: int):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"word width must be a positive integer, not {width!r}")
        self.width = width
        self.n = -(-width // 8)
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        n = self.n
        sr = Signal(8 * n)
        left = Signal(range(n + 1))
        m.d.comb += [self.o.valid.eq(left != 0), self.o.payload.eq(sr[:8]),
                     self.i.ready.eq(left == 0)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [sr.eq(sr >> 8), left.eq(left - 1)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [sr.eq(self.i.payload), left.eq(n)]
        return m
