"""The ``synth`` command: :func:`add_arguments` and :func:`run_command`.

``quickspike synth BUNDLE.qsb --target ice40-up5k --out build/synth`` sizes and
generates the accelerator for a bundle and synthesizes it; ``quickspike synth core.v
--top name`` synthesizes any Verilog core. It prints the stages as they run and one
summary line; a design that does not fit exits 1 with one line naming the resource
(``quickspike: error: design needs 9,120 LUT4 but ice40-up5k has 5,280; ...``).
The same command runs as ``python -m quickspike.synth``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from quickspike.errors import UsageError
from quickspike.synth.targets import TARGETS

__all__ = ["add_arguments", "run_command", "main", "HW_LIMITS"]

#: The ``HwConfig`` limits a bundle's design can be given explicitly (as for ``generate``).
HW_LIMITS = ("weight_words", "neuron_words", "event_words", "max_layers", "max_inputs", "max_outputs",
             "max_map", "max_timesteps", "weight_bank_words")


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``synth`` options to parser ``p``."""
    p.add_argument("design", type=Path, help="a bundle (.qsb) or a Verilog file (.v, with --top)")
    p.add_argument("--target", default="ice40-up5k", choices=list(TARGETS), help="FPGA target")
    p.add_argument("--freq", type=float, default=None, help="clock constraint in MHz (default: the target's)")
    p.add_argument("--lanes", type=int, default=8, help="processing elements of the accelerator (bundle input)")
    p.add_argument("--timesteps", type=int, default=None, help="timesteps the design must allow (bundle input)")
    p.add_argument("--exact-depths", action="store_true",
                   help="size memories exactly instead of to powers of two (bundle input)")
    hw = p.add_argument_group("hardware limits of a bundle's design (default: the smallest that fit)")
    for name in HW_LIMITS:
        hw.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=f"HwConfig.{name}")
    p.add_argument("--cosim-json", type=Path, default=None,
                   help="a `quickspike cosim --json` result of this bundle and lane count: its cycles per "
                        "inference give the latency per image in the report (bundle input)")
    p.add_argument("--top", default=None, help="top module of a Verilog input")
    p.add_argument("--no-wrap", action="store_true", help="no serial pin wrapper: every core port is a pin")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placer seed")
    p.add_argument("--out", type=Path, default=None, help="output folder (default build/synth/<target>)")
    p.add_argument("--json", type=Path, default=None, help="also copy the result JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def run_command(args: argparse.Namespace) -> int:
    """Run ``synth`` for parsed ``args``; returns the exit status (errors raise UserError)."""
    from quickspike.synth.bundle import synthesize_bundle
    from quickspike.synth.run import synthesize

    design: Path = args.design
    if not design.is_file():
        raise UsageError(f"{design} does not exist")
    if args.lanes < 1:
        raise UsageError(f"--lanes must be at least 1, not {args.lanes}")
    if args.freq is not None and not 0 < args.freq <= 1000:
        raise UsageError(f"--freq {args.freq:g} is not a clock in MHz in (0, 1000]")
    out = args.out or Path("build/synth") / args.target
    common = dict(wrap=not args.no_wrap, seed=args.seed, progress=not args.quiet)
    if design.suffix in (".v", ".sv"):
        if not args.top:
            raise UsageError("a Verilog input needs --top")
        given = [n for n in ("timesteps", "cosim_json", *HW_LIMITS) if getattr(args, n, None) is not None]
        if given or args.exact_depths:
            raise UsageError(f"--{(given or ['exact_depths'])[0].replace('_', '-')} is for a bundle input")
        result = synthesize(design.read_text(), args.top, args.target, out, args.freq, **common)
    else:
        if args.top:
            raise UsageError("--top is for Verilog input; a bundle's top is generated")
        hw = {name: getattr(args, name, None) for name in HW_LIMITS}
        cycles = None
        if args.cosim_json is not None:
            cycles = _cosim_cycles(args.cosim_json, args.lanes)
        result = synthesize_bundle(design, args.target, out, args.freq, lanes=args.lanes,
                                   timesteps=args.timesteps, pow2=not args.exact_depths, hw=hw,
                                   cycles_per_image=cycles, **common)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(result.to_json() + "\n")
    cp = result.critical_path or {}
    print(f"{result.target}: {result.luts:,} LUT, {result.ffs:,} FF, {result.bram} BRAM, "
          f"{result.spram or 0} SPRAM, {result.dsp} DSP; Fmax {result.fmax_mhz:.1f} MHz "
          f"({'met' if result.timing_met else 'NOT met'} at {result.freq_mhz:g} MHz)"
          + (f"; critical path {cp.get('start_signal')} -> {cp.get('end_signal')}" if cp else "")
          + f" -> {out}")
    return 0


def _cosim_cycles(path: Path, lanes: int) -> float:
    """Mean cycles per inference of a ``cosim --json`` file, which must be for ``lanes``."""
    import json

    try:
        figures = json.loads(path.read_text())
        cycles = float(figures["cycles_per_inference"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--cosim-json {path}: not a cosim result ({e})") from None
    if figures.get("lanes") not in (None, lanes):
        raise UsageError(f"--cosim-json {path} is for {figures['lanes']} lanes, not --lanes {lanes}")
    return cycles


def main(argv: list[str] | None = None) -> int:
    """``python -m quickspike.synth``: the ``synth`` command on its own."""
    import sys

    from quickspike.cli import _Parser
    from quickspike.errors import UserError

    p = add_arguments(_Parser(prog="python -m quickspike.synth",
                              description="Synthesize the accelerator (or a Verilog core) for an FPGA."))
    try:
        return run_command(p.parse_args(argv))
    except UserError as e:
        print(f"quickspike: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return e.exit_code
