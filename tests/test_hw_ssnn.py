"""SSNN and event input in hardware: RTL == golden on every result word.

Random staged (SSNN) and event-input networks (dense and conv first layers, conv with
pool 2 on odd maps, 2 and 3 stages, boundaries after a conv layer, a stage of only the
output layer, lanes 1, 3 and 8, direct and events coding, uniform events networks
without stages, a plain network on SSNN hardware) run under the pyverilator engine and
must match :func:`quickspike.sw.golden.run_golden` exactly: every ``POT`` row, every
boundary's ``COUNT`` (``stage_counts``) and ``SPLIT`` (``splits``) words, ``CLASS`` and
``STEPS``. Also: saturating 8-bit membranes; one group under cocotb (word for word the
same as pyverilator) and with random valid/ready stalls; event input with an early
exit and the IC-SNN compensation; ``quickspike cosim`` on staged direct and events
bundles; the fit refusals, the event-sample encoding, the transformer words, the
decoding of COUNT/SPLIT words, the scoreboard's messages and the cycle lower bound.
Each group shares one design (Verilator builds are cached by content hash).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from quickspike.cosim import engines
from quickspike.cosim.compare import Expected, compare_all, expected_from_golden, first_mismatch
from quickspike.cosim.engines import Job, run_jobs
from quickspike.errors import FitError
from quickspike.hw import protocol as P
from quickspike.hw.config import HwConfig
from quickspike.hw.fit import check_fits
from quickspike.hw.perf import lower_bound_cycles
from quickspike.sw.golden import run_golden
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import (
    IntSpec, LayerSpec, NeuronSpec, SPLIT_FRAC_BITS, StageSpec, TransformerSpec, signed_range,
)

# ---------------------------------------------------------------- networks


def _fit_acc(w: np.ndarray, mult: int, spec: IntSpec) -> np.ndarray:
    _, acc_max = spec.acc_range
    while int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max()) * mult > acc_max:
        w = w // 2
    return w


def _neuron(rng, spec: IntSpec, w: np.ndarray, mult: float, spiking: bool) -> NeuronSpec:
    lo, hi = spec.membrane_range
    typical = float(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).mean()) * mult * 0.3
    threshold = int(np.clip(rng.uniform(0.15, 1.0) * typical, 1, hi))
    v_init = int(rng.choice([0, int(rng.integers(lo // 4, hi // 4 + 1)), threshold // 2]))
    return NeuronSpec(threshold=threshold, v_init=int(np.clip(v_init, lo, hi)), leak_shift=int(rng.integers(0, 3)),
                      reset=str(rng.choice(["subtract", "zero"])), spiking=spiking)


def ssnn_net(seed: int, spec: IntSpec, lanes: int, *, first: str = "dense", steps=(5, 3, 1),
             coding: str = "direct", boundary_after_conv: bool = False, pool: int = 2,
             in_shape: tuple[int, ...] | None = None, n_out: int | None = None,
             saturate: bool = False) -> IntNetwork:
    """A random network of ``len(steps)`` stages (``steps=(T,)``: unstaged, ``timesteps = T``)."""
    rng = np.random.default_rng(seed)
    wlo, whi = spec.weight_range
    layers, weights = [], []
    n_stages = len(steps)

    def mult_of(i):
        if i == 0:
            return 1 if coding == "events" else spec.input_max
        prev = layers[i - 1]
        return prev.pool ** 2 if prev.kind == "conv" else 1

    def add(kind, in_shape, out_shape, wshape, spiking, p=1):
        i = len(layers)
        mult = mult_of(i)
        # saturate: a strong bias drives membranes (and the outputs) into a rail
        bias = rng.uniform(0.5, 0.9) * rng.choice([-1, 1]) if saturate and not spiking else 0.25 * rng.random()
        if saturate and spiking:
            bias = rng.uniform(0.2, 0.5)
        w = rng.integers(wlo, whi + 1, size=wshape) + int(bias * whi)
        w = np.clip(w, wlo, whi).astype(np.int64)
        # a stage's first layer sums its input over the previous stage
        w = _fit_acc(w, mult * max(steps), spec)
        layers.append(LayerSpec(kind, in_shape, out_shape, _neuron(rng, spec, w, mult, spiking), pool=p))
        weights.append(w)
        return layers[-1].pooled_shape

    if first == "conv":
        shape = in_shape or (int(rng.integers(1, 3)), int(rng.integers(4, 7)), int(rng.integers(4, 7)))
        k = int(rng.integers(2, lanes + 4))
        shape = add("conv", shape, (k, *shape[1:]), (k, shape[0], 3, 3), True, pool)
    else:
        shape = in_shape or (int(rng.integers(6, 30)),)
        n = int(rng.integers(3, 2 * lanes + 9))
        shape = add("dense", shape, (n,), (n, shape[0]), True)
    n_hidden = max(n_stages - 1, 1) + int(rng.integers(0, 2))
    for _ in range(n_hidden - 1):
        n_in = int(np.prod(shape))
        n = int(rng.integers(3, 2 * lanes + 9))
        shape = add("dense", (n_in,), (n,), (n, n_in), True)
    n_in, n_out = int(np.prod(shape)), n_out or int(rng.integers(2, 9))
    add("dense", (n_in,), (n_out,), (n_out, n_in), False)
    n_layers = len(layers)
    if n_stages == 1:
        return IntNetwork(spec, tuple(layers), tuple(weights), timesteps=steps[0], input_coding=coding).validate()
    # stage starts: increasing from 0; a boundary right after the conv layer if asked
    if boundary_after_conv:
        rest = sorted(rng.choice(np.arange(2, n_layers), size=n_stages - 2, replace=False).tolist())
        starts = (0, 1, *rest)
    else:
        starts = (0, *sorted(rng.choice(np.arange(1, n_layers), size=n_stages - 1, replace=False).tolist()))
    tts = []
    for a, b in zip(steps, steps[1:]):
        lo, hi = signed_range(8)
        wt = tuple(tuple(int(v) for v in row) for row in rng.integers(lo, hi + 1, size=(b, a)))
        tts.append(TransformerSpec(wt, mul=int(rng.integers(1, 1 << 12)), shift=int(rng.integers(12, 20))))
    stages = StageSpec(tuple(steps), tuple(int(s) for s in starts), tuple(tts))
    return IntNetwork(spec, tuple(layers), tuple(weights), timesteps=steps[0], input_coding=coding,
                      stages=stages).validate()


def net_inputs(net: IntNetwork, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if net.input_coding == "events":
        frames = rng.random((n, net.input_steps, *net.input_shape)) < rng.uniform(0.15, 0.5)
        return frames.astype(np.uint8)
    p = rng.integers(0, 256, size=(n, *net.input_shape))
    p[rng.random(p.shape) > rng.uniform(0.3, 0.9)] = 0
    return p.astype(np.uint8)


def describe(net: IntNetwork) -> str:
    parts = [f"{layer.kind}{'x'.join(map(str, layer.out_shape))}" + (f"/p{layer.pool}" if layer.pool > 1 else "")
             for layer in net.layers]
    st = f" stages {list(net.stages.steps)} starts {list(net.stages.starts)}" if net.staged else f" T={net.timesteps}"
    return f"{net.input_coding} in{'x'.join(map(str, net.input_shape))} " + " ".join(parts) + st


def merged_config(nets, lanes: int) -> HwConfig:
    cfgs = [HwConfig.from_network(n, lanes) for n in nets]
    fields = ("weight_words", "neuron_words", "event_words", "max_layers", "max_inputs", "max_outputs",
              "max_map", "max_timesteps", "max_stages", "max_stage_steps")
    return HwConfig(spec=nets[0].spec, lanes=lanes, **{f: max(getattr(c, f) for c in cfgs) for f in fields})


SPEC_S = IntSpec(weight_bits=6, input_bits=4, membrane_bits=12, acc_bits=20)
SPEC_T = IntSpec(weight_bits=5, input_bits=8, membrane_bits=10, acc_bits=24)

#: (lanes, spec) -> the networks of one shared design
def group_nets(lanes: int) -> list[IntNetwork]:
    spec = SPEC_S if lanes != 3 else SPEC_T
    base = 100 * lanes
    return [
        ssnn_net(base + 0, spec, lanes, first="dense", steps=(5, 3, 1)),
        ssnn_net(base + 1, spec, lanes, first="conv", steps=(4, 2), boundary_after_conv=True),
        ssnn_net(base + 2, spec, lanes, first="conv", steps=(5, 3, 1), coding="events"),
        ssnn_net(base + 3, spec, lanes, first="dense", steps=(4, 2), coding="events"),
        ssnn_net(base + 4, spec, lanes, first="conv", steps=(4,), coding="events"),     # no stages
        ssnn_net(base + 5, spec, lanes, first="dense", steps=(3,), coding="events"),
        ssnn_net(base + 6, spec, lanes, first="conv", steps=(6, 4, 2), boundary_after_conv=True,
                 coding="events", pool=1),
        ssnn_net(base + 7, spec, lanes, first="dense", steps=(5, 2)),
        ssnn_net(base + 50, spec, lanes, first="dense", steps=(3,)),        # plain, on SSNN hardware
    ]


LANES = (1, 3, 8)
SAMPLES = 4


#: Saturation: 8-bit membranes, strong weight biases (a design of its own, 4 lanes).
SPEC_SAT = IntSpec(weight_bits=6, input_bits=4, membrane_bits=8, acc_bits=20)


def saturating_nets() -> list[IntNetwork]:
    return [ssnn_net(700 + i, SPEC_SAT, 4, first=("dense", "conv")[i % 2], steps=((5, 3, 1), (4, 2), (3,))[i % 3],
                     coding=("direct", "events")[(i // 2) % 2], saturate=True) for i in range(6)]


def exit_base_nets() -> list[IntNetwork]:
    """Unstaged event-input networks that get an exit rule (and the compensation) below."""
    return [ssnn_net(900 + i, SPEC_S, 8, first=("dense", "conv")[i % 2], steps=(6,), coding="events")
            for i in range(6)]


def design(lanes: int) -> HwConfig:
    """One design per lane count: every network of the group (and at 8 lanes the exit ones) fits."""
    extra = exit_base_nets() + [_cli_net("direct"), _cli_net("events")] if lanes == 8 else []
    return merged_config(group_nets(lanes) + extra, lanes)


def check_group(runs, jobs) -> list[str]:
    failures = []
    for i, (job, run) in enumerate(zip(jobs, runs)):
        g = run_golden(job.net, job.pixels)
        board = compare_all(run.results, expected_from_golden(g))
        if not board.ok:
            failures.append(f"net {i} [{describe(job.net)}]: {board.mismatches[0]}")
    return failures


@pytest.fixture(scope="module")
def built():
    engines.prebuild([(design(lanes), "pyverilator") for lanes in LANES]
                     + [(merged_config(saturating_nets(), 4), "pyverilator")], processes=1)
    return True


@pytest.mark.parametrize("lanes", LANES)
def test_ssnn_and_events_bit_exact(built, lanes):
    nets = group_nets(lanes)
    hwcfg = design(lanes)
    jobs = [Job(net, net_inputs(net, SAMPLES, seed=lanes * 10 + i)) for i, net in enumerate(nets)]
    runs = run_jobs(hwcfg, jobs, "pyverilator")
    failures = check_group(runs, jobs)
    assert not failures, f"lanes={lanes}:\n" + "\n".join(failures)
    staged = [(job, run) for job, run in zip(jobs, runs) if job.net.staged]
    assert staged and all(r.counts and r.splits for _, run in staged for r in run.results)
    assert all(r.timesteps == job.net.output_steps for job, run in zip(jobs, runs) for r in run.results)


def test_saturating_networks_bit_exact(built):
    nets = saturating_nets()
    jobs = [Job(net, net_inputs(net, SAMPLES, seed=70 + i)) for i, net in enumerate(nets)]
    runs = run_jobs(merged_config(nets, 4), jobs, "pyverilator")
    failures = check_group(runs, jobs)
    assert not failures, "saturating:\n" + "\n".join(failures)
    lo, hi = SPEC_SAT.membrane_range
    rails = sum(int(r.potentials[-1][n] in (lo, hi)) for run in runs for r in run.results
                for n in range(len(r.potentials[-1])))
    assert rails >= 10, rails


def test_engines_agree_word_for_word_under_cocotb(built, tmp_path):
    lanes = 3
    nets = group_nets(lanes)
    hwcfg = design(lanes)
    jobs = [Job(net, net_inputs(net, 2, seed=lanes * 10 + i)) for i, net in enumerate(nets)]
    expected = [expected_from_golden(run_golden(j.net, j.pixels)) for j in jobs]
    runs = run_jobs(hwcfg, jobs, "cocotb", expected=expected, test_dir=tmp_path)
    assert runs[0].extra["tb_failures"] == [] and runs[0].extra["tb_mismatches"] == []
    failures = check_group(runs, jobs)
    assert not failures, "cocotb:\n" + "\n".join(failures)
    plain = run_jobs(hwcfg, jobs, "pyverilator")
    for a, b in zip(runs, plain):
        assert a.words == b.words


def test_cocotb_random_stalls(built, tmp_path):
    """valid gaps between event frames' words, ready stalls during COUNT/SPLIT and POT words."""
    from quickspike.cosim.engines import Stalls

    lanes = 3
    nets = [n for n in group_nets(lanes) if n.staged or n.input_coding == "events"]
    jobs = [Job(net, net_inputs(net, 2, seed=lanes * 10 + i)) for i, net in enumerate(nets)]
    runs = run_jobs(design(lanes), jobs, "cocotb", stalls=Stalls(valid=0.3, ready=0.45, max_cycles=4, seed=5),
                    test_dir=tmp_path)
    failures = check_group(runs, jobs)
    assert not failures, "stalled:\n" + "\n".join(failures)


