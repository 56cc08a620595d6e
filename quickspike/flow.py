"""The whole flow as a list of named steps (in the manner of FINN and hls4ml).

Each step is ``step(ctx) -> dict`` and leaves an artifact in the flow folder; its
result and wall time are recorded in ``flow.json`` after every step, so a flow can be
inspected while it runs and resumed: a step whose artifact exists and whose options
are unchanged is not run again.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from quickspike.sw.files import atomic_write_text
from quickspike.sw.report import table

__all__ = ["FlowOptions", "FlowStep", "STEPS", "run_flow"]


@dataclass(frozen=True)
class FlowOptions:
    dataset: str = "mnist5k"
    arch: str = "mlp"
    timesteps: int = 4
    epochs: int = 15
    seed: int = 0
    lanes: int = 8
    cosim_samples: int = 100
    out: Path = Path("build/flow")
    progress: bool = True


@dataclass
class FlowContext:
    opts: FlowOptions
    results: dict = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.opts.out / "run"

    @property
    def bundle(self) -> Path:
        return self.opts.out / "model.qsb"


@dataclass(frozen=True)
class FlowStep:
    name: str
    artifact: Callable[[FlowContext], Path]
    run: Callable[[FlowContext], dict]
    summary: Callable[[dict], str]


def _train(ctx: FlowContext) -> dict:
    from quickspike.sw.train import TrainOptions, train

    o = ctx.opts
    s = train(TrainOptions(dataset=o.dataset, arch=o.arch, timesteps=o.timesteps, epochs=o.epochs, seed=o.seed),
              ctx.run_dir, progress=o.progress)
    return {"float_accuracy": s["float_accuracy"], "qat_accuracy": s["qat_accuracy"], "seconds_training": s["train_seconds"]}


def _quantize(ctx: FlowContext) -> dict:
    from quickspike.sw.quantize import quantize_run

    net, _ = quantize_run(ctx.run_dir, ctx.bundle)
    return {"int_accuracy": net.meta["int_accuracy"], "layers": [layer.n_out for layer in net.layers]}


def _eval(ctx: FlowContext) -> dict:
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.evaluate import evaluate_bundle

    result = evaluate_bundle(load_bundle(ctx.bundle), load_dataset(ctx.opts.dataset), [1, 2, ctx.opts.timesteps])
    atomic_write_text(ctx.opts.out / "eval.json", json.dumps(result, indent=2))
    return result


def _generate(ctx: FlowContext) -> dict:
    from quickspike.cosim.run import hwconfig_for
    from quickspike.hw.generate import TOP_NAME, generate_verilog, manifest
    from quickspike.sw.bundle import load_bundle

    hwcfg = hwconfig_for(load_bundle(ctx.bundle), ctx.opts.lanes)
    verilog = generate_verilog(hwcfg, TOP_NAME)
    atomic_write_text(ctx.opts.out / "hw" / f"{TOP_NAME}.v", verilog)
    atomic_write_text(ctx.opts.out / "hw" / "manifest.json", json.dumps(manifest(hwcfg, TOP_NAME), indent=2))
    return {"lanes": hwcfg.lanes, "verilog_lines": len(verilog.splitlines())}


def _cosim(ctx: FlowContext) -> dict:
    from quickspike.cosim.run import CosimOptions, run_cosim
    from quickspike.errors import UserError

    report = run_cosim(CosimOptions(bundle=ctx.bundle, dataset=ctx.opts.dataset, samples=ctx.opts.cosim_samples,
                                    engine="cocotb", lanes=ctx.opts.lanes, waves_dir=ctx.opts.out / "cosim",
                                    progress=ctx.opts.progress))
    atomic_write_text(ctx.opts.out / "cosim.json", json.dumps(report.figures, indent=2))
    if not report.ok:
        raise UserError(f"cosim: {len(report.mismatches)} mismatches; first: {report.mismatch_lines(1)[0]}")
    keys = ("samples", "mismatches", "accuracy_rtl", "accuracy_golden", "cycles_per_inference",
            "lower_bound_cycles", "samples_per_second")
    return {k: report.figures[k] for k in keys}


STEPS: list[FlowStep] = [
    FlowStep("train", lambda c: c.run_dir / "train.json", _train,
             lambda r: f"float {r['float_accuracy']:.4f}, QAT {r['qat_accuracy']:.4f}"),
    FlowStep("quantize", lambda c: c.bundle, _quantize,
             lambda r: f"integer accuracy {r['int_accuracy']:.4f}, layers {r['layers']}"),
    FlowStep("eval", lambda c: c.opts.out / "eval.json", _eval,
             lambda r: ", ".join(f"T={t}: {v['accuracy']:.4f}" for t, v in r["by_timesteps"].items())),
    FlowStep("generate", lambda c: c.opts.out / "hw" / "manifest.json", _generate,
             lambda r: f"{r['lanes']} lanes, {r['verilog_lines']} lines of Verilog"),
    FlowStep("cosim", lambda c: c.opts.out / "cosim.json", _cosim,
             lambda r: (f"{r['samples']} samples, {r['mismatches']} mismatches, RTL acc {r['accuracy_rtl']:.4f}, "
                        f"{r['cycles_per_inference']:.0f} cycles (bound {r['lower_bound_cycles']:.0f}), "
                        f"{r['samples_per_second']:.1f} samples/s")),
]


def run_flow(opts: FlowOptions, steps: list[FlowStep] | None = None) -> dict:
    """Run (or resume) the flow; print a summary table; return the record."""
    steps = STEPS if steps is None else steps
    opts.out.mkdir(parents=True, exist_ok=True)
    record_path = opts.out / "flow.json"
    key = {k: str(v) for k, v in asdict(opts).items() if k != "progress"}
    old = json.loads(record_path.read_text()) if record_path.is_file() else {}
    done = old.get("steps", {}) if old.get("options") == key else {}
    record = {"options": key, "steps": {}}
    ctx = FlowContext(opts)
    for step in steps:
        if step.name in done and step.artifact(ctx).exists():
            record["steps"][step.name] = dict(done[step.name], resumed=True)
            print(f"[{step.name}] up to date ({step.artifact(ctx)})")
            continue
        print(f"[{step.name}] running ...", flush=True)
        t0 = time.perf_counter()
        result = step.run(ctx)
        record["steps"][step.name] = {"seconds": round(time.perf_counter() - t0, 1), "artifact": str(step.artifact(ctx)),
                                      "result": result}
        atomic_write_text(record_path, json.dumps(record, indent=2))
    rows = [[name, rec["seconds"], step.summary(rec["result"]), rec["artifact"]]
            for step in steps for name, rec in [(step.name, record["steps"][step.name])]]
    print()
    print(f"quickspike flow: {opts.dataset}, {opts.arch}, T={opts.timesteps} -> {opts.out}")
    print(table(["step", "seconds", "result", "artifact"], rows))
    atomic_write_text(record_path, json.dumps(record, indent=2))
    return record
