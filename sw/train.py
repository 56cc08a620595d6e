"""Training of LIF SNNs with surrogate gradients (``--algo snn`` and ``--algo atsnn``).

Direct input encoding (the pixels feed the first layer every timestep) or, on an
event data set, one binary event frame per timestep (:mod:`quickspike.sw.events`), spiking
hidden layers, non-spiking output integrators, quantization-aware from the first
step (see :mod:`quickspike.sw.model`). Loss: ``snn`` (fixed T): cross-entropy of the
time-averaged output potential after ``T`` timesteps; ``atsnn`` (adaptive timestep):
the time-dependent loss of :mod:`quickspike.sw.atsnn`, a weighted sum over every
timestep ``t <= T`` of the cross-entropy of the output averaged up to ``t``
(weights ``--td-weights``). Seeded and reproducible on the CPU.

A run directory holds ``model.pt`` (config + weights), ``train.json`` (the options,
the per-epoch history and the float and quantized test accuracies).
"""

from __future__ import annotations

import io
import json
import math
import warnings
import time
from dataclasses import dataclass, asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from quickspike.errors import UsageError
from quickspike.sw.atsnn import DEFAULT_TD_WEIGHTS, TD_WEIGHTS, time_dependent_loss, timestep_weights
from quickspike.sw.data import Dataset, load_dataset
from quickspike.sw.files import atomic_write_bytes, atomic_write_text
from quickspike.sw.model import ModelConfig, SNNModel

__all__ = ["ALGOS", "TrainOptions", "train", "load_run", "load_run_model", "run_algo", "save_run", "evaluate_float", "accuracy_by_timestep", "fit",
           "model_inputs", "shift_batch"]

#: ``snn``: fixed-T loss; ``atsnn``: time-dependent loss for an adaptive (early-exit) timestep.
ALGOS = ("snn", "atsnn")


