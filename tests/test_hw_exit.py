"""The early exit (ATSNN) in hardware: the exit unit and the adaptive timestep controller.

* :class:`ExitUnit` alone under amaranth.sim == ``exit_holds`` / ``argmax_first`` on
  random, tied and saturated potential vectors, for both rules and edge thresholds.
* The whole accelerator (Verilator through ``cosim.pyverilator_engine``, one amaranth.sim
  case): per sample STEPS, CLASS and the POT words of every timestep run equal the
  golden model with ``apply_exit`` semantics, for margin and softmax at thresholds that
  make some samples exit at t=1, some later and some never; the same built design runs
  without an exit and with several rules by rewriting only the exit registers; cycles
  fall with the timesteps; networks switched at run time after early exits stay exact.
"""

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from quickspike.errors import FitError, SpecError
from quickspike.hw import protocol as P
from quickspike.hw.config import HwConfig
from quickspike.hw.exit_unit import ExitUnit
from quickspike.hw.fit import check_fits
from quickspike.hw.perf import lower_bound_cycles
from quickspike.hw.sim import simulate_jobs
from quickspike.hw.testnets import conv_net, dense_net, pixels
from quickspike.sw.golden import argmax_first, exit_holds, run_golden
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import EXP_TABLE, ExitSpec, IntSpec, LayerSpec, NeuronSpec

SAT_SPEC = IntSpec(weight_bits=6, input_bits=4, membrane_bits=8, acc_bits=16)
NO_EXIT = ExitSpec()


# ----------------------------------------------------------------------------- nets


def exit_net():
    """Dense 16-12-6, T=6: classes vary and margins grow at different rates."""
    return dense_net(seed=9, n_in=16, hidden=12, n_out=6, T=6)


def sat_net(T=6):
    """Dense 6-6-6 on 8-bit membranes: outputs saturate at both ends and tie at the top."""
    hid = NeuronSpec(threshold=40, v_init=0)
    out = NeuronSpec(threshold=1, v_init=-120, spiking=False)
    w0 = np.diag([20] * 6)
    w1 = np.array([[31, 31, 0, 0, 0, 0],
                   [0, 31, 31, 0, 0, 0],
                   [-32] * 6,
                   [0, 0, 0, 31, 31, 0],
                   [31, 0, 0, 0, 0, 31],
                   [3, 3, 3, 3, 3, 3]])
    layers = (LayerSpec("dense", (6,), (6,), hid), LayerSpec("dense", (6,), (6,), out))
    return IntNetwork(SAT_SPEC, layers, (w0, w1), timesteps=T).validate()


def sat_pixels(n=8):
    rng = np.random.default_rng(5)
    x = (rng.integers(0, 256, size=(n, 6)) * (rng.random((n, 6)) < 0.6)).astype(np.uint8)
    x[-1] = 0                       # every output stays at v_init: a 6-way tie
    return x


# ----------------------------------------------------------------------------- exit unit


def _vectors(spec, rng):
    lo, hi = spec.membrane_range
    out = []
    for n in (2, 3, 5, 8):
        for _ in range(4):
            out.append(rng.integers(lo, hi + 1, size=n))
        out.append(rng.choice([lo, hi, lo + 1, hi - 1, 0], size=n))     # saturated, tied
        v = rng.integers(lo, hi + 1, size=n)
        v[rng.integers(n)] = v.max()                                     # tie at the top
        out.append(v)
        out.append(np.full(n, hi))
        out.append(np.full(n, lo))
    out.append(np.array([lo, hi]))
    out.append(np.array([hi, lo, hi]))
    return [np.asarray(v, dtype=np.int64) for v in out]


def _rules(spec, n, v, rng):
    top2 = np.sort(v)[-2:]
    margin = int(top2[1] - top2[0])
    lo, hi = spec.membrane_range
    rules = [ExitSpec("none"),
             ExitSpec("margin", 0), ExitSpec("margin", margin), ExitSpec("margin", margin + 1),
             ExitSpec("margin", (1 << spec.membrane_bits) - 1)]
    for shift in (0, 2, int(rng.integers(0, spec.membrane_bits + 1)), spec.membrane_bits):
        s = int(exit_sum(v, shift))
        rules += [ExitSpec("softmax", s, shift), ExitSpec("softmax", s - 1, shift)]
    rules += [ExitSpec("softmax", 0, 1), ExitSpec("softmax", n * EXP_TABLE[0], 3)]
    return [r for r in rules if r.threshold >= 0]


def exit_sum(v, shift):
    d = np.minimum((v.max() - v) >> shift, len(EXP_TABLE) - 1)
    return sum(EXP_TABLE[k] for k in d)


