"""FPGA boards the accelerator runs on over a UART: :class:`Board` and :data:`BOARDS`.

A board names its FPGA (a :class:`~quickspike.synth.targets.Target` of the synthesis
flow), its oscillator, the pins of the USB-UART bridge and two LEDs, and writes the
pin constraints (PCF for nextpnr-ice40, LPF for nextpnr-ecp5) of the board top's
ports (:class:`~quickspike.hw.board_top.BoardTop`): ``clk``, ``uart_rx`` (FPGA input:
the host's data), ``uart_tx`` (FPGA output), ``led_busy``, ``led_error``.

==========  =====================  ========  =====  =======  =======  ======================
board       FPGA                   package   clock  UART rx  UART tx  LEDs busy / error
==========  =====================  ========  =====  =======  =======  ======================
icebreaker  iCE40UP5K              SG48      35     6        9        37 / 11 (green / red,
                                             12 MHz                   active low)
ulx3s-25f   LFE5U-25F, -45F, -85F  CABGA381  G2     M1       L4       B2 / C2 (LED0 / LED1,
ulx3s-45f   speed grade 6                    25 MHz                   active high)
ulx3s-85f
==========  =====================  ========  =====  =======  =======  ======================

Source of the pins: the board definitions of ``amaranth-boards`` 0.0.21
(``amaranth_boards/icebreaker.py``: ``clk12`` pin 35, ``UARTResource(rx="6", tx="9")``
with ``PULLUP=1``, ``led_r`` 11 and ``led_g`` 37 inverted; ``amaranth_boards/ulx3s.py``:
``clk25`` G2, FTDI ``UARTResource(rx="M1", tx="L4")``, LEDs B2 C2 …, LVCMOS33).
``tests/test_uart_board.py`` checks this table against that package when it is
installed. ``rx`` is named from the FPGA's side: on the iCEBreaker it is the FT2232H
channel B's TXD, on the ULX3S the FT231X's TXD (``ftdi_txd``). The iCEBreaker's
FT2232H channel B is usually ``/dev/ttyUSB1`` (channel A programs the flash); the
ULX3S's FT231X is ``/dev/ttyUSB0``.
"""

from __future__ import annotations

from dataclasses import dataclass

from quickspike.synth.targets import TARGETS, Target

__all__ = ["Board", "BOARDS", "get_board", "PORTS"]

#: Ports of the board top, in the order the constraint files list them.
PORTS = ("clk", "uart_rx", "uart_tx", "led_busy", "led_error")


def _ulx3s_target(size: int, luts: int, bram: int, dsp: int) -> Target:
    return Target(f"ulx3s-{size}f", "ecp5", f"LFE5U-{size}F-6BG381C", f"--{size}k", "CABGA381",
                  luts=luts, ffs=luts, bram=bram, bram_kbit=18, spram=0, dsp=dsp, ios=197,
                  default_mhz=25.0, speed=6)


@dataclass(frozen=True)
class Board:
    """One board: FPGA, oscillator and the pins of the board top."""

    name: str
    target: Target
    #: Oscillator frequency (Hz); the board top runs from it directly.
    clk_hz: int
    #: Port name -> package pin.
    pins: dict
    #: Ports driven active low (LEDs that light on 0).
    active_low: tuple = ()
    #: Port -> extra PCF ``set_io`` options (iCE40) or LPF ``IOBUF`` attributes (ECP5).
    io_attrs: dict | None = None
    #: The serial device the board's USB-UART usually appears as (a hint for the CLI).
    port_hint: str = "/dev/ttyUSB0"
    #: Default baud rate of the link.
    baud: int = 1_000_000

    def __post_init__(self):
        missing = [p for p in PORTS if p not in self.pins]
        if missing:
            raise ValueError(f"board {self.name!r} has no pin for {missing[0]!r}")

    @property
    def family(self) -> str:
        return self.target.family

    def constraints(self) -> tuple[str, str]:
        """``(file name, text)`` of the pin constraints of :data:`PORTS`."""
        attrs = self.io_attrs or {}
        if self.family == "ice40":
            lines = [f"# {self.name}: board top pins (quickspike.hw.boards)"]
            for port in PORTS:
                extra = attrs.get(port, "")
                lines.append(f"set_io {extra + ' ' if extra else ''}{port} {self.pins[port]}")
            return "board.pcf", "\n".join(lines) + "\n"
        lines = [f"# {self.name}: board top pins (quickspike.hw.boards)"]
        for port in PORTS:
            lines.append(f'LOCATE COMP "{port}" SITE "{self.pins[port]}";')
            lines.append(f'IOBUF PORT "{port}" {attrs.get(port, "IO_TYPE=LVCMOS33")};')
        lines.append(f'FREQUENCY PORT "clk" {self.clk_hz / 1e6:g} MHZ;')
        return "board.lpf", "\n".join(lines) + "\n"


BOARDS: dict[str, Board] = {
    b.name: b for b in (
        Board("icebreaker", TARGETS["ice40-up5k"], 12_000_000,
              {"clk": "35", "uart_rx": "6", "uart_tx": "9", "led_busy": "37", "led_error": "11"},
              active_low=("led_busy", "led_error"), io_attrs={"uart_rx": "-pullup yes"},
              port_hint="/dev/ttyUSB1"),
        *(Board(f"ulx3s-{size}f", _ulx3s_target(size, luts, bram, dsp), 25_000_000,
                {"clk": "G2", "uart_rx": "M1", "uart_tx": "L4", "led_busy": "B2", "led_error": "C2"},
                io_attrs={"uart_rx": "IO_TYPE=LVCMOS33 PULLMODE=UP", "led_busy": "IO_TYPE=LVCMOS33 DRIVE=4",
                          "led_error": "IO_TYPE=LVCMOS33 DRIVE=4"})
          for size, luts, bram, dsp in ((25, 24288, 56, 28), (45, 43848, 108, 72), (85, 83640, 208, 156))),
    )
}


def get_board(board: "str | Board") -> Board:
    """The :class:`Board` named ``board`` (a :class:`Board` is returned as is)."""
    from quickspike.errors import UsageError

    if isinstance(board, Board):
        return board
    if not isinstance(board, str):
        raise TypeError(f"board must be a board name or a Board, not {type(board).__name__}")
    try:
        return BOARDS[board]
    except KeyError:
        raise UsageError(f"unknown board {board!r}: choose one of {', '.join(BOARDS)}") from None
