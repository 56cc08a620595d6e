"""The IC-SNN coding compensation at readout in hardware.

* Protocol: the compensation registers (from ``net.compensation`` or an override),
  ``REG_COMP_VMIN`` against a brute force of ``CompensationSpec.fraction``, READOUT words
  decoded into ``SampleResult.readout``; the register widths pinned to the spec.
* The lower bound counts the compensation pass; the hardware never beats it.
* The whole accelerator (amaranth.sim for a tiny dense net, Verilator through
  ``cosim.pyverilator_engine`` for bigger ones): per sample the POT rows (uncompensated),
  the READOUT words, CLASS and STEPS equal the golden model (``GoldenResult.readout`` at
  the exit step), for dense and conv+pool last hidden layers, with and without an early
  exit, residuals negative / >= θ / saturated, ``frac_bits`` 1..8, ``q`` clamped at
  ``2**frac_bits - 1``, no ``q`` at all, and readouts saturated at both ends. A wrong
  shift (a mutated register) is caught.
"""

import dataclasses

import numpy as np
import pytest
import torch

from quickspike.errors import FitError, SpecError
from quickspike.hw import protocol as P
from quickspike.hw.config import COMP_FRAC_BITS, COMP_MUL_BITS, COMP_SHIFT_MAX, HwConfig
from quickspike.hw.fit import check_fits
from quickspike.hw.perf import compensation_events, lower_bound_cycles
from quickspike.hw.sim import simulate_jobs
from quickspike.hw.testnets import conv_net, dense_net, pixels
from quickspike.sw.golden import (argmax_first, encode_pixels, exit_holds, layer_current, lif_step,
                                  run_golden, sum_pool)
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import CompensationSpec, ExitSpec, IntSpec, LayerSpec, NeuronSpec

NO_EXIT = ExitSpec()
OFF = CompensationSpec()
SPEC = IntSpec(weight_bits=6, input_bits=4, membrane_bits=10, acc_bits=20)


# ----------------------------------------------------------------------------- nets


def comp_for(net, frac_bits, shift=10, gain=1.0):
    """``mul ≈ gain · 2**(frac_bits + shift) / θ`` for ``net``'s last hidden layer."""
    theta = net.layers[-2].neuron.threshold
    mul = min(round(gain * (1 << (frac_bits + shift)) / theta), (1 << 24) - 1)
    return CompensationSpec(True, frac_bits, mul, shift)


def with_comp(net, comp):
    return dataclasses.replace(net, compensation=comp).validate()


def resid_net(T=5):
    """Dense 8-10-6 on 10-bit membranes, θ = 45: hidden residuals end negative (one
    neuron saturates low), in [0, θ) and >= θ (one saturates high every timestep);
    outputs 4 and 5 run into the rails."""
    rng = np.random.default_rng(3)
    hid = NeuronSpec(threshold=45, v_init=22)
    out = NeuronSpec(threshold=1, v_init=0, spiking=False)
    w0 = rng.integers(-5, 12, size=(10, 8))
    w0[4] = -32
    w0[5] = 31
    w0[7] = rng.integers(-3, 4, size=8)
    w1 = rng.integers(-24, 25, size=(6, 10))
    w1[4, :] = 0
    w1[4, rng.permutation(10)[:5]] = 31
    w1[5, :] = 0
    w1[5, rng.permutation(10)[:5]] = -32
    layers = (LayerSpec("dense", (8,), (10,), hid), LayerSpec("dense", (10,), (6,), out))
    return IntNetwork(SPEC, layers, (w0, w1), timesteps=T).validate()


def resid_pixels(n, seed=5):
    rng = np.random.default_rng(seed)
    dens = np.linspace(0.1, 0.9, n)[:, None]
    return (rng.integers(0, 256, size=(n, 8)) * (rng.random((n, 8)) < dens)).astype(np.uint8)


