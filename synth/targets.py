"""FPGA targets of the synthesis flow: :class:`Target` and :data:`TARGETS`.

A target names one device and package, the resources the fit check compares the
netlist against, a default clock constraint, and the tool options that select it. The
resource counts are the device's, as nextpnr reports them under ``available`` in its
``--report`` JSON (the flow takes the figures it prints from that report, not from
this table; the table only drives the early check before place and route).

=============  ======  ===========  ========  ======  ==========  =====  ====  ====
target         family  device       package   LUT4    FF          BRAM   SPRAM DSP
=============  ======  ===========  ========  ======  ==========  =====  ====  ====
ice40-up5k     ice40   iCE40UP5K    SG48       5,280   5,280      30×4k  4     8
ecp5-25k       ecp5    LFE5U-25F-6  CABGA256  24,288  24,288      56×18k 0     28
ecp5-85k       ecp5    LFE5U-85F-6  CABGA381  83,640  83,640      208×18k 0    156
=============  ======  ===========  ========  ======  ==========  =====  ====  ====

On iCE40 a logic cell (``ICESTORM_LC``) is one LUT4, one flip-flop and one carry;
on ECP5 ``TRELLIS_COMB`` is one LUT4 (two per slice).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from quickspike.errors import UsageError

__all__ = ["Target", "TARGETS", "get_target"]


@dataclass(frozen=True)
class Target:
    """One FPGA part: device, package, resources and how the tools select it."""

    name: str
    #: ``"ice40"`` or ``"ecp5"``.
    family: str
    #: Human-readable part name.
    part: str
    #: nextpnr device option (``--up5k``, ``--25k``, …).
    device_arg: str
    package: str
    #: Look-up tables (iCE40: logic cells; ECP5: LUT4 slices halves).
    luts: int
    ffs: int
    #: Block RAMs (iCE40 ``SB_RAM40_4K``, 4 kbit; ECP5 ``DP16KD``, 18 kbit).
    bram: int
    bram_kbit: int
    #: iCE40 UltraPlus ``SB_SPRAM256KA`` (16 k × 16 bit each).
    spram: int
    #: Multipliers (iCE40 ``SB_MAC16``; ECP5 ``MULT18X18D``).
    dsp: int
    #: User IO pins of the package.
    ios: int
    #: Default clock constraint for nextpnr (MHz).
    default_mhz: float
    #: Speed grade (ECP5 only).
    speed: int | None = None

    @property
    def yosys_command(self) -> str:
        """The yosys synthesis command for this family, without ``-top``/``-json``."""
        if self.family == "ice40":
            # -device u: UltraPlus timing for abc9; -dsp: SB_MAC16; -spram: SB_SPRAM256KA.
            return "synth_ice40 -device u -dsp -spram"
        return "synth_ecp5"

    def to_dict(self) -> dict:
        return asdict(self)


TARGETS: dict[str, Target] = {
    t.name: t for t in (
        Target("ice40-up5k", "ice40", "iCE40UP5K-SG48", "--up5k", "sg48",
               luts=5280, ffs=5280, bram=30, bram_kbit=4, spram=4, dsp=8, ios=39,
               default_mhz=48.0),
        Target("ecp5-25k", "ecp5", "LFE5U-25F-6BG256C", "--25k", "CABGA256",
               luts=24288, ffs=24288, bram=56, bram_kbit=18, spram=0, dsp=28, ios=197,
               default_mhz=100.0, speed=6),
        Target("ecp5-85k", "ecp5", "LFE5U-85F-6BG381C", "--85k", "CABGA381",
               luts=83640, ffs=83640, bram=208, bram_kbit=18, spram=0, dsp=156, ios=205,
               default_mhz=100.0, speed=6),
    )
}


def get_target(target: "str | Target") -> Target:
    """The :class:`Target` named ``target`` (a :class:`Target` is returned as is)."""
    if isinstance(target, Target):
        return target
    if not isinstance(target, str):
        raise TypeError(f"target must be a target name or a Target, not {type(target).__name__}")
    try:
        return TARGETS[target]
    except KeyError:
        raise UsageError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}") from None
