"""IC-SNN (``--algo icsnn``): a QCFS-quantized ReLU ANN, converted to an integer IF SNN.

**The ANN.** The same topologies as :class:`quickspike.sw.model.SNNModel` (``mlp``
784-128-10; ``conv`` 16c3-sumpool2-32c3-sumpool2-dense10), no biases (the hardware has
none), every hidden layer followed by the QCFS activation with a learnable clip
``λ_l`` and ``L`` levels (``--levels``, default :data:`DEFAULT_LEVELS`)::

    a = λ · clamp(floor(z · L / λ + 0.5) / L, 0, 1)        (straight-through floor)

and, after a convolution, the same 2×2 *sum*-pool the hardware applies to spikes. The
input is ``x = pixel / 255``. The weights are fake-quantized during training exactly as
they will be exported (below), so the trained ANN *is* the integer ANN up to float
rounding; ``ann_accuracy`` is measured on the integer one (:func:`ann_logits`).

**Integer units.** Hidden layer ``l`` gets an integer threshold ``θ_l`` and a scale
``c_l`` so that ``W_int = round(W · c_l)`` fits the 8-bit weights:

* first layer (input: the raw pixel, 0..255): ``θ_0 = floor(w_max · 255 · λ_0 / max|W_0|)``,
  ``c_0 = θ_0 / (255 · λ_0)``;
* later hidden layers (input: spikes, one spike standing for ``λ_{l-1}``):
  ``θ_l = floor(w_max · λ_l / (λ_{l-1} · max|W_l|))``, ``c_l = θ_l · λ_{l-1} / λ_l``;
* the output layer: ``c = w_max / max|W|`` (any scale keeps the argmax);

with ``w_max = 2**(weight_bits-1) - 1`` and every ``θ`` capped at ``2**(membrane_bits-7)``
(headroom for the membrane). ``θ_l`` is an exact integer by construction and the
membrane threshold corresponds to ``λ_l`` exactly: ``θ_l / c_l`` is ``λ_l`` in the
units of the layer's input.

**The integer ANN** (what the SNN converts, with the exported weights): with
``J = W_int · k_prev`` (``k_prev``: the previous layer's level counts, sum-pooled;
``J = L · W_int · pixel`` for the first layer), ``k = clamp(floor((2J + θ) / (2θ)), 0, L)``
is the number of levels, ``k / L`` the rate, and the logits are ``W_out · k``.

**The conversion.** Weights carried over, IF neurons (``leak_shift = 0``), reset by
subtraction, threshold ``θ_l``; ``v_init`` per layer (:mod:`quickspike.sw.icsnn_init`)
and optionally the coding compensation (:class:`~quickspike.sw.spec.CompensationSpec`,
:func:`compensation_for`, ``F = 8`` fraction bits), which needs the last hidden layer
to start at 0 (a preloaded silent neuron would read as a fraction of a spike; see
:mod:`quickspike.sw.icsnn_init`). A run directory holds ``model.pt`` and ``train.json``
like an SNN run, with ``options.algo == "icsnn"``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quickspike.errors import UsageError
from quickspike.sw.golden import encode_pixels, layer_current, sum_pool
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import CompensationSpec, IntSpec, LayerSpec, NeuronSpec
from quickspike.sw.train import fit, load_run_model, run_algo, save_run

__all__ = [
    "DEFAULT_LEVELS", "ANNConfig", "QCFSNet", "qcfs", "ICSNNOptions", "train_icsnn", "load_icsnn_run",
    "is_icsnn_run", "export_icsnn", "compensation_for", "ann_levels", "ann_logits", "ann_accuracy",
    "quantize_icsnn_run",
]

#: Quantization levels of the QCFS activation, picked by measurement on mnist5k (conv,
#: 30 epochs, bundle T = 4, fitted init + compensation, seeds 0 and 1): L = 8 kept the
#: converted SNN within -0.1..+0.5 points of its ANN at T = 4 and 8 (97.7/98.0 % and
#: 98.0/98.1 %), L = 4 within -0.4..+0.4 (97.4/98.0 %, 97.5/97.9 %); L = 4 is better at
#: T = 1 (87.9 % vs 85.6 % on average) and T = 2 (97.5 % vs 97.1 %): ``--levels 4`` for those.
DEFAULT_LEVELS = 8

ARCHS = ("mlp", "conv")


@dataclass(frozen=True)
class ANNConfig:
    arch: str
    input_shape: tuple[int, int, int]
    num_classes: int
    levels: int = DEFAULT_LEVELS
    hidden: tuple[int, ...] = (128,)
    channels: tuple[int, ...] = (16, 32)
    spec: IntSpec = IntSpec()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ANNConfig":
        d = dict(d)
        d["spec"] = IntSpec.from_dict(d["spec"])
        for k in ("input_shape", "hidden", "channels"):
            d[k] = tuple(d[k])
        return cls(**d)


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def qcfs(x: torch.Tensor, lam: torch.Tensor, levels: int) -> torch.Tensor:
    """``λ · clamp(floor(x·L/λ + 0.5)/L, 0, 1)`` with a straight-through floor (QCFS)."""
    z = torch.clamp(x / lam, 0, 1)
    return _FloorSTE.apply(z * levels + 0.5) / levels * lam


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class QCFSNet(nn.Module):
    """The ANN of IC-SNN: bias-free layers, QCFS activations with learnable ``λ``, sum-pooling."""

    def __init__(self, cfg: ANNConfig):
        super().__init__()
        if cfg.arch not in ARCHS:
            raise UsageError(f"unknown architecture {cfg.arch!r}; expected one of {', '.join(ARCHS)}")
        if isinstance(cfg.levels, bool) or not isinstance(cfg.levels, int) or not 1 <= cfg.levels <= 64:
            raise UsageError(f"--levels must be an integer in 1..64, not {cfg.levels!r}")
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
                    raise UsageError(f"input {cfg.input_shape} is too small for "
                                     f"{len(cfg.channels)} pooled convolutions")
                self._add("conv", nn.Conv2d(c, ch, 3, padding=1, bias=False), 2)
                c, h, w = ch, h // 2, w // 2
            n = c * h * w
        self._add("dense", nn.Linear(n, cfg.num_classes, bias=False), 1)
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        self.lambdas = nn.Parameter(torch.ones(len(self.layers) - 1))

    def _add(self, kind: str, module: nn.Module, pool: int) -> None:
        self.kinds.append(kind)
        self.pools.append(pool)
        self.layers.append(module)

    def integer_params(self) -> tuple[list[int], list[float]]:
        """``(θ, c)``: the integer threshold of every hidden layer and the weight scale of every layer."""
        spec = self.cfg.spec
        wmax = spec.weight_range[1]
        cap = 1 << (spec.membrane_bits - 7)
        lams = [float(v) for v in self.lambdas.detach().abs().clamp(min=1e-6)]
        thetas, scales = [], []
        for i, layer in enumerate(self.layers):
            m = max(float(layer.weight.detach().abs().max()), 1e-12)
            if i == len(self.layers) - 1:
                scales.append(wmax / m)
                break
            unit = spec.input_max if i == 0 else 1.0 / lams[i - 1]  # input units per float unit
            theta = int(min(max(1, math.floor(wmax * unit * lams[i] / m)), cap))
            thetas.append(theta)
            scales.append(theta / (unit * lams[i]))
        return thetas, scales

    def forward(self, pixels: torch.Tensor, quantized: bool = True) -> torch.Tensor:
        """Logits (float units) for uint8-valued pixels (B, C, H, W).

        ``quantized``: fake-quantize the weights as the export does (training and eval).
        """
        spec = self.cfg.spec
        _, scales = self.integer_params()
        a = pixels.to(torch.float32) / spec.input_max
        lams = self.lambdas.abs().clamp(min=1e-6)
        for i, (layer, c) in enumerate(zip(self.layers, scales)):
            w = layer.weight
            if quantized:
                w = torch.clamp(_round_ste(w * c), *spec.weight_range) / c
            z = F.conv2d(a, w, padding=1) if self.kinds[i] == "conv" else F.linear(a.reshape(a.shape[0], -1), w)
            if i == len(self.layers) - 1:
                return z
            a = qcfs(z, lams[i], self.cfg.levels)
            if self.pools[i] > 1:
                a = F.avg_pool2d(a, self.pools[i]) * (self.pools[i] ** 2)
        raise AssertionError("unreachable")

    @torch.no_grad()
    def init_lambdas(self, pixels: torch.Tensor, quantile: float = 0.99) -> None:
        """Set each ``λ_l`` to a high quantile of its positive pre-activations on a batch."""
        a = pixels.to(torch.float32) / self.cfg.spec.input_max
        for i, layer in enumerate(self.layers[:-1]):
            z = layer(a) if self.kinds[i] == "conv" else layer(a.reshape(a.shape[0], -1))
            pos = z[z > 0]
            lam = float(torch.quantile(pos[:100000], quantile)) if pos.numel() else 1.0
            self.lambdas[i] = max(lam, 1e-3)
            a = qcfs(z, self.lambdas[i], self.cfg.levels)
            if self.pools[i] > 1:
                a = F.avg_pool2d(a, self.pools[i]) * (self.pools[i] ** 2)


# ---------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class ICSNNOptions:
    dataset: str = "mnist5k"
    arch: str = "mlp"
    #: The converted SNN's default timesteps (the bundle's T).
    timesteps: int = 4
    levels: int = DEFAULT_LEVELS
    epochs: int = 30
    seed: int = 0
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    augment_shift: int = 1
    algo: str = "icsnn"

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise UsageError(f"unknown architecture {self.arch!r}; expected one of {', '.join(ARCHS)}")
        for name in ("timesteps", "epochs", "batch_size", "levels"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.levels > 64:
            raise UsageError(f"--levels must be at most 64, not {self.levels}")
        if not 0 < self.lr < math.inf:
            raise UsageError(f"--lr must be positive, not {self.lr}")
        if not 0 <= self.weight_decay < math.inf:
            raise UsageError(f"--weight-decay must be 0 or more, not {self.weight_decay}")


def _evaluate(model: QCFSNet, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(torch.from_numpy(np.array(x[i:i + batch_size])))
            correct += int((logits.argmax(1) == torch.from_numpy(np.array(y[i:i + batch_size]))).sum())
    return correct / max(1, len(x))


def train_icsnn(opts: ICSNNOptions, out: Path, data=None, progress: bool = True) -> dict:
    """Train the QCFS ANN as ``opts`` says and save the run in ``out``; return the summary."""
    from quickspike.sw.data import load_dataset

    opts.validate()
    data = data or load_dataset(opts.dataset)
    torch.manual_seed(opts.seed)
    gen = torch.Generator().manual_seed(opts.seed)
    cfg = ANNConfig(arch=opts.arch, input_shape=tuple(data.shape), num_classes=data.num_classes, levels=opts.levels)
    model = QCFSNet(cfg)
    x_train = torch.from_numpy(np.array(data.x_train))
    y_train = torch.from_numpy(np.array(data.y_train))
    model.init_lambdas(x_train[torch.randperm(len(x_train), generator=gen)[:512]])
    params = [{"params": [l.weight for l in model.layers], "weight_decay": opts.weight_decay},
              {"params": [model.lambdas], "weight_decay": 0.0}]
    optim = torch.optim.AdamW(params, lr=opts.lr)
    t0 = time.time()

    def step_loss(xb, yb):
        logits = model(xb)
        return F.cross_entropy(logits, yb), logits

    history = fit(model, data.x_train, data.y_train, opts, gen, step_loss,
                  lambda: _evaluate(model, data.x_test, data.y_test), progress, optim=optim,
                  test_key="test_accuracy",
                  epoch_extra=lambda: {"lambdas": [round(float(v), 5) for v in model.lambdas.detach()]})
    thetas, _ = model.integer_params()
    summary = {
        "options": asdict(opts),
        "model": cfg.to_dict(),
        "history": history,
        "ann_accuracy": history[-1]["test_accuracy"] if history else None,
        "float_accuracy": _evaluate_unquantized(model, data.x_test, data.y_test),
        "lambdas": [float(v) for v in model.lambdas.detach()],
        "thresholds": thetas,
        "train_seconds": round(time.time() - t0, 1),
    }
    save_run(out, model, cfg, asdict(opts), summary)
    return summary


def _evaluate_unquantized(model: QCFSNet, x: np.ndarray, y: np.ndarray) -> float:
    """Test accuracy with float weights (QCFS activations kept)."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(np.array(x[i:i + 500])), quantized=False)
                            for i in range(0, len(x), 500)])
    return float((logits.argmax(1).numpy() == np.asarray(y)).mean()) if len(x) else 0.0


