"""Calibration of the early-exit rule (``quickspike calibrate``).

The exit rules are defined in :mod:`quickspike.sw.spec` (``margin``: top-1 minus
top-2 output potential ``>= threshold``; ``softmax``: the fixed-point table sum
``S <= threshold`` after a right ``shift`` of the differences, i.e. the maximum
softmax probability is at least ``4096 / threshold``). Their threshold and shift are
run-time registers of the accelerator, so calibrating needs no new hardware.

We pick them on the **training split** (the test split stays an honest estimate):
the setting with the fewest average timesteps whose accuracy is at least the
no-exit accuracy (same bundle, fixed ``T``, same split) minus ``drop`` points. Ties
go to the higher accuracy, then to the more cautious setting (a larger margin, a
smaller table sum, a smaller shift).

The training split flatters the exit: the network has seen those images and is
more confident on them (mnist5k MLP: ~98 % train against ~96 % test), so a drop
measured there understates the drop on new images. Measured on mnist5k (MLP, T = 4,
12 bundles: snn and three atsnn weightings, 3 seeds each), a train-split target of
0.3 points lost 0.3-0.9 points on the test split, 0.1 lost up to 0.6, and 0.0 lost
at most 0.2 (at 1.03-1.42 average timesteps). Hence the default ``drop = 0``: the
fastest setting that loses nothing on the training split.

The search is exact, not a grid. Timestep ``t`` never depends on later ones, so the
golden model is run once for all ``T`` steps (the rule watches the output
potentials, the class is the argmax of the readout, as in the golden model). With ``M[b, t]`` the running maximum
over ``s <= t`` of the sample's confidence score (the margin, or ``-S``), sample
``b`` stops at the first ``t`` with ``M[b, t] >= θ``, so it runs past ``t`` exactly
when ``M[b, t] < θ``. Hence, over all ``(b, t < T)``,

    total timesteps(θ) = B + #{M[b, t] < θ}
    correct(θ)         = Σ_b c[b, 1] + Σ_{M[b, t] < θ} (c[b, t+1] - c[b, t])

(``c[b, t]``: the argmax at ``t`` is right), and one sort of ``M`` gives both for
every distinct threshold at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from quickspike.errors import UsageError
from quickspike.sw.data import Dataset
from quickspike.sw.evaluate import check_compatible
from quickspike.sw.golden import GoldenResult, apply_exit, argmax_first, run_golden
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import EXP_TABLE, EXP_TABLE_SIZE, ExitSpec

__all__ = ["CALIBRATE_RULES", "Candidates", "Calibration", "margin_scores", "softmax_sums",
           "sweep", "calibrate_potentials", "calibrate_bundle"]

CALIBRATE_RULES = ("margin", "softmax")


def margin_scores(potentials: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 potential, (..., n) -> (...)."""
    top2 = potentials.topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def softmax_sums(potentials: torch.Tensor, shift: int) -> torch.Tensor:
    """The softmax rule's table sum ``S`` (exactly as :func:`quickspike.sw.golden.exit_holds`)."""
    top = potentials.max(dim=-1, keepdim=True).values
    d = ((top - potentials) >> shift).clamp_(max=EXP_TABLE_SIZE - 1)
    return torch.as_tensor(EXP_TABLE, dtype=torch.int64)[d].sum(dim=-1)


@dataclass(frozen=True)
class Candidates:
    """Every distinct setting of one rule (and shift) with its outcome on a split."""

    rule: str
    thresholds: np.ndarray  # (K,) int
    shifts: np.ndarray  # (K,) int
    total_timesteps: np.ndarray  # (K,) int
    correct: np.ndarray  # (K,) int

    def __len__(self) -> int:
        return len(self.thresholds)

    def spec(self, k: int) -> ExitSpec:
        return ExitSpec(self.rule, int(self.thresholds[k]), int(self.shifts[k]))

    def best(self, need: int) -> int | None:
        """Fewest timesteps with ``correct >= need``; then most correct; then most cautious."""
        ok = np.flatnonzero(self.correct >= need)
        if len(ok) == 0:
            return None
        # more cautious: a larger margin; a smaller table sum, then a smaller shift
        caution = -self.thresholds[ok] if self.rule == "margin" else self.thresholds[ok]
        order = np.lexsort((self.shifts[ok], caution, -self.correct[ok], self.total_timesteps[ok]))
        return int(ok[order[0]])


