"""The ``quickspike`` command line.

Every user error prints one line, ``quickspike: error: <message>``, with no
traceback; CLI misuse (a bad flag, an unknown data set, a missing file) exits 2,
other refusals exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from quickspike import __version__
from quickspike.errors import UsageError, UserError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: timesteps must be positive integers")
    return values


def _float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least one number")
    return values


def _count_list(text: str) -> list[int]:
    """Comma-separated integers >= 0 (stage starts, seeds)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give integers of 0 or more")
    return values


def _drop_points(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of accuracy points") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 100 points")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="quickspike", description="Low-latency SNNs from training to a bit-exact FPGA design.")
    p.add_argument("--version", action="version", version=f"quickspike {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train an SNN and save a run directory")
    t.add_argument("--algo", default="snn", help="training algorithm: snn (fixed T), atsnn (time-dependent loss), "
                   "icsnn (QCFS ANN converted to IF neurons) or ssnn (shrinking timesteps)")
    t.add_argument("--td-weights", default=None,
                   help="atsnn: loss weights of the timesteps: uniform (default), increasing or decreasing")
    t.add_argument("--dataset", default=None, help="digits, mnist5k, digits-events, mnist5k-events, an IDX folder "
                   "or an .npz file (images or events) (default: mnist5k; mnist5k-events for ssnn)")
    t.add_argument("--arch", default="mlp", help="mlp or conv")
    t.add_argument("--timesteps", type=_positive_int, default=None, help="T (default 4; not for ssnn)")
    t.add_argument("--hidden", type=_int_list, default=None,
                   help="mlp hidden layer widths, e.g. 256,128 (default 128; 256,128 for ssnn)")
    t.add_argument("--stages", type=_int_list, default=None,
                   help="ssnn: timesteps of the stages, strictly shrinking (default 6,4,2)")
    t.add_argument("--stage-starts", type=_count_list, default=None,
                   help="ssnn: first layer of each stage, e.g. 0,1,2 (default: the layers split evenly)")
    t.add_argument("--early-weights", type=_float_list, default=None,
                   help="ssnn: loss weight of each early classifier, one per stage boundary (default 0.2 each)")
    t.add_argument("--transformer", action=argparse.BooleanOptionalAction, default=None,
                   help="ssnn: learnable temporal transformers (default on; off: plain averaging)")
    t.add_argument("--epochs", type=_positive_int, default=20)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--batch-size", type=_positive_int, default=64)
    t.add_argument("--leak-shift", type=int, default=None,
                   help="hidden-layer leak: v -= v >> k (0: no leak) (default 2; 1 for ssnn)")
    t.add_argument("--levels", type=_positive_int, default=None,
                   help="icsnn: quantization levels L of the ANN's QCFS activation (default 8)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--out", required=True, type=Path, help="run directory to write")

    q = sub.add_parser("quantize", help="export a training run to an integer bundle")
    q.add_argument("run", type=Path)
    q.add_argument("--out", required=True, type=Path, help="bundle file to write (.qsb)")
    q.add_argument("--init", default=None,
                   help="icsnn: initial membrane potentials: zero, half or fitted (default fitted)")
    q.add_argument("--compensation", action=argparse.BooleanOptionalAction, default=None,
                   help="icsnn: coding compensation at readout (default on)")
    q.add_argument("--fit-samples", type=_positive_int, default=None,
                   help="icsnn --init fitted: training images to fit on (default 256)")

    e = sub.add_parser("eval", help="golden-model accuracy of a bundle on a test split")
    e.add_argument("bundle", type=Path)
    e.add_argument("--dataset", default="mnist5k")
    e.add_argument("--timesteps", type=_int_list, default=None, help="e.g. 1,2,4,8")
    e.add_argument("--samples", type=_positive_int, default=None, help="only the first N test samples")
    e.add_argument("--json", type=Path, default=None, help="write the result here")
    e.add_argument("--no-exit", action="store_true", help="ignore the bundle's exit rule: run every sample for T")

    g = sub.add_parser("generate", help="Verilog and a JSON manifest of the accelerator for a bundle")
    g.add_argument("bundle", type=Path)
    g.add_argument("--out", required=True, type=Path, help="folder to write (quickspike_top.v, manifest.json)")
    g.add_argument("--lanes", type=_positive_int, default=8, help="processing elements (1..64)")
    g.add_argument("--timesteps", type=_positive_int, default=None, help="timesteps the design must allow")
    _add_hw_args(g)

    c = sub.add_parser("cosim", help="run test samples through the RTL and check it bit-exact against the golden model")
    c.add_argument("bundle", type=Path)
    c.add_argument("--dataset", default="mnist5k", help="its test split is used (the first N samples)")
    c.add_argument("--samples", type=_positive_int, default=100)
    c.add_argument("--engine", default="cocotb", help="cocotb or pyverilator")
    c.add_argument("--lanes", type=_positive_int, default=8, help="processing elements (1..64)")
    c.add_argument("--timesteps", type=_positive_int, default=None, help="default: the bundle's")
    c.add_argument("--json", type=Path, default=None, help="write the figures here")
    c.add_argument("--waves-dir", type=Path, default=None,
                   help="where a mismatching sample's waveform goes (default: beside --json, else build/cosim)")
    c.add_argument("--quiet", action="store_true", help="no progress output")
    c.add_argument("--no-exit", action="store_true", help="run at fixed T, ignoring the bundle's exit rule")
    _add_hw_args(c)

    k = sub.add_parser("calibrate", help="choose an early-exit threshold on the training split; write a new bundle")
    k.add_argument("bundle", type=Path)
    k.add_argument("--rule", required=True, choices=("margin", "softmax"), help="exit rule to calibrate")
    k.add_argument("--target-accuracy-drop", type=_drop_points, default=0.0,
                   help="largest accuracy loss (points) versus no exit allowed on the training split (default 0)")
    k.add_argument("--dataset", default=None, help="default: the bundle's data set")
    k.add_argument("--timesteps", type=_positive_int, default=None, help="T_max (default: the bundle's T)")
    k.add_argument("--samples", type=_positive_int, default=None, help="only the first N training samples")
    k.add_argument("--json", type=Path, default=None, help="write the figures here")
    k.add_argument("--out", required=True, type=Path, help="bundle file to write (.qsb)")

    a = sub.add_parser("atsnn-table", help="the ATSNN paper's Table 1 on this data set: snn, snn+exit, atsnn")
    a.add_argument("--dataset", default="mnist5k")
    a.add_argument("--arch", default="mlp")
    a.add_argument("--timesteps", type=_positive_int, default=4, help="T_max")
    a.add_argument("--epochs", type=_positive_int, default=20)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--td-weights", default=None, help="atsnn loss weights (default: uniform)")
    a.add_argument("--target-accuracy-drop", type=_drop_points, default=0.0,
                   help="accuracy points the exit may lose on the training split (default 0)")
    a.add_argument("--snn-bundle", type=Path, default=None, help="use this snn bundle instead of training one")
    a.add_argument("--atsnn-bundle", type=Path, default=None, help="use this atsnn bundle instead of training one")
    a.add_argument("--quiet", action="store_true", help="no progress bars")
    a.add_argument("--out", required=True, type=Path, help="folder for runs, bundles, table.md and table.json")

    s = sub.add_parser("ssnn-ablation", help="SSNN vs a uniform-T SNN of the same average timestep, "
                       "without the transformer, without early classifiers")
    s.add_argument("--dataset", default="mnist5k-events")
    s.add_argument("--arch", default="mlp")
    s.add_argument("--stages", type=_int_list, default=None, help="default 6,4,2")
    s.add_argument("--stage-starts", type=_count_list, default=None, help="default: the layers split evenly")
    s.add_argument("--hidden", type=_int_list, default=None, help="mlp hidden widths (default 256,128)")
    s.add_argument("--early-weights", type=_float_list, default=None, help="default 0.2 each")
    s.add_argument("--leak-shift", type=int, default=None,
                   help="hidden-layer leak of every variant: v -= v >> k (default 1)")
    s.add_argument("--epochs", type=_positive_int, default=20)
    s.add_argument("--seed", type=_count_list, default=[0], help="a seed or a list, e.g. 0,1,2")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--out", required=True, type=Path, help="folder for runs, bundles, ablation.md and ablation.json")

    f = sub.add_parser("flow", help="the whole flow: train, quantize, eval (and the hardware steps)")
    f.add_argument("--dataset", default="mnist5k")
    f.add_argument("--arch", default="mlp")
    f.add_argument("--timesteps", type=_positive_int, default=4)
    f.add_argument("--epochs", type=_positive_int, default=15)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--lanes", type=_positive_int, default=8)
    f.add_argument("--cosim-samples", type=_positive_int, default=100)
    f.add_argument("--out", type=Path, default=Path("build/flow"))
    f.add_argument("--quiet", action="store_true")

    from quickspike.synth.command import add_arguments as _synth_arguments
    _synth_arguments(sub.add_parser("synth", help="synthesize the accelerator for an FPGA: yosys, nextpnr, bitstream"))
    from quickspike.run_client import add_arguments as _run_arguments
    _run_arguments(sub.add_parser("run", help="run test samples on an FPGA board over its UART, checked against the golden model"))
    return p