def test_exit_unit_matches_golden():
    spec = IntSpec(membrane_bits=8, acc_bits=16)
    rng = np.random.default_rng(0)
    cases = []
    for v in _vectors(spec, rng):
        for rule in _rules(spec, len(v), v, rng):
            cases.append((v, rule))
    dut = ExitUnit(spec, max_outputs=8)
    got = []

    async def bench(ctx):
        for v, rule in cases:
            ctx.set(dut.rule, P.EXIT_RULE_CODES[rule.rule])
            ctx.set(dut.threshold, rule.threshold)
            ctx.set(dut.shift, rule.shift)
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for pass_ in (1, 2) if rule.rule == "softmax" else (1,):
                valid = dut.p1_valid if pass_ == 1 else dut.p2_valid
                for i, x in enumerate(v.tolist()):
                    if pass_ == 1 and rng.random() < 0.3:          # a stalled result stream
                        await ctx.tick()
                    ctx.set(dut.value, x)
                    ctx.set(valid, 1)
                    ctx.set(dut.last, i == len(v) - 1)
                    await ctx.tick()
                    ctx.set(valid, 0)
                    ctx.set(dut.last, 0)
            for _ in range(8):
                if ctx.get(dut.done):
                    break
                await ctx.tick()
            got.append((ctx.get(dut.done), ctx.get(dut.holds), ctx.get(dut.best_index)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(cases)
    for (v, rule), (done, holds, best) in zip(cases, got):
        t = torch.as_tensor(v)[None]
        assert done, (v, rule)
        assert bool(holds) == bool(exit_holds(t, rule)[0]), (v.tolist(), rule)
        assert best == int(argmax_first(t)[0]), (v.tolist(), rule)


def test_exit_unit_bad_parameters():
    with pytest.raises(TypeError, match="spec"):
        ExitUnit("spec", 4)
    with pytest.raises(ValueError, match="max_outputs"):
        ExitUnit(IntSpec(), 0)


# ----------------------------------------------------------------------------- protocol, fit, bound


def test_encode_registers_writes_exit_and_override():
    net = exit_net()
    net_ex = IntNetwork(net.spec, net.layers, net.weights, net.timesteps, exit=ExitSpec("softmax", 5000, 4))
    cfg = HwConfig.from_network(net, lanes=4)

    def regs(words):
        return {(w >> 48) & 0xFFF: w & ((1 << 48) - 1) for w in words if w >> 60 == P.OP["REG"]}
    r = regs(P.encode_registers(net_ex, cfg))
    assert (r[P.REG_EXIT_RULE], r[P.REG_EXIT_THRESHOLD], r[P.REG_EXIT_SHIFT]) == (2, 5000, 4)
    r = regs(P.encode_network(net_ex, cfg, exit=NO_EXIT))
    assert (r[P.REG_EXIT_RULE], r[P.REG_EXIT_THRESHOLD], r[P.REG_EXIT_SHIFT]) == (0, 0, 0)
    r = regs(P.encode_registers(net, cfg, exit=ExitSpec("margin", 77)))
    assert (r[P.REG_EXIT_RULE], r[P.REG_EXIT_THRESHOLD]) == (1, 77)
    assert regs(P.encode_exit(ExitSpec("margin", 5))) == {2: 1, 3: 5, 4: 0}
    with pytest.raises(TypeError):
        P.encode_exit("margin")


def test_check_fits_refuses_what_the_hardware_lacks():
    net = exit_net()
    cfg = HwConfig.from_network(net, lanes=4)
    with pytest.raises(SpecError, match="rule"):
        check_fits(net, cfg, exit=ExitSpec("entropy", 1))
    with pytest.raises(SpecError, match="threshold"):
        P.encode_network(net, cfg, exit=ExitSpec("softmax", 6 * EXP_TABLE[0] + 1))
    one = dense_net(seed=1, n_out=1)
    with pytest.raises(SpecError, match="at least 2 outputs"):
        check_fits(one, HwConfig.from_network(one, lanes=2), exit=ExitSpec("margin", 3))
    check_fits(one, HwConfig.from_network(one, lanes=2))            # fixed-T is fine
    # a conv output layer: valid for the golden model, not for the hardware
    spec = net.spec
    layers = (LayerSpec("conv", (1, 4, 4), (2, 4, 4), NeuronSpec(threshold=9)),
              LayerSpec("conv", (2, 4, 4), (3, 4, 4), NeuronSpec(spiking=False)))
    weights = (np.ones((2, 1, 3, 3), dtype=np.int64), np.ones((3, 2, 3, 3), dtype=np.int64))
    conv_out = IntNetwork(spec, layers, weights, timesteps=2).validate()
    with pytest.raises(FitError, match="output layer is a conv layer") as e:
        check_fits(conv_out, HwConfig.from_network(conv_out, lanes=2))
    assert "\n" not in str(e.value)


def test_lower_bound_counts_only_the_timesteps_run():
    net = exit_net()
    x = pixels(net, 6, seed=109)
    rule = ExitSpec("margin", 60)
    full = run_golden(net, x, exit=NO_EXIT, record_spikes=True)
    g = run_golden(net, x, exit=rule, record_spikes=True)
    lanes = 4
    for i in range(len(x)):
        steps = int(g.timesteps[i])
        spikes = tuple(s[i] for s in g.spikes)
        cut = tuple(s[i, :steps] for s in full.spikes)
        want = lower_bound_cycles(net, cut, x[i], lanes)
        assert lower_bound_cycles(net, spikes, x[i], lanes, steps=steps) == want
        assert lower_bound_cycles(net, spikes, x[i], lanes, exit=rule) == want
        assert lower_bound_cycles(net, None, x[i], lanes, exit=rule) == want
        assert lower_bound_cycles(net, spikes, x[i], lanes) == lower_bound_cycles(net, None, x[i], lanes, exit=NO_EXIT)
        if steps < net.timesteps:
            assert want < lower_bound_cycles(net, spikes, x[i], lanes, exit=NO_EXIT)
    with pytest.raises(ValueError, match="steps"):
        lower_bound_cycles(net, None, x[0], lanes, steps=0)


# ----------------------------------------------------------------------------- whole design


def check_exact(net, x, rule, results, T=None):
    """Per-sample STEPS, CLASS and every POT row run equal the golden model's."""
    g = run_golden(net, x, T, exit=rule)
    assert len(results) == len(x)
    for i, r in enumerate(results):
        steps = int(g.timesteps[i])
        assert r.timesteps == steps, f"{rule}: sample {i}"
        assert r.potentials == g.potentials[i, :steps].tolist(), f"{rule}: sample {i}"
        assert r.predicted == int(g.predicted[i]), f"{rule}: sample {i}"
    return g


def steps_mix(net, x, rule, T=None):
    """(exits at t=1, exits at 1<t<T or holds first at T, never holds) counts."""
    full = run_golden(net, x, T, exit=NO_EXIT)
    holds = exit_holds(full.potentials, rule)
    first = [int(np.argmax(h)) + 1 if h.any() else 0 for h in holds.numpy()]
    T = full.potentials.shape[1]
    return (sum(f == 1 for f in first), sum(1 < f <= T for f in first), sum(f == 0 for f in first))


def last_exits_at_1(net, x, rule):
    """``x`` reordered so that its last sample exits at t=1 (and another one does not)."""
    steps = run_golden(net, x, exit=rule).timesteps.tolist()
    first, later = steps.index(1), next(i for i, s in enumerate(steps) if s > 1)
    return x[[later, first]]


def test_amaranth_sim_exit_one_design():
    # One Amaranth design, the network loaded once per job: margin, softmax, fixed-T;
    # then a smaller network for one sample and the first one again (switching after
    # early exits, which leave currents behind).
    net = exit_net()
    small = dense_net(seed=2, n_in=8, hidden=3, n_out=2, T=3)      # 2 words: inside net's layer 0
    x = pixels(net, 4, seed=109)
    xs = pixels(small, 1, seed=4)
    hw = HwConfig.from_network(net, lanes=4)
    rules = [ExitSpec("margin", 60), ExitSpec("softmax", 5000, 4), NO_EXIT]
    jobs = [(net, x, None, rule) for rule in rules]
    # the last sample exits at t=1: net's first-layer current is left in a word small never writes
    jobs += [(net, last_exits_at_1(net, x, rules[0]), None, rules[0]),
             (small, xs, None, ExitSpec("margin", 1)), (net, x, None, NO_EXIT)]
    # all-zero samples touch no current word in their load phase: the first layer's
    # static current two samples back must still read as 0
    zeros = np.concatenate([x[:1], np.zeros_like(x[:2])])
    jobs += [(net, zeros, None, ExitSpec("margin", 0))]
    runs = simulate_jobs(hw, jobs)
    for (n, xx, _, rule), res in zip(jobs, runs):
        check_exact(n, xx, rule, res)
    none = runs[2]
    for res in runs[:2]:
        for r, n in zip(res, none):
            if r.timesteps < net.timesteps:
                assert r.cycles < n.cycles


from accel_driver import Accel  # noqa: E402  (the shared PyVerilator driver)


def _rules_run(accel, net, x, rules, T=None):
    """Run ``x`` under each rule by rewriting only the exit registers; check; return results."""
    out = {}
    for rule in rules:
        accel.send(P.encode_exit(rule))
        res = accel.run(net, x)
        check_exact(net, x, rule, res, T)
        out[rule] = res
    return out


def test_verilator_exit_dense_thresholds_and_switching():
    net = exit_net()
    small = dense_net(seed=2, n_in=8, hidden=3, n_out=2, T=3)      # 2 words: inside net's layer 0
    hw = HwConfig.from_network(net, lanes=4)
    check_fits(small, hw)
    x = pixels(net, 8, seed=109)
    margin = [ExitSpec("margin", 0), ExitSpec("margin", 60), ExitSpec("margin", 100), ExitSpec("margin", 4095)]
    softmax = [ExitSpec("softmax", 5000, 4), ExitSpec("softmax", 9000, 6), ExitSpec("softmax", 24576, 0),
               ExitSpec("softmax", 0, 2)]
    # the thresholds cover exits at t=1, later exits and samples that never exit
    assert all(steps_mix(net, x, r)[0] for r in (margin[1], softmax[2]))
    assert all(steps_mix(net, x, r)[1] for r in (margin[1], margin[2], softmax[0], softmax[1]))
    assert all(steps_mix(net, x, r)[2] for r in (margin[1], softmax[0], softmax[1]))

    accel = Accel(hw)
    accel.send(P.encode_network(net, hw, exit=NO_EXIT))
    runs = _rules_run(accel, net, x, [NO_EXIT, *margin, *softmax, NO_EXIT])
    none = runs[NO_EXIT]
    g = run_golden(net, x, exit=NO_EXIT, record_spikes=True)
    for rule in margin + softmax:
        for i, (r, n) in enumerate(zip(runs[rule], none)):
            if r.timesteps < net.timesteps:
                assert r.cycles < n.cycles, (rule, i)
            bound = lower_bound_cycles(net, tuple(s[i] for s in g.spikes), x[i], hw.lanes, steps=r.timesteps)
            assert bound <= r.cycles, (rule, i)

    # Switch networks after samples that exited early (their currents left behind):
    # the big net, one sample of a smaller one, the big net again: still exact.
    rule = ExitSpec("margin", 60)
    accel.send(P.encode_network(net, hw, exit=rule))
    xl = last_exits_at_1(net, x, rule)
    check_exact(net, xl, rule, accel.run(net, xl))
    xs = pixels(small, 1, seed=4)
    srule = ExitSpec("margin", 1)
    accel.send(P.encode_network(small, hw, exit=srule))
    check_exact(small, xs, srule, accel.run(small, xs))
    accel.send(P.encode_network(net, hw))           # the network's own rule: none
    check_exact(net, x, NO_EXIT, accel.run(net, x))


def test_verilator_exit_saturation_and_ties():
    net = sat_net()
    x = sat_pixels()
    g = run_golden(net, x, exit=NO_EXIT)
    lo, hi = SAT_SPEC.membrane_range
    assert int(g.potentials.max()) == hi and int(g.potentials.min()) == lo
    top2 = g.potentials.topk(2, dim=-1).values
    assert bool((top2[..., 0] == top2[..., 1]).any()) and bool((top2[..., 0] == hi).any())
    hw = HwConfig.from_network(net, lanes=4)
    accel = Accel(hw)
    accel.send(P.encode_network(net, hw))
    rules = [NO_EXIT, ExitSpec("margin", 0), ExitSpec("margin", 1), ExitSpec("margin", 62),
             ExitSpec("margin", 255), ExitSpec("softmax", 8192, 0), ExitSpec("softmax", 12000, 3),
             ExitSpec("softmax", 4096, 8), ExitSpec("softmax", 6 * 4096, 8)]
    assert steps_mix(net, x, ExitSpec("margin", 62)) != (0, 0, len(x))
    runs = _rules_run(accel, net, x, rules)
    assert all(r.timesteps == 1 for r in runs[ExitSpec("margin", 0)])
    assert all(r.timesteps == 1 for r in runs[ExitSpec("softmax", 6 * 4096, 8)])


def test_verilator_exit_conv_speculation():
    # Conv hidden layers: the exit drops a speculative timestep in the middle of conv
    # fire sweeps and accumulate phases.
    net = conv_net(seed=4, conv2=True, pool=2, H=6, W=5, K=3, n_out=5, T=5)
    x = pixels(net, 5, seed=3)
    hw = HwConfig.from_network(net, lanes=2)
    accel = Accel(hw)
    accel.send(P.encode_network(net, hw))
    g = run_golden(net, x, exit=NO_EXIT)
    top2 = g.potentials.topk(2, dim=-1).values
    margins = (top2[..., 0] - top2[..., 1])
    mid = int(margins[:, 1].median())
    rules = [NO_EXIT, ExitSpec("margin", mid), ExitSpec("margin", int(margins[:, 0].min())),
             ExitSpec("softmax", 4200, 5)]
    runs = _rules_run(accel, net, x, rules)
    for rule in rules[1:]:
        for r, n in zip(runs[rule], runs[NO_EXIT]):
            if r.timesteps < net.timesteps:
                assert r.cycles < n.cycles
