"""The quantized golden model: the exact definition of what the hardware computes.

Batched integer simulation in PyTorch (int64 state; currents summed in float64, which
is exact because :meth:`IntNetwork.validate` bounds every current below 2**47). The
neuron math is a set of pure step functions in the style of Norse: state goes in and
comes out, nothing is hidden on a module. The arithmetic is documented in
:mod:`quickspike.sw.spec`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from quickspike.errors import UsageError
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import EXP_TABLE, EXP_TABLE_SIZE, SPLIT_FRAC_BITS, ExitSpec, IntSpec, LayerSpec, NeuronSpec

__all__ = [
    "integrate", "fire", "lif_step", "layer_current", "sum_pool", "encode_pixels",
    "GoldenResult", "run_golden", "argmax_first", "exit_holds", "apply_exit", "encode_input", "split_current",
]


def integrate(current: torch.Tensor, v: torch.Tensor, neuron: NeuronSpec, spec: IntSpec) -> torch.Tensor:
    """``sat(leak(v) + current)``: the membrane after one timestep's input."""
    if neuron.leak_shift:
        v = v - (v >> neuron.leak_shift)
    lo, hi = spec.membrane_range
    return (v + current).clamp_(lo, hi)


def fire(v: torch.Tensor, neuron: NeuronSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes where ``v >= threshold``, and the membrane after reset."""
    spikes = v >= neuron.threshold
    reset = v - neuron.threshold if neuron.reset == "subtract" else torch.zeros_like(v)
    return spikes, torch.where(spikes, reset, v)


def lif_step(current: torch.Tensor, v: torch.Tensor, neuron: NeuronSpec,
             spec: IntSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """One timestep of a spiking layer: integrate, then fire."""
    return fire(integrate(current, v, neuron, spec), neuron)


def layer_current(layer: LayerSpec, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The exact input current of ``layer`` for inputs ``x`` (batch first), as int64.

    ``weight`` is the layer's weights as float64; ``x`` is the (pooled) spike or
    pixel tensor of the layer before, any numeric dtype.
    """
    x = x.to(torch.float64)
    if layer.kind == "dense":
        out = x.reshape(x.shape[0], -1) @ weight.T
    else:
        out = F.conv2d(x, weight, padding=layer.kernel // 2)
    return out.round_().to(torch.int64)


def sum_pool(spikes: torch.Tensor, pool: int) -> torch.Tensor:
    """Sum-pool a (B, K, H, W) spike map ``pool × pool``; partial windows are dropped."""
    if pool == 1:
        return spikes
    return F.avg_pool2d(spikes.to(torch.float64), pool).mul_(pool * pool).round_()


def encode_pixels(pixels: np.ndarray | torch.Tensor, spec: IntSpec) -> torch.Tensor:
    """Map uint8 pixels (0..255) to the unsigned ``input_bits`` input of the first layer.

    With 8 input bits this is the identity; otherwise ``(p · input_max + 127) // 255``
    (round half up).
    """
    p = torch.as_tensor(np.array(pixels, dtype=np.int64)) if not isinstance(pixels, torch.Tensor) else pixels.to(torch.int64)
    if p.numel() and (int(p.min()) < 0 or int(p.max()) > 255):
        raise UsageError("input pixels must lie in 0..255")
    if spec.input_bits == 8:
        return p
    return (p * spec.input_max + 127) // 255


def encode_input(net: IntNetwork, x: np.ndarray | torch.Tensor, steps: int) -> torch.Tensor:
    """The first layer's input for ``net``, batch first, checked against the network.

    ``direct``: uint8 pixels ``(B, *input_shape)`` (or any shape of the same size per
    sample) through :func:`encode_pixels`. ``events``: binary spike frames
    ``(B, steps, *input_shape)``, one frame per timestep of the first stage.
    """
    expected = tuple(net.input_shape)
    if net.input_coding == "direct":
        x = encode_pixels(x, net.spec)
        if tuple(x.shape[1:]) != expected and int(np.prod(x.shape[1:])) != int(np.prod(expected)):
            raise UsageError(f"input samples have shape {tuple(x.shape[1:])}, the network expects {expected}")
        return x.reshape(x.shape[0], *expected)
    x = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    x = x.to(torch.int64)
    if x.ndim < 2 or x.shape[1] != steps or int(np.prod(x.shape[2:])) != int(np.prod(expected)):
        raise UsageError(f"event input has shape {tuple(x.shape[1:])}, the network expects "
                         f"{steps} frames of {expected}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) > 1):
        raise UsageError("event frames must hold 0 or 1 (binary spike frames)")
    return x.reshape(x.shape[0], steps, *expected)


def split_current(carried: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``(C · p) >> SPLIT_FRAC_BITS``: a stage's summed current ``C`` (B, ...) split by ``p`` (B,)."""
    return (carried * p.reshape(-1, *([1] * (carried.ndim - 1)))) >> SPLIT_FRAC_BITS


@dataclass(frozen=True)
class GoldenResult:
    """What the golden model reports for a batch of samples."""

    #: (B, T, n_classes) output potentials after every timestep; with an early exit
    #: only the first ``timesteps[b]`` rows of sample ``b`` are run by the hardware.
    potentials: torch.Tensor
    #: (B, T, n_hidden_layers) spikes emitted per hidden layer and timestep (zero after
    #: a sample's exit).
    spike_counts: torch.Tensor
    #: (B,) predicted class (argmax of the readout at the exit timestep).
    predicted: torch.Tensor
    #: (B,) timesteps run for each sample (its exit timestep, 1-based, or T).
    timesteps: torch.Tensor
    #: With ``record_spikes``: per hidden layer, (B, T, *out_shape) bool spikes.
    spikes: tuple[torch.Tensor, ...] | None = None
    #: (B, T, n_classes) what a readout after timestep t gives: the potentials, plus
    #: the coding compensation when the network has it enabled.
    readout: torch.Tensor | None = None
    #: SSNN, per stage boundary: (B, T_i) spikes of the stage's last layer per timestep.
    stage_counts: tuple[torch.Tensor, ...] = ()
    #: SSNN, per stage boundary: (B, T_{i+1}) the transformer's split weights ``p``.
    splits: tuple[torch.Tensor, ...] = ()


def run_golden(net: IntNetwork, pixels: np.ndarray | torch.Tensor, timesteps: int | None = None,
               *, exit: ExitSpec | None = None, record_spikes: bool = False,
               batch_size: int = 1000) -> GoldenResult:
    """Run ``net`` on ``pixels`` for up to ``timesteps`` steps.

    ``pixels``: uint8 images (B, C, H, W) for a ``direct`` network, binary frames
    (B, T, C, H, W) for an ``events`` one (see :func:`encode_input`). ``exit``
    overrides the network's early-exit rule (``ExitSpec()`` runs every sample for the
    full ``timesteps``). A staged (SSNN) network runs its own schedule: ``timesteps``
    must be left out; ``potentials`` then has ``output_steps`` rows.
    """
    if net.staged and timesteps is not None and timesteps != net.timesteps:
        raise UsageError(f"an SSNN network runs its stages {list(net.stages.steps)}; "
                         "its timesteps cannot be changed")
    T = net.timesteps if timesteps is None else timesteps
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise UsageError(f"timesteps must be a positive integer, not {T!r}")
    x = encode_input(net, pixels, T)
    weights = [torch.as_tensor(w, dtype=torch.float64) for w in net.weights]
    parts = [_run_batch(net, weights, x[i:i + batch_size], T, record_spikes)
             for i in range(0, x.shape[0], batch_size)] or [_run_batch(net, weights, x, T, record_spikes)]
    spikes = None
    if record_spikes:
        spikes = tuple(torch.cat([p.spikes[j] for p in parts]) for j in range(len(net.layers) - 1))
    full = GoldenResult(
        potentials=torch.cat([p.potentials for p in parts]),
        spike_counts=torch.cat([p.spike_counts for p in parts]),
        predicted=torch.cat([p.predicted for p in parts]),
        timesteps=torch.cat([p.timesteps for p in parts]),
        spikes=spikes,
        readout=torch.cat([p.readout for p in parts]),
        stage_counts=tuple(torch.cat([p.stage_counts[j] for p in parts]) for j in range(len(parts[0].stage_counts))),
        splits=tuple(torch.cat([p.splits[j] for p in parts]) for j in range(len(parts[0].splits))),
    )
    return apply_exit(full, net.exit if exit is None else exit)


def exit_holds(potentials: torch.Tensor, rule: ExitSpec) -> torch.Tensor:
    """Whether the exit rule holds for output potentials (..., n) : bool (...)."""
    if rule.rule == "none":
        return torch.zeros(potentials.shape[:-1], dtype=torch.bool)
    top2 = potentials.topk(2, dim=-1).values
    if rule.rule == "margin":
        return (top2[..., 0] - top2[..., 1]) >= rule.threshold
    d = ((top2[..., :1] - potentials) >> rule.shift).clamp_(max=EXP_TABLE_SIZE - 1)
    total = torch.as_tensor(EXP_TABLE, dtype=torch.int64)[d].sum(dim=-1)
    return total <= rule.threshold


def apply_exit(full: GoldenResult, rule: ExitSpec) -> GoldenResult:
    """Cut a full-length result at each sample's exit timestep.

    Timestep ``t`` never depends on later ones, so running all ``T`` steps and
    cutting afterwards is exactly what a hardware that stops early computes.
    """
    if rule.rule == "none":
        return full
    T = full.potentials.shape[1]
    holds = exit_holds(full.potentials, rule)  # (B, T)
    holds[:, -1] = True
    steps = holds.to(torch.int64).argmax(dim=1) + 1  # first timestep where it holds
    ran = torch.arange(1, T + 1)[None, :] <= steps[:, None]
    at_exit = full.readout[torch.arange(len(steps)), steps - 1]
    return GoldenResult(
        potentials=full.potentials,
        spike_counts=full.spike_counts * ran[:, :, None],
        predicted=argmax_first(at_exit),
        timesteps=steps,
        spikes=full.spikes,
        readout=full.readout,
        stage_counts=full.stage_counts,
        splits=full.splits,
    )


def _run_batch(net: IntNetwork, weights: list[torch.Tensor], x: torch.Tensor, T: int,
               record: bool) -> GoldenResult:
    spec, layers = net.spec, net.layers
    n, B = len(layers), x.shape[0]
    if net.staged:
        starts, steps = net.stages.starts, net.stages.steps
    else:
        starts, steps = (0,), (T,)
    ends = (*starts[1:], n)
    v = [torch.full((B, *layer.out_shape), layer.neuron.v_init, dtype=torch.int64) for layer in layers]
    events = net.input_coding == "events"
    first_current = None if events else layer_current(layers[0], weights[0], x)  # once per sample
    comp = net.compensation
    potentials, readouts = [], []
    counts = torch.zeros(B, steps[0], n - 1, dtype=torch.int64)
    spikes_rec: list[list[torch.Tensor]] = [[] for _ in layers[:-1]]
    stage_counts, splits = [], []
    carried = split = None          # the summed current into a stage's first layer, and its split
    for si, (a, b) in enumerate(zip(starts, ends)):
        boundary = b < n
        summed = 0
        m = []
        for t in range(steps[si]):
            for i in range(a, b):
                layer = layers[i]
                if i == 0:
                    current = layer_current(layer, weights[0], x[:, t]) if events else first_current
                elif i == a:
                    current = split_current(carried, split[:, t])
                else:
                    current = layer_current(layer, weights[i], inputs)
                if not layer.neuron.spiking:
                    v[i] = integrate(current, v[i], layer.neuron, spec)
                    continue
                s, v[i] = lif_step(current, v[i], layer.neuron, spec)
                counts[:, t, i] = s.reshape(B, -1).sum(dim=1)
                if record:
                    spikes_rec[i].append(s)
                inputs = sum_pool(s, layer.pool) if layer.kind == "conv" else s
            if boundary:
                m.append(counts[:, t, b - 1].clone())
                summed = summed + layer_current(layers[b], weights[b], inputs)
            else:
                potentials.append(v[-1].clone())
                readouts.append(_readout(net, weights[-1], v, comp) if comp.enabled else potentials[-1])
        if boundary:
            stage_counts.append(torch.stack(m, dim=1))
            split = net.stages.transformers[si].split(stage_counts[-1])
            splits.append(split)
            carried = summed
    pots = torch.stack(potentials, dim=1)
    reads = torch.stack(readouts, dim=1)
    return GoldenResult(
        potentials=pots,
        spike_counts=counts,
        predicted=argmax_first(reads[:, -1]),
        timesteps=torch.full((B,), pots.shape[1], dtype=torch.int64),
        spikes=tuple(torch.stack(r, dim=1) for r in spikes_rec) if record else None,
        readout=reads,
        stage_counts=tuple(stage_counts),
        splits=tuple(splits),
    )


def _readout(net: IntNetwork, w_out: torch.Tensor, v: list[torch.Tensor], comp) -> torch.Tensor:
    """The compensated readout ``sat(v_out + ((W_out · q) >> frac_bits))``."""
    hidden = net.layers[-2]
    q = comp.fraction(v[-2], hidden.neuron.threshold)
    if hidden.kind == "conv":
        q = sum_pool(q, hidden.pool)
    extra = layer_current(net.layers[-1], w_out, q) >> comp.frac_bits
    lo, hi = net.spec.membrane_range
    return (v[-1] + extra).clamp(lo, hi)


def argmax_first(values: torch.Tensor) -> torch.Tensor:
    """Index of the largest value along the last axis; ties go to the lowest index."""
    # torch.argmax documents no tie rule; make it explicit.
    best = values.max(dim=-1, keepdim=True).values
    idx = torch.arange(values.shape[-1]).expand_as(values)
    return torch.where(values == best, idx, values.shape[-1]).min(dim=-1).values
