"""The trainable SNN and its quantization-aware forward pass.

The model keeps float weights. Its forward pass runs in *integer units*: every
layer ``l`` has a scale ``q_l = floor(w_max / max|W_l|)`` (``w_max = 2**(weight_bits-1)-1``,
capped so the threshold fits the membrane) and its threshold in those units is
``q_l`` (``255·q_0`` for the first layer, whose input is the raw pixel 0..255 for a
float input ``pixel/255``). Float weight ``w`` becomes ``w·q_l`` units, so a float
threshold of 1.0 is exactly ``q_l`` units and export to integers is exact: the
integer weights are ``round(w·q_l)`` and nothing else is rescaled.

**Event input** (``input_coding="events"``, :mod:`quickspike.sw.events`): the input is
a binary frame per timestep ``(B, T, C, H, W)``; the first layer's current is
``W_0 · x[t]``, new every timestep, and its threshold is ``q_0`` (the input is 0/1).

``quantized=True`` (training and the integer check) rounds the weights with a
straight-through estimator and applies the hardware's floor-shift leak and membrane
saturation, so the forward pass equals :func:`quickspike.sw.golden.run_golden` up to
float32 rounding. ``quantized=False`` is the float reference (exact ``β = 1 - 2**-k``
leak, unrounded weights, no saturation).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

from quickspike.errors import UsageError
from quickspike.sw.spec import IntSpec

__all__ = ["ModelConfig", "SNNModel", "ARCHS", "spike_fn"]

ARCHS = ("mlp", "conv")


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    input_shape: tuple[int, int, int]
    num_classes: int
    hidden: tuple[int, ...] = (128,)
    channels: tuple[int, ...] = (16, 32)
    leak_shift: int = 2
    spec: IntSpec = IntSpec()
    #: ``direct`` (pixels, the same current every timestep) or ``events`` (a binary frame per timestep).
    input_coding: str = "direct"

    @property
    def input_max(self) -> int:
        """The largest first-layer input: the pixel maximum, or 1 for binary event frames."""
        return 1 if self.input_coding == "events" else self.spec.input_max

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["spec"] = IntSpec.from_dict(d["spec"])
        for k in ("input_shape", "hidden", "channels"):
            d[k] = tuple(d[k])
        return cls(**d)


class _SpikeFn(torch.autograd.Function):
    """Heaviside spike with an arctan surrogate gradient, on ``x = u/θ - 1``."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        alpha = 2.0
        return grad * (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)


