"""The RAMs' ``no_rw_check``: no result depends on a read of a word written in the same cycle.

The accelerator's current, membrane, event and output RAMs are declared ``no_rw_check``
(synthesis may return anything for such a read, and maps them without bypass logic).
Here the design runs under amaranth.sim with ``collision_poison``: each such read returns
its bits inverted. Every result must still equal the golden model, on networks that
exercise each RAM (dense and conv accumulate and fire sweeps, the output streamer, early
exits with speculative timesteps, the compensation pass, SSNN stages), and the
read-modify-write must actually collide (back-to-back events on one word), so the check
is not vacuous.
"""

import numpy as np

from quickspike.hw.config import HwConfig
from quickspike.hw.sim import simulate_jobs
from quickspike.hw.testnets import conv_net, dense_net, pixels
from quickspike.sw.golden import run_golden
from quickspike.sw.spec import ExitSpec, IntSpec

from test_hw_compensation import check_exact, comp_for, with_comp  # noqa: E402  (shared test helpers)
from test_hw_ssnn import ssnn_net  # noqa: E402


def run_poisoned(hw, jobs):
    stats = {}
    runs = simulate_jobs(hw, jobs, collision_poison=stats)
    for (net, x, T, rule), res in zip(jobs, runs):
        check_exact(net, x, rule, res, net.compensation, T)
    return stats["collisions"]


def test_dense_back_to_back_same_word_collides_and_stays_exact():
    # 10 outputs on 16 lanes: every event of the output layer hits the same current word
    net = dense_net(seed=7, hidden=20, n_out=10)
    n = run_poisoned(HwConfig.from_network(net, lanes=16), [(net, pixels(net, 2), None, ExitSpec())])
    assert n > 0, "the read-modify-write never read a word in the cycle it was written"


def test_conv_networks_exact():
    a = conv_net(seed=3, pool=2)
    b = conv_net(seed=4, conv2=True, pool=2, H=7, W=5, K=3, reset="zero", leak=2)
    hw = HwConfig.from_network(b, lanes=3, max_map=8)
    run_poisoned(hw, [(a, pixels(a, 1), None, ExitSpec()), (b, pixels(b, 1), None, ExitSpec())])


def test_exit_rules_and_compensation_exact():
    # speculative timesteps dropped at an exit, then the compensation pass on its state
    net = dense_net(seed=9, n_in=16, hidden=12, n_out=6, T=4)
    cnet = with_comp(net, comp_for(net, 4, shift=12))
    x = pixels(net, 3, seed=3)
    hw = HwConfig.from_network(net, lanes=4)
    jobs = [(net, x, None, ExitSpec("margin", 60)), (net, x, None, ExitSpec("softmax", 5000, 4)),
            (cnet, x, None, ExitSpec("margin", 60)), (cnet, x[:1], None, ExitSpec())]
    assert sorted(set(run_golden(net, x, exit=jobs[0][3]).timesteps.tolist())) == [1, 3, 4]
    run_poisoned(hw, jobs)


def test_ssnn_stages_exact():
    spec = IntSpec(weight_bits=6, input_bits=4, membrane_bits=12, acc_bits=20)
    net = ssnn_net(5, spec, 3, first="dense", steps=(4, 2))
    x = np.random.default_rng(2).integers(0, 256, size=(2, *net.input_shape)).astype(np.uint8)
    run_poisoned(HwConfig.from_network(net, lanes=3), [(net, x, None, ExitSpec())])
