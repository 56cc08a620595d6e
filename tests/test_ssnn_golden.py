"""SSNN and event input in the spec, the network checks, bundles and the golden model.

The numbers are traced by hand from the rules in the docstring of ``sw/spec.py``.
"""

import numpy as np
import pytest
import torch

from quickspike.errors import BundleError, SpecError, UsageError
from quickspike.sw.bundle import load_bundle, save_bundle
from quickspike.sw.golden import run_golden, split_current
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import (
    EXP_TABLE, EXP_TABLE_SIZE, SPLIT_FRAC_BITS, CompensationSpec, ExitSpec, IntSpec, LayerSpec, NeuronSpec,
    StageSpec, TransformerSpec,
)

SPEC = IntSpec()


def _tt(*rows, mul=1, shift=0):
    return TransformerSpec(tuple(tuple(r) for r in rows), mul, shift)


def _hand_net(**changes) -> IntNetwork:
    """2 event inputs -> 1 spiking neuron (threshold 4) | stage 2: -> 2 outputs."""
    layers = (LayerSpec("dense", (2,), (1,), NeuronSpec(threshold=4)),
              LayerSpec("dense", (1,), (2,), NeuronSpec(spiking=False)))
    weights = (np.array([[3, 5]]), np.array([[10], [-3]]))
    fields = dict(timesteps=3, input_coding="events",
                  stages=StageSpec(steps=(3, 2), starts=(0, 1), transformers=(_tt((1, 1, 1), (0, 0, 0)),)))
    fields.update(changes)
    return IntNetwork(SPEC, layers, weights, **fields)


# ---------------------------------------------------------------- the transformer


def test_exp_table_values_used_below():
    assert EXP_TABLE[:5] == (4096, 3190, 2484, 1935, 1507)
    assert SPLIT_FRAC_BITS == 8


def test_split_by_hand():
    # m = [4, 0]: z = [4, 0, 0]; d = [0, 4, 4]; e = [4096, 1507, 1507]; S = 7110
    # p = [4096·256 // 7110, 1507·256 // 7110, ...] = [147, 54, 54]
    p = _tt((1, 0), (0, 1), (0, 0)).split(torch.tensor([[4, 0]]))
    assert p.tolist() == [[147, 54, 54]]