#: Explicit limits of the generated design (HwConfig fields); the rest is sized to fit the bundle.
_HW_OPTIONS = {
    "weight_words": "weight RAM depth (words of `lanes` weights)",
    "neuron_words": "membrane/current RAM depth (words)",
    "event_words": "spike event buffer depth (entries)",
    "max_layers": "layers the register file holds",
    "max_inputs": "largest first-layer input (pixels)",
    "max_outputs": "largest output layer (classes)",
    "max_map": "largest conv map height/width",
    "max_timesteps": "largest timestep count",
    "max_stages": "SSNN stages the controller runs (1: no SSNN hardware)",
    "max_stage_steps": "most timesteps of one SSNN stage (sizes the temporal transformer)",
}


def _add_hw_args(p: argparse.ArgumentParser) -> None:
    hw = p.add_argument_group("hardware limits (default: the smallest that fit the bundle)")
    for name, text in _HW_OPTIONS.items():
        hw.add_argument(f"--{name.replace('_', '-')}", type=_positive_int, default=None, help=text)


def _hw_overrides(args) -> dict:
    return {name: getattr(args, name) for name in _HW_OPTIONS if getattr(args, name) is not None}


_SSNN_FLAGS = ("stages", "stage_starts", "early_weights", "transformer")


def _check_hidden(args) -> None:
    if args.hidden is not None and args.arch != "mlp":
        raise UsageError("--hidden applies to --arch mlp only")


