"""``make bench``: speed and size figures, printed and written as JSON.

Each benchmark is a function returning a dict of figures; the results go to
``<out>/bench.json`` (and one ``<name>.json`` per benchmark) beside the printed table.
Goals are printed next to the figures, never asserted: this is not a test.

The benchmarks need a trained mnist5k bundle: ``--bundle`` names one, otherwise a
short training run is made once in ``<out>/mlp`` and reused. The SSNN benchmark trains
(once, reused) an SSNN with stages 3,2,1 and the uniform-T SNN of the same average
timestep on ``mnist5k-events`` (``quickspike ssnn-ablation``, seed 0) and runs both
through cosim: accuracy and cycles per inference side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from quickspike.errors import UserError
from quickspike.sw.files import atomic_write_text
from quickspike.sw.report import table

__all__ = ["bench_golden", "bench_cosim", "bench_ssnn", "main"]


def _default_bundle(out: Path) -> Path:
    from quickspike.sw.quantize import quantize_run
    from quickspike.sw.train import TrainOptions, train

    bundle = out / "mlp.qsb"
    if not bundle.exists():
        print("bench: training a reference mnist5k mlp (T=4) ...", flush=True)
        train(TrainOptions(dataset="mnist5k", arch="mlp", timesteps=4, epochs=15), out / "mlp", progress=False)
        quantize_run(out / "mlp", bundle)
    return bundle


def bench_golden(bundle: Path, repeats: int = 3) -> dict:
    """Golden-model throughput on the mnist5k test split at the bundle's T."""
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.golden import run_golden

    net = load_bundle(bundle)
    x = np.array(load_dataset("mnist5k").x_test)
    run_golden(net, x[:100])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_golden(net, x)
        best = min(best, time.perf_counter() - t0)
    return {"bundle": str(bundle), "samples": len(x), "timesteps": net.timesteps,
            "seconds": round(best, 4), "samples_per_second": round(len(x) / best, 1), "goal_samples_per_second": 2000}


def bench_cosim(bundle: Path, engine: str, samples: int = 200, lanes: int = 8, dataset: str = "mnist5k") -> dict:
    """RTL simulation throughput and cycles versus the event-driven lower bound."""
    from quickspike.cosim.run import CosimOptions, run_cosim

    report = run_cosim(CosimOptions(bundle=bundle, dataset=dataset, samples=samples, engine=engine,
                                    lanes=lanes, progress=False))
    f = report.figures
    return {"bundle": str(bundle), "engine": engine, "lanes": lanes, "samples": f["samples"],
            "mismatches": f["mismatches"], "cycles_per_inference": f["cycles_per_inference"],
            "lower_bound_cycles": f["lower_bound_cycles"], "cycles_over_lower_bound": f["cycles_over_lower_bound"],
            "samples_per_second": f["samples_per_second"], "goal_samples_per_second": 20 if engine == "cocotb" else None,
            "goal_cycles_over_lower_bound": 1.5}


def bench_ssnn(out: Path, samples: int = 500) -> dict:
    """SSNN (stages 3,2,1) against the uniform-T SNN of the same average timestep (T=2):
    golden accuracy on the whole test split, RTL cycles per inference on ``samples``."""
    from quickspike.sw.ssnn_ablation import AblationOptions, ssnn_ablation

    table = ssnn_ablation(AblationOptions(stages=(3, 2, 1), seeds=(0,), out=out, progress=False))
    result = {"stages": table["stages"], "average_steps": table["average_steps"],
              "uniform_timesteps": table["uniform_timesteps"]}
    for row in table["rows"]:
        if row["variant"] in ("ssnn", "uniform"):
            cosim = bench_cosim(Path(row["bundle"]), "pyverilator", samples, dataset=table["dataset"])
            result[row["variant"]] = {"accuracy": row["accuracy"], "bundle": row["bundle"], **{
                k: cosim[k] for k in ("samples", "mismatches", "cycles_per_inference", "lower_bound_cycles")}}
    result["cycles_ssnn_over_uniform"] = round(
        result["ssnn"]["cycles_per_inference"] / result["uniform"]["cycles_per_inference"], 4)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m quickspike.bench")
    p.add_argument("--out", type=Path, default=Path("build/bench"))
    p.add_argument("--bundle", type=Path, default=None, help="a trained mnist5k mlp bundle")
    args = p.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        bundle = args.bundle or _default_bundle(args.out)
        results = {"golden_mlp": bench_golden(bundle)}
        for engine in ("cocotb", "pyverilator"):
            print(f"bench: cosim of 200 samples with the {engine} engine ...", flush=True)
            results[f"cosim_mlp_{engine}"] = bench_cosim(bundle, engine)
        print("bench: SSNN 3,2,1 vs uniform T=2 on mnist5k-events (training once, then cosim) ...", flush=True)
        ssnn = bench_ssnn(args.out / "ssnn")
    except UserError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return e.exit_code
    rows = []
    for name, r in results.items():
        atomic_write_text(args.out / f"{name}.json", json.dumps(r, indent=2))
        goal = f"goal >= {r['goal_samples_per_second']}" if r.get("goal_samples_per_second") else "-"
        rows.append([name, f"{r['samples_per_second']:.1f} samples/s", goal])
        if "cycles_over_lower_bound" in r:
            rows.append([f"{name} cycles", f"{r['cycles_per_inference']:.0f} / bound {r['lower_bound_cycles']:.0f} = "
                         f"{r['cycles_over_lower_bound']:.3f}, {r['mismatches']} mismatches", "ratio <= 1.5"])
    atomic_write_text(args.out / "ssnn.json", json.dumps(ssnn, indent=2))
    for variant in ("ssnn", "uniform"):
        r = ssnn[variant]
        rows.append([f"ssnn_{variant}", f"{100 * r['accuracy']:.1f}% golden, {r['cycles_per_inference']:.0f} cycles "
                     f"(bound {r['lower_bound_cycles']:.0f}), {r['mismatches']} mismatches", "-"])
    results["ssnn"] = ssnn
    atomic_write_text(args.out / "bench.json", json.dumps(results, indent=2))
    print(table(["benchmark", "figure", "goal"], rows))
    print(f"JSON: {args.out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