def is_icsnn_run(run: Path | str) -> bool:
    """Whether ``run`` is a training run of ``--algo icsnn`` (False for anything unreadable)."""
    return run_algo(run) == "icsnn"


def load_icsnn_run(run: Path | str) -> tuple[QCFSNet, dict]:
    """Load an ``icsnn`` training run directory: the ANN and its ``train.json`` summary."""
    return load_run_model(run, lambda blob: QCFSNet(ANNConfig.from_dict(blob["config"])))


# ---------------------------------------------------------------------------------------
# Conversion and the integer ANN


def export_icsnn(model: QCFSNet, timesteps: int, meta: dict | None = None,
                 v_init_fractions: list[float] | None = None,
                 compensation: CompensationSpec | None = None) -> IntNetwork:
    """The converted integer IF network; ``v_init = round(f_l · θ_l)`` per hidden layer."""
    cfg = model.cfg
    spec = cfg.spec
    thetas, scales = model.integer_params()
    n = len(model.layers)
    fracs = list(v_init_fractions) if v_init_fractions is not None else [0.0] * (n - 1)
    if len(fracs) != n - 1:
        raise UsageError(f"{len(fracs)} initial potentials for {n - 1} hidden layers")
    layers, weights = [], []
    shape: tuple[int, ...] = tuple(cfg.input_shape)
    for i, (module, kind, pool, c) in enumerate(zip(model.layers, model.kinds, model.pools, scales)):
        last = i == n - 1
        w = torch.clamp(torch.round(module.weight.detach().double() * c), *spec.weight_range)
        weights.append(w.numpy().astype(np.int64))
        if last:
            neuron = NeuronSpec(threshold=1, v_init=0, leak_shift=0, reset="subtract", spiking=False)
        else:
            neuron = NeuronSpec(threshold=thetas[i], v_init=int(round(fracs[i] * thetas[i])), leak_shift=0,
                                reset="subtract", spiking=True)
        if kind == "conv":
            layer = LayerSpec("conv", shape, (module.out_channels, shape[1], shape[2]), neuron, pool=pool)
        else:
            layer = LayerSpec("dense", shape, (module.out_features,), neuron)
        layers.append(layer)
        shape = layer.pooled_shape
    meta = dict(meta or {})
    meta.setdefault("levels", cfg.levels)
    return IntNetwork(spec, tuple(layers), tuple(weights), timesteps=timesteps, meta=meta,
                      compensation=compensation or CompensationSpec()).validate()