@dataclass(frozen=True)
class TrainOptions:
    dataset: str = "mnist5k"
    algo: str = "snn"
    arch: str = "mlp"
    timesteps: int = 4
    epochs: int = 20
    seed: int = 0
    batch_size: int = 64
    lr: float = 2e-3
    leak_shift: int = 2
    #: Random shifts of up to this many pixels (training images only).
    augment_shift: int = 1
    #: atsnn only: the weights of the timesteps in the loss (:data:`quickspike.sw.atsnn.TD_WEIGHTS`).
    td_weights: str = DEFAULT_TD_WEIGHTS
    #: mlp only: the widths of the hidden layers.
    hidden: tuple[int, ...] = (128,)

    def validate(self) -> None:
        if self.algo not in ALGOS:
            raise UsageError(f"unknown --algo {self.algo!r}; expected one of {', '.join(ALGOS)}")
        if self.td_weights not in TD_WEIGHTS:
            raise UsageError(f"unknown --td-weights {self.td_weights!r}; expected one of {', '.join(TD_WEIGHTS)}")
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise UsageError(f"--hidden must be positive layer widths, not {list(self.hidden)}")
        for name in ("timesteps", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise UsageError(f"--lr must be positive, not {self.lr}")


def _shift_batch(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero fill)."""
    if max_shift == 0:
        return x
    b, _, h, w = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * p + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (b, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (b, w)
    idx_b = torch.arange(b)[:, None, None]
    return padded[idx_b, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def shift_batch(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """:func:`_shift_batch` for images (B, C, H, W) or event frames (B, T, C, H, W) (one shift per sample)."""
    if x.ndim == 5:
        b, t, c, h, w = x.shape
        return _shift_batch(x.reshape(b, t * c, h, w), max_shift, gen).reshape(b, t, c, h, w)
    return _shift_batch(x, max_shift, gen)


def model_inputs(data: Dataset, coding: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The train and test inputs of a model: the images (``direct``), or the events binned
    into ``steps`` binary frames (``events``, :mod:`quickspike.sw.events`)."""
    if coding == "direct":
        return data.x_train, data.x_test
    if not data.is_events:
        raise UsageError(f"an event model needs an event data set; {data.name} has images only")
    return data.frames("train", steps), data.frames("test", steps)


def fit(model: torch.nn.Module, x_train: np.ndarray, y_train: np.ndarray, opts, gen: torch.Generator,
        step_loss, evaluate, progress: bool = True, lr_scales: dict | None = None, *,
        optim: torch.optim.Optimizer | None = None, test_key: str = "test_accuracy_qat",
        epoch_extra=None) -> list[dict]:
    """The training loop shared by the algorithms: Adam with a one-cycle schedule, shuffled
    batches, random shifts, a test evaluation after every epoch.

    ``opts`` has ``epochs``, ``batch_size``, ``lr`` and ``augment_shift``;
    ``step_loss(xb, yb) -> (loss, logits)`` (``logits`` for the running train accuracy);
    ``evaluate() -> test accuracy``; ``lr_scales``: ``{parameter name prefix: factor}`` for
    parameters that learn at ``factor · lr``; ``optim``: an optimizer of the caller's
    instead (the schedule peaks at its groups' ``lr``). Each history entry holds the
    test accuracy under ``test_key`` and ``epoch_extra()``'s items. Returns the history.
    """
    if optim is not None:
        max_lr = [g["lr"] for g in optim.param_groups]
    elif lr_scales:
        groups: dict[float, list] = {}
        for name, param in model.named_parameters():
            factor = next((f for prefix, f in lr_scales.items() if name.startswith(prefix)), 1.0)
            groups.setdefault(factor, []).append(param)
        optim = torch.optim.Adam([{"params": ps, "lr": opts.lr * f} for f, ps in groups.items()], lr=opts.lr)
        max_lr = [opts.lr * f for f in groups]
    else:
        optim = torch.optim.Adam(model.parameters(), lr=opts.lr)
        max_lr = opts.lr
    steps = opts.epochs * ((len(x_train) + opts.batch_size - 1) // opts.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=max_lr, total_steps=steps, pct_start=0.15)
    x_train = torch.from_numpy(np.array(x_train))
    y_train = torch.from_numpy(np.array(y_train))
    history = []
    for epoch in range(opts.epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        bar = tqdm(range(0, len(perm), opts.batch_size), desc=f"epoch {epoch + 1}/{opts.epochs}",
                   disable=not progress, leave=False, unit="batch")
        for i in bar:
            idx = perm[i:i + opts.batch_size]
            xb = shift_batch(x_train[idx].float(), opts.augment_shift, gen)
            yb = y_train[idx]
            loss, logits = step_loss(xb, yb)
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
            total += len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            loss_sum += float(loss.detach()) * len(idx)
            bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
        test_acc = evaluate()
        history.append({"epoch": epoch + 1, "loss": loss_sum / total, "train_accuracy": correct / total,
                        test_key: test_acc, **(epoch_extra() if epoch_extra else {})})
        if progress:
            tqdm.write(f"epoch {epoch + 1}/{opts.epochs}: loss {loss_sum / total:.4f} "
                       f"train {correct / total:.4f} test {test_acc:.4f}")
    return history


def evaluate_float(model: SNNModel, x: np.ndarray, y: np.ndarray, timesteps: int,
                   quantized: bool, batch_size: int = 500) -> float:
    """Test accuracy of the trainable model (float or quantization-aware forward)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            pots = model(torch.from_numpy(np.array(x[i:i + batch_size])), timesteps, quantized=quantized)
            correct += int((pots[:, -1].argmax(dim=1) == torch.from_numpy(np.array(y[i:i + batch_size]))).sum())
    return correct / max(1, len(x))


def accuracy_by_timestep(model: SNNModel, x: np.ndarray, y: np.ndarray, timesteps: int,
                         batch_size: int = 500) -> list[float]:
    """Quantization-aware test accuracy after each timestep ``1..timesteps`` (no early exit)."""
    model.eval()
    correct = torch.zeros(timesteps, dtype=torch.int64)
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            pots = model(torch.from_numpy(np.array(x[i:i + batch_size])), timesteps, quantized=True)
            labels = torch.from_numpy(np.array(y[i:i + batch_size]))
            correct += (pots.argmax(dim=2) == labels[:, None]).sum(dim=0)
    return [round(int(c) / max(1, len(x)), 6) for c in correct]


def train(opts: TrainOptions, out: Path, data: Dataset | None = None, progress: bool = True) -> dict:
    """Train a model as ``opts`` says and save the run in ``out``; return the summary."""
    opts.validate()
    data = data or load_dataset(opts.dataset)
    torch.manual_seed(opts.seed)
    gen = torch.Generator().manual_seed(opts.seed)
    cfg = ModelConfig(arch=opts.arch, input_shape=tuple(data.shape), num_classes=data.num_classes,
                      leak_shift=opts.leak_shift, hidden=tuple(opts.hidden),
                      input_coding="events" if data.is_events else "direct")
    model = SNNModel(cfg)
    x_train, x_test = model_inputs(data, cfg.input_coding, opts.timesteps)
    td = timestep_weights(opts.td_weights, opts.timesteps).float() if opts.algo == "atsnn" else None

    def step_loss(xb, yb):
        pots = model(xb, opts.timesteps, quantized=True)
        if td is None:
            return F.cross_entropy(pots[:, -1] / opts.timesteps, yb), pots[:, -1]
        return time_dependent_loss(pots, yb, td), pots[:, -1]

    t0 = time.time()
    history = fit(model, x_train, data.y_train, opts, gen, step_loss,
                  lambda: evaluate_float(model, x_test, data.y_test, opts.timesteps, quantized=True), progress)
    summary = {
        "options": asdict(opts),
        "model": cfg.to_dict(),
        "history": history,
        "float_accuracy": evaluate_float(model, x_test, data.y_test, opts.timesteps, quantized=False),
        "qat_accuracy": history[-1]["test_accuracy_qat"] if history else None,
        "qat_accuracy_by_timestep": accuracy_by_timestep(model, x_test, data.y_test, opts.timesteps),
        "train_seconds": round(time.time() - t0, 1),
    }
    save_run(out, model, cfg, asdict(opts), summary)
    return summary


def save_run(out: Path, model: torch.nn.Module, cfg, options: dict, summary: dict, **extra) -> None:
    """Write a training run directory: ``model.pt`` (config, state, options, ``extra``) and
    ``train.json`` (``summary``), each atomically; :func:`load_run_model` reads it back."""
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"config": cfg.to_dict(), "state": model.state_dict(), "options": options, **extra}, buf)
    atomic_write_bytes(out / "model.pt", buf.getvalue())
    atomic_write_text(out / "train.json", json.dumps(summary, indent=2))


def run_algo(run: Path | str) -> str | None:
    """The ``--algo`` a training run directory was made with (None when unreadable)."""
    try:
        return json.loads((Path(run) / "train.json").read_text())["options"]["algo"]
    except Exception:  # not a run, or a damaged one: callers fall back to plain SNN handling
        return None


def load_run_model(run: Path | str, build) -> tuple[torch.nn.Module, dict]:
    """Load a training run directory with ``build(blob)`` making its model.

    ``blob`` is the ``model.pt`` dictionary (``config``, ``state``, ...); returns the
    model with its state loaded and the ``train.json`` summary. Any damage is a
    one-line :class:`UsageError`.
    """
    run = Path(run)
    if not (run / "model.pt").is_file():
        raise UsageError(f"{run} is not a training run: {run / 'model.pt'} is missing")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blob = torch.load(run / "model.pt", weights_only=True)
        summary = json.loads((run / "train.json").read_text())
        model = build(blob)
        model.load_state_dict(blob["state"])
    except UsageError:
        raise
    except Exception as e:  # a damaged run directory, whatever the cause
        raise UsageError(f"cannot read training run {run}: {type(e).__name__}") from None
    return model, summary


def load_run(run: Path) -> tuple[SNNModel, dict]:
    """Load a training run directory: the model and its ``train.json`` summary."""
    return load_run_model(run, lambda blob: SNNModel(ModelConfig.from_dict(blob["config"])))
