"""The ATSNN paper's Table 1 on our data (``quickspike atsnn-table``).

Rows (all on the test split, golden integer model, one ``T_max``):

``snn``       a fixed-T network (``--algo snn``), every sample runs ``T_max`` steps;
``snn+exit``  the same bundle with an exit rule calibrated on the training split:
              the DT-SNN-style baseline (DT-SNN exits on softmax confidence; our
              ``softmax`` rule is its fixed-point, division-free form) and the margin rule;
``atsnn``     a network trained with the time-dependent loss (``--algo atsnn``), at
              fixed ``T_max`` and with each calibrated exit rule.

Columns: average timesteps (``T_max``), accuracy, the accuracy of the same bundle
with ``--no-exit``, and the relative complexity (synaptic operations over those of
the same bundle at fixed ``T_max``, :mod:`quickspike.sw.complexity`), with and
without the first layer's once-per-sample multiply-accumulates.

The folder keeps every artifact: ``snn/`` and ``atsnn/`` training runs, their
bundles, one calibrated bundle per (algorithm, rule), ``table.md`` and
``table.json``. A run whose ``train.json`` holds the same options is reused.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from quickspike.errors import MissingBundleError, UsageError
from quickspike.sw.atsnn import DEFAULT_TD_WEIGHTS, TD_WEIGHTS
from quickspike.sw.files import atomic_write_text
from quickspike.sw.model import ARCHS
from quickspike.sw.spec import ExitSpec

__all__ = ["TableOptions", "atsnn_table", "markdown_table"]


@dataclass(frozen=True)
class TableOptions:
    dataset: str = "mnist5k"
    arch: str = "mlp"
    timesteps: int = 4
    epochs: int = 20
    seed: int = 0
    td_weights: str | None = None
    #: accuracy points the exit may lose on the training split
    drop: float = 0.0
    snn_bundle: Path | None = None
    atsnn_bundle: Path | None = None
    out: Path = Path("build/atsnn-table")
    progress: bool = True


def _say(text: str) -> None:
    print(text, flush=True)


def _bundle(opts: TableOptions, algo: str, given: Path | None, data):
    """The bundle of ``algo``: loaded from ``given``, or trained and quantized in ``out/algo``."""
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.quantize import quantize_run
    from quickspike.sw.train import TrainOptions, train

    if given is not None:
        net = load_bundle(given)
        if net.meta.get("algo", "snn") != algo:
            _say(f"[{algo}] note: {given} was trained with --algo {net.meta.get('algo', 'snn')}")
        _say(f"[{algo}] using bundle {given} (trained T={net.timesteps})")
        return net, str(given)
    extra = {"td_weights": opts.td_weights or DEFAULT_TD_WEIGHTS} if algo == "atsnn" else {}
    topts = TrainOptions(dataset=opts.dataset, algo=algo, arch=opts.arch, timesteps=opts.timesteps,
                         epochs=opts.epochs, seed=opts.seed, **extra)
    run, path = opts.out / algo, opts.out / f"{algo}.qsb"
    summary = run / "train.json"
    same = summary.is_file() and path.is_file() and _same_options(summary, asdict(topts))
    if same:
        _say(f"[{algo}] up to date ({run})")
        return load_bundle(path), str(path)
    _say(f"[{algo}] training {opts.arch}, T={opts.timesteps}, {opts.epochs} epochs ...")
    t0 = time.perf_counter()
    s = train(topts, run, data=data, progress=opts.progress)
    _say(f"[{algo}] trained in {time.perf_counter() - t0:.0f} s: QAT test accuracy by timestep "
         + ", ".join(f"{a:.4f}" for a in s["qat_accuracy_by_timestep"]))
    net, _ = quantize_run(run, path)
    _say(f"[{algo}] bundle {path}: integer accuracy {net.meta['int_accuracy']:.4f}")
    return net, str(path)


def _same_options(summary: Path, options: dict) -> bool:
    try:
        # through JSON on both sides: a tuple option is a list once saved
        return json.loads(summary.read_text()).get("options") == json.loads(json.dumps(options))
    except (OSError, ValueError):
        return False


def _row(algorithm: str, rule: str, net, data, T: int, bundle: str, calibration=None) -> dict:
    from quickspike.sw.evaluate import evaluate_bundle

    r = evaluate_bundle(net, data, [T])
    fixed = evaluate_bundle(net, data, [T], exit=ExitSpec(), complexity=False)
    by = r["by_timesteps"][str(T)]
    row = {
        "algorithm": algorithm, "rule": rule, "exit": net.exit.to_dict(), "t_max": T,
        "avg_timesteps": by["avg_timesteps"], "accuracy": by["accuracy"],
        "no_exit_accuracy": fixed["accuracy"], "relative_complexity": by["relative_complexity"],
        "relative_complexity_spiking_layers": by["relative_complexity_spiking_layers"],
        "avg_sops": by["avg_sops"], "exit_histogram": by["exit_histogram"], "bundle": bundle,
    }
    if calibration is not None:
        row["calibration"] = calibration.to_dict()
    return row


def markdown_table(result: dict) -> str:
    """The Markdown text of ``table.md``."""
    head = (f"# ATSNN Table 1 analogue: {result['dataset']}, {result['arch']}, T_max = {result['t_max']}\n\n"
            f"Test split ({result['test_samples']} samples), golden integer model. Exit rules calibrated on the "
            f"training split for at most {result['target_accuracy_drop']:g} accuracy points below no exit. "
            "Complexity: synaptic operations relative to the same bundle at fixed T_max (with / without the "
            "first layer's once-per-sample multiply-accumulates).\n\n")
    lines = ["| Algorithm | Exit rule | Timesteps | Accuracy (%) | No-exit accuracy (%) | Complexity | "
             "Complexity (spiking layers) | Exit timesteps |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        hist = " ".join(f"{t}:{n}" for t, n in r["exit_histogram"].items())
        lines.append(f"| {r['algorithm']} | {_rule_text(r['exit'])} | {r['avg_timesteps']:.2f} ({r['t_max']}) | "
                     f"{100 * r['accuracy']:.2f} | {100 * r['no_exit_accuracy']:.2f} | "
                     f"{r['relative_complexity']:.2f} | {r['relative_complexity_spiking_layers']:.2f} | {hist} |")
    return head + "\n".join(lines) + "\n"


def _rule_text(rule: dict) -> str:
    if rule["rule"] == "margin":
        return f"margin ≥ {rule['threshold']}"
    if rule["rule"] == "softmax":
        return f"softmax S ≤ {rule['threshold']}, shift {rule['shift']}"
    return "none (fixed T)"


def atsnn_table(opts: TableOptions) -> dict:
    """Build the table (training what is missing); write ``table.md``/``table.json``; return the record."""
    from quickspike.sw.bundle import save_bundle
    from quickspike.sw.calibrate import calibrate_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.report import table

    if opts.td_weights is not None and opts.td_weights not in TD_WEIGHTS:
        raise UsageError(f"unknown --td-weights {opts.td_weights!r}; expected one of {', '.join(TD_WEIGHTS)}")
    if opts.td_weights is not None and opts.atsnn_bundle is not None:
        raise UsageError("--td-weights has no effect with --atsnn-bundle")
    for flag, path in (("--snn-bundle", opts.snn_bundle), ("--atsnn-bundle", opts.atsnn_bundle)):
        if path is not None and not Path(path).is_file():
            raise MissingBundleError(f"{flag} {path} does not exist" if not Path(path).exists()
                                     else f"{flag} {path} is not a file")
    if opts.arch not in ARCHS:
        raise UsageError(f"unknown architecture {opts.arch!r}; expected one of {', '.join(ARCHS)}")
    data = load_dataset(opts.dataset)
    T = opts.timesteps
    opts.out.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for algo, given in (("snn", opts.snn_bundle), ("atsnn", opts.atsnn_bundle)):
        net, path = _bundle(opts, algo, given, data)
        fixed = replace(net, timesteps=T, exit=ExitSpec())
        _say(f"[{algo}] evaluating at fixed T={T} ...")
        rows.append(_row(algo, "none", fixed, data, T, path))
        for rule in ("softmax", "margin"):
            name = "snn+exit" if algo == "snn" else "atsnn"
            _say(f"[{name} {rule}] calibrating on the training split ...")
            cal_net, cal = calibrate_bundle(net, data, rule, opts.drop, T)
            cal_path = save_bundle(cal_net, opts.out / f"{algo}-{rule}.qsb")
            row = _row(name, rule, cal_net, data, T, str(cal_path), cal)
            _say(f"[{name} {rule}] {_rule_text(row['exit'])}: train {cal.avg_timesteps:.3f} steps / "
                 f"{cal.accuracy:.4f}; test {row['avg_timesteps']:.3f} steps / {row['accuracy']:.4f} "
                 f"(no exit {row['no_exit_accuracy']:.4f}), complexity {row['relative_complexity']:.3f}")
            rows.append(row)
    result = {
        "dataset": data.name, "arch": opts.arch, "t_max": T, "target_accuracy_drop": opts.drop,
        "test_samples": len(data.y_test), "calibration_split": "train", "rows": rows,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_text(opts.out / "table.json", json.dumps(result, indent=2))
    atomic_write_text(opts.out / "table.md", markdown_table(result))
    print()
    print(table(["algorithm", "rule", "avg_timesteps", "T_max", "accuracy", "no-exit acc", "complexity"],
                [[r["algorithm"], _rule_text(r["exit"]), r["avg_timesteps"], r["t_max"], r["accuracy"],
                  r["no_exit_accuracy"], r["relative_complexity"]] for r in rows]))
    print(f"-> {opts.out / 'table.md'}, {opts.out / 'table.json'}")
    return result
