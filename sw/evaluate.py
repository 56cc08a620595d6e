"""Evaluation of a bundle with the golden integer model on a data set's test split."""

from __future__ import annotations

import time

import numpy as np

from quickspike.errors import UsageError
from quickspike.sw.data import Dataset
from quickspike.sw.golden import run_golden
from quickspike.sw.network import IntNetwork

__all__ = ["check_compatible", "evaluate_bundle"]


def check_compatible(net: IntNetwork, data: Dataset) -> None:
    """Refuse a data set whose images or classes do not match the network."""
    if tuple(data.shape) != tuple(net.input_shape) and int(np.prod(data.shape)) != net.layers[0].n_in:
        raise UsageError(f"data set {data.name} has images {tuple(data.shape)}, the bundle expects {tuple(net.input_shape)}")
    if data.num_classes > net.num_classes:
        raise UsageError(f"data set {data.name} has {data.num_classes} classes, the bundle only {net.num_classes}")


def evaluate_bundle(net: IntNetwork, data: Dataset, timesteps: list[int] | None = None,
                    samples: int | None = None) -> dict:
    """Golden-model accuracy on the test split, at the bundle's T or each T given."""
    check_compatible(net, data)
    x, y = data.x_test, data.y_test
    if samples is not None:
        x, y = x[:samples], y[:samples]
    labels = np.asarray(y)
    ts = timesteps or [net.timesteps]
    by_t = {}
    t0 = time.perf_counter()
    for T in ts:
        r = run_golden(net, x, T)
        by_t[T] = {
            "accuracy": float((r.predicted.numpy() == labels).mean()) if len(labels) else 0.0,
            "avg_timesteps": float(r.timesteps.double().mean()) if len(labels) else 0.0,
            "avg_spikes": float(r.spike_counts.sum(dim=(1, 2)).double().mean()) if len(labels) else 0.0,
        }
    seconds = time.perf_counter() - t0
    main = by_t[ts[-1] if timesteps else net.timesteps]
    result = {
        "bundle_algo": net.meta.get("algo", "snn"),
        "dataset": data.name,
        "samples": int(len(labels)),
        "timesteps": ts[-1] if timesteps else net.timesteps,
        "accuracy": main["accuracy"],
        "avg_timesteps": main["avg_timesteps"],
        "golden_samples_per_second": round(len(labels) * len(ts) / seconds, 1) if seconds > 0 else None,
    }
    if timesteps:
        result["by_timesteps"] = {str(T): v for T, v in by_t.items()}
    return result
