"""Evaluation of a bundle with the golden integer model on a data set's test split.

With an early-exit rule (the bundle's, unless overridden: ``ExitSpec()`` is
``--no-exit``) every sample runs until the rule holds or ``T``; the result reports
the accuracy, the average timesteps actually run, a histogram of the exit timesteps
(``{t: samples}``, summing to the sample count) and the synaptic-operation
complexity relative to the same bundle at fixed ``T`` (:mod:`quickspike.sw.complexity`).

An ``events`` bundle takes the data set's events binned into ``T`` binary frames
(:func:`quickspike.sw.events.network_input`; at each ``T`` asked for). A staged (SSNN)
bundle runs its own schedule: ``timesteps`` is refused, and ``avg_timesteps`` is its
average timestep :attr:`IntNetwork.average_steps` (every layer counted) with the
paper's (hidden layers only) in ``avg_timesteps_paper``. The synaptic-operation count
covers direct-coded, unstaged bundles only (it is skipped for the others).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from quickspike.errors import UsageError
from quickspike.sw.data import Dataset
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import ExitSpec

__all__ = ["check_compatible", "evaluate_bundle", "exit_histogram"]


def check_compatible(net: IntNetwork, data: Dataset) -> None:
    """Refuse a data set whose images or classes do not match the network."""
    if tuple(data.shape) != tuple(net.input_shape) and int(np.prod(data.shape)) != net.layers[0].n_in:
        raise UsageError(f"data set {data.name} has images {tuple(data.shape)}, the bundle expects {tuple(net.input_shape)}")
    if data.num_classes > net.num_classes:
        raise UsageError(f"data set {data.name} has {data.num_classes} classes, the bundle only {net.num_classes}")


def exit_histogram(timesteps: torch.Tensor, T: int) -> dict[str, int]:
    """``{t: samples that stopped after t timesteps}`` for ``t = 1..T`` (JSON keys are strings)."""
    counts = torch.bincount(timesteps.to(torch.int64), minlength=T + 1)
    return {str(t): int(counts[t]) for t in range(1, T + 1)}


def evaluate_bundle(net: IntNetwork, data: Dataset, timesteps: list[int] | None = None,
                    samples: int | None = None, *, exit: ExitSpec | None = None,
                    complexity: bool = True, ablation: bool = True) -> dict:
    """Golden-model accuracy on the test split, at the bundle's T or each T given.

    ``exit`` overrides the bundle's early-exit rule (``ExitSpec()``: run every sample
    for the full ``T``). ``complexity=False`` skips the synaptic-operation count.
    An ``icsnn`` bundle also gets ``ann_accuracy`` and the IC-SNN ``ablation``
    (:mod:`quickspike.sw.ablation`) at the same timesteps, unless ``ablation=False``.
    """
    from quickspike.sw.complexity import run_with_complexity
    from quickspike.sw.golden import run_golden

    from quickspike.sw.events import network_input

    check_compatible(net, data)
    if net.staged and timesteps:
        raise UsageError(f"an SSNN bundle runs its stages {','.join(map(str, net.stages.steps))}; "
                         "--timesteps cannot be used with it")
    if net.input_coding == "events" or net.staged:
        complexity = False
    rule = net.exit if exit is None else exit
    x, y = network_input(net, data, "test", samples), data.y_test
    if samples is not None:
        y = y[:samples]
    labels = np.asarray(y)
    n = len(labels)
    ts = timesteps or [net.timesteps]
    by_t = {}
    t0 = time.perf_counter()
    for T in ts:
        xt = data.frames("test", T, samples) if net.input_coding == "events" and T != net.input_steps else x
        if complexity:
            r, cx = run_with_complexity(net, xt, T, exit=rule)
        else:
            r, cx = run_golden(net, xt, None if net.staged else T, exit=rule), None
        by_t[T] = {
            "accuracy": float((r.predicted.numpy() == labels).mean()) if n else 0.0,
            "avg_timesteps": float(r.timesteps.double().mean()) if n else 0.0,
            "avg_spikes": float(r.spike_counts.sum(dim=(1, 2)).double().mean()) if n else 0.0,
            "exit_histogram": exit_histogram(r.timesteps, T),
        }
        if cx is not None:
            by_t[T].update(cx.summary())
    seconds = time.perf_counter() - t0
    main_t = ts[-1] if timesteps else net.timesteps
    main = by_t[main_t]
    result = {
        "bundle_algo": net.meta.get("algo", "snn"),
        "dataset": data.name,
        "samples": int(n),
        "timesteps": main_t,
        "exit": rule.to_dict(),
        "accuracy": main["accuracy"],
        "avg_timesteps": main["avg_timesteps"],
        "avg_spikes": main["avg_spikes"],
        "exit_histogram": main["exit_histogram"],
        "golden_samples_per_second": round(n * len(ts) / seconds, 1) if seconds > 0 else None,
    }
    if net.staged:
        from quickspike.sw.ssnn import paper_average_steps

        result["timesteps"] = ",".join(map(str, net.stages.steps))
        result["stages"] = net.stages.to_dict()
        result["avg_timesteps"] = net.average_steps
        result["avg_timesteps_paper"] = paper_average_steps(net)
    if complexity:
        result["relative_complexity"] = main["relative_complexity"]
        result["avg_sops"] = main["avg_sops"]
    if timesteps:
        result["by_timesteps"] = {str(T): v for T, v in by_t.items()}
    if ablation and net.meta.get("algo") == "icsnn":
        from quickspike.sw.ablation import icsnn_ablation

        result.update(icsnn_ablation(net, x, labels, ts))
    return result
