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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="quickspike", description="Low-latency SNNs from training to a bit-exact FPGA design.")
    p.add_argument("--version", action="version", version=f"quickspike {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train an SNN and save a run directory")
    t.add_argument("--algo", default="snn", help="training algorithm (snn)")
    t.add_argument("--dataset", default="mnist5k", help="digits, mnist5k, an IDX folder or an .npz file")
    t.add_argument("--arch", default="mlp", help="mlp or conv")
    t.add_argument("--timesteps", type=_positive_int, default=4)
    t.add_argument("--epochs", type=_positive_int, default=20)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--batch-size", type=_positive_int, default=64)
    t.add_argument("--leak-shift", type=int, default=2, help="hidden-layer leak: v -= v >> k (0: no leak)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--out", required=True, type=Path, help="run directory to write")

    q = sub.add_parser("quantize", help="export a training run to an integer bundle")
    q.add_argument("run", type=Path)
    q.add_argument("--out", required=True, type=Path, help="bundle file to write (.qsb)")

    e = sub.add_parser("eval", help="golden-model accuracy of a bundle on a test split")
    e.add_argument("bundle", type=Path)
    e.add_argument("--dataset", default="mnist5k")
    e.add_argument("--timesteps", type=_int_list, default=None, help="e.g. 1,2,4,8")
    e.add_argument("--samples", type=_positive_int, default=None, help="only the first N test samples")
    e.add_argument("--json", type=Path, default=None, help="write the result here")

    f = sub.add_parser("flow", help="the whole flow: train, quantize, eval (and the hardware steps)")
    f.add_argument("--dataset", default="mnist5k")
    f.add_argument("--arch", default="mlp")
    f.add_argument("--timesteps", type=_positive_int, default=4)
    f.add_argument("--epochs", type=_positive_int, default=15)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", type=Path, default=Path("build/flow"))
    f.add_argument("--quiet", action="store_true")
    return p


def _cmd_train(args) -> int:
    from quickspike.sw.train import TrainOptions, train

    if args.leak_shift < 0:
        raise UsageError(f"--leak-shift must be 0 or more, not {args.leak_shift}")
    opts = TrainOptions(dataset=args.dataset, algo=args.algo, arch=args.arch, timesteps=args.timesteps,
                        epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                        leak_shift=args.leak_shift)
    summary = train(opts, args.out, progress=not args.quiet)
    print(f"trained {opts.algo}/{opts.arch} on {opts.dataset}: float accuracy {summary['float_accuracy']:.4f}, "
          f"quantization-aware {summary['qat_accuracy']:.4f} -> {args.out}")
    return 0


def _cmd_quantize(args) -> int:
    from quickspike.sw.quantize import quantize_run

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
    result = evaluate_bundle(net, load_dataset(args.dataset), args.timesteps, args.samples)
    print(eval_table(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


def _cmd_flow(args) -> int:
    from quickspike.flow import FlowOptions, run_flow

    run_flow(FlowOptions(dataset=args.dataset, arch=args.arch, timesteps=args.timesteps, epochs=args.epochs,
                         seed=args.seed, out=args.out, progress=not args.quiet))
    return 0


COMMANDS = {"train": _cmd_train, "quantize": _cmd_quantize, "eval": _cmd_eval, "flow": _cmd_flow}


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