def test_split_mul_and_arithmetic_shift():
    # z = ((-1·3) · 5) >> 2 = -15 >> 2 = -4 (floor), and 0: d = [4, 0]
    p = _tt((-1,), (0,), mul=5, shift=2).split(torch.tensor([[3]]))
    assert p.tolist() == [[1507 * 256 // (1507 + 4096), 4096 * 256 // (1507 + 4096)]]


def test_split_saturates_the_table_index():
    # a difference of 100 clamps to the last entry, which is 0: probability zero
    assert EXP_TABLE[EXP_TABLE_SIZE - 1] == 0
    p = _tt((1,), (0,)).split(torch.tensor([[100]]))
    assert p.tolist() == [[256, 0]]


@pytest.mark.parametrize("steps_out", [1, 2, 3, 5])
def test_zero_weights_are_plain_averaging(steps_out):
    tt = TransformerSpec(tuple((0, 0, 0) for _ in range(steps_out)), 7, 1)
    p = tt.split(torch.tensor([[5, 9, 0], [0, 0, 0]]))
    assert p.tolist() == [[256 // steps_out] * steps_out] * 2


def test_split_current_floors_negative_currents():
    c = torch.tensor([[-5, 5, 20, -6]])
    # -5·128/256 = -2.5 -> -3; 2.5 -> 2; 20·159/256 = 12.4 -> 12; -6·96/256 = -2.25 -> -3
    assert split_current(c, torch.tensor([128])).tolist() == [[-3, 2, 10, -3]]
    assert split_current(c[:, 2:], torch.tensor([159])).tolist() == [[12, -4]]
    assert split_current(c[:, 3:], torch.tensor([96])).tolist() == [[-3]]


# ---------------------------------------------------------------- a staged network by hand


def test_staged_network_by_hand():
    net = _hand_net().validate()
    frames = np.array([[[1, 0], [0, 1], [1, 1]]], dtype=np.uint8)
    r = run_golden(net, frames)
    # stage 1 (3 steps): I = 3, 5, 8 -> v = 3; 8 fires (v 4); 12 fires (v 8): m = [0, 1, 1]
    assert r.stage_counts[0].tolist() == [[0, 1, 1]]
    # C = W1 · (0 + 1 + 1) = [20, -6]; z = [2, 0]; e = [4096, 2484]; S = 6580
    # p = [4096·256 // 6580, 2484·256 // 6580] = [159, 96]
    assert r.splits[0].tolist() == [[159, 96]]
    # stage 2 (2 steps): I = (C·159) >> 8 = [12, -4], then (C·96) >> 8 = [7, -3]
    assert r.potentials.tolist() == [[[12, -4], [19, -7]]]
    assert r.predicted.tolist() == [0] and r.timesteps.tolist() == [2]
    # the hidden layer's spikes per stage-1 timestep
    assert r.spike_counts[0, :, 0].tolist() == [0, 1, 1]
    assert net.input_steps == 3 and net.output_steps == 2 and net.average_steps == 2.5


def test_stage_first_layer_starts_from_v_init():
    base = _hand_net()
    layers = (base.layers[0], LayerSpec("dense", (1,), (2,), NeuronSpec(spiking=False, v_init=-100)))
    net = IntNetwork(SPEC, layers, base.weights, timesteps=3, input_coding="events", stages=base.stages)
    r = run_golden(net.validate(), np.array([[[1, 0], [0, 1], [1, 1]]], dtype=np.uint8))
    assert r.potentials.tolist() == [[[-88, -104], [-81, -107]]]


def test_three_stages_and_direct_coding():
    # direct pixels: the static current 2·x every step of stage 1 (3 steps)
    layers = (LayerSpec("dense", (1,), (1,), NeuronSpec(threshold=5)),
              LayerSpec("dense", (1,), (1,), NeuronSpec(threshold=1)),
              LayerSpec("dense", (1,), (1,), NeuronSpec(spiking=False)))
    weights = (np.array([[2]]), np.array([[1]]), np.array([[4]]))
    stages = StageSpec(steps=(3, 2, 1), starts=(0, 1, 2),
                       transformers=(_tt((0, 0, 0), (0, 0, 0)), _tt((0, 0))))
    net = IntNetwork(SPEC, layers, weights, timesteps=3, stages=stages).validate()
    r = run_golden(net, np.array([[3]], dtype=np.uint8))
    # stage 1: I = 6 each step, v = 6 -> fire (1); 7 -> fire (2); 8 -> fire (3): m = [1, 1, 1], C = 3
    assert r.stage_counts[0].tolist() == [[1, 1, 1]]
    assert r.splits[0].tolist() == [[128, 128]]
    # stage 2: I = (3·128) >> 8 = 1 twice: v = 1 fires, 1 fires: m = [1, 1], C = 4·2 = 8
    assert r.stage_counts[1].tolist() == [[1, 1]]
    assert r.splits[1].tolist() == [[256]]
    # stage 3: I = (8·256) >> 8 = 8
    assert r.potentials.tolist() == [[[8]]]
    assert net.average_steps == 2.0


def test_uniform_event_network_takes_one_frame_per_step():
    layers = (LayerSpec("dense", (2,), (2,), NeuronSpec(spiking=False)),)
    net = IntNetwork(SPEC, layers, (np.array([[1, 2], [3, -1]]),), timesteps=2, input_coding="events").validate()
    r = run_golden(net, np.array([[[1, 0], [1, 1]]], dtype=np.uint8))
    assert r.potentials.tolist() == [[[1, 3], [4, 5]]]
    # a different number of frames is a different run length
    r3 = run_golden(net, np.array([[[1, 0], [1, 1], [0, 1]]], dtype=np.uint8), timesteps=3)
    assert r3.potentials[0, -1].tolist() == [6, 4]


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("frames, expected", [
    (np.zeros((1, 2, 2), np.uint8), r"the network expects 3 frames of \(2,\)"),
    (np.zeros((1, 3, 3), np.uint8), r"the network expects 3 frames of \(2,\)"),
    (np.full((1, 3, 2), 2, np.uint8), "0 or 1"),
])
def test_bad_event_input(frames, expected):
    with pytest.raises(UsageError, match=expected):
        run_golden(_hand_net().validate(), frames)


def test_staged_network_refuses_other_timesteps():
    with pytest.raises(UsageError, match=r"runs its stages \[3, 2\]"):
        run_golden(_hand_net().validate(), np.zeros((1, 3, 2), np.uint8), timesteps=5)


@pytest.mark.parametrize("stages, expected", [
    (StageSpec(steps=(3,), starts=(0,), transformers=()), "at least two stages"),
    (StageSpec(steps=(3, 3), starts=(0, 1), transformers=(_tt((0, 0, 0), (0, 0, 0), (0, 0, 0)),)), "shrink strictly"),
    (StageSpec(steps=(3, 2), starts=(1, 1), transformers=(_tt((0, 0, 0), (0, 0, 0)),)), "must begin at 0"),
    (StageSpec(steps=(3, 2), starts=(0, 2), transformers=(_tt((0, 0, 0), (0, 0, 0)),)), r"out of range \[0, 1\]"),
    (StageSpec(steps=(3, 2), starts=(0,), transformers=(_tt((0, 0, 0), (0, 0, 0)),)), "1 stage starts for 2 stages"),
    (StageSpec(steps=(3, 2), starts=(0, 1), transformers=()), "0 transformers for 1 stage boundaries"),
    (StageSpec(steps=(3, 2), starts=(0, 1), transformers=(_tt((0, 0), (0, 0)),)), "2x3 integer matrix"),
    (StageSpec(steps=(3, 2), starts=(0, 1), transformers=(_tt((0, 0, 128), (0, 0, 0)),)), r"\[-128, 127\]"),
    (StageSpec(steps=(3, 2), starts=(0, 1), transformers=(_tt((0, 0, 0), (0, 0, 0), mul=1 << 16),)), "mul"),
    (StageSpec(steps=(3, 0), starts=(0, 1), transformers=(_tt((0, 0, 0), (0, 0, 0)),)), r"steps\[1\] = 0"),
])
def test_bad_stages(stages, expected):
    with pytest.raises(SpecError, match=expected):
        _hand_net(stages=stages).validate()


@pytest.mark.parametrize("changes, expected", [
    ({"timesteps": 4}, "must equal the first stage's 3"),
    ({"exit": ExitSpec("margin", 5)}, "exit rule cannot be combined"),
    ({"input_coding": "rate"}, "expected one of direct, events"),
])
def test_network_level_stage_refusals(changes, expected):
    with pytest.raises(SpecError, match=expected):
        _hand_net(**changes).validate()


def test_compensation_refused_with_stages():
    base = _hand_net()
    layers = (base.layers[0], LayerSpec("dense", (1,), (2,), NeuronSpec(spiking=False)))
    net = IntNetwork(SPEC, layers, base.weights, timesteps=3, input_coding="events", stages=base.stages,
                     compensation=CompensationSpec(enabled=True, frac_bits=4, mul=1, shift=0))
    with pytest.raises(SpecError, match="compensation cannot be combined"):
        net.validate()


def test_stage_first_layer_accumulator_bound_counts_the_stage_before():
    # layer 1 sums W·s over the 3 steps of stage 1: 3 · 2000 = 6000 overflows 12 bits (max 2047)
    spec = IntSpec(weight_bits=12, input_bits=1, membrane_bits=12, acc_bits=12)
    layers = (LayerSpec("dense", (1,), (1,), NeuronSpec(threshold=1)),
              LayerSpec("dense", (1,), (1,), NeuronSpec(spiking=False)))
    stages = StageSpec(steps=(3, 2), starts=(0, 1), transformers=(_tt((0, 0, 0), (0, 0, 0)),))
    ok = IntNetwork(spec, layers, (np.array([[1]]), np.array([[600]])), timesteps=3, stages=stages)
    assert ok.validate() is ok
    bad = IntNetwork(spec, layers, (np.array([[1]]), np.array([[700]])), timesteps=3, stages=stages)
    with pytest.raises(SpecError, match="layer 1: the largest possible input current 2100 overflows"):
        bad.validate()
    # without stages the same weight is one step's current: it fits
    assert IntNetwork(spec, layers, (np.array([[1]]), np.array([[700]])), timesteps=3).validate()


def test_event_input_counts_one_per_input():
    spec = IntSpec(weight_bits=8, input_bits=8, membrane_bits=12, acc_bits=12)
    layers = (LayerSpec("dense", (20,), (1,), NeuronSpec(spiking=False)),)
    w = (np.full((1, 20), 100),)
    # 20 pixels of up to 255 overflow, 20 binary events (2000) fit
    with pytest.raises(SpecError, match="overflows"):
        IntNetwork(spec, layers, w).validate()
    assert IntNetwork(spec, layers, w, input_coding="events").validate()


# ---------------------------------------------------------------- bundles


def test_bundle_round_trip_keeps_stages_and_coding(tmp_path):
    net = _hand_net().validate()
    back = load_bundle(save_bundle(net, tmp_path / "s.qsb"))
    assert back.stages == net.stages and back.input_coding == "events"
    frames = np.array([[[1, 0], [0, 1], [1, 1]]], dtype=np.uint8)
    assert torch.equal(run_golden(back, frames).potentials, run_golden(net, frames).potentials)


def test_bundle_with_bad_stages_is_refused(tmp_path):
    import json
    import zipfile

    path = save_bundle(_hand_net().validate(), tmp_path / "s.qsb")
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(files["manifest.json"])
    manifest["stages"]["steps"] = [2, 3]
    files["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in files.items():
            zf.writestr(n, b)
    with pytest.raises(BundleError, match=r"steps = \[2, 3\] must shrink strictly"):
        load_bundle(path)


def test_older_bundles_without_the_fields_load_as_direct_single_stage(tmp_bundle_without_stages):
    net = load_bundle(tmp_bundle_without_stages)
    assert net.input_coding == "direct" and not net.staged and net.stages == StageSpec()


@pytest.fixture
def tmp_bundle_without_stages(tmp_path):
    import json
    import zipfile

    layers = (LayerSpec("dense", (2,), (2,), NeuronSpec(spiking=False)),)
    path = save_bundle(IntNetwork(SPEC, layers, (np.array([[1, 2], [3, 4]]),)), tmp_path / "old.qsb")
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(files["manifest.json"])
    del manifest["stages"], manifest["input_coding"]
    files["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in files.items():
            zf.writestr(n, b)
    return path
