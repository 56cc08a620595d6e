"""Computational complexity of a bundle run: synaptic operations (SOPs).

For one sample, ``SOPs = first + Σ_{t <= t_exit} Σ_{l >= 1} Σ_events fanout_l(event)``:

* ``first``: the first layer's multi-bit input is the same every timestep, so its
  current is computed **once per sample** (:mod:`quickspike.sw.spec`): one
  multiply-accumulate per non-zero (encoded) input pixel and synaptic target, i.e.
  ``Σ_{pixels p != 0} fanout_0(p)``, counted whatever the number of timesteps. Zero
  pixels are skipped, as the event-driven hardware does (``hw/perf.py``).
* every later layer ``l``, for each timestep the sample actually ran (up to its exit
  timestep ``t_exit``, :attr:`GoldenResult.timesteps`): each input event (a spike of
  layer ``l-1``; after a ``pool × pool`` sum-pool an input carrying ``n`` spikes counts
  as ``n`` events) costs one accumulate per synaptic target: ``n_out`` for a dense
  layer, ``K × (valid 3×3 positions)`` for a convolution (fewer at the borders).

The fire phase and the exit check are not synaptic operations and are left out.
**Relative complexity** is the SOPs of a run with the exit rule divided by the SOPs
of the same bundle run for the fixed ``T`` (no exit), both summed over the samples;
spikes are the golden model's, cut at each sample's exit timestep. Because the
first-layer term does not shrink with fewer timesteps, an exit at ``t = 1`` gives a
ratio above ``1 / T``; :attr:`Complexity.relative_spiking` gives the ratio of the
spike-driven layers alone (the part that scales with the timesteps run).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from quickspike.sw.golden import GoldenResult, apply_exit, encode_pixels, run_golden, sum_pool
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import ExitSpec, LayerSpec

__all__ = ["fanout_map", "Complexity", "run_with_complexity"]


def fanout_map(layer: LayerSpec) -> torch.Tensor:
    """Synaptic targets of one input event at each input position of ``layer`` (``in_shape``, int64)."""
    if layer.kind == "dense":
        return torch.full(layer.in_shape, layer.n_out, dtype=torch.int64)
    c, h, w = layer.in_shape
    r = layer.kernel // 2
    ny = torch.tensor([sum(0 <= y + d < h for d in range(-r, r + 1)) for y in range(h)])
    nx = torch.tensor([sum(0 <= x + d < w for d in range(-r, r + 1)) for x in range(w)])
    per = torch.outer(ny, nx) * layer.out_shape[0]
    return per.expand(c, h, w).to(torch.int64).contiguous()


@dataclass(frozen=True)
class Complexity:
    """Per-sample synaptic operations of a run, with and without its exit rule."""

    #: (B,) first-layer multiply-accumulates (once per sample).
    first_layer: torch.Tensor
    #: (B,) accumulates of the later layers for the timesteps actually run.
    later_layers: torch.Tensor
    #: (B,) the same for all ``T`` timesteps (no exit).
    later_layers_full: torch.Tensor

    @property
    def sops(self) -> torch.Tensor:
        return self.first_layer + self.later_layers

    @property
    def sops_full(self) -> torch.Tensor:
        return self.first_layer + self.later_layers_full

    @property
    def relative(self) -> float:
        """SOPs with the exit / SOPs at fixed ``T`` (summed over samples)."""
        full = int(self.sops_full.sum())
        return int(self.sops.sum()) / full if full else 1.0

    @property
    def relative_spiking(self) -> float:
        """The same ratio for the spike-driven layers only (without the first layer's MACs)."""
        full = int(self.later_layers_full.sum())
        return int(self.later_layers.sum()) / full if full else 1.0

    def summary(self) -> dict:
        n = max(1, len(self.first_layer))
        return {
            "avg_sops": int(self.sops.sum()) / n,
            "avg_sops_fixed_t": int(self.sops_full.sum()) / n,
            "avg_first_layer_macs": int(self.first_layer.sum()) / n,
            "relative_complexity": self.relative,
            "relative_complexity_spiking_layers": self.relative_spiking,
        }


def _layer_events(net: IntNetwork, spikes: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """(B, T) accumulates of all layers after the first, per timestep."""
    total = None
    for i in range(1, len(net.layers)):
        prev, layer = net.layers[i - 1], net.layers[i]
        s = spikes[i - 1]  # (B, T, *prev.out_shape) bool
        B, T = s.shape[:2]
        if prev.kind == "conv":
            counts = sum_pool(s.reshape(B * T, *prev.out_shape), prev.pool)
        else:
            counts = s.reshape(B * T, -1).to(torch.float64)
        fan = fanout_map(layer).reshape(-1).to(torch.float64)
        ops = (counts.reshape(B * T, -1) @ fan).round().to(torch.int64).reshape(B, T)
        total = ops if total is None else total + ops
    return total


def run_with_complexity(net: IntNetwork, pixels, timesteps: int | None = None, *,
                        exit: ExitSpec | None = None, batch_size: int = 250) -> tuple[GoldenResult, Complexity]:
    """Run the golden model with the exit rule (default: the bundle's) and count SOPs.

    Runs in batches so the recorded spikes of a convolutional network stay small; the
    returned :class:`GoldenResult` carries no spikes.
    """
    rule = net.exit if exit is None else exit
    T = net.timesteps if timesteps is None else timesteps
    x_all = np.asarray(pixels)
    parts, firsts, laters, fulls = [], [], [], []
    first_fan = fanout_map(net.layers[0]).reshape(-1)
    for i in range(0, max(1, len(x_all)), batch_size):
        x = x_all[i:i + batch_size]
        full = run_golden(net, x, T, exit=ExitSpec(), record_spikes=len(net.layers) > 1)
        r = apply_exit(full, rule)
        enc = encode_pixels(x, net.spec).reshape(len(x), -1)
        firsts.append(((enc != 0).to(torch.int64) * first_fan[None, :]).sum(dim=1))
        if len(net.layers) > 1:
            per_t = _layer_events(net, full.spikes)  # (B, T)
            ran = torch.arange(1, T + 1)[None, :] <= r.timesteps[:, None]
            laters.append((per_t * ran).sum(dim=1))
            fulls.append(per_t.sum(dim=1))
        else:
            laters.append(torch.zeros(len(x), dtype=torch.int64))
            fulls.append(torch.zeros(len(x), dtype=torch.int64))
        parts.append(r)
    result = GoldenResult(
        potentials=torch.cat([p.potentials for p in parts]),
        spike_counts=torch.cat([p.spike_counts for p in parts]),
        predicted=torch.cat([p.predicted for p in parts]),
        timesteps=torch.cat([p.timesteps for p in parts]),
        readout=None if parts[0].readout is None else torch.cat([p.readout for p in parts]),
    )
    return result, Complexity(torch.cat(firsts), torch.cat(laters), torch.cat(fulls))
