"""The SSNN ablation (``quickspike ssnn-ablation``): what each part of SSNN is worth.

Variants, each trained for the same epochs and seeds on the same data, quantized to a
bundle and evaluated with the golden integer model on the test split:

``ssnn``            shrinking timesteps (``--stages``), learnable temporal transformers,
                    early classifiers (:mod:`quickspike.sw.ssnn`);
``uniform``         a plain SNN (``--algo snn``) of the same architecture whose every
                    layer runs the SSNN's average timestep (:attr:`IntNetwork.average_steps`,
                    every layer counted); a non-integer average is rounded to the nearest
                    integer (half up) and the table says so;
``no-transformer``  SSNN with the transformers' weights fixed at zero: plain averaging,
                    ``p[k] = floor(256 / T_{i+1})``;
``no-early``        SSNN trained without early classifiers (all loss weights 0).

The folder keeps every run (``<variant>/seed<S>/``) and bundle
(``<variant>-seed<S>.qsb``), and ``ablation.md`` / ``ablation.json`` (written
atomically). A run whose ``train.json`` holds the same options and whose bundle
exists is reused, so an interrupted ablation resumes.

**Measured** (mnist5k-events test split, 1,000 samples, golden model on the bundles;
mlp 1568-256-128-10, leak shift 1, early weights 0.2, 20 epochs, seeds 0, 1, 2; the
CPU times are per run on the shared 2-core machine, 23-65 s)::

    stages 3,2,1 (average timestep 2; the paper's, classifier left out: 2.5)
    SSNN                               95.50 ± 0.30   (95.5, 95.8, 95.2)
    uniform-T SNN, T = 2               94.10 ± 0.62   (94.6, 94.3, 93.4)   SSNN +1.40 points
    SSNN without transformer           95.30 ± 0.36   (95.2, 95.7, 95.0)
    SSNN without early classifiers     94.63 ± 0.51   (94.2, 95.2, 94.5)

    stages 6,4,2 (average timestep 4; the paper's: 5)
    SSNN                               96.17 ± 0.47   (95.8, 96.7, 96.0)
    uniform-T SNN, T = 4               95.67 ± 0.15   (95.5, 95.8, 95.7)   SSNN +0.50 points
    SSNN without transformer           96.43 ± 0.21   (96.6, 96.2, 96.5)
    SSNN without early classifiers     96.23 ± 0.21   (96.4, 96.0, 96.3)

    stages 3,2,1, a small mlp 1568-64-32-10
    SSNN                               90.93 ± 0.50   uniform T = 2: 91.17 ± 0.42   SSNN -0.23 points
    without transformer / early        91.63 ± 0.75 / 92.03 ± 0.65

At an average of 4 the uniform SNN is already near what this MLP reaches on these
events (a uniform T = 6 SNN: 96.0 %, seed 0), so shrinking cannot gain much there; at
an average of 2 the uniform SNN loses 1.5 points and SSNN keeps most of them. The
early classifiers are worth ~0.9 points at 3,2,1; the learned transformer is within
the seed noise of plain averaging (its softmax barely moves from uniform here: the
saccade events carry little temporal structure, and in these nets the last stage is
the output integrator, which sums whatever split it gets). The small MLP gains
nothing from shrinking (its 32-neuron middle stage is the bottleneck at 2 timesteps).
Every bundle's golden accuracy equalled its quantization-aware training accuracy.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from quickspike.errors import UsageError
from quickspike.sw.files import atomic_write_text
from quickspike.sw.ssnn import (DEFAULT_HIDDEN, DEFAULT_LEAK_SHIFT, DEFAULT_STAGES, SSNNOptions, default_starts,
                                 parse_stages)

__all__ = ["AblationOptions", "VARIANTS", "ssnn_ablation", "markdown_table"]

VARIANTS = ("ssnn", "uniform", "no-transformer", "no-early")


@dataclass(frozen=True)
class AblationOptions:
    dataset: str = "mnist5k-events"
    arch: str = "mlp"
    stages: tuple[int, ...] = DEFAULT_STAGES
    stage_starts: tuple[int, ...] | None = None
    early_weights: tuple[float, ...] | None = None
    hidden: tuple[int, ...] = DEFAULT_HIDDEN
    #: The hidden-layer leak of every variant (the uniform SNN's too).
    leak_shift: int = DEFAULT_LEAK_SHIFT
    epochs: int = 20
    seeds: tuple[int, ...] = (0,)
    out: Path = Path("build/ssnn/ablation")
    progress: bool = True


def _say(text: str) -> None:
    print(text, flush=True)


def _uniform_steps(avg: float) -> tuple[int, bool]:
    t = max(1, math.floor(avg + 0.5))
    return t, t != avg


def _same_options(summary: Path, options: dict) -> bool:
    try:
        return json.loads(summary.read_text()).get("options") == json.loads(json.dumps(options))
    except (OSError, ValueError):
        return False


def _run_variant(opts: AblationOptions, variant: str, seed: int, data, uniform_t: int) -> dict:
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.evaluate import evaluate_bundle
    from quickspike.sw.quantize import quantize_run
    from quickspike.sw.ssnn import paper_average_steps, quantize_ssnn_run, train_ssnn
    from quickspike.sw.train import TrainOptions, train

    run = opts.out / variant / f"seed{seed}"
    bundle = opts.out / f"{variant}-seed{seed}.qsb"
    if variant == "uniform":
        topts = TrainOptions(dataset=opts.dataset, algo="snn", arch=opts.arch, timesteps=uniform_t,
                             epochs=opts.epochs, seed=seed, hidden=tuple(opts.hidden), leak_shift=opts.leak_shift)
    else:
        topts = SSNNOptions(dataset=opts.dataset, arch=opts.arch, stages=tuple(opts.stages),
                            stage_starts=opts.stage_starts, early_weights=opts.early_weights,
                            hidden=tuple(opts.hidden), epochs=opts.epochs, seed=seed, leak_shift=opts.leak_shift)
        if variant == "no-transformer":
            topts = replace(topts, transformer=False)
        elif variant == "no-early":
            topts = replace(topts, early_weights=(0.0,) * (len(opts.stages) - 1))
    label = f"[{variant} seed {seed}]"
    if _same_options(run / "train.json", asdict(topts)) and bundle.is_file():
        _say(f"{label} up to date ({run})")
        net = load_bundle(bundle)
        seconds = json.loads((run / "train.json").read_text()).get("train_seconds")
    else:
        what = (f"T={uniform_t}" if variant == "uniform"
                else f"stages {','.join(map(str, opts.stages))}")
        _say(f"{label} training {opts.arch} {what}, {opts.epochs} epochs ...")
        t0 = time.perf_counter()
        if variant == "uniform":
            summary = train(topts, run, data=data, progress=opts.progress)
            net, _ = quantize_run(run, bundle)
        else:
            summary = train_ssnn(topts, run, data=data, progress=opts.progress)
            net, _ = quantize_ssnn_run(run, bundle, data=data)
        seconds = summary["train_seconds"]
        _say(f"{label} trained in {time.perf_counter() - t0:.0f} s")
    result = evaluate_bundle(net, data, complexity=False)
    row = {
        "variant": variant, "seed": seed, "accuracy": result["accuracy"],
        "qat_accuracy": net.meta.get("qat_accuracy"),
        "stages": list(net.stages.steps) if net.staged else [net.timesteps],
        "avg_timesteps": net.average_steps, "avg_timesteps_paper": paper_average_steps(net),
        "train_seconds": seconds, "bundle": str(bundle), "samples": result["samples"],
    }
    _say(f"{label} golden test accuracy {row['accuracy']:.4f}, average timestep {row['avg_timesteps']:g}")
    return row


def ssnn_ablation(opts: AblationOptions) -> dict:
    """Train, quantize and evaluate every variant for every seed; write and return the table."""
    from quickspike.sw.data import load_dataset

    stages = parse_stages(opts.stages)
    if not opts.seeds:
        raise UsageError("give at least one seed")
    data = load_dataset(opts.dataset)
    n_layers = len(opts.hidden) + 1 if opts.arch == "mlp" else 3
    starts = opts.stage_starts or default_starts(n_layers, len(stages))
    layer_steps = [stages[max(i for i, s in enumerate(starts) if s <= j)] for j in range(n_layers)]
    avg = sum(layer_steps) / n_layers
    uniform_t, rounded = _uniform_steps(avg)
    _say(f"SSNN ablation on {opts.dataset}: stages {','.join(map(str, stages))} (starts "
         f"{','.join(map(str, starts))}), average timestep {avg:g} -> uniform T={uniform_t}"
         f"{' (rounded)' if rounded else ''}; seeds {','.join(map(str, opts.seeds))}, {opts.epochs} epochs")
    opts.out.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for seed in opts.seeds:
        for variant in VARIANTS:
            rows.append(_run_variant(opts, variant, seed, data, uniform_t))
    summary = {}
    for variant in VARIANTS:
        accs = [r["accuracy"] for r in rows if r["variant"] == variant]
        summary[variant] = {
            "mean_accuracy": statistics.fmean(accs),
            "std_accuracy": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "accuracies": accs,
            "avg_timesteps": next(r["avg_timesteps"] for r in rows if r["variant"] == variant),
            "avg_timesteps_paper": next(r["avg_timesteps_paper"] for r in rows if r["variant"] == variant),
        }
    gap = 100 * (summary["ssnn"]["mean_accuracy"] - summary["uniform"]["mean_accuracy"])
    result = {
        "dataset": opts.dataset, "arch": opts.arch, "hidden": list(opts.hidden), "stages": list(stages),
        "leak_shift": opts.leak_shift,
        "stage_starts": list(starts), "epochs": opts.epochs, "seeds": list(opts.seeds),
        "average_steps": avg, "uniform_timesteps": uniform_t, "uniform_rounded": rounded,
        "rows": rows, "summary": summary, "ssnn_minus_uniform_points": gap,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    text = markdown_table(result)
    atomic_write_text(opts.out / "ablation.json", json.dumps(result, indent=2))
    atomic_write_text(opts.out / "ablation.md", text + "\n")
    _say("\n" + text)
    return result


def markdown_table(result: dict) -> str:
    """The ablation as a Markdown table (accuracy in percent, golden model, test split)."""
    seeds = result["seeds"]
    head = ["variant", "timesteps", "avg T (all layers)", "avg T (paper)", "accuracy % (mean)"] + \
        [f"seed {s}" for s in seeds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = {"ssnn": "SSNN", "uniform": "uniform-T SNN", "no-transformer": "SSNN without transformer (averaging)",
             "no-early": "SSNN without early classifiers"}
    for variant, s in result["summary"].items():
        row = next(r for r in result["rows"] if r["variant"] == variant)
        mean = f"{100 * s['mean_accuracy']:.2f}" + (f" ± {100 * s['std_accuracy']:.2f}" if len(seeds) > 1 else "")
        cells = [names[variant], ",".join(map(str, row["stages"])), f"{s['avg_timesteps']:g}",
                 f"{s['avg_timesteps_paper']:g}", mean] + [f"{100 * a:.2f}" for a in s["accuracies"]]
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"\n{result['dataset']} test split ({result['rows'][0]['samples']} samples), golden integer model "
            f"on the quantized bundles; {result['arch']} {result['hidden']}, leak shift {result['leak_shift']}, "
            f"{result['epochs']} epochs. "
            f"SSNN minus uniform: {result['ssnn_minus_uniform_points']:+.2f} points.")
    if result["uniform_rounded"]:
        note += f" The average timestep {result['average_steps']:g} is not an integer: the uniform SNN runs T={result['uniform_timesteps']}."
    return "\n".join(lines) + "\n" + note