def _cmd_train(args) -> int:
    from quickspike.sw.train import TrainOptions, train

    _check_hidden(args)

    if args.algo == "ssnn":
        return _train_ssnn(args)
    given = [name for name in _SSNN_FLAGS if getattr(args, name) is not None]
    if given:
        flag = "--no-transformer" if given[0] == "transformer" and not args.transformer \
            else f"--{given[0].replace('_', '-')}"
        raise UsageError(f"{flag} applies to --algo ssnn only")
    if args.dataset is None:
        args.dataset = "mnist5k"
    if args.timesteps is None:
        args.timesteps = 4
    if args.leak_shift is None:
        args.leak_shift = 2
    if args.algo == "icsnn":
        if args.hidden is not None:
            raise UsageError("--hidden does not apply to --algo icsnn")
        return _train_icsnn(args)
    if args.levels is not None:
        raise UsageError("--levels applies to --algo icsnn only")
    if args.leak_shift < 0:
        raise UsageError(f"--leak-shift must be 0 or more, not {args.leak_shift}")
    if args.td_weights is not None and args.algo != "atsnn":
        raise UsageError("--td-weights applies to --algo atsnn only")
    extra = {} if args.td_weights is None else {"td_weights": args.td_weights}
    if args.hidden is not None:
        extra["hidden"] = tuple(args.hidden)
    opts = TrainOptions(dataset=args.dataset, algo=args.algo, arch=args.arch, timesteps=args.timesteps,
                        epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                        leak_shift=args.leak_shift, **extra)
    summary = train(opts, args.out, progress=not args.quiet)
    print(f"trained {opts.algo}/{opts.arch} on {opts.dataset}: float accuracy {summary['float_accuracy']:.4f}, "
          f"quantization-aware {summary['qat_accuracy']:.4f} -> {args.out}")
    return 0