# ---------------------------------------------------------------- exit and compensation with event input


def with_exit(net: IntNetwork, x: np.ndarray, rule: str, comp: bool, seed: int) -> IntNetwork:
    from quickspike.errors import SpecError
    from quickspike.sw.spec import EXP_TABLE, CompensationSpec, ExitSpec

    rng = np.random.default_rng(seed)
    if comp:
        c = CompensationSpec(enabled=True, frac_bits=int(rng.integers(1, 5)), mul=int(rng.integers(1, 1 << 12)),
                             shift=int(rng.integers(4, 12)))
        try:
            net = dataclasses.replace(net, compensation=c).validate()
        except SpecError:
            pass
    pots = run_golden(net, x).potentials
    if rule == "margin":
        top2 = pots.topk(2, dim=-1).values
        margins = (top2[..., 0] - top2[..., 1]).reshape(-1).double()
        ex = ExitSpec("margin", threshold=int(margins.quantile(0.5)))
    else:
        ex = ExitSpec("softmax", threshold=int(rng.integers(EXP_TABLE[0], 2 * EXP_TABLE[0] + 1)), shift=2)
    return dataclasses.replace(net, exit=ex).validate()


def test_events_with_exit_and_compensation(built):
    lanes = 8
    hwcfg = design(lanes)
    jobs = []
    for i, net in enumerate(exit_base_nets()):
        x = net_inputs(net, 6, seed=i)
        net = with_exit(net, x, ("margin", "softmax")[(i // 2) % 2], comp=i % 3 != 2, seed=i)
        check_fits(net, hwcfg)
        jobs.append(Job(net, x))
    runs = run_jobs(hwcfg, jobs, "pyverilator")
    failures, early = [], 0
    for i, (job, run) in enumerate(zip(jobs, runs)):
        g = run_golden(job.net, job.pixels)
        early += int((g.timesteps < job.net.timesteps).sum())
        board = compare_all(run.results, expected_from_golden(g, readout=job.net.compensation.enabled))
        if not board.ok:
            failures.append(f"net {i} [{describe(job.net)}] {job.net.exit} {job.net.compensation}: "
                            f"{board.mismatches[0]}")
    assert not failures, "\n".join(failures)
    assert early >= 3 and sum(j.net.compensation.enabled for j in jobs) >= 2


# ---------------------------------------------------------------- no simulator


def test_default_design_has_no_ssnn_hardware():
    from quickspike.hw.generate import generate_verilog

    net = ssnn_net(1, SPEC_S, 4, steps=(4, 2))
    cfg = HwConfig.from_network(net, 4)
    assert (cfg.max_stages, cfg.max_stage_steps) == (2, 4)
    plain = dataclasses.replace(cfg, max_stages=1)
    assert "transformer" in generate_verilog(cfg) and "transformer" not in generate_verilog(plain)
    assert HwConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="max_stages = 17"):
        HwConfig(max_stages=17)


@pytest.mark.parametrize("change, message", [
    ({"max_stages": 1}, "the network has 3 SSNN stages but the hardware has no stage support (max_stages = 1)"),
    ({"max_stages": 2}, "the network's stage count 3 exceeds the hardware limit max_stages = 2"),
    ({"max_stage_steps": 4}, "stage 0's timesteps 5 exceeds the hardware limit max_stage_steps = 4"),
])
def test_fit_refuses_staged_networks_the_design_cannot_run(change, message):
    net = ssnn_net(3, SPEC_S, 4, steps=(5, 3, 1))
    cfg = HwConfig.from_network(net, 4)
    check_fits(net, cfg)
    with pytest.raises(FitError) as e:
        check_fits(net, dataclasses.replace(cfg, **change))
    assert str(e.value) == message and "\n" not in str(e.value)
    with pytest.raises(FitError, match="cannot replace them"):
        check_fits(net, cfg, timesteps=3)
    from quickspike.sw.spec import ExitSpec
    with pytest.raises(FitError, match="cannot be combined with SSNN stages"):
        check_fits(net, cfg, exit=ExitSpec("margin", threshold=3))


def test_encode_event_sample_and_decode_counts_and_splits():
    spec = SPEC_S
    frames = np.zeros((3, 2, 2, 3), dtype=np.uint8)
    frames[0, 1, 0, 2] = 1          # index 1·6 + 0·3 + 2 = 8
    frames[2, 0, 1, 0] = 1          # index 3
    frames[2, 1, 1, 1] = 1          # index 10
    words = P.encode_sample(frames, spec, events=True)
    ops = [w >> 60 for w in words]
    assert ops == [P.OP[o] for o in ("START", "PIXEL", "RUN", "RUN", "PIXEL", "PIXEL", "RUN")]
    assert words == P.encode_sample(frames.reshape(3, -1), spec, shape=(2, 2, 3), events=True)
    b = [w & ((1 << 48) - 1) for w in words]
    assert [(x & 0xFFFF, (x >> 16) & 0xFFFF, (x >> 32) & 0xFF, (x >> 40) & 0xFF) for x in (b[1], b[4], b[5])] == \
        [(1, 8, 2, 0), (1, 3, 0, 1), (1, 10, 1, 1)]
    assert [(w >> 48) & 0xFFF for w in (words[1], words[5])] == [1, 1]
    with pytest.raises(ValueError, match="0 or 1"):
        P.encode_sample(frames * 2, spec, events=True)
    with pytest.raises(ValueError, match="frames"):
        P.encode_sample(frames[0, 0, 0], spec, events=True)

    def w(tag, v):
        return P.TAG[tag] << 32 | (v & 0xFFFFFFFF)
    tail = [w("CLASS", 1), w("STEPS", 1), w("CYCLES", 77)]
    stream = ([w("COUNT", c) for c in (3, 0, 5)] + [w("SPLIT", p) for p in (200, 56)]
              + [w("COUNT", c) for c in (4, 4)] + [w("SPLIT", 256)] + [w("POT", v) for v in (-3, 9)] + tail)
    r = P.decode_results(stream, 2, spec)
    assert (r.counts, r.splits, r.potentials, r.predicted, r.timesteps, r.cycles) == \
        ([[3, 0, 5], [4, 4]], [[200, 56], [256]], [[-3, 9]], 1, 1, 77)
    assert P.decode_results([w("POT", 1), w("POT", 2)] + tail, 2, spec).counts == []
    with pytest.raises(ValueError, match="SPLIT word before"):
        P.decode_results([w("SPLIT", 1)] + tail, 2, spec)
    with pytest.raises(ValueError, match="no SPLIT"):
        P.decode_results([w("COUNT", 1), w("POT", 1), w("POT", 2)] + tail, 2, spec)
    with pytest.raises(ValueError, match="COUNT word after"):
        P.decode_results([w("POT", 1), w("POT", 2), w("COUNT", 1)] + tail, 2, spec)


def test_encode_network_loads_stages_and_transformers():
    net = ssnn_net(5, SPEC_S, 4, steps=(5, 3, 1), coding="events")
    cfg = HwConfig.from_network(net, 4)
    words = P.encode_network(net, cfg)

    def regs(addr):
        return [w & ((1 << 48) - 1) for w in words if w >> 60 == P.OP["REG"] and (w >> 48) & 0xFFF == addr]
    assert regs(P.REG_INPUT_EVENTS) == [1] and regs(P.REG_STAGES) == [3]
    assert [regs(P.STAGE_BASE + k)[0] for k in range(6)] == [0, 5, net.stages.starts[1], 3, net.stages.starts[2], 1]
    tw = [w & ((1 << 48) - 1) for w in words if w >> 60 == P.OP["TWEIGHT"]]
    assert len(tw) == 5 * 3 + 3 * 1
    n = cfg.max_stage_steps
    got = {x >> 8: (x & 0xFF) - ((x & 0x80) << 1) for x in tw}
    for b, tt in enumerate(net.stages.transformers):
        for k, row in enumerate(tt.weights):
            for t, v in enumerate(row):
                assert got[(b * n + k) * n + t] == v
    ts = [(w >> 48 & 0xFFF, w & 0xFFFF, (w >> 16) & 0xFF) for w in words if w >> 60 == P.OP["TSCALE"]]
    assert ts == [(b, tt.mul, tt.shift) for b, tt in enumerate(net.stages.transformers)]


def test_first_mismatch_names_the_boundary():
    exp = Expected([[1, 2]], 1, 1, counts=[[3, 4, 5]], splits=[[128, 128]])
    ok = P.SampleResult([[1, 2]], 1, 1, 50, None, [[3, 4, 5]], [[128, 128]])
    assert first_mismatch(0, ok, exp) is None
    bad = first_mismatch(2, P.SampleResult([[1, 2]], 1, 1, 50, None, [[3, 4, 5]], [[128, 127]]), exp)
    assert str(bad) == "sample 2, boundary 0, timestep 1: split weight RTL 127 != golden 128"
    bad = first_mismatch(2, P.SampleResult([[1, 2]], 1, 1, 50, None, [[3, 9, 5]], [[128, 128]]), exp)
    assert str(bad) == "sample 2, boundary 0, timestep 1: spike count RTL 9 != golden 4"
    assert first_mismatch(0, P.SampleResult([[1, 2]], 1, 1, 50), exp).what == "boundaries"
    assert Expected.from_dict(exp.to_dict()) == exp


def test_lower_bound_of_events_and_stages():
    from quickspike.hw.perf import event_cost_map
    lanes = 4
    net = ssnn_net(11, SPEC_S, lanes, first="conv", steps=(5, 3, 1), coding="events")
    x = net_inputs(net, 1, seed=3)[0]
    g = run_golden(net, x[None], record_spikes=True)
    layer_T = net.stages.layer_steps(len(net.layers))
    want = int(((x.reshape(5, -1) != 0) * event_cost_map(net.layers[0], lanes).reshape(1, -1)).sum())
    for i, layer in enumerate(net.layers):
        want += layer_T[i] * -(-layer.n_out // lanes)
        if i:
            from quickspike.sw.golden import sum_pool
            prev = net.layers[i - 1]
            s = g.spikes[i - 1][0].double()
            s = sum_pool(s, prev.pool) if prev.kind == "conv" else s
            assert s.shape[0] == layer_T[i - 1]
            want += int((s.reshape(s.shape[0], -1).numpy() * event_cost_map(layer, lanes).reshape(1, -1)).sum())
    assert lower_bound_cycles(net, None, x, lanes) == want
    assert lower_bound_cycles(net, tuple(s[0] for s in g.spikes), x, lanes) == want


# ---------------------------------------------------------------- quickspike cosim


def _cli_args(lanes: int) -> list[str]:
    """Depths of the shared design of ``lanes`` (the CLI sizes max_stages/max_stage_steps itself)."""
    cfg = design(lanes)
    names = ("weight_words", "neuron_words", "event_words", "max_layers", "max_inputs", "max_outputs",
             "max_map", "max_timesteps")
    return ["--lanes", str(lanes)] + [a for n in names for a in (f"--{n.replace('_', '-')}", str(getattr(cfg, n)))]


def _cli_net(coding: str) -> IntNetwork:
    # 3 stages of at most 8 timesteps: the same design as design(8) (max_stages 3, max_stage_steps 8)
    return ssnn_net(77, SPEC_S, 8, first="conv", steps=(8, 4, 1), coding=coding, in_shape=(1, 8, 8), pool=2,
                    n_out=10)


@pytest.mark.parametrize("coding", ["direct", "events"])
def test_cli_cosim_ssnn_bundle(built, coding, tmp_path, capsys, monkeypatch):
    import json
    import sys
    import types

    from quickspike.cli import main
    from quickspike.sw.bundle import save_bundle

    net = _cli_net(coding)
    cfg = HwConfig.from_network(net, 8, **{k: getattr(design(8), k) for k in (
        "weight_words", "neuron_words", "event_words", "max_layers", "max_inputs", "max_outputs", "max_map",
        "max_timesteps")})
    assert cfg == design(8), "the CLI must reuse the shared design"
    if coding == "events":
        # random frames for the digits test set (stands in for quickspike.sw.events here)
        def network_input(net, data, split="test", limit=None):
            rng = np.random.default_rng(0)
            return (rng.random((limit, net.input_steps, *net.input_shape)) < 0.3).astype(np.uint8)
        monkeypatch.setitem(sys.modules, "quickspike.sw.events", types.SimpleNamespace(network_input=network_input))
    bundle = save_bundle(net, tmp_path / f"ssnn_{coding}.qsb")
    out = tmp_path / "cosim.json"
    rc = main(["cosim", str(bundle), "--dataset", "digits", "--samples", "6", "--engine", "pyverilator",
               *_cli_args(8), "--json", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    fig = json.loads(out.read_text())
    assert (fig["samples"], fig["mismatches"], fig["stages"], fig["input_coding"]) == (6, 0, [8, 4, 1], coding)
    assert fig["avg_timesteps"] == 1 and fig["build_cache_hit"] is True
    assert fig["cycles_per_inference"] >= fig["lower_bound_cycles"] + fig["transformer_cycles"] > 0
    assert "stages [8, 4, 1]" in captured.out


def test_cli_max_stages_option_refuses_a_deeper_network(tmp_path, capsys):
    from quickspike.cli import main
    from quickspike.sw.bundle import save_bundle

    bundle = save_bundle(_cli_net("direct"), tmp_path / "ssnn.qsb")
    rc = main(["generate", str(bundle), "--out", str(tmp_path / "gen"), "--max-stages", "2"])
    err = capsys.readouterr().err
    assert rc == 1 and "stage count 3 exceeds the hardware limit max_stages = 2" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "gen").exists() or not list((tmp_path / "gen").glob("*.v"))
    rc = main(["generate", str(bundle), "--out", str(tmp_path / "gen"), "--max-stage-steps", "4"])
    assert rc == 1 and "max_stage_steps = 4" in capsys.readouterr().err