spike_fn = _SpikeFn.apply


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class SNNModel(nn.Module):
    """A feed-forward LIF SNN: spiking hidden layers, non-spiking output integrators.

    ``mlp``: dense layers ``hidden`` then the output layer. ``conv``: 3×3 convolutions
    with ``channels``, each followed by a 2×2 sum-pool, then the output layer.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.arch not in ARCHS:
            raise UsageError(f"unknown architecture {cfg.arch!r}; expected one of {', '.join(ARCHS)}")
        self.cfg = cfg
        c, h, w = cfg.input_shape
        self.kinds: list[str] = []
        self.pools: list[int] = []
        self.layers = nn.ModuleList()
        if cfg.arch == "mlp":
            n = c * h * w
            for width in cfg.hidden:
                self._add("dense", nn.Linear(n, width, bias=False), 1)
                n = width
        else:
            for ch in cfg.channels:
                if h < 2 or w < 2:
                    raise UsageError(f"input {cfg.input_shape} is too small for {len(cfg.channels)} pooled convolutions")
                self._add("conv", nn.Conv2d(c, ch, 3, padding=1, bias=False), 2)
                c, h, w = ch, h // 2, w // 2
            n = c * h * w
        self._add("dense", nn.Linear(n, cfg.num_classes, bias=False), 1)
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="linear")
            with torch.no_grad():
                layer.weight.mul_(2.0)

    def _add(self, kind: str, module: nn.Module, pool: int) -> None:
        self.kinds.append(kind)
        self.pools.append(pool)
        self.layers.append(module)

    def scales(self) -> list[int]:
        """The integer scale ``q_l`` of every layer (see module docstring)."""
        spec = self.cfg.spec
        wmax = spec.weight_range[1]
        vmax = spec.membrane_range[1]
        out = []
        for i, layer in enumerate(self.layers):
            m = float(layer.weight.detach().abs().max())
            q = int(wmax / m) if m > 0 else wmax
            cap = vmax // (4 * (self.cfg.input_max if i == 0 else 1))
            out.append(max(1, min(q, cap)))
        return out

    def thresholds(self, scales: list[int] | None = None) -> list[int]:
        """The integer threshold of every layer: ``q_l`` (times the input maximum for the first)."""
        scales = self.scales() if scales is None else scales
        return [q * (self.cfg.input_max if i == 0 else 1) for i, q in enumerate(scales)]

    def unit_weights(self, scales: list[int], quantized: bool) -> list[torch.Tensor]:
        """Every layer's weights in integer units (rounded with a straight-through estimator when ``quantized``)."""
        out = []
        for layer, q in zip(self.layers, scales):
            w = layer.weight * q
            if quantized:
                w = torch.clamp(_round_ste(w), *self.cfg.spec.weight_range)
            out.append(w)
        return out

    def neuron_step(self, i: int, current: torch.Tensor, v: torch.Tensor | None, theta: float,
                    quantized: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        """One timestep of layer ``i`` from membrane ``v`` (``None``: the first timestep, v = 0).

        Returns ``(spikes, v)``; the output layer (non-spiking, no leak) returns ``(None, v)``.
        """
        lo, hi = self.cfg.spec.membrane_range
        last = i == len(self.layers) - 1
        if v is None:
            u = current
        elif last or self.cfg.leak_shift == 0:
            u = v + current  # output integrators, and leak_shift 0 (IF neurons): no leak
        else:
            exact = v * (1.0 - 2.0 ** -self.cfg.leak_shift)
            u = (exact + (v - torch.floor(v / 2 ** self.cfg.leak_shift) - exact).detach()
                 if quantized else exact) + current
        if quantized:
            u = torch.clamp(u, lo, hi)
        if last:
            return None, u
        s = spike_fn(u / theta - 1.0)
        return s, u - s.detach() * theta

    def pooled(self, i: int, s: torch.Tensor) -> torch.Tensor:
        """Layer ``i``'s spikes as the next layer sees them (sum-pooled after a convolution)."""
        return F.avg_pool2d(s, 2) * 4 if self.pools[i] == 2 else s

    def check_input(self, x: torch.Tensor, timesteps: int) -> None:
        """Refuse an input that does not match the model's input coding."""
        if self.cfg.input_coding == "events" and (x.ndim != 5 or x.shape[1] < timesteps):
            raise UsageError(f"an event model takes (B, T, C, H, W) frames with T >= {timesteps}, "
                             f"not {tuple(x.shape)}")

    def forward(self, pixels: torch.Tensor, timesteps: int, quantized: bool = True) -> torch.Tensor:
        """Output potentials after every timestep, divided by the output scale: (B, T, classes).

        ``pixels``: (B, C, H, W) pixel values 0..255, or for an event model binary
        frames (B, T', C, H, W) with ``T' >= timesteps`` (frame ``t`` feeds timestep ``t``).
        """
        self.check_input(pixels, timesteps)
        scales = self.scales()
        thetas = self.thresholds(scales)
        weights = self.unit_weights(scales, quantized)
        x = pixels.to(torch.float32)
        events = self.cfg.input_coding == "events"
        first = None if events else self._apply(0, weights[0], x)
        v = [None] * len(self.layers)
        outputs = []
        for t in range(timesteps):
            current = self._apply(0, weights[0], x[:, t]) if events else first
            for i in range(len(self.layers)):
                if i > 0:
                    current = self._apply(i, weights[i], inp)
                s, v[i] = self.neuron_step(i, current, v[i], thetas[i], quantized)
                if s is not None:
                    inp = self.pooled(i, s)
            outputs.append(v[-1] / scales[-1])
        return torch.stack(outputs, dim=1)

    def _apply(self, i: int, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.kinds[i] == "conv":
            return F.conv2d(x, w, padding=1)
        return F.linear(x.reshape(x.shape[0], -1), w)