def _train_ssnn(args) -> int:
    from quickspike.sw.ssnn import DEFAULT_HIDDEN, DEFAULT_LEAK_SHIFT, DEFAULT_STAGES, SSNNOptions, train_ssnn

    for flag, value in (("--timesteps", args.timesteps), ("--td-weights", args.td_weights),
                        ("--levels", args.levels)):
        if value is not None:
            raise UsageError(f"{flag} does not apply to --algo ssnn (its timesteps are --stages)"
                             if flag == "--timesteps" else f"{flag} does not apply to --algo ssnn")
    opts = SSNNOptions(
        dataset=args.dataset or "mnist5k-events", arch=args.arch,
        stages=tuple(args.stages or DEFAULT_STAGES),
        stage_starts=None if args.stage_starts is None else tuple(args.stage_starts),
        early_weights=None if args.early_weights is None else tuple(args.early_weights),
        transformer=args.transformer is not False, hidden=tuple(args.hidden or DEFAULT_HIDDEN),
        epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
        leak_shift=DEFAULT_LEAK_SHIFT if args.leak_shift is None else args.leak_shift)
    summary = train_ssnn(opts, args.out, progress=not args.quiet)
    print(f"trained ssnn/{opts.arch} on {opts.dataset}, stages {','.join(map(str, opts.stages))} "
          f"(starts {','.join(map(str, summary['stage_starts']))}): float accuracy {summary['float_accuracy']:.4f}, "
          f"quantization-aware {summary['qat_accuracy']:.4f}; average timestep {summary['average_steps']:g} "
          f"(paper, without the classifier: {summary['average_steps_paper']:g}) -> {args.out}")
    return 0


def _train_icsnn(args) -> int:
    from quickspike.sw.icsnn import DEFAULT_LEVELS, ICSNNOptions, train_icsnn

    if args.td_weights is not None:
        raise UsageError("--td-weights applies to --algo atsnn only")
    opts = ICSNNOptions(dataset=args.dataset, arch=args.arch, timesteps=args.timesteps,
                        levels=DEFAULT_LEVELS if args.levels is None else args.levels, epochs=args.epochs,
                        seed=args.seed, batch_size=args.batch_size, lr=args.lr)
    summary = train_icsnn(opts, args.out, progress=not args.quiet)
    print(f"trained icsnn/{opts.arch} on {opts.dataset}: quantized ANN (L={opts.levels}) accuracy "
          f"{summary['ann_accuracy']:.4f} -> {args.out}")
    return 0


def _quantize_icsnn(args) -> int:
    from quickspike.sw.icsnn import quantize_icsnn_run

    kw = {k: v for k, v in (("init", args.init), ("fit_samples", args.fit_samples)) if v is not None}
    net, path = quantize_icsnn_run(args.run, args.out, compensation=args.compensation is not False, **kw)
    print(f"bundle {path}: {len(net.layers)} layers, init {net.meta['v_init']['mode']} "
          f"(v_init/θ {[round(layer.neuron.v_init / layer.neuron.threshold, 4) for layer in net.layers[:-1]]}), "
          f"compensation {'on' if net.compensation.enabled else 'off'}: SNN accuracy {net.meta['int_accuracy']:.4f} "
          f"at T={net.timesteps}, quantized ANN {net.meta['ann_accuracy']:.4f}")
    return 0


