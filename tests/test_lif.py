"""The LIF step of the golden model on hand-computed cases."""

import numpy as np
import pytest
import torch

from quickspike.sw.golden import argmax_first, fire, integrate, lif_step, run_golden, sum_pool
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import IntSpec, LayerSpec, NeuronSpec, leak, sat

SPEC8 = IntSpec(weight_bits=4, input_bits=4, membrane_bits=8, acc_bits=12)  # membrane range [-128, 127]


def t(*values):
    return torch.tensor(values, dtype=torch.int64)


def test_saturation_at_both_ends():
    n = NeuronSpec(threshold=127, leak_shift=0)
    v = integrate(t(100, -100, 127, -128), t(100, -100, 127, -128), n, SPEC8)
    assert v.tolist() == [127, -128, 127, -128]
    # saturation happens before the threshold compare: 127 fires and leaves 0
    s, v = lif_step(t(100), t(100), n, SPEC8)
    assert s.tolist() == [True] and v.tolist() == [0]


def test_no_wraparound_one_past_the_range():
    n = NeuronSpec(threshold=127)
    assert integrate(t(1), t(127), n, SPEC8).tolist() == [127]
    assert integrate(t(-1), t(-128), n, SPEC8).tolist() == [-128]


@pytest.mark.parametrize("v, shift, expected", [
    (8, 1, 4), (7, 1, 4), (-8, 1, -4), (-7, 1, -3), (-3, 1, -1), (-1, 1, 0), (-1, 2, 0),
    (-5, 2, -3), (5, 2, 4), (100, 0, 100), (-100, 0, -100), (-128, 3, -112),
])
def test_leak_rounding(v, shift, expected):
    # v - (v >> k) with an arithmetic (floor) shift: -7 >> 1 = -4, so -7 leaks to -3
    assert leak(v, shift) == expected
    n = NeuronSpec(threshold=127, leak_shift=shift)
    assert integrate(t(0), t(v), n, SPEC8).tolist() == [expected]


def test_leak_applies_before_the_input():
    n = NeuronSpec(threshold=127, leak_shift=1)
    # leak(-7) = -3, then + 10 = 7 (not (-7 + 10) leaked = 2)
    assert integrate(t(10), t(-7), n, SPEC8).tolist() == [7]


def test_threshold_equality_fires():
    n = NeuronSpec(threshold=10)
    s, v = fire(t(9, 10, 11), n)
    assert s.tolist() == [False, True, True]
    assert v.tolist() == [9, 0, 1]


def test_reset_to_zero():
    n = NeuronSpec(threshold=10, reset="zero")
    s, v = fire(t(9, 10, 25, -4), n)
    assert s.tolist() == [False, True, True, False]
    assert v.tolist() == [9, 0, 0, -4]


def test_reset_by_subtraction_keeps_the_residue():
    n = NeuronSpec(threshold=10, reset="subtract")
    s, v = fire(t(25, 127), n)
    assert s.tolist() == [True, True]
    assert v.tolist() == [15, 117]


def test_scalar_reference_matches_tensor_saturation():
    assert sat(300, 8) == 127 and sat(-300, 8) == -128 and sat(5, 8) == 5


def test_sum_pool_counts_events_and_drops_partial_windows():
    s = torch.zeros(1, 1, 5, 5, dtype=torch.bool)
    s[0, 0, 0, 0] = s[0, 0, 0, 1] = s[0, 0, 1, 1] = True
    s[0, 0, 4, 4] = True  # outside any whole 2x2 window
    pooled = sum_pool(s, 2)
    assert pooled.shape == (1, 1, 2, 2)
    assert pooled[0, 0].tolist() == [[3, 0], [0, 0]]


def test_argmax_ties_go_to_lowest_index():
    assert argmax_first(t(3, 7, 7, 1)[None]).tolist() == [1]
    assert argmax_first(t(-5, -5)[None]).tolist() == [0]


def test_two_layer_network_by_hand():
    """A 2-input, 1-hidden, 2-output net traced by hand for three timesteps."""
    spec = IntSpec(weight_bits=4, input_bits=2, membrane_bits=8, acc_bits=12)
    layers = (
        LayerSpec("dense", (2,), (1,), NeuronSpec(threshold=5, leak_shift=1, reset="subtract")),
        LayerSpec("dense", (1,), (2,), NeuronSpec(spiking=False)),
    )
    weights = (np.array([[2, 1]]), np.array([[3], [-2]]))
    net = IntNetwork(spec, layers, weights, timesteps=3).validate()
    # pixel 255 -> input 3 (2 input bits), pixel 85 -> input 1: current = 2*3 + 1*1 = 7
    r = run_golden(net, np.array([[255, 85]], dtype=np.uint8), 3, record_spikes=True)
    # t0: v = 0 + 7 = 7 >= 5 -> spike, v = 2; t1: v = 2 - 1 + 7 = 8 -> spike, v = 3
    # t2: v = 3 - 1 + 7 = 9 -> spike, v = 4. Outputs integrate [3, -2] each timestep.
    assert r.spikes[0][0, :, 0].tolist() == [True, True, True]
    assert r.potentials[0].tolist() == [[3, -2], [6, -4], [9, -6]]
    assert r.predicted.tolist() == [0]
    assert r.spike_counts[0, :, 0].tolist() == [1, 1, 1]


def test_coding_compensation_by_hand():
    """The hand-traced net of the test above, with compensation at readout."""
    from quickspike.sw.spec import CompensationSpec

    spec = IntSpec(weight_bits=4, input_bits=2, membrane_bits=8, acc_bits=12)
    layers = (
        LayerSpec("dense", (2,), (1,), NeuronSpec(threshold=5, leak_shift=1, reset="subtract")),
        LayerSpec("dense", (1,), (2,), NeuronSpec(spiking=False)),
    )
    comp = CompensationSpec(enabled=True, frac_bits=4, mul=round(2 ** 20 / 5), shift=16)
    net = IntNetwork(spec, layers, (np.array([[2, 1]]), np.array([[3], [-2]])), timesteps=3,
                     compensation=comp).validate()
    r = run_golden(net, np.array([[255, 85]], dtype=np.uint8), 3)
    # hidden residual after t0, t1, t2: 2, 3, 4 -> q = (v * 209715) >> 16 = 6, 9, 12
    # readout = potentials + ([3, -2] * q) >> 4 (floor): t2: [9 + 36 >> 4, -6 + (-24 >> 4)] = [11, -8]
    assert r.potentials[0].tolist() == [[3, -2], [6, -4], [9, -6]]
    assert r.readout[0].tolist() == [[3 + 1, -2 - 1], [6 + 1, -4 - 2], [11, -8]]
    assert comp.fraction(4, 5) == 12 and comp.fraction(-3, 5) == 0 and comp.fraction(99, 5) == 12
