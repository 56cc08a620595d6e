"""ATSNN's time-dependent loss (``quickspike train --algo atsnn``).

ATSNN (seed ``atsnn-adaptive-timestep-snn.txt``) trains a network that may stop after
any timestep ``t <= T_max``, so every prefix of the output must classify well, and
the paper "regulates the importance of different timesteps" with a time-dependent
loss. Its exact formula is not public; ours is

    L = Σ_{t=1..T} w_t · CE(V[t] / t, y),        Σ_t w_t = 1,

where ``V[t]`` is the non-spiking output layer's accumulated potential after
timestep ``t`` (in output units, see :mod:`quickspike.sw.model`), so ``V[t] / t`` is
the mean output of the first ``t`` timesteps: the same logits the fixed-T ``snn``
loss uses at ``t = T`` (``CE(V[T] / T)``), and an ATSNN network with all the weight on
``t = T`` is exactly an ``snn`` network.

Weight schedules (``--td-weights``), with ``Z`` normalizing them to sum to one:

``uniform``     ``w_t = 1 / T`` (the default; DT-SNN's choice: every exit point counts
                the same)
``increasing``  ``w_t = t / Z``   (later timesteps matter more)
``decreasing``  ``w_t = (T + 1 - t) / Z`` (the first timesteps matter more)

How the default was chosen (mnist5k, MLP 784-128-10, T = 4, 20 epochs, seeds 0-2,
golden integer model on the 1,000 test images; means over the seeds):

==============  ==========  ===========  =====================================
loss            acc. t = 1  acc. T = 4   best acc. at ≤ 1.05 / 1.1 / 1.5 steps
==============  ==========  ===========  =====================================
snn (CE at T)   94.23       95.83        95.27 / 95.73 / 95.90
increasing      94.30       95.67        95.20 / 95.50 / 95.80
uniform         95.10       95.73        95.67 / 95.73 / 95.93
decreasing      95.13       95.37        95.90 / 96.07 / 96.07
==============  ==========  ===========  =====================================

(the last column sweeps the margin threshold on the test split: model comparison
only, never used to set a bundle's threshold). Any time-dependent weighting that
gives ``t = 1`` real weight lifts the first-timestep accuracy by ~0.9 points, which is
what an early exit lives on. ``decreasing`` is slightly better at very low budgets
but sacrifices the accuracy at ``T`` and is erratic there from seed to seed
(95.0 / 94.9 / 96.2); ``increasing`` behaves like ``snn``. ``uniform`` keeps the
fixed-T accuracy and the early gain, so it is the default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from quickspike.errors import UsageError

__all__ = ["TD_WEIGHTS", "DEFAULT_TD_WEIGHTS", "timestep_weights", "time_dependent_loss"]

TD_WEIGHTS = ("uniform", "increasing", "decreasing")
DEFAULT_TD_WEIGHTS = "uniform"


def timestep_weights(schedule: str, timesteps: int) -> torch.Tensor:
    """The loss weights ``w_1 .. w_T`` of ``schedule`` (float64, summing to one)."""
    if schedule not in TD_WEIGHTS:
        raise UsageError(f"unknown --td-weights {schedule!r}; expected one of {', '.join(TD_WEIGHTS)}")
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise UsageError(f"timesteps must be a positive integer, not {timesteps!r}")
    t = torch.arange(1, timesteps + 1, dtype=torch.float64)
    if schedule == "uniform":
        w = torch.ones_like(t)
    elif schedule == "increasing":
        w = t
    else:
        w = timesteps + 1 - t
    return w / w.sum()


def time_dependent_loss(potentials: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``Σ_t w_t · CE(V[t] / t, y)`` for output potentials ``(B, T, classes)``.

    ``weights`` has ``T`` entries (see :func:`timestep_weights`); the cross-entropy of
    each timestep is the batch mean, as in :func:`torch.nn.functional.cross_entropy`.
    """
    B, T, C = potentials.shape
    if weights.shape != (T,):
        raise ValueError(f"{tuple(weights.shape)} weights for {T} timesteps")
    t = torch.arange(1, T + 1, dtype=potentials.dtype, device=potentials.device)
    logits = potentials / t[None, :, None]
    ce = F.cross_entropy(logits.reshape(B * T, C), labels.repeat_interleave(T), reduction="none").reshape(B, T)
    return (ce.mean(dim=0) * weights.to(ce.dtype)).sum()
