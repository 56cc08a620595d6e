"""The early-exit rules (hand-computed cases against ``exit_holds``), ``apply_exit``'s
semantics, the exact calibration sweep and the synaptic-operation count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quickspike.sw.golden import GoldenResult, apply_exit, argmax_first, exit_holds, run_golden
from quickspike.sw.spec import EXP_TABLE, ExitSpec

# Hand values of the exp table: round(4096 · e^(-k/4)).
E0, E1, E2, E4 = 4096, 3190, 2484, 1507


def holds(pots, rule) -> list[bool]:
    return exit_holds(torch.tensor(pots, dtype=torch.int64), rule).tolist()


def test_exp_table_hand_values():
    assert (EXP_TABLE[0], EXP_TABLE[1], EXP_TABLE[2], EXP_TABLE[4]) == (E0, E1, E2, E4)
    assert EXP_TABLE[-1] == 0 and EXP_TABLE[30] == 2  # round(4096 · e^-7.5) = 2.26


def test_margin_rule_hand_cases():
    pots = [[5, 3, 1], [5, 3, 1], [4, 4, 0], [4, 4, 0], [-5, -2, -9], [0, 0, 0]]
    assert holds(pots, ExitSpec("margin", 2)) == [True, True, False, False, True, False]
    assert holds(pots[:2], ExitSpec("margin", 3)) == [False, False]
    # a tie of the two largest is a margin of 0: only threshold 0 exits
    assert holds([[4, 4, 0], [0, 0, 0]], ExitSpec("margin", 0)) == [True, True]
    assert holds([[4, 4, 0]], ExitSpec("margin", 1)) == [False]
    # negative potentials: top -2, second -5
    assert holds([[-5, -2, -9]], ExitSpec("margin", 3)) == [True]
    assert holds([[-5, -2, -9]], ExitSpec("margin", 4)) == [False]


def test_margin_rule_at_saturation():
    lo, hi = -(1 << 23), (1 << 23) - 1  # 24-bit membranes
    assert holds([[hi, lo]], ExitSpec("margin", (1 << 24) - 1)) == [True]
    assert holds([[hi, hi]], ExitSpec("margin", 1)) == [False]


def test_softmax_rule_table_values():
    # differences 0, 4, 200 -> table 4096 + 1507 + 0 (200 clamps to the last entry, 0)
    pots = [[10, 6, -190]]
    assert holds(pots, ExitSpec("softmax", E0 + E4, 0)) == [True]
    assert holds(pots, ExitSpec("softmax", E0 + E4 - 1, 0)) == [False]
    # shift 1: differences 0, 2, 100 -> 4096 + 2484 + 0
    assert holds(pots, ExitSpec("softmax", E0 + E2, 1)) == [True]
    assert holds(pots, ExitSpec("softmax", E0 + E2 - 1, 1)) == [False]
    # shift 2: differences 0, 1, 50 -> 4096 + 3190 + 0
    assert holds(pots, ExitSpec("softmax", E0 + E1, 2)) == [True]
    assert holds(pots, ExitSpec("softmax", E0 + E1 - 1, 2)) == [False]
    # floor shift: a difference of 3 >> 1 = 1
    assert holds([[3, 0]], ExitSpec("softmax", E0 + E1, 1)) == [True]
    assert holds([[3, 0]], ExitSpec("softmax", E0 + E1 - 1, 1)) == [False]


def test_softmax_rule_ties_and_saturation():
    # all equal: S = n · 4096, the largest legal threshold
    assert holds([[7, 7, 7]], ExitSpec("softmax", 3 * E0, 0)) == [True]
    assert holds([[7, 7, 7]], ExitSpec("softmax", 3 * E0 - 1, 0)) == [False]
    # saturated potentials: the difference clamps to the table end (probability zero)
    lo, hi = -(1 << 23), (1 << 23) - 1
    assert holds([[hi, lo]], ExitSpec("softmax", E0, 0)) == [True]
    assert holds([[hi, lo]], ExitSpec("softmax", E0, 24)) == [False]  # shifted to 0: S = 2 · 4096
    assert holds([[hi, lo]], ExitSpec("softmax", 2 * E0, 24)) == [True]
    # a difference of 124 is table entry 31 (zero), 120 is entry 30 (2)
    assert holds([[124, 0]], ExitSpec("softmax", E0, 2)) == [True]
    assert holds([[120, 0]], ExitSpec("softmax", E0, 2)) == [False]
    assert holds([[120, 0]], ExitSpec("softmax", E0 + 2, 2)) == [True]


def test_rule_none_never_holds():
    assert holds([[100, 0], [0, 0]], ExitSpec()) == [False, False]


def _result(pots) -> GoldenResult:
    p = torch.tensor(pots, dtype=torch.int64)
    B, T, _ = p.shape
    return GoldenResult(potentials=p, spike_counts=torch.ones(B, T, 1, dtype=torch.int64),
                        predicted=argmax_first(p[:, -1]), timesteps=torch.full((B,), T), readout=p)


def test_apply_exit_first_timestep_and_class_at_exit():
    full = _result([
        [[5, 0, 0], [5, 9, 0], [5, 20, 0]],   # margin 5 at t=1: exits at 1, class 0 (class 1 later)
        [[1, 0, 0], [1, 4, 0], [9, 4, 0]],    # margins 1, 3: exits at 2, class 1 (class 0 at T)
        [[1, 1, 0], [2, 1, 0], [2, 2, 0]],    # never: runs T = 3, tie at T goes to class 0
        [[0, 0, 3], [0, 0, 5], [0, 0, 9]],    # margin 3 at t=1: exits at 1, class 2
    ])
    r = apply_exit(full, ExitSpec("margin", 3))
    assert r.timesteps.tolist() == [1, 2, 3, 1]
    assert r.predicted.tolist() == [0, 1, 0, 2]
    # spikes after the exit are not run
    assert r.spike_counts[:, :, 0].tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0]]
    # no rule: the full result
    assert apply_exit(full, ExitSpec()) is full
    assert full.predicted.tolist() == [1, 0, 0, 2]


def test_apply_exit_softmax():
    full = _result([[[10, 6], [30, 6]], [[10, 10], [11, 10]]])
    r = apply_exit(full, ExitSpec("softmax", E0 + E4, 0))  # exits when the runner-up is >= 4 behind
    assert r.timesteps.tolist() == [1, 2]
    assert r.predicted.tolist() == [0, 0]


# --------------------------------------------------------------------------- calibration sweep


def _brute_force(full: GoldenResult, labels: torch.Tensor, rules: list[ExitSpec]):
    out = []
    for rule in rules:
        r = apply_exit(full, rule)
        out.append((int(r.timesteps.sum()), int((r.predicted == labels).sum()), rule))
    return out


def test_sweep_matches_apply_exit_on_random_potentials():
    from quickspike.sw.calibrate import margin_scores, softmax_sums, sweep

    gen = torch.Generator().manual_seed(1)
    pots = torch.randint(-40, 40, (60, 5, 4), generator=gen).cumsum(dim=1)
    labels = torch.randint(0, 4, (60,), generator=gen)
    full = _result(pots.tolist())
    correct = argmax_first(pots) == labels[:, None]
    th, steps, corr = sweep(margin_scores(pots), correct)
    for t, s, c in zip(th, steps, corr):
        r = apply_exit(full, ExitSpec("margin", int(t)))
        assert (int(r.timesteps.sum()), int((r.predicted == labels).sum())) == (s, c)
    # thresholds between two candidates behave like the larger one
    for t in range(0, int(th.max()) + 1):
        k = int(np.searchsorted(th, t, side="left"))
        r = apply_exit(full, ExitSpec("margin", t))
        assert int(r.timesteps.sum()) == steps[k]
    for shift in (0, 2, 4):
        th, steps, corr = sweep(-softmax_sums(pots, shift), correct)
        for t, s, c in zip(th, steps, corr):
            r = apply_exit(full, ExitSpec("softmax", int(-t), shift))
            assert (int(r.timesteps.sum()), int((r.predicted == labels).sum())) == (s, c)


def test_calibrate_potentials_picks_fewest_timesteps_meeting_the_target():
    from quickspike.sw.calibrate import calibrate_potentials

    gen = torch.Generator().manual_seed(2)
    B, T, n = 200, 4, 3
    labels = torch.randint(0, n, (B,), generator=gen)
    # evidence for the right class grows, noise on top: a realistic accuracy/latency trade-off
    step = torch.randint(-3, 4, (B, T, n), generator=gen) + 2 * torch.nn.functional.one_hot(labels, n)[:, None, :]
    pots = step.cumsum(dim=1)
    full = _result(pots.tolist())
    base = int((argmax_first(pots[:, -1]) == labels).sum())
    for drop in (0.0, 2.0, 10.0):
        cal = calibrate_potentials(full, labels.numpy(), "margin", drop, membrane_bits=24)
        need = base - drop / 100 * B
        brute = _brute_force(full, labels, [ExitSpec("margin", t) for t in range(0, int(pots.abs().max()) * 2 + 2)])
        feasible = [b for b in brute if b[1] >= need - 1e-9]
        assert cal.accuracy * B >= need - 1e-9
        assert round(cal.avg_timesteps * B) == min(b[0] for b in feasible)
        assert cal.no_exit_accuracy == base / B
        r = apply_exit(full, cal.rule)
        assert float(r.timesteps.double().mean()) == cal.avg_timesteps
    cal0 = calibrate_potentials(full, labels.numpy(), "margin", 0.0, membrane_bits=24)
    cal10 = calibrate_potentials(full, labels.numpy(), "margin", 10.0, membrane_bits=24)
    assert cal10.avg_timesteps <= cal0.avg_timesteps
    sm = calibrate_potentials(full, labels.numpy(), "softmax", 2.0, membrane_bits=24)
    assert sm.rule.rule == "softmax" and sm.accuracy * B >= base - 0.02 * B - 1e-9


# --------------------------------------------------------------------------- complexity


def test_fanout_map_of_a_convolution():
    from quickspike.sw.complexity import fanout_map
    from quickspike.sw.spec import LayerSpec

    layer = LayerSpec("conv", (2, 3, 3), (5, 3, 3))
    fan = fanout_map(layer)
    assert fan.shape == (2, 3, 3)
    assert fan[0].tolist() == [[20, 30, 20], [30, 45, 30], [20, 30, 20]]  # 4, 6, 9 valid taps × 5 channels
    assert fanout_map(LayerSpec("dense", (7,), (3,))).tolist() == [3] * 7


def test_synaptic_operations_of_a_hand_network():
    from quickspike.sw.complexity import run_with_complexity
    from quickspike.sw.network import IntNetwork
    from quickspike.sw.spec import IntSpec, LayerSpec, NeuronSpec

    spec = IntSpec()
    layers = (LayerSpec("dense", (4,), (3,), NeuronSpec(threshold=255)),
              LayerSpec("dense", (3,), (2,), NeuronSpec(threshold=1, spiking=False)))
    w0 = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], dtype=np.int64)
    w1 = np.array([[5, 0, 0], [0, 1, 1]], dtype=np.int64)
    net = IntNetwork(spec, layers, (w0, w1), timesteps=4).validate()
    pixels = np.array([[255, 0, 128, 0], [0, 0, 0, 0]], dtype=np.uint8)
    r, cx = run_with_complexity(net, pixels, 4, exit=ExitSpec("margin", 5))
    # sample 0: neuron 0 spikes every step (255 >= 255), neuron 2 every other step (128 + 128 >= 255);
    # output 0 gets 5 per step: margin 5 after t=1, so it exits at 1
    assert r.timesteps.tolist() == [1, 4]
    assert cx.first_layer.tolist() == [2 * 3, 0]  # two non-zero pixels × 3 targets, once
    assert cx.later_layers.tolist() == [1 * 2, 0]  # one spike at t=1 × 2 targets
    full = run_golden(net, pixels, 4, exit=ExitSpec())
    assert cx.later_layers_full.tolist() == [int(full.spike_counts[0].sum()) * 2, 0]
    assert cx.later_layers_full[0] == (4 + 2) * 2
    assert cx.relative == (6 + 2) / (6 + 12)
    assert cx.relative_spiking == 2 / 12