def _cmd_quantize(args) -> int:
    from quickspike.sw.icsnn import is_icsnn_run
    from quickspike.sw.quantize import quantize_run

    from quickspike.sw.ssnn import is_ssnn_run

    if is_icsnn_run(args.run):
        return _quantize_icsnn(args)
    if args.init is not None or args.compensation is not None or args.fit_samples is not None:
        raise UsageError("--init, --compensation and --fit-samples apply to icsnn runs only")
    if is_ssnn_run(args.run):
        from quickspike.sw.ssnn import quantize_ssnn_run

        net, path = quantize_ssnn_run(args.run, args.out)
        print(f"bundle {path}: {len(net.layers)} layers, stages {','.join(map(str, net.stages.steps))} "
              f"(starts {','.join(map(str, net.stages.starts))}), average timestep {net.average_steps:g} "
              f"(paper {net.meta['average_steps_paper']:g}): integer accuracy {net.meta['int_accuracy']:.4f} "
              f"(quantization-aware {net.meta['qat_accuracy']:.4f})")
        return 0
    net, path = quantize_run(args.run, args.out)
    print(f"bundle {path}: {len(net.layers)} layers, integer accuracy {net.meta.get('int_accuracy', float('nan')):.4f} "
          f"(float {net.meta.get('float_accuracy', float('nan')):.4f})")
    return 0


def _cmd_eval(args) -> int:
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.evaluate import evaluate_bundle
    from quickspike.sw.files import atomic_write_text
    from quickspike.sw.report import eval_table

    net = load_bundle(args.bundle)
    from quickspike.sw.spec import ExitSpec

    result = evaluate_bundle(net, load_dataset(args.dataset), args.timesteps, args.samples,
                             exit=ExitSpec() if args.no_exit else None)
    print(eval_table(result))
    if "stages" in result:
        print(f"stages {result['timesteps']}: average timestep {result['avg_timesteps']:g} (every layer counted; "
              f"the paper, without the classifier: {result['avg_timesteps_paper']:g})")
    if "ablation" in result:
        from quickspike.sw.ablation import ablation_table

        print(f"\n{ablation_table(result['ablation'])}")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


def _cmd_calibrate(args) -> int:
    from quickspike.sw.calibrate import calibrate_command

    calibrate_command(args.bundle, args.rule, args.target_accuracy_drop, args.out, dataset=args.dataset,
                      timesteps=args.timesteps, samples=args.samples, json_path=args.json)
    return 0


def _cmd_atsnn_table(args) -> int:
    from quickspike.sw.table import TableOptions, atsnn_table

    atsnn_table(TableOptions(dataset=args.dataset, arch=args.arch, timesteps=args.timesteps, epochs=args.epochs,
                             seed=args.seed, td_weights=args.td_weights, drop=args.target_accuracy_drop,
                             snn_bundle=args.snn_bundle, atsnn_bundle=args.atsnn_bundle, out=args.out,
                             progress=not args.quiet))
    return 0


def _cmd_flow(args) -> int:
    from quickspike.flow import FlowOptions, run_flow

    run_flow(FlowOptions(dataset=args.dataset, arch=args.arch, timesteps=args.timesteps, epochs=args.epochs,
                         seed=args.seed, lanes=args.lanes, cosim_samples=args.cosim_samples,
                         out=args.out, progress=not args.quiet))
    return 0


