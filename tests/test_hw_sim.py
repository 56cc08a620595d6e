"""RTL == golden: the accelerator under amaranth.sim on tiny networks, bit-exact.

Every per-timestep output potential, the class and the timesteps must equal
``run_golden`` for dense and conv(+pool) networks, several lane counts (including
non-multiples of the layer sizes), both reset modes, leak on/off and saturating
membranes. One design instance also serves two different networks loaded at run time.
"""

import numpy as np
import pytest

from quickspike.hw.testnets import conv_net, dense_net, pixels
from quickspike.hw.config import HwConfig
from quickspike.hw.perf import lower_bound_cycles
from quickspike.hw.sim import simulate, simulate_jobs
from quickspike.sw.golden import run_golden
from quickspike.sw.spec import IntSpec

SAT_SPEC = IntSpec(weight_bits=6, input_bits=4, membrane_bits=8, acc_bits=16)


def assert_exact(net, x, results, golden):
    assert len(results) == len(x)
    for i, r in enumerate(results):
        assert r.potentials == golden.potentials[i].tolist(), f"sample {i}"
        assert r.predicted == int(golden.predicted[i]), f"sample {i}"
        assert r.timesteps == int(golden.timesteps[i])
        assert r.cycles > 0


def run_and_check(net, lanes, n=2, seed=1, **cfg):
    x = pixels(net, n, seed=seed)
    g = run_golden(net, x, record_spikes=True)
    hw = HwConfig.from_network(net, lanes=lanes, **cfg)
    res = simulate(net, hw, x)
    assert_exact(net, x, res, g)
    return x, g, res


@pytest.mark.parametrize("lanes", [1, 3, 4, 8])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_dense_lanes_and_reset(lanes, reset):
    run_and_check(dense_net(seed=lanes, reset=reset, n_out=10), lanes)


@pytest.mark.parametrize("leak", [0, 1, 3])
def test_dense_leak(leak):
    run_and_check(dense_net(seed=10 + leak, leak=leak), 3)


@pytest.mark.parametrize("lanes", [2, 5])
def test_dense_saturation(lanes):
    net = dense_net(seed=5, spec=SAT_SPEC, v_init=100, T=5)
    x, g, _ = run_and_check(net, lanes)
    lo, hi = SAT_SPEC.membrane_range
    pots = g.potentials
    assert int(pots.max()) == hi or int(pots.min()) == lo, "the test net must saturate"


def test_dense_vinit_above_threshold_padding_lanes_stay_silent():
    # v_init >= threshold: every real neuron spikes at t=0; the padding lanes of the
    # last word (7 hidden on 4 lanes) must not.
    net = dense_net(seed=3, v_init=70, hidden=7)
    run_and_check(net, 4)


def test_forwarding_back_to_back_same_word():
    # 10 outputs on 16 lanes: every event hits the same current word back to back.
    net = dense_net(seed=7, hidden=20, n_out=10)
    x, g, res = run_and_check(net, 16)
    assert int(g.spike_counts.sum()) > 20


@pytest.mark.parametrize("lanes", [2, 3, 4])
def test_conv_pool_dense(lanes):
    run_and_check(conv_net(seed=lanes, pool=2), lanes)


@pytest.mark.parametrize("reset,leak", [("zero", 2), ("subtract", 1)])
def test_conv_conv_pool_dense(reset, leak):
    net = conv_net(seed=4, conv2=True, pool=2, H=7, W=5, K=3, reset=reset, leak=leak)
    run_and_check(net, 2, n=1)


def test_conv_pool3_odd_map_drops_partial_windows():
    run_and_check(conv_net(seed=9, pool=3, H=7, W=8, K=2), 3, n=1)


def test_conv_two_input_channels_saturating():
    net = conv_net(seed=11, C=2, K=5, H=4, W=4, pool=2, spec=SAT_SPEC, v_init=60)
    run_and_check(net, 4, n=1)


def test_two_networks_one_design():
    a, b = dense_net(seed=21, n_out=4), conv_net(seed=22)
    hw = HwConfig.from_network(a, lanes=3, weight_words=256, neuron_words=64, event_words=64,
                               max_inputs=64, max_map=8)
    xa, xb = pixels(a, 1), pixels(b, 1)
    ra, rb = simulate_jobs(hw, [(a, xa, None), (b, xb, 2)])
    assert_exact(a, xa, ra, run_golden(a, xa))
    assert_exact(b, xb, rb, run_golden(b, xb, 2))


def test_cycles_near_lower_bound():
    # A wider net with enough work per phase that per-phase overhead is small.
    net = dense_net(seed=2, n_in=64, hidden=48, n_out=10, T=3)
    x, g, res = run_and_check(net, 4, n=1, seed=3)
    lb = lower_bound_cycles(net, tuple(s[0] for s in g.spikes), x[0], 4)
    assert lb <= res[0].cycles <= 1.5 * lb, (res[0].cycles, lb)


def test_dense_design_as_synthesized_same_results_and_cycles():
    # What `quickspike synth` builds for a dense bundle without an exit rule: no conv,
    # compensation or early-exit datapath, the weight RAM in banks. Bit-exact, and not a
    # cycle slower or faster than the full design.
    net = dense_net(seed=13, n_out=10)
    full = HwConfig.from_network(net, lanes=3)
    assert full.weight_words > 16, "the weights must span several banks"
    _, _, lean = run_and_check(net, 3, conv=False, compensation=False, early_exit=False, weight_bank_words=16)
    _, _, res = run_and_check(net, 3)
    assert [r.cycles for r in lean] == [r.cycles for r in res]
