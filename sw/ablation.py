"""The IC-SNN ablation: what each technique of the conversion adds, like the paper's table.

For an ``icsnn`` bundle the variants are the same :class:`IntNetwork` with the
initial potentials and the coding compensation switched (``dataclasses.replace``):

``plain``               every ``v_init = 0``, no compensation (plain conversion)
``init``                the initial potentials fitted (or set) *without* compensation
``compensation``        every ``v_init = 0``, compensation on
``init+compensation``   both (IC-SNN): the potentials fitted *with* compensation

The initial potentials come from the bundle's ``meta["v_init"]`` (written by
``quickspike quantize``), else from the ``half`` rule of :mod:`quickspike.sw.icsnn_init`;
the compensation is the bundle's, else :func:`quickspike.sw.icsnn.compensation_for`.
Each variant runs once for the largest ``T`` asked (no early exit); the accuracy at a
smaller ``T`` is the readout after that timestep, which is exactly what a run of
that length computes. ``ann`` is the integer quantized ANN the SNN converts.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from quickspike.sw.golden import argmax_first, run_golden
from quickspike.sw.icsnn import ann_accuracy, compensation_for
from quickspike.sw.icsnn_init import init_fractions, with_v_init
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import CompensationSpec, ExitSpec
from quickspike.sw.report import table

__all__ = ["VARIANTS", "icsnn_variants", "icsnn_ablation", "ablation_table"]

VARIANTS = ("plain", "init", "compensation", "init+compensation")


def _fractions(net: IntNetwork, key: str, comp: CompensationSpec) -> list[float]:
    saved = net.meta.get("v_init") if isinstance(net.meta.get("v_init"), dict) else {}
    fr = saved.get(key)
    if isinstance(fr, list) and len(fr) == len(net.layers) - 1:
        return [float(f) for f in fr]
    return init_fractions(replace(net, compensation=comp), "half")


def icsnn_variants(net: IntNetwork) -> dict[str, IntNetwork]:
    """The four variants of :data:`VARIANTS` of ``net``."""
    hidden = len(net.layers) - 1
    comp = net.compensation if net.compensation.enabled else compensation_for(net)
    off = CompensationSpec()
    return {
        "plain": with_v_init(replace(net, compensation=off), [0.0] * hidden),
        "init": with_v_init(replace(net, compensation=off), _fractions(net, "without_compensation", off)),
        "compensation": with_v_init(replace(net, compensation=comp), [0.0] * hidden),
        "init+compensation": with_v_init(replace(net, compensation=comp),
                                         _fractions(net, "with_compensation", comp)),
    }


def icsnn_ablation(net: IntNetwork, pixels, labels, timesteps: list[int]) -> dict:
    """``{"ann_accuracy": a, "ablation": {...}}`` for ``net`` on ``pixels``/``labels``."""
    labels = np.asarray(labels)
    ts = sorted(set(timesteps))
    ann = ann_accuracy(net, pixels, labels) if len(labels) else 0.0
    acc: dict[str, dict[str, float]] = {}
    fractions = {}
    for name, variant in icsnn_variants(net).items():
        fractions[name] = [layer.neuron.v_init / layer.neuron.threshold for layer in variant.layers[:-1]]
        if not len(labels):
            acc[name] = {str(T): 0.0 for T in ts}
            continue
        r = run_golden(variant, pixels, max(ts), exit=ExitSpec())
        acc[name] = {str(T): float((argmax_first(r.readout[:, T - 1]).numpy() == labels).mean()) for T in ts}
    gain = {name: {T: round(acc[name][T] - acc["plain"][T], 6) for T in acc[name]}
            for name in VARIANTS if name != "plain"}
    saved = net.meta.get("v_init") if isinstance(net.meta.get("v_init"), dict) else {}
    return {
        "ann_accuracy": ann,
        "ablation": {
            "levels": net.meta.get("levels"),
            "init": saved.get("mode", "half"),
            "compensation": (net.compensation if net.compensation.enabled else compensation_for(net)).to_dict(),
            "v_init_fractions": fractions,
            "timesteps": ts,
            "accuracy": {"ann": ann, **acc},
            "gain_over_plain": gain,
        },
    }


def ablation_table(ablation: dict) -> str:
    """The ablation as a text table: one row per variant, one column per T."""
    ts = [str(T) for T in ablation["timesteps"]]
    acc = ablation["accuracy"]
    names = {"plain": "plain conversion", "init": f"+ initial potential ({ablation['init']})",
             "compensation": "+ coding compensation", "init+compensation": "+ both (IC-SNN)"}
    rows = [[f"quantized ANN (L={ablation['levels']})"] + [acc["ann"]] * len(ts)]
    rows += [[names[v]] + [acc[v][T] for T in ts] for v in VARIANTS]
    return "IC-SNN ablation (accuracy)\n" + table(["variant"] + [f"T={T}" for T in ts], rows)