def _cmd_generate(args) -> int:
    from quickspike.cosim.run import hwconfig_for
    from quickspike.hw.generate import TOP_NAME, generate_verilog, manifest
    from quickspike.hw.layout import network_layout
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.files import atomic_write_text

    net = load_bundle(args.bundle)
    hwcfg = hwconfig_for(net, args.lanes, args.timesteps, **_hw_overrides(args))
    verilog = generate_verilog(hwcfg, TOP_NAME)
    lay = network_layout(net, hwcfg.lanes)
    info = manifest(hwcfg, TOP_NAME)
    info["verilog"] = f"{TOP_NAME}.v"
    info["bundle"] = {
        "path": str(args.bundle), "layers": len(net.layers), "timesteps": net.timesteps,
        "uses": {"weight_words": lay.weight_words, "neuron_words": lay.neuron_words,
                 "event_words": lay.event_words},
    }
    vpath = atomic_write_text(args.out / f"{TOP_NAME}.v", verilog)
    mpath = atomic_write_text(args.out / "manifest.json", json.dumps(info, indent=2, sort_keys=True))
    kib = sum(info["memories_bits"].values()) / 8192
    print(f"generated {vpath} ({len(verilog.splitlines())} lines, {hwcfg.lanes} lanes, {kib:.1f} KiB of RAM: "
          f"weights {hwcfg.weight_words}, neurons {hwcfg.neuron_words}, events {hwcfg.event_words} words) "
          f"and {mpath}")
    return 0


def _cmd_cosim(args) -> int:
    from quickspike.cosim.run import CosimOptions, cosim_table, run_cosim
    from quickspike.sw.files import atomic_write_text

    waves_dir = args.waves_dir
    if waves_dir is None and args.json is not None:
        waves_dir = args.json.parent / f"{args.json.stem}-waves"
    opts = CosimOptions(bundle=args.bundle, dataset=args.dataset, samples=args.samples, engine=args.engine,
                        lanes=args.lanes, timesteps=args.timesteps, hw=_hw_overrides(args),
                        waves_dir=waves_dir, progress=not args.quiet, no_exit=args.no_exit)
    report = run_cosim(opts)
    print(cosim_table(report.figures))
    if args.json:
        atomic_write_text(args.json, json.dumps(report.figures, indent=2))
    if report.ok:
        return 0
    *lines, count = report.mismatch_lines()
    for line in lines:
        print(f"mismatch: {line}", file=sys.stderr)
    print(count, file=sys.stderr)
    if report.waves:
        print(f"waveform of sample {report.mismatches[0].sample}: {report.waves}", file=sys.stderr)
    return 1


COMMANDS = {"train": _cmd_train, "quantize": _cmd_quantize, "eval": _cmd_eval, "generate": _cmd_generate,
            "cosim": _cmd_cosim, "flow": _cmd_flow}

COMMANDS.update({"calibrate": _cmd_calibrate, "atsnn-table": _cmd_atsnn_table})


def _cmd_ssnn_ablation(args) -> int:
    from quickspike.sw.ssnn import DEFAULT_HIDDEN, DEFAULT_LEAK_SHIFT, DEFAULT_STAGES, SSNNOptions
    from quickspike.sw.ssnn_ablation import AblationOptions, ssnn_ablation

    _check_hidden(args)

    opts = AblationOptions(
        dataset=args.dataset, arch=args.arch, stages=tuple(args.stages or DEFAULT_STAGES),
        stage_starts=None if args.stage_starts is None else tuple(args.stage_starts),
        early_weights=None if args.early_weights is None else tuple(args.early_weights),
        hidden=tuple(args.hidden or DEFAULT_HIDDEN), epochs=args.epochs, seeds=tuple(dict.fromkeys(args.seed)),
        leak_shift=DEFAULT_LEAK_SHIFT if args.leak_shift is None else args.leak_shift,
        out=args.out, progress=not args.quiet)
    # refuse bad options before any data is loaded or trained
    SSNNOptions(dataset=opts.dataset, arch=opts.arch, stages=opts.stages, stage_starts=opts.stage_starts,
                early_weights=opts.early_weights, hidden=opts.hidden, epochs=opts.epochs,
                leak_shift=opts.leak_shift).validate()
    ssnn_ablation(opts)
    return 0


COMMANDS["ssnn-ablation"] = _cmd_ssnn_ablation


def _cmd_synth(args) -> int:
    from quickspike.synth.command import run_command

    return run_command(args)


COMMANDS["synth"] = _cmd_synth


def _cmd_run(args) -> int:
    from quickspike.run_client import run_command

    return run_command(args)


COMMANDS["run"] = _cmd_run


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"quickspike: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("quickspike: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