def hidden_membranes(net, x, T=None):
    """(B, T, *out_shape) membranes of the last hidden layer after every timestep."""
    T = net.timesteps if T is None else T
    layers = net.layers[:-1]
    xx = encode_pixels(x, net.spec).reshape(len(x), *net.input_shape)
    w = [torch.as_tensor(a, dtype=torch.float64) for a in net.weights]
    v = [torch.full((len(x), *layer.out_shape), layer.neuron.v_init, dtype=torch.int64) for layer in layers]
    first = layer_current(layers[0], w[0], xx)
    out = []
    for _ in range(T):
        cur = first
        for i, layer in enumerate(layers):
            if i:
                cur = layer_current(layer, w[i], inp)
            s, v[i] = lif_step(cur, v[i], layer.neuron, net.spec)
            inp = sum_pool(s, layer.pool) if layer.kind == "conv" else s
        out.append(v[-1].clone())
    return torch.stack(out, dim=1)


def mine(net, comp, n=400, seed=5, extra=4):
    """Samples of ``resid_pixels`` that cover: readouts saturated high and low where the
    potential is not, a class changed by the compensation, several classes."""
    x = resid_pixels(n, seed)
    g = run_golden(with_comp(net, comp), x, exit=NO_EXIT)
    lo, hi = net.spec.membrane_range
    R, Pt = g.readout[:, -1], g.potentials[:, -1]
    want = [((R == hi) & (Pt < hi)).any(dim=1), ((R == lo) & (Pt > lo)).any(dim=1),
            g.predicted != argmax_first(Pt)]
    pick = [int(torch.nonzero(c)[0]) for c in want]
    for cls in range(net.num_classes):
        hit = torch.nonzero(g.predicted == cls)
        if len(hit) and not any(int(g.predicted[p]) == cls for p in pick):
            pick.append(int(hit[0]))
    pick += list(range(0, n, n // extra))[:extra]
    return x[sorted(set(pick))]


# ----------------------------------------------------------------------------- protocol, fit


def test_register_widths_hold_every_valid_spec():
    spec = IntSpec()
    CompensationSpec(True, COMP_FRAC_BITS, (1 << COMP_MUL_BITS) - 1, COMP_SHIFT_MAX).validate(spec)
    for bad in (dict(frac_bits=COMP_FRAC_BITS + 1), dict(shift=COMP_SHIFT_MAX + 1),
                dict(mul=1 << COMP_MUL_BITS)):
        with pytest.raises(SpecError):
            CompensationSpec(True, **bad).validate(spec)


def test_comp_vmin_is_the_smallest_residual_with_q():
    spec = IntSpec(membrane_bits=12)
    never = 1 << 11
    for theta in (1, 2, 45, 300):
        for mul in (0, 1, 3, 97, 1000, (1 << 24) - 1):
            for shift in (0, 5, 10, 24):
                c = CompensationSpec(True, 4, mul, shift)
                qs = [c.fraction(v, theta) for v in range(-3, theta + 3)]
                first = next((v for v, q in zip(range(-3, theta + 3), qs) if q > 0), never)
                assert P.comp_vmin(c, theta, spec) == first, (theta, mul, shift)
                # q grows with v: everything from vmin on has q > 0
                assert all(q > 0 for v, q in zip(range(-3, theta + 3), qs) if v >= first)


def _regs(words):
    return {(w >> 48) & 0xFFF: w & ((1 << 48) - 1) for w in words if w >> 60 == P.OP["REG"]}


def test_encode_registers_writes_compensation_and_override():
    net = resid_net()
    comp = comp_for(net, 5)
    cnet = with_comp(net, comp)
    cfg = HwConfig.from_network(net, lanes=4)
    r = _regs(P.encode_registers(cnet, cfg))
    assert (r[P.REG_COMP_ENABLE], r[P.REG_COMP_FRAC_BITS], r[P.REG_COMP_MUL], r[P.REG_COMP_SHIFT]) == \
        (1, 5, comp.mul, 10)
    assert r[P.REG_COMP_VMIN] == P.comp_vmin(comp, 45, SPEC)
    assert _regs(P.encode_network(cnet, cfg, compensation=OFF))[P.REG_COMP_ENABLE] == 0
    assert _regs(P.encode_registers(net, cfg))[P.REG_COMP_ENABLE] == 0
    r = _regs(P.encode_network(net, cfg, compensation=comp_for(net, 2, shift=3)))
    assert (r[P.REG_COMP_ENABLE], r[P.REG_COMP_FRAC_BITS], r[P.REG_COMP_SHIFT]) == (1, 2, 3)
    assert _regs(P.encode_compensation(OFF, 45, SPEC)) == {P.REG_COMP_ENABLE: 0}
    with pytest.raises(TypeError):
        P.encode_compensation({"enabled": True}, 45, SPEC)


def test_check_fits_refuses_a_compensation_the_network_cannot_take():
    net = resid_net()
    cfg = HwConfig.from_network(net, lanes=4)
    check_fits(net, cfg, compensation=comp_for(net, 8))
    tight = IntNetwork(IntSpec(weight_bits=6, input_bits=4, membrane_bits=10, acc_bits=14),
                       net.layers, net.weights, net.timesteps).validate()
    with pytest.raises(SpecError, match="readout current"):
        check_fits(tight, HwConfig.from_network(tight, lanes=4), compensation=comp_for(tight, 8))
    with pytest.raises(SpecError, match="frac_bits"):
        P.encode_network(net, cfg, compensation=CompensationSpec(True, 9, 1, 1))
    single = IntNetwork(SPEC, (LayerSpec("dense", (8,), (3,), NeuronSpec(spiking=False)),),
                        (np.ones((3, 8), dtype=np.int64),), timesteps=2).validate()
    with pytest.raises(SpecError, match="hidden layer"):
        check_fits(single, HwConfig.from_network(single, lanes=2), compensation=CompensationSpec(True, 2, 1, 1))
    with pytest.raises(TypeError):
        check_fits(net, cfg, compensation="on")
    with pytest.raises(FitError):        # the usual limits still apply
        check_fits(net, HwConfig.from_network(net, lanes=4, weight_words=2), compensation=comp_for(net, 4))


def test_decode_readout_words():
    spec = IntSpec(membrane_bits=10)

    def w(tag, v):
        return (P.TAG[tag] << 32) | (v & 0xFFFFFFFF)
    pots = [[1, -2, 3], [4, 5, -512]]
    tail = [w("CLASS", 1), w("STEPS", 2), w("CYCLES", 77)]
    body = [w("POT", v) for row in pots for v in row]
    r = P.decode_results(body + [w("READOUT", v) for v in (511, 9, -512)] + tail, 3, spec)
    assert (r.potentials, r.readout, r.predicted, r.timesteps, r.cycles) == (pots, [511, 9, -512], 1, 2, 77)
    assert r.scores == [511, 9, -512]
    plain = P.decode_results(body + tail, 3, spec)
    assert plain.readout is None and plain.scores == pots[-1]
    for bad in ([w("READOUT", 1)] * 2, [w("READOUT", 1)] * 4, [w("READOUT", 1)] * 3 + [w("POT", 1)]):
        with pytest.raises(ValueError):
            P.decode_all(body + bad + tail, 3, spec)
    with pytest.raises(ValueError):
        P.decode_all(body[:-1] + [w("READOUT", 1)] * 3 + tail, 3, spec)


def test_lower_bound_counts_the_compensation_pass():
    net = conv_net(seed=4, conv2=True, pool=2, H=5, W=7, K=3, n_out=5, T=4,
                   spec=IntSpec(weight_bits=6, input_bits=4, membrane_bits=12, acc_bits=24))
    comp = comp_for(net, 6)
    cnet = with_comp(net, comp)
    x = pixels(net, 3, seed=3)
    lanes = 2
    hv = hidden_membranes(net, x)
    spikes = run_golden(net, x, record_spikes=True).spikes
    hidden = net.layers[-2]
    for i in range(len(x)):
        sp = tuple(s[i] for s in spikes)
        for steps in (1, 3):
            q = comp.fraction(hv[i, steps - 1], hidden.neuron.threshold)[:, :4, :6]   # whole 2x2 windows
            events = int((q > 0).sum())
            assert events and compensation_events(net, x[i], steps, comp) == events
            plain = lower_bound_cycles(net, sp, x[i], lanes, steps=steps)
            extra = events * 3 + -(-hidden.n_out // lanes) + 3       # ceil(5 outputs / 2 lanes) = 3
            assert lower_bound_cycles(cnet, sp, x[i], lanes, steps=steps) == plain + extra
            assert lower_bound_cycles(net, sp, x[i], lanes, steps=steps, compensation=comp) == plain + extra
            assert lower_bound_cycles(cnet, sp, x[i], lanes, steps=steps, compensation=OFF) == plain


# ----------------------------------------------------------------------------- whole design


def check_exact(net, x, rule, results, comp, T=None):
    """POT rows, READOUT, CLASS and STEPS of every sample equal the golden model's."""
    cnet = dataclasses.replace(net, compensation=comp)
    g = run_golden(cnet, x, T, exit=rule)
    assert len(results) == len(x)
    for i, r in enumerate(results):
        steps = int(g.timesteps[i])
        what = f"{rule} {comp}: sample {i}"
        assert r.timesteps == steps, what
        assert r.potentials == g.potentials[i, :steps].tolist(), what
        if comp.enabled:
            assert r.readout == g.readout[i, steps - 1].tolist(), what
        else:
            assert r.readout is None, what
        assert r.predicted == int(g.predicted[i]), what
    return g


def test_amaranth_sim_compensation_one_design():
    net = dense_net(seed=9, n_in=16, hidden=12, n_out=6, T=4)
    comp = comp_for(net, 4, shift=12)
    cnet = with_comp(net, comp)
    x = pixels(net, 3, seed=3)
    hw = HwConfig.from_network(net, lanes=4)
    rule = ExitSpec("margin", 60)
    g = run_golden(net, x, exit=rule)
    assert sorted(set(g.timesteps.tolist())) == [1, 3, 4]         # exits at t=1, later, never
    jobs = [(cnet, x, None, NO_EXIT), (cnet, x, None, rule), (cnet, x[:1], None, NO_EXIT, OFF),
            (net, x[1:2], None, rule, comp_for(net, 6, shift=3, gain=1.5))]
    runs = simulate_jobs(hw, jobs)
    for (n, xx, _, r, *c), res in zip(jobs, runs):
        check_exact(n, xx, r, res, c[0] if c else n.compensation)
    assert runs[0][0].cycles > runs[2][0].cycles
    bound = lower_bound_cycles(cnet, None, x[0], hw.lanes, exit=NO_EXIT)
    assert bound <= runs[0][0].cycles


from accel_driver import Accel  # noqa: E402  (the shared PyVerilator driver)


def _sweep(accel, net, x, comps, rules, T=None):
    """Run ``x`` for every (compensation, rule) by rewriting only those registers; check."""
    theta = net.layers[-2].neuron.threshold
    out = {}
    for comp in comps:
        accel.send(P.encode_compensation(comp, theta, net.spec))
        for rule in rules:
            accel.send(P.encode_exit(rule))
            res = accel.run(net, x)
            out[comp, rule] = (res, check_exact(net, x, rule, res, comp, T))
    return out


def _mixed_rule(net, x, at1=True):
    """A margin rule under which some samples exit at t=1 (``at1``), some later and some run to T."""
    g = run_golden(net, x, exit=NO_EXIT)
    top2 = g.potentials.topk(2, dim=-1).values
    margins = top2[..., 0] - top2[..., 1]
    T = margins.shape[1]
    for th in sorted(set(margins.reshape(-1).tolist())):
        rule = ExitSpec("margin", int(th) + 1)
        holds = exit_holds(g.potentials, rule)
        first = [int(np.argmax(h)) + 1 if h[:-1].any() else T for h in holds.numpy()]
        if (1 in first or not at1) and any(1 < f < T for f in first) and T in first:
            return rule
    raise AssertionError("no margin mixes the exit steps")


def test_verilator_compensation_dense_residuals_and_saturation():
    net = resid_net()
    lo, hi = SPEC.membrane_range
    theta = 45
    x = mine(net, comp_for(net, 8))
    hv = hidden_membranes(net, x)[:, -1]
    # residuals negative (one saturated low), in [0, θ), >= θ (one from a saturated membrane)
    assert bool((hv < 0).any() and (hv == lo).any() and ((hv >= 0) & (hv < theta)).any())
    assert bool((hv >= theta).any() and (hv == hi - theta).any())
    comps = [comp_for(net, fb) for fb in range(1, 9)]
    comps += [comp_for(net, 3, gain=2.5),                      # q clamps at 2**frac_bits - 1
              CompensationSpec(True, 4, 1, 0),                  # q = min(v, 15), shift 0
              CompensationSpec(True, 6, 1, 10),                 # no residual gives a q: vmin = never
              CompensationSpec(True, 2, 0, 4),                  # mul 0
              OFF]
    rule = _mixed_rule(net, x)
    hw = HwConfig.from_network(net, lanes=4)
    accel = Accel(hw)
    accel.send(P.encode_network(net, hw))
    runs = _sweep(accel, net, x, comps, [NO_EXIT, rule, ExitSpec("softmax", 6000, 3)])
    # what the cases cover
    steps = runs[comps[0], rule][1].timesteps
    assert (steps == 1).any() and ((1 < steps) & (steps < net.timesteps)).any() and (steps == net.timesteps).any()
    for comp in comps[:8]:
        g = runs[comp, NO_EXIT][1]
        R, Pt = g.readout[:, -1], g.potentials[:, -1]
        assert bool((R != Pt).any()), comp
    g = runs[comps[7], NO_EXIT][1]                               # frac_bits 8
    R, Pt = g.readout[:, -1], g.potentials[:, -1]
    assert bool(((R == hi) & (Pt < hi)).any() and ((R == lo) & (Pt > lo)).any())
    assert bool((g.predicted != argmax_first(Pt)).any())
    assert len(set(g.predicted.tolist())) >= 2
    clamped = comps[8]
    assert max(clamped.fraction(int(v), theta) for v in hv.reshape(-1)) == 7
    assert P.comp_vmin(comps[10], theta, SPEC) == 1 << 9
    # cycles: the pass costs cycles only when on, and never beats the bound
    for i in range(len(x)):
        on, off = runs[comps[7], NO_EXIT][0][i], runs[OFF, NO_EXIT][0][i]
        assert on.cycles > off.cycles
        cnet = with_comp(net, comps[7])
        assert lower_bound_cycles(cnet, None, x[i], hw.lanes, exit=NO_EXIT) <= on.cycles
        r = runs[comps[7], rule][0][i]
        assert lower_bound_cycles(cnet, None, x[i], hw.lanes, steps=r.timesteps) <= r.cycles

    # A mutation is caught: the readout with a wrong shift (or frac_bits) differs.
    good = comps[5]
    for reg, value in ((P.REG_COMP_SHIFT, good.shift + 1), (P.REG_COMP_FRAC_BITS, good.frac_bits - 1)):
        accel.send(P.encode_compensation(good, theta, SPEC) + [P.cmd("REG", reg, value)])
        accel.send(P.encode_exit(NO_EXIT))
        with pytest.raises(AssertionError):
            check_exact(net, x, NO_EXIT, accel.run(net, x), good)


def test_verilator_compensation_conv_pool():
    spec = IntSpec(weight_bits=6, input_bits=4, membrane_bits=12, acc_bits=24)
    # last hidden layer: a conv with 2x2 pooling that drops a row and a column (5x7),
    # behind another conv (the exit drops speculative work in both)
    deep = conv_net(seed=4, conv2=True, pool=2, H=5, W=7, K=3, n_out=5, T=5, spec=spec)
    flat = conv_net(seed=6, pool=2, H=5, W=7, K=4, n_out=4, T=4, spec=spec)
    hw = HwConfig.from_network(deep, lanes=3)
    check_fits(flat, hw)
    accel = Accel(hw)
    for net, fbs in ((deep, (2, 5, 8)), (flat, (1, 7))):
        x = pixels(net, 5, seed=3)
        accel.send(P.encode_network(net, hw))
        comps = [comp_for(net, fb, shift=8) for fb in fbs] + [OFF]
        rule = _mixed_rule(net, x, at1=False)
        runs = _sweep(accel, net, x, comps, [NO_EXIT, rule])
        steps = runs[comps[0], rule][1].timesteps
        assert (steps < net.timesteps).any() and (steps == net.timesteps).any()
        g = runs[comps[-2], NO_EXIT][1]
        assert bool((g.readout[:, -1] != g.potentials[:, -1]).any())
        # the pooled address map drops the last row and column: residuals there must not count
        hv = hidden_membranes(net, x)[:, -1]
        th = net.layers[-2].neuron.threshold
        assert bool((comps[-2].fraction(hv, th)[:, :, 4:, :] > 0).any() or
                    (comps[-2].fraction(hv, th)[:, :, :, 6:] > 0).any())
        for i in range(len(x)):
            r = runs[comps[0], rule][0][i]
            assert lower_bound_cycles(with_comp(net, comps[0]), None, x[i], hw.lanes,
                                      steps=r.timesteps) <= r.cycles
