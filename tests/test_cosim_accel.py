"""RTL == golden under Verilator: the generated accelerator, both engines, the CLI.

* tiny dense and conv networks, bit-exact (every timestep's output potentials, the
  class, the timesteps) under the cocotb and the pyverilator engine, which must also
  agree word for word (cycle counts included);
* random valid/ready stalls on the streams (cocotb);
* 35 random configurations (widths, lanes 1..32, thresholds, leak, reset mode,
  initial potentials, layer shapes that are not multiples of the lanes, conv with
  pooling) with saturating membranes, through the fast pyverilator engine, and 20 of
  them again with an early-exit rule (margin, softmax) and the IC-SNN coding
  compensation. Weights and shapes are loaded at run time, so each group of networks
  shares one design (one Verilator build per integer spec and lane count);
* ``quickspike generate`` and ``quickspike cosim``, including a refused bundle and a
  forced mismatch (message, exit status, waveform).

Builds are cached by content hash; the first run pays for about ten of them, built
two at a time by :func:`quickspike.cosim.engines.prebuild`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from quickspike.cli import main
from quickspike.cosim import engines
from quickspike.cosim.compare import Expected, Scoreboard, compare_all, expected_from_golden, first_mismatch
from quickspike.cosim.engines import Job, Stalls, run_jobs
from quickspike.hw.config import HwConfig
from quickspike.hw.protocol import SampleResult
from quickspike.sw.bundle import save_bundle
from quickspike.sw.golden import encode_pixels, layer_current, run_golden
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import IntSpec, LayerSpec, NeuronSpec

# ---------------------------------------------------------------- networks


def _neuron(rng, spec: IntSpec, w: np.ndarray, mult: int, spiking: bool) -> NeuronSpec:
    """Neuron parameters scaled to the layer's typical current, so that it spikes."""
    lo, hi = spec.membrane_range
    typical = float(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).mean()) * mult * 0.4
    threshold = int(np.clip(rng.uniform(0.1, 1.0) * typical, 1, hi))
    v_init = int(rng.choice([0, int(rng.integers(lo // 2, hi // 2 + 1)), min(threshold + 1, hi), lo]))
    return NeuronSpec(threshold=threshold, v_init=v_init, leak_shift=int(rng.integers(0, 4)),
                      reset=str(rng.choice(["subtract", "zero"])), spiking=spiking)


def _weights(rng, spec: IntSpec, shape, bias: float) -> np.ndarray:
    lo, hi = spec.weight_range
    w = rng.integers(lo, hi + 1, size=shape)
    # a bias drives membranes into a rail (saturation)
    return np.clip(w + int(bias * hi), lo, hi).astype(np.int64)


def _fit_acc(w: np.ndarray, mult: int, spec: IntSpec) -> np.ndarray:
    """Halve the weights until no current can overflow the accumulator."""
    _, acc_max = spec.acc_range
    while int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max()) * mult > acc_max:
        w = w // 2
    return w


def random_net(seed: int, spec: IntSpec, lanes: int) -> IntNetwork:
    """A random dense or conv(+conv)(+pool) network with saturation-prone parameters."""
    rng = np.random.default_rng(seed)
    layers, weights = [], []
    saturate = bool(rng.random() < 0.7)

    def add(kind, in_shape, out_shape, wshape, bias, spiking, pool=1):
        mult = spec.input_max if not layers else (layers[-1].pool ** 2 if layers[-1].kind == "conv" else 1)
        w = _fit_acc(_weights(rng, spec, wshape, bias), mult, spec)
        layers.append(LayerSpec(kind, in_shape, out_shape, _neuron(rng, spec, w, mult, spiking), pool=pool))
        weights.append(w)
        return layers[-1].pooled_shape

    if rng.random() < 0.5:
        shape = (int(rng.integers(3, 40)),)
        for _ in range(int(rng.integers(1, 3))):
            n = int(rng.integers(2, 2 * lanes + 9))
            shape = add("dense", shape, (n,), (n, shape[0]), 0.3 * rng.random(), True)
    else:
        shape = (int(rng.integers(1, 3)), int(rng.integers(3, 8)), int(rng.integers(3, 8)))
        n_conv = int(rng.integers(1, 3))
        for j in range(n_conv):
            k = int(rng.integers(1, min(lanes + 3, 13)))
            pool = int(rng.integers(1, min(3, shape[1], shape[2]) + 1)) if j == n_conv - 1 else 1
            shape = add("conv", shape, (k, *shape[1:]), (k, shape[0], 3, 3), 0.3 * rng.random(), True, pool)
    n_out, n_in = int(rng.integers(2, 13)), int(np.prod(shape))
    bias = rng.uniform(0.4, 0.9) * rng.choice([-1, 1]) if saturate else 0.3 * rng.random()
    add("dense", (n_in,), (n_out,), (n_out, n_in), bias, False)
    return IntNetwork(spec, tuple(layers), tuple(weights), timesteps=int(rng.integers(1, 7))).validate()


def random_pixels(net: IntNetwork, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 256, size=(n, *net.input_shape))
    p[rng.random(p.shape) > rng.uniform(0.3, 0.95)] = 0
    return p.astype(np.uint8)


def describe(net: IntNetwork) -> str:
    parts = []
    for layer in net.layers:
        nrn = layer.neuron
        shape = "x".join(map(str, layer.out_shape))
        pool = f"/p{layer.pool}" if layer.pool > 1 else ""
        parts.append(f"{layer.kind}{shape}{pool}(th={nrn.threshold},v0={nrn.v_init},leak={nrn.leak_shift},"
                     f"{nrn.reset[0]})")
    return f"in{'x'.join(map(str, net.input_shape))} " + " ".join(parts) + f" T={net.timesteps}"


def merged_config(nets, lanes: int) -> HwConfig:
    """The smallest power-of-two configuration that fits every net (all share a spec)."""
    cfgs = [HwConfig.from_network(n, lanes) for n in nets]
    fields = ("weight_words", "neuron_words", "event_words", "max_layers", "max_inputs", "max_outputs",
              "max_map", "max_timesteps")
    return HwConfig(spec=nets[0].spec, lanes=lanes, **{f: max(getattr(c, f) for c in cfgs) for f in fields})


SPEC_A = IntSpec(weight_bits=6, input_bits=4, membrane_bits=12, acc_bits=16)


def tiny_dense() -> IntNetwork:
    rng = np.random.default_rng(7)
    lo, hi = SPEC_A.weight_range
    layers = (LayerSpec("dense", (64,), (13,), NeuronSpec(threshold=40, v_init=3, leak_shift=1)),
              LayerSpec("dense", (13,), (10,), NeuronSpec(threshold=1, v_init=-2, spiking=False)))
    weights = (rng.integers(lo // 2, hi, size=(13, 64)), rng.integers(lo, hi + 1, size=(10, 13)))
    return IntNetwork(SPEC_A, layers, weights, timesteps=4).validate()


def tiny_conv() -> IntNetwork:
    rng = np.random.default_rng(8)
    lo, hi = SPEC_A.weight_range
    layers = (LayerSpec("conv", (1, 8, 8), (3, 8, 8), NeuronSpec(threshold=25, v_init=2, reset="zero"), pool=2),
              LayerSpec("dense", (48,), (10,), NeuronSpec(threshold=1, v_init=0, leak_shift=2, spiking=False)))
    weights = (rng.integers(lo // 2, hi, size=(3, 1, 3, 3)), rng.integers(lo, hi + 1, size=(10, 48)))
    return IntNetwork(SPEC_A, layers, weights, timesteps=3).validate()


#: Explicit depths of the shared design: the CLI test passes them too, so it reuses the build.
SHARED_DEPTHS = {"weight_words": 512, "neuron_words": 128, "event_words": 64, "max_inputs": 128,
                 "max_layers": 4, "max_map": 8}
SHARED = HwConfig.from_network(tiny_conv(), 4, **SHARED_DEPTHS)

#: (spec, lanes) of the random groups; lanes 4 reuses the shared design.
GROUPS = {
    1: IntSpec(weight_bits=6, input_bits=4, membrane_bits=10, acc_bits=18),
    2: IntSpec(weight_bits=4, input_bits=3, membrane_bits=8, acc_bits=16),
    3: IntSpec(weight_bits=8, input_bits=8, membrane_bits=12, acc_bits=24),
    4: SPEC_A,
    8: IntSpec(weight_bits=5, input_bits=6, membrane_bits=9, acc_bits=20),
    16: IntSpec(weight_bits=7, input_bits=2, membrane_bits=16, acc_bits=20),
    32: IntSpec(weight_bits=3, input_bits=5, membrane_bits=6, acc_bits=14),
}
NETS_PER_GROUP = 5
SAMPLES_PER_NET = 3


def group_nets(lanes: int) -> list[IntNetwork]:
    spec = GROUPS[lanes]
    nets = [random_net(1000 * lanes + i, spec, lanes) for i in range(NETS_PER_GROUP)]
    if lanes == 4:
        fit = [n for n in (random_net(1000 * lanes + i, spec, lanes) for i in range(40))
               if _fits(n, SHARED)]
        nets = fit[:NETS_PER_GROUP]
    return nets


def _fits(net, hwcfg) -> bool:
    from quickspike.errors import FitError
    from quickspike.hw.fit import check_fits
    try:
        check_fits(net, hwcfg)
        return True
    except FitError:
        return False


def group_config(lanes: int) -> HwConfig:
    return SHARED if lanes == 4 else merged_config(group_nets(lanes), lanes)


@pytest.fixture(scope="module")
def built():
    """Build every design this file needs, two at a time (cache hits cost nothing)."""
    items = [(SHARED, "pyverilator"), (SHARED, "cocotb")]
    items += [(group_config(lanes), "pyverilator") for lanes in GROUPS if lanes != 4]
    engines.prebuild(items)
    return True


def assert_exact(results, golden, what: str) -> None:
    board = compare_all(results, expected_from_golden(golden))
    assert board.ok, f"{what}:\n{board.summary()}"
    for r in results:
        assert r.cycles > 0


# ---------------------------------------------------------------- compare (no simulator)


def test_first_mismatch_names_sample_timestep_neuron():
    exp = Expected([[1, 2, 3], [4, 5, 6]], predicted=2, timesteps=2)
    assert first_mismatch(0, SampleResult([[1, 2, 3], [4, 5, 6]], 2, 2, 99), exp) is None
    bad = first_mismatch(7, SampleResult([[1, 2, 3], [4, -5, 7]], 2, 2, 99), exp)
    assert (bad.sample, bad.timestep, bad.neuron, bad.got, bad.expected) == (7, 1, 1, -5, 5)
    assert str(bad) == "sample 7, timestep 1, neuron 1: output potential RTL -5 != golden 5"
    assert "class RTL 0 != golden 2" in str(first_mismatch(0, SampleResult([[1, 2, 3], [4, 5, 6]], 0, 2, 9), exp))
    longer = SampleResult([[1, 2, 3], [4, 5, 6], [0, 0, 0]], 2, 3, 9)
    assert "timesteps run RTL 3" in str(first_mismatch(0, longer, exp))
    assert "no result" in str(first_mismatch(3, None, exp))
    board = Scoreboard([exp, exp], offset=10)
    board.check(0, SampleResult([[1, 2, 3], [4, 5, 6]], 2, 2, 1))
    board.check(1, SampleResult([[1, 2, 4], [4, 5, 6]], 2, 2, 1))
    assert not board.ok and board.summary().splitlines() == [
        "sample 11, timestep 0, neuron 2: output potential RTL 4 != golden 3", "1 of 2 samples mismatch"]


def test_random_nets_are_valid_and_saturate():
    nets = [n for lanes in GROUPS for n in group_nets(lanes)]
    assert len(nets) >= 30
    kinds = {n.layers[0].kind for n in nets}
    assert kinds == {"dense", "conv"}
    assert any(layer.pool > 1 for n in nets for layer in n.layers)
    assert {n.layers[0].neuron.reset for n in nets} == {"subtract", "zero"}
    assert {lanes for lanes in GROUPS} == {1, 2, 3, 4, 8, 16, 32}
    saturated = 0
    for i, n in enumerate(nets):
        x = random_pixels(n, SAMPLES_PER_NET, i)
        g = run_golden(n, x)
        lo, hi = n.spec.membrane_range
        current = layer_current(n.layers[0], torch.as_tensor(n.weights[0], dtype=torch.float64),
                                encode_pixels(x, n.spec).reshape(len(x), *n.input_shape))
        rails = int(g.potentials.max()) == hi or int(g.potentials.min()) == lo
        saturated += rails or int(current.max()) > hi or int(current.min()) < lo
    assert saturated >= 2 * len(nets) // 3, f"only {saturated} of {len(nets)} nets saturate a membrane"


# ---------------------------------------------------------------- engines


@pytest.fixture(scope="module")
def tiny_jobs():
    dense, conv = tiny_dense(), tiny_conv()
    return [Job(dense, random_pixels(dense, 6, 1)), Job(conv, random_pixels(conv, 5, 2))]


@pytest.fixture(scope="module")
def pyverilator_tiny(built, tiny_jobs):
    return run_jobs(SHARED, tiny_jobs, "pyverilator")


@pytest.fixture(scope="module")
def cocotb_tiny(built, tiny_jobs, tmp_path_factory):
    expected = [expected_from_golden(run_golden(j.net, j.pixels)) for j in tiny_jobs]
    return run_jobs(SHARED, tiny_jobs, "cocotb", expected=expected, test_dir=tmp_path_factory.mktemp("cocotb"))


@pytest.mark.parametrize("engine", ["pyverilator", "cocotb"])
def test_tiny_dense_and_conv_bit_exact(engine, tiny_jobs, pyverilator_tiny, cocotb_tiny):
    runs = pyverilator_tiny if engine == "pyverilator" else cocotb_tiny
    for job, run in zip(tiny_jobs, runs):
        g = run_golden(job.net, job.pixels)
        assert int(g.spike_counts.sum()) > 0, "the test net must spike"
        assert run.samples == len(job.pixels)
        assert_exact(run.results, g, f"{engine} {describe(job.net)}")
    if engine == "cocotb":
        assert runs[0].extra["tb_failures"] == [] and runs[0].extra["tb_mismatches"] == []


def test_engines_agree_word_for_word(pyverilator_tiny, cocotb_tiny):
    for a, b in zip(pyverilator_tiny, cocotb_tiny):
        assert a.words == b.words
        assert [r.cycles for r in a.results] == [r.cycles for r in b.results]


def test_cocotb_random_stalls(built, tiny_jobs, cocotb_tiny, tmp_path):
    stalls = Stalls(valid=0.35, ready=0.45, max_cycles=4, seed=3)
    runs = run_jobs(SHARED, tiny_jobs, "cocotb", stalls=stalls, test_dir=tmp_path)
    for job, run, plain in zip(tiny_jobs, runs, cocotb_tiny):
        assert_exact(run.results, run_golden(job.net, job.pixels), f"stalled {describe(job.net)}")
        for r, p in zip(run.results, plain.results):
            assert r.potentials == p.potentials
    # the stalls really happened: ready stalls stretch the result phase of every sample
    def cycles(rs):
        return sum(r.cycles for run in rs for r in run.results)
    assert cycles(runs) > cycles(cocotb_tiny)


def test_cocotb_scoreboard_fails_the_test_on_a_mismatch(built, tiny_jobs, tmp_path):
    job = tiny_jobs[0]
    expected = expected_from_golden(run_golden(job.net, job.pixels[:2]))
    wrong = [expected[0], Expected([row[:] for row in expected[1].potentials], expected[1].predicted,
                                   expected[1].timesteps)]
    wrong[1].potentials[1][4] += 1
    run = run_jobs(SHARED, [Job(job.net, job.pixels[:2])], "cocotb", expected=[wrong], test_dir=tmp_path)[0]
    assert run.extra["tb_failures"] == ["run_jobs"]
    assert [m["message"] for m in run.extra["tb_mismatches"]] == [
        f"sample 1, timestep 1, neuron 4: output potential RTL {expected[1].potentials[1][4]} "
        f"!= golden {expected[1].potentials[1][4] + 1}"]


@pytest.mark.parametrize("lanes", sorted(GROUPS))
def test_random_configurations_bit_exact(built, lanes):
    nets = group_nets(lanes)
    assert len(nets) == NETS_PER_GROUP
    jobs = [Job(net, random_pixels(net, SAMPLES_PER_NET, seed=lanes * 100 + i)) for i, net in enumerate(nets)]
    runs = run_jobs(group_config(lanes), jobs, "pyverilator")     # one design instance, reloaded per net
    failures = []
    for i, (job, run) in enumerate(zip(jobs, runs)):
        board = compare_all(run.results, expected_from_golden(run_golden(job.net, job.pixels)))
        if not board.ok:
            failures.append(f"net {i} [{describe(job.net)}] {job.net.spec}: {board.mismatches[0]}")
    assert not failures, f"lanes={lanes}:\n" + "\n".join(failures)


def with_exit_and_compensation(net: IntNetwork, i: int, x: np.ndarray) -> IntNetwork:
    """``net`` with an exit rule (margin, softmax or none, by ``i``) that some samples meet
    early, and the IC-SNN coding compensation on every other net where the network allows it."""
    import dataclasses

    from quickspike.errors import SpecError
    from quickspike.sw.spec import EXP_TABLE, CompensationSpec, ExitSpec

    rng = np.random.default_rng(i)
    if i % 2 == 0 and len(net.layers) >= 2 and net.layers[-1].kind == "dense":
        comp = CompensationSpec(enabled=True, frac_bits=int(rng.integers(1, 5)), mul=int(rng.integers(1, 1 << 12)),
                                shift=int(rng.integers(4, 14)))
        try:
            net = dataclasses.replace(net, compensation=comp).validate()
        except SpecError:
            pass
    pots = run_golden(net, x).potentials
    top2 = pots.topk(2, dim=-1).values if pots.shape[-1] >= 2 else None
    rule = ("margin", "softmax", "none")[i % 3]
    if rule == "margin" and top2 is not None:
        margins = (top2[..., 0] - top2[..., 1]).reshape(-1).double()
        exit = ExitSpec("margin", threshold=int(margins.quantile(float(rng.uniform(0.3, 0.8)))))
    elif rule == "softmax":
        exit = ExitSpec("softmax", threshold=int(rng.integers(EXP_TABLE[0], 2 * EXP_TABLE[0] + 1)),
                        shift=int(rng.integers(0, 4)))
    else:
        exit = ExitSpec()
    return dataclasses.replace(net, exit=exit).validate()


@pytest.mark.parametrize("lanes", [1, 3, 4, 16])
def test_random_configurations_with_exit_and_compensation(built, lanes):
    from quickspike.errors import FitError
    from quickspike.hw.fit import check_fits

    hwcfg = group_config(lanes)
    jobs = []
    for i, net in enumerate(group_nets(lanes)):
        x = random_pixels(net, 4, seed=lanes * 10 + i)
        net = with_exit_and_compensation(net, i, x)
        try:
            check_fits(net, hwcfg)
        except FitError:
            continue
        jobs.append(Job(net, x))
    assert len(jobs) >= 3
    runs = run_jobs(hwcfg, jobs, "pyverilator")
    failures, early, compensated = [], 0, 0
    for i, (job, run) in enumerate(zip(jobs, runs)):
        g = run_golden(job.net, job.pixels)
        early += int((g.timesteps < job.net.timesteps).sum())
        compensated += job.net.compensation.enabled
        board = compare_all(run.results, expected_from_golden(g, readout=job.net.compensation.enabled))
        if not board.ok:
            failures.append(f"net {i} [{describe(job.net)}] exit {job.net.exit} {job.net.compensation}: "
                            f"{board.mismatches[0]}")
    assert not failures, f"lanes={lanes}:\n" + "\n".join(failures)
    assert early >= 3 and compensated >= 1, (early, compensated)


# ---------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def conv_bundle(tmp_path_factory) -> Path:
    return save_bundle(tiny_conv(), tmp_path_factory.mktemp("bundle") / "tiny_conv.qsb")


def _depth_args() -> list[str]:
    return [a for k, v in SHARED_DEPTHS.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def test_cli_generate_writes_verilog_and_manifest(conv_bundle, tmp_path, capsys):
    assert main(["generate", str(conv_bundle), "--out", str(tmp_path / "gen"), "--lanes", "4", *_depth_args()]) == 0
    verilog = (tmp_path / "gen" / "quickspike_top.v").read_text()
    assert verilog == engines.design(SHARED)
    manifest = json.loads((tmp_path / "gen" / "manifest.json").read_text())
    assert HwConfig.from_dict(manifest["hwcfg"]) == SHARED
    assert manifest["limits"]["weight_words"] == 512 and manifest["bundle"]["uses"]["weight_words"] <= 512
    assert {"cmd__payload", "res__payload", "busy"} <= set(manifest["ports"])
    assert "quickspike_top.v" in capsys.readouterr().out


def test_cli_refuses_a_bundle_too_large(conv_bundle, tmp_path, capsys):
    assert main(["generate", str(conv_bundle), "--out", str(tmp_path / "gen"), "--lanes", "4",
                 "--neuron-words", "16"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("quickspike: error:") and "neuron_words = 16" in err
    assert not (tmp_path / "gen").exists()
    assert main(["cosim", str(conv_bundle), "--dataset", "digits", "--samples", "2", "--lanes", "4",
                 "--weight-words", "8", "--engine", "pyverilator"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weight_words = 8" in err
    assert main(["generate", str(conv_bundle), "--out", str(tmp_path / "gen"), "--lanes", "65"]) == 2
    assert main(["cosim", str(conv_bundle), "--dataset", "digits", "--engine", "icarus"]) == 2
    assert "unknown engine 'icarus'" in capsys.readouterr().err


def test_cli_cosim_pyverilator(built, conv_bundle, tmp_path, capsys):
    out = tmp_path / "cosim.json"
    rc = main(["cosim", str(conv_bundle), "--dataset", "digits", "--samples", "8", "--engine", "pyverilator",
               "--lanes", "4", *_depth_args(), "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    fig = json.loads(out.read_text())
    for key in ("samples", "mismatches", "accuracy_rtl", "accuracy_golden", "avg_timesteps", "cycles_per_inference",
                "lower_bound_cycles", "samples_per_second", "engine", "lanes"):
        assert key in fig, key
    assert (fig["samples"], fig["mismatches"], fig["engine"], fig["lanes"]) == (8, 0, "pyverilator", 4)
    assert fig["accuracy_rtl"] == fig["accuracy_golden"] and fig["avg_timesteps"] == 3
    assert fig["build_cache_hit"] is True
    assert fig["cycles_per_inference"] >= fig["lower_bound_cycles"] > 0
    assert "mismatches" in captured.out and "8/8 samples" in captured.err


def test_cli_cosim_mismatch_names_it_and_writes_waves(built, conv_bundle, tmp_path, capsys, monkeypatch):
    import quickspike.sw.golden as golden_module

    real = golden_module.run_golden

    def skewed(net, pixels, timesteps=None, **kw):
        g = real(net, pixels, timesteps, **kw)
        g.potentials[1, 2, 3] += 1      # sample 1, timestep 2, neuron 3
        return g

    monkeypatch.setattr(golden_module, "run_golden", skewed)
    out = tmp_path / "bad.json"
    rc = main(["cosim", str(conv_bundle), "--dataset", "digits", "--samples", "3", "--engine", "pyverilator",
               "--lanes", "4", *_depth_args(), "--json", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "mismatch: sample 1, timestep 2, neuron 3: output potential RTL" in err
    assert "1 of 3 samples mismatch" in err
    fig = json.loads(out.read_text())
    assert fig["mismatches"] == 1 and fig["first_mismatches"][0]["timestep"] == 2
    waves = Path(fig["waves"])
    assert waves.is_file() and waves.stat().st_size > 0 and waves.parent == tmp_path / "bad-waves"
    assert waves.suffix in (".fst", ".vcd")