def sweep(scores: torch.Tensor, correct: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All distinct thresholds ``θ`` of the rule "exit when score >= θ".

    ``scores``: (B, T) int64 confidence after every timestep; ``correct``: (B, T)
    bool. Returns ``(thresholds, total_timesteps, correct)``, one entry per distinct
    running-maximum value (the most cautious ``θ`` of each equivalence class) plus
    one ``θ`` above them all (no early exit).
    """
    B, T = scores.shape
    c = correct.to(torch.int64)
    base_correct = int(c[:, 0].sum()) if B else 0
    if T == 1 or B == 0:
        top = int(scores.max()) + 1 if scores.numel() else 0
        return np.array([top]), np.array([B * T]), np.array([int(c[:, -1].sum()) if B else 0])
    running = scores[:, :-1].cummax(dim=1).values.reshape(-1)  # M[b, t] for t < T
    delta = (c[:, 1:] - c[:, :-1]).reshape(-1)
    order = torch.argsort(running, stable=True)
    m_sorted = running[order]
    cum = torch.cat([torch.zeros(1, dtype=torch.int64), delta[order].cumsum(0)])
    values = torch.unique(m_sorted)
    thresholds = torch.cat([values, values[-1:] + 1])
    below = torch.searchsorted(m_sorted, thresholds, right=False)  # #{M < θ}
    return thresholds.numpy(), (B + below).numpy(), (base_correct + cum[below]).numpy()


def _candidates(potentials: torch.Tensor, readout: torch.Tensor, labels: torch.Tensor, rule: str,
                membrane_bits: int, n_out: int) -> Candidates:
    # the rule watches the potentials; the class is the argmax of the readout (see GoldenResult)
    correct = argmax_first(readout) == labels[:, None]  # (B, T)
    if rule == "margin":
        th, steps, corr = sweep(margin_scores(potentials), correct)
        keep = th <= (1 << membrane_bits) - 1
        return Candidates(rule, th[keep], np.zeros(int(keep.sum()), dtype=np.int64), steps[keep], corr[keep])
    # softmax: exit when S <= θ_S, i.e. -S >= -θ_S; every shift up to the one that zeroes all differences
    spread = int((potentials.max(dim=-1).values - potentials.min(dim=-1).values).max()) if potentials.numel() else 0
    parts = []
    for shift in range(0, min(membrane_bits, spread.bit_length()) + 1):
        th, steps, corr = sweep(-softmax_sums(potentials, shift), correct)
        s_th = -th
        keep = (s_th >= 0) & (s_th <= n_out * EXP_TABLE[0])
        parts.append((s_th[keep], np.full(int(keep.sum()), shift, dtype=np.int64), steps[keep], corr[keep]))
    return Candidates(rule, *(np.concatenate(col) for col in zip(*parts)))


@dataclass(frozen=True)
class Calibration:
    rule: ExitSpec
    timesteps: int
    samples: int
    #: split used to choose the rule and its figures
    split: str
    target_drop_points: float
    no_exit_accuracy: float
    accuracy: float
    avg_timesteps: float
    candidates: int

    def to_dict(self) -> dict:
        return {
            "exit": self.rule.to_dict(), "timesteps": self.timesteps, "split": self.split,
            "samples": self.samples, "target_accuracy_drop": self.target_drop_points,
            "no_exit_accuracy": self.no_exit_accuracy, "accuracy": self.accuracy,
            "avg_timesteps": self.avg_timesteps, "candidates": self.candidates,
        }


def calibrate_potentials(full: GoldenResult, labels, rule: str, drop_points: float, *,
                         membrane_bits: int, split: str = "train") -> Calibration:
    """Choose ``rule``'s setting from a full-length (no-exit) golden result."""
    if rule not in CALIBRATE_RULES:
        raise UsageError(f"unknown exit rule {rule!r}; expected one of {', '.join(CALIBRATE_RULES)}")
    if not (isinstance(drop_points, (int, float)) and 0 <= drop_points <= 100):
        raise UsageError(f"--target-accuracy-drop must be between 0 and 100 points, not {drop_points}")
    pots = full.potentials
    labels = torch.from_numpy(np.array(labels, dtype=np.int64))
    B, T, n_out = pots.shape
    if B == 0:
        raise UsageError("cannot calibrate on an empty split")
    readout = pots if full.readout is None else full.readout
    base = int((argmax_first(readout[:, -1]) == labels).sum())
    need = math.ceil(base - drop_points / 100 * B - 1e-9)
    cands = _candidates(pots, readout, labels, rule, membrane_bits, n_out)
    best = cands.best(need)
    if best is None:  # cannot happen (no early exit is always a candidate), but stay safe
        raise UsageError("no exit setting meets the accuracy target")
    chosen = cands.spec(best)
    # self-check: the closed-form sweep agrees with the golden model's own exit logic
    check = apply_exit(full, chosen)
    assert int(check.timesteps.sum()) == int(cands.total_timesteps[best]), "calibration sweep disagrees with apply_exit"
    assert int((check.predicted == labels).sum()) == int(cands.correct[best]), "calibration sweep disagrees with apply_exit"
    return Calibration(chosen, T, B, split, float(drop_points), base / B, int(cands.correct[best]) / B,
                       int(cands.total_timesteps[best]) / B, len(cands))


def calibrate_bundle(net: IntNetwork, data: Dataset, rule: str, drop_points: float,
                     timesteps: int | None = None, samples: int | None = None) -> tuple[IntNetwork, Calibration]:
    """Calibrate ``rule`` on ``data``'s training split; return the bundle with ``exit`` set.

    ``timesteps`` sets ``T_max`` (default: the bundle's ``timesteps``); the returned
    network runs for that ``T_max`` and records the calibration in ``meta``.
    """
    check_compatible(net, data)
    T = net.timesteps if timesteps is None else timesteps
    x, y = data.x_train, data.y_train
    if samples is not None:
        x, y = x[:samples], y[:samples]
    full = run_golden(net, x, T, exit=ExitSpec())
    cal = calibrate_potentials(full, y, rule, drop_points, membrane_bits=net.spec.membrane_bits)
    meta = dict(net.meta, exit_calibration=cal.to_dict())
    return replace(net, timesteps=T, exit=cal.rule, meta=meta).validate(), cal


def calibrate_command(bundle, rule: str, drop_points: float, out, *, dataset: str | None = None,
                      timesteps: int | None = None, samples: int | None = None, json_path=None) -> dict:
    """``quickspike calibrate``: calibrate, write the bundle, print and return the figures."""
    import json

    from quickspike.sw.bundle import load_bundle, save_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.evaluate import evaluate_bundle
    from quickspike.sw.files import atomic_write_text
    from quickspike.sw.report import calibrate_table

    net = load_bundle(bundle)
    data = load_dataset(dataset or net.meta.get("dataset", "mnist5k"))
    if rule not in CALIBRATE_RULES:
        raise UsageError(f"unknown exit rule {rule!r}; expected one of {', '.join(CALIBRATE_RULES)}")
    new, cal = calibrate_bundle(net, data, rule, drop_points, timesteps, samples)
    test = evaluate_bundle(new, data)
    test_fixed = evaluate_bundle(new, data, exit=ExitSpec(), complexity=False)
    result = {
        "bundle": str(out), "dataset": data.name, "calibration": cal.to_dict(),
        "test": {"samples": test["samples"], "accuracy": test["accuracy"], "no_exit_accuracy": test_fixed["accuracy"],
                 "avg_timesteps": test["avg_timesteps"], "exit_histogram": test["exit_histogram"],
                 "relative_complexity": test["relative_complexity"]},
    }
    new = replace(new, meta=dict(new.meta, exit_test=result["test"]))
    path = save_bundle(new, out)
    print(calibrate_table(result))
    print(f"-> {path}")
    if json_path:
        atomic_write_text(json_path, json.dumps(result, indent=2))
    return result
