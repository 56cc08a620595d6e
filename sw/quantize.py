"""Export a trained model to the exact integer network (:class:`IntNetwork`).

The model trains in integer units already (see :mod:`quickspike.sw.model`), so the
export only rounds: ``W_int = round(W · q_l)``, threshold ``q_l`` (``255·q_0`` for the
pixel-driven first layer; ``q_0`` for event frames), ``v_init = 0``, reset by subtraction, the trained leak on
hidden layers and none on the output integrators.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from quickspike.sw.model import SNNModel
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import LayerSpec, NeuronSpec, StageSpec

__all__ = ["export_network", "quantize_run"]


def export_network(model: SNNModel, timesteps: int, meta: dict | None = None,
                   stages: StageSpec | None = None) -> IntNetwork:
    """The integer network of ``model`` (``stages``: an SSNN schedule, see :mod:`quickspike.sw.ssnn`)."""
    cfg = model.cfg
    spec = cfg.spec
    scales = model.scales()
    thetas = model.thresholds(scales)
    layers, weights = [], []
    shape: tuple[int, ...] = tuple(cfg.input_shape)
    n = len(model.layers)
    for i, (module, kind, pool, q) in enumerate(zip(model.layers, model.kinds, model.pools, scales)):
        last = i == n - 1
        w = torch.clamp(torch.round(module.weight.detach().double() * q), *spec.weight_range)
        weights.append(w.numpy().astype(np.int64))
        neuron = NeuronSpec(
            threshold=thetas[i],
            v_init=0,
            leak_shift=0 if last else cfg.leak_shift,
            reset="subtract",
            spiking=not last,
        )
        if kind == "conv":
            out_shape = (module.out_channels, shape[1], shape[2])
            layer = LayerSpec("conv", shape, out_shape, neuron, pool=pool)
        else:
            layer = LayerSpec("dense", shape, (module.out_features,), neuron)
        layers.append(layer)
        shape = layer.pooled_shape
    return IntNetwork(spec, tuple(layers), tuple(weights), timesteps=timesteps,
                      meta=dict(meta or {}), input_coding=cfg.input_coding,
                      stages=stages or StageSpec()).validate()


def quantize_run(run: Path | str, out: Path | str) -> tuple[IntNetwork, Path]:
    """Export training run ``run`` to bundle ``out``, with its integer test accuracy in ``meta``."""
    from quickspike.sw.bundle import save_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.evaluate import evaluate_bundle
    from quickspike.sw.train import load_run

    model, summary = load_run(Path(run))
    opts = summary["options"]
    meta = {
        "algo": opts["algo"], "arch": opts["arch"], "dataset": opts["dataset"], "seed": opts["seed"],
        "float_accuracy": summary["float_accuracy"], "qat_accuracy": summary["qat_accuracy"],
    }
    if opts["algo"] == "atsnn":
        meta["td_weights"] = opts.get("td_weights")
    net = export_network(model, opts["timesteps"], meta)
    net.meta["int_accuracy"] = evaluate_bundle(net, load_dataset(opts["dataset"]), complexity=False)["accuracy"]
    return net, save_bundle(net, out)