def compensation_for(net: IntNetwork, frac_bits: int = 8) -> CompensationSpec:
    """Coding compensation for ``net``'s last hidden layer: ``mul = round(2**(F+shift) / θ)``.

    ``shift = bit_length(θ) + 4`` (at most 24) keeps the error of the rounded ``mul``
    under 1/32 of a fraction step while ``mul`` stays about ``F + 5`` bits wide.
    """
    theta = net.layers[-2].neuron.threshold
    shift = min(24, theta.bit_length() + 4)
    mul = round((1 << (frac_bits + shift)) / theta)
    return CompensationSpec(enabled=True, frac_bits=frac_bits, mul=min(mul, (1 << 24) - 1), shift=shift)


def _levels(net: IntNetwork, levels: int | None) -> int:
    L = net.meta.get("levels") if levels is None else levels
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise UsageError("the bundle does not record the ANN's quantization levels (meta 'levels')")
    return L


def ann_levels(net: IntNetwork, pixels, levels: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The integer ANN of ``net``: level counts ``k`` (0..L, int64, before pooling) of every
    hidden layer, and the output logits ``W_out · k`` (int64), for uint8 ``pixels``."""
    L = _levels(net, levels)
    x = encode_pixels(pixels, net.spec)
    x = x.reshape(x.shape[0], *net.input_shape)
    ks = []
    inp = x
    for i, (layer, w) in enumerate(zip(net.layers, net.weights)):
        j = layer_current(layer, torch.as_tensor(w, dtype=torch.float64), inp)
        if i == 0:
            j = j * L
        if not layer.neuron.spiking:
            return ks, j
        theta = layer.neuron.threshold
        k = torch.div(2 * j + theta, 2 * theta, rounding_mode="floor").clamp_(0, L)
        ks.append(k)
        inp = sum_pool(k, layer.pool) if layer.kind == "conv" else k
    raise AssertionError("unreachable")


def ann_logits(net: IntNetwork, pixels, levels: int | None = None, batch_size: int = 1000) -> torch.Tensor:
    """Output logits of the integer ANN (see the module docstring)."""
    return torch.cat([ann_levels(net, pixels[i:i + batch_size], levels)[1]
                      for i in range(0, len(pixels), batch_size)])


def ann_accuracy(net: IntNetwork, pixels, labels, levels: int | None = None) -> float:
    """Accuracy of the integer ANN on ``pixels`` (ties go to the lowest index)."""
    from quickspike.sw.golden import argmax_first

    if not len(labels):
        return 0.0
    pred = argmax_first(ann_logits(net, pixels, levels))
    return float((pred.numpy() == np.asarray(labels)).mean())


# ---------------------------------------------------------------------------------------
# quickspike quantize for icsnn runs


def quantize_icsnn_run(run: Path | str, out: Path | str, init: str | None = None, compensation: bool = True,
                       frac_bits: int = 8, fit_samples: int = 256, data=None) -> tuple[IntNetwork, Path]:
    """Convert ``icsnn`` training run ``run`` and save the bundle ``out``.

    ``init``: :data:`quickspike.sw.icsnn_init.INIT_MODES` (default ``fitted``), fitted
    on the first ``fit_samples`` training images (the split is already shuffled); the
    fractions are fitted both without and with the compensation and both go into
    ``meta["v_init"]`` (the ablation uses them), the bundle gets the one that matches
    ``compensation``. ``meta`` also holds ``ann_accuracy`` (the integer ANN on the test
    split) and ``int_accuracy`` (the converted SNN at the bundle's ``T``).
    """
    from dataclasses import replace

    from quickspike.sw.bundle import save_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.golden import run_golden
    from quickspike.sw.icsnn_init import DEFAULT_INIT, INIT_MODES, fit_timesteps, fit_v_init, init_fractions

    init = DEFAULT_INIT if init is None else init
    if init not in INIT_MODES:
        raise UsageError(f"unknown --init {init!r}; expected one of {', '.join(INIT_MODES)}")
    if isinstance(fit_samples, bool) or not isinstance(fit_samples, int) or fit_samples < 1:
        raise UsageError(f"--fit-samples must be a positive integer, not {fit_samples!r}")
    model, summary = load_icsnn_run(Path(run))
    opts = summary["options"]
    data = data or load_dataset(opts["dataset"])
    meta = {
        "algo": "icsnn", "arch": opts["arch"], "dataset": opts["dataset"], "seed": opts["seed"],
        "levels": model.cfg.levels, "lambdas": [float(v) for v in model.lambdas.detach()],
        "ann_float_accuracy": summary.get("ann_accuracy"),
    }
    base = export_icsnn(model, opts["timesteps"], meta)
    comp = compensation_for(base, frac_bits)
    xs = data.x_train[:fit_samples]
    v_init: dict = {"mode": init}
    if init == "fitted":
        plain = fit_v_init(base, xs)
        # the layers before the last hidden one do not see the compensation: keep their fit
        with_comp = fit_v_init(replace(base, compensation=comp), xs, fixed=plain["fractions"][:-1])
        v_init.update(without_compensation=plain["fractions"], with_compensation=with_comp["fractions"],
                      fit={"samples": len(xs), "timesteps": plain["timesteps"], "objective": plain["objective"],
                           "grid": len(plain["grid"]) - 1})
    else:
        v_init.update(without_compensation=init_fractions(base, init),
                      with_compensation=init_fractions(replace(base, compensation=comp), init))
    base.meta["v_init"] = v_init
    base.meta["compensation"] = bool(compensation)
    fractions = v_init["with_compensation" if compensation else "without_compensation"]
    thetas = [layer.neuron.threshold for layer in base.layers[:-1]]
    layers = tuple(replace(layer, neuron=replace(layer.neuron, v_init=int(round(f * th))))
                   for layer, f, th in zip(base.layers, fractions, thetas)) + base.layers[-1:]
    net = replace(base, layers=layers, compensation=comp if compensation else CompensationSpec()).validate()
    net.meta["ann_accuracy"] = ann_accuracy(net, data.x_test, data.y_test)
    r = run_golden(net, data.x_test, net.timesteps)
    net.meta["int_accuracy"] = float((r.predicted.numpy() == np.asarray(data.y_test)).mean())
    return net, save_bundle(net, out)
