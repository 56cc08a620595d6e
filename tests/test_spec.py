"""Tests for quickspike.sw.spec and IntNetwork.validate: JSON round trips and every refusal.

Each refusal is a :class:`SpecError` whose message names the offending field (and,
for values, the value and its legal range).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from quickspike.errors import SpecError, UserError
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import IntSpec, LayerSpec, NeuronSpec, dumps, leak, sat, signed_range


def one_line(message: str) -> str:
    assert message and "\n" not in message, f"not a one-line message: {message!r}"
    return message


# --------------------------------------------------------------------------- round trips


SPECS = [IntSpec(), IntSpec(weight_bits=4, input_bits=1, membrane_bits=12, acc_bits=16),
         IntSpec(weight_bits=16, input_bits=16, membrane_bits=32, acc_bits=48)]
NEURONS = [NeuronSpec(), NeuronSpec(threshold=255 * 37, v_init=-5, leak_shift=3, reset="zero", spiking=False)]
LAYERS = [
    LayerSpec("dense", (64,), (10,)),
    LayerSpec("dense", (2, 4, 4), (7,), NeuronSpec(threshold=9, leak_shift=2, spiking=False)),
    LayerSpec("conv", (1, 8, 8), (4, 8, 8), NeuronSpec(threshold=300, reset="zero"), pool=2),
    LayerSpec("conv", (3, 5, 7), (2, 5, 7), pool=4),
]


@pytest.mark.parametrize("obj", SPECS + NEURONS + LAYERS, ids=repr)
def test_json_round_trip(obj):
    text = json.dumps(obj.to_dict())
    back = type(obj).from_dict(json.loads(text))
    assert back == obj
    assert back.to_dict() == obj.to_dict()
    assert dumps(back) == dumps(obj)
    json.loads(dumps(obj))  # valid JSON


def test_layer_from_dict_turns_lists_into_tuples():
    layer = LayerSpec.from_dict({"kind": "conv", "in_shape": [1, 8, 8], "out_shape": [2, 8, 8], "pool": 2})
    assert layer.in_shape == (1, 8, 8) and layer.out_shape == (2, 8, 8)
    assert layer.neuron == NeuronSpec()
    assert layer.pooled_shape == (2, 4, 4)
    assert layer.weight_shape == (2, 1, 3, 3)


def test_defaults_and_derived_ranges():
    spec = IntSpec()
    assert (spec.weight_bits, spec.input_bits, spec.membrane_bits, spec.acc_bits) == (8, 8, 24, 32)
    assert spec.weight_range == (-128, 127)
    assert spec.membrane_range == (-(1 << 23), (1 << 23) - 1)
    assert spec.acc_range == (-(1 << 31), (1 << 31) - 1)
    assert spec.input_max == 255
    assert signed_range(4) == (-8, 7)
    assert sat(100, 8) == 100 and sat(1000, 8) == 127 and sat(-1000, 8) == -128
    assert leak(-3, 1) == -1 and leak(7, 0) == 7 and leak(8, 2) == 6


def test_spec_error_is_a_user_error_exiting_1():
    assert issubclass(SpecError, UserError)
    assert SpecError.exit_code == 1


# --------------------------------------------------------------------------- IntSpec refusals


@pytest.mark.parametrize("kwargs, expected", [
    ({"weight_bits": 1}, "IntSpec.weight_bits = 1 is out of range [2, 16]"),
    ({"weight_bits": 17}, "IntSpec.weight_bits = 17 is out of range [2, 16]"),
    ({"input_bits": 0}, "IntSpec.input_bits = 0 is out of range [1, 16]"),
    ({"input_bits": 17}, "IntSpec.input_bits = 17 is out of range [1, 16]"),
    ({"membrane_bits": 3}, "IntSpec.membrane_bits = 3 is out of range [4, 32]"),
    ({"membrane_bits": 33}, "IntSpec.membrane_bits = 33 is out of range [4, 32]"),
    ({"acc_bits": 16}, "IntSpec.acc_bits = 16 is out of range [24, 48]"),  # narrower than the membrane
    ({"acc_bits": 49}, "IntSpec.acc_bits = 49 is out of range [24, 48]"),
    ({"weight_bits": "8"}, "IntSpec.weight_bits must be an integer, not '8'"),
    ({"weight_bits": 8.0}, "IntSpec.weight_bits must be an integer, not 8.0"),
    ({"acc_bits": True}, "IntSpec.acc_bits must be an integer, not True"),
    ({"membrane_bits": None}, "IntSpec.membrane_bits must be an integer, not None"),
])
def test_int_spec_refuses_bad_widths(kwargs, expected):
    with pytest.raises(SpecError) as e:
        IntSpec(**kwargs)
    assert one_line(str(e.value)) == expected


@pytest.mark.parametrize("data, expected", [
    ({"weight_bits": 8, "bias_bits": 8}, "IntSpec has unknown field 'bias_bits'"),
    ({"weight_bits": 99}, "IntSpec.weight_bits = 99 is out of range [2, 16]"),
    ([8, 8, 24, 32], "IntSpec must be a JSON object, not list"),
    (None, "IntSpec must be a JSON object, not NoneType"),
])
def test_int_spec_from_dict_refuses(data, expected):
    with pytest.raises(SpecError) as e:
        IntSpec.from_dict(data)
    assert one_line(str(e.value)) == expected


# --------------------------------------------------------------------------- NeuronSpec refusals

SMALL = IntSpec(weight_bits=8, input_bits=8, membrane_bits=8, acc_bits=24)  # membrane [-128, 127]


@pytest.mark.parametrize("kwargs, expected", [
    ({"threshold": 0}, "N.threshold = 0 is out of range [1, 127]"),
    ({"threshold": -4}, "N.threshold = -4 is out of range [1, 127]"),
    ({"threshold": 128}, "N.threshold = 128 is out of range [1, 127]"),
    ({"threshold": 2.5}, "N.threshold must be an integer, not 2.5"),
    ({"v_init": 128}, "N.v_init = 128 is out of range [-128, 127]"),
    ({"v_init": -129}, "N.v_init = -129 is out of range [-128, 127]"),
    ({"leak_shift": -1}, "N.leak_shift = -1 is out of range [0, 7]"),
    ({"leak_shift": 8}, "N.leak_shift = 8 is out of range [0, 7]"),
    ({"reset": "hard"}, "N.reset = 'hard'; expected one of subtract, zero"),
    ({"spiking": 1}, "N.spiking must be true or false, not 1"),
])
def test_neuron_spec_refuses(kwargs, expected):
    with pytest.raises(SpecError) as e:
        NeuronSpec(**kwargs).validate(SMALL, "N")
    assert one_line(str(e.value)) == expected


def test_neuron_spec_accepts_range_ends():
    for kwargs in ({"threshold": 1}, {"threshold": 127}, {"v_init": -128}, {"v_init": 127},
                   {"leak_shift": 7}, {"reset": "zero"}, {"spiking": False}):
        NeuronSpec(**kwargs).validate(SMALL, "N")


def test_neuron_spec_default_owner_is_named():
    with pytest.raises(SpecError, match=r"^NeuronSpec\.threshold = 0 "):
        NeuronSpec(threshold=0).validate(SMALL)


@pytest.mark.parametrize("data, expected", [
    ({"threshold": 3, "tau": 2}, "NeuronSpec has unknown field 'tau'"),
    ({"threshold": 3, "reset_mode": "zero"}, "NeuronSpec has unknown field 'reset_mode'"),
    ("subtract", "NeuronSpec must be a JSON object, not str"),
])
def test_neuron_spec_from_dict_refuses(data, expected):
    with pytest.raises(SpecError) as e:
        NeuronSpec.from_dict(data)
    assert one_line(str(e.value)) == expected


# --------------------------------------------------------------------------- LayerSpec refusals


@pytest.mark.parametrize("layer, expected", [
    (LayerSpec("conv", (1, 8, 8), (2, 8, 8), kernel=5), "L.kernel = 5: only 3x3 kernels are supported"),
    (LayerSpec("conv", (1, 8, 8), (2, 8, 8), kernel=1), "L.kernel = 1: only 3x3 kernels are supported"),
    (LayerSpec("conv", (1, 3, 3), (2, 3, 3), pool=4), "L.pool = 4 is larger than the map (3, 3)"),
    (LayerSpec("conv", (1, 8, 2), (2, 8, 2), pool=3), "L.pool = 3 is larger than the map (8, 2)"),
    (LayerSpec("conv", (1, 8, 8), (2, 8, 8), pool=5), "L.pool = 5 is out of range [1, 4]"),
    (LayerSpec("conv", (1, 8, 8), (2, 8, 8), pool=0), "L.pool = 0 is out of range [1, 4]"),
    (LayerSpec("dense", (64,), (10,), pool=2), "L.pool = 2: only convolutions pool"),
    (LayerSpec("dense", (64,), (2, 5)), "L.out_shape = (2, 5): a dense layer has one output dimension"),
    (LayerSpec("lstm", (64,), (10,)), "L.kind = 'lstm'; expected one of dense, conv"),
    (LayerSpec("dense", (0,), (10,)), "L.in_shape = (0,) must be a tuple of positive integers"),
    (LayerSpec("dense", (64,), ()), "L.out_shape = () must be a tuple of positive integers"),
    (LayerSpec("dense", (64,), (True,)), "L.out_shape = (True,) must be a tuple of positive integers"),
    (LayerSpec("conv", (64,), (2, 8, 8)), "L: a conv layer needs (C, H, W) shapes, got (64,) -> (2, 8, 8)"),
    (LayerSpec("conv", (1, 8, 8), (2, 4, 4)), "L: a conv layer keeps H and W, got (1, 8, 8) -> (2, 4, 4)"),
    (LayerSpec("dense", (64,), (10,), NeuronSpec(threshold=0)), "L.neuron.threshold = 0 is out of range [1, 127]"),
])
def test_layer_spec_refuses(layer, expected):
    with pytest.raises(SpecError) as e:
        layer.validate(SMALL, "L")
    assert one_line(str(e.value)) == expected


@pytest.mark.parametrize("data, expected", [
    ({"kind": "dense", "out_shape": [10]}, "layer is missing field 'in_shape'"),
    ({"kind": "dense", "in_shape": [64]}, "layer is missing field 'out_shape'"),
    ({"kind": "dense", "in_shape": 64, "out_shape": [10]}, "layer shapes must be lists of integers"),
    ({"kind": "dense", "in_shape": [64], "out_shape": [10], "stride": 2}, "LayerSpec has unknown field 'stride'"),
    ({"kind": "dense", "in_shape": [64], "out_shape": [10], "neuron": {"gain": 2}},
     "NeuronSpec has unknown field 'gain'"),
    ({"in_shape": [64], "out_shape": [10]}, "LayerSpec: "),  # kind is required (message from the constructor)
    ([1, 2], "a layer must be a JSON object, not list"),
])
def test_layer_spec_from_dict_refuses(data, expected):
    with pytest.raises(SpecError) as e:
        LayerSpec.from_dict(data)
    assert one_line(str(e.value)).startswith(expected)
    if expected == "LayerSpec: ":
        assert "kind" in str(e.value)


# --------------------------------------------------------------------------- IntNetwork.validate


def rand_w(rng: np.random.Generator, shape, lo=-128, hi=127) -> np.ndarray:
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def small_net(**changes) -> IntNetwork:
    """conv (1,8,8)->(2,8,8) pool 2 -> dense 32->5 -> dense 5->3 (non-spiking output)."""
    rng = np.random.default_rng(0)
    spec = IntSpec()
    layers = [
        LayerSpec("conv", (1, 8, 8), (2, 8, 8), NeuronSpec(threshold=255 * 40, leak_shift=2), pool=2),
        LayerSpec("dense", (2, 4, 4), (5,), NeuronSpec(threshold=60, leak_shift=1)),
        LayerSpec("dense", (5,), (3,), NeuronSpec(threshold=1, spiking=False)),
    ]
    weights = [rand_w(rng, layer.weight_shape) for layer in layers]
    fields = {"spec": spec, "layers": tuple(layers), "weights": tuple(weights), "timesteps": 4, "meta": {}}
    fields.update(changes)
    return IntNetwork(**fields)


def refuse(net: IntNetwork) -> str:
    with pytest.raises(SpecError) as e:
        net.validate()
    return one_line(str(e.value))


def test_small_net_is_valid():
    net = small_net()
    assert net.validate() is net
    assert net.input_shape == (1, 8, 8)
    assert net.num_classes == 3
    assert [net.input_multiplicity(i) for i in range(3)] == [255, 4, 1]


def test_conv_shape_chaining_uses_the_pooled_shape():
    net = small_net()
    layers = list(net.layers)
    # a second conv that expects the unpooled map
    layers[1] = LayerSpec("conv", (2, 8, 8), (2, 8, 8), NeuronSpec(threshold=5))
    weights = list(net.weights)
    weights[1] = np.ones((2, 2, 3, 3), dtype=np.int64)
    msg = refuse(small_net(layers=tuple(layers), weights=tuple(weights)))
    assert msg == "layer 1.in_shape = (2, 8, 8) does not match the (2, 4, 4) before it"


def test_dense_shape_chaining():
    net = small_net()
    layers = list(net.layers)
    layers[2] = LayerSpec("dense", (6,), (3,), NeuronSpec(spiking=False))
    weights = list(net.weights)
    weights[2] = np.ones((3, 6), dtype=np.int64)
    msg = refuse(small_net(layers=tuple(layers), weights=tuple(weights)))
    assert msg == "layer 2 takes 6 inputs but the layer before gives 5"


def test_dense_after_unpooled_size_is_refused():
    net = small_net()
    layers = list(net.layers)
    layers[1] = LayerSpec("dense", (128,), (5,), NeuronSpec(threshold=60))  # 2*8*8, ignoring the pool
    weights = list(net.weights)
    weights[1] = np.ones((5, 128), dtype=np.int64)
    assert refuse(small_net(layers=tuple(layers), weights=tuple(weights))) == \
        "layer 1 takes 128 inputs but the layer before gives 32"


@pytest.mark.parametrize("bad", [200, 128, -129, -1000])
def test_weight_out_of_range_names_value_and_width(bad):
    net = small_net()
    weights = [w.copy() for w in net.weights]
    weights[1][3, 7] = bad
    msg = refuse(small_net(weights=tuple(weights)))
    assert msg == f"layer 1: weight {bad} does not fit 8 bits [-128, 127]"


def test_weight_range_ends_are_accepted():
    net = small_net()
    weights = [w.copy() for w in net.weights]
    weights[2][0, 0], weights[2][1, 1] = -128, 127
    small_net(weights=tuple(weights)).validate()


def test_weight_range_follows_weight_bits():
    net = small_net()
    spec = IntSpec(weight_bits=4)
    weights = tuple(np.clip(w, -8, 7) for w in net.weights)
    small_net(spec=spec, weights=weights).validate()
    weights = list(weights)
    weights[0] = weights[0].copy()
    weights[0][0, 0, 1, 1] = 8
    assert refuse(small_net(spec=spec, weights=tuple(weights))) == "layer 0: weight 8 does not fit 4 bits [-8, 7]"


@pytest.mark.parametrize("shape", [(5, 33), (32, 5), (5,), (5, 2, 4, 4)])
def test_wrong_weight_shape(shape):
    weights = list(small_net().weights)
    weights[1] = np.zeros(shape, dtype=np.int64)
    assert refuse(small_net(weights=tuple(weights))) == f"layer 1: weights have shape {shape}, expected (5, 32)"


def test_float_weights_are_refused():
    weights = list(small_net().weights)
    weights[2] = weights[2].astype(np.float64)
    assert refuse(small_net(weights=tuple(weights))) == "layer 2: weights must be an integer array"


def test_output_layer_must_be_non_spiking():
    layers = list(small_net().layers)
    layers[2] = LayerSpec("dense", (5,), (3,), NeuronSpec(threshold=1, spiking=True))
    assert refuse(small_net(layers=tuple(layers))) == "layer 2: the output layer must be non-spiking"


def test_hidden_layers_must_spike():
    layers = list(small_net().layers)
    layers[1] = LayerSpec("dense", (2, 4, 4), (5,), NeuronSpec(threshold=60, spiking=False))
    assert refuse(small_net(layers=tuple(layers))) == "layer 1: hidden layers must spike"


def test_network_level_refusals():
    assert refuse(small_net(layers=(), weights=())) == "the network has no layers"
    assert refuse(small_net(weights=small_net().weights[:2])) == "2 weight arrays for 3 layers"
    for t in (0, 1025, 2.0, True, None):
        assert refuse(small_net(timesteps=t)) == f"timesteps = {t!r} must be an integer in [1, 1024]"
    small_net(timesteps=1).validate()
    small_net(timesteps=1024).validate()


def test_layer_errors_are_named_by_index():
    layers = list(small_net().layers)
    layers[1] = LayerSpec("dense", (2, 4, 4), (5,), NeuronSpec(threshold=60, reset="hard"))
    assert refuse(small_net(layers=tuple(layers))) == "layer 1.neuron.reset = 'hard'; expected one of subtract, zero"


# --- accumulator overflow: the worst-case |current| must fit acc_bits


def acc_net(first_weights: list[int], input_bits: int = 1) -> IntNetwork:
    """dense n->1 spiking, then dense 1->1 output; 16-bit weights, 16-bit accumulator."""
    spec = IntSpec(weight_bits=16, input_bits=input_bits, membrane_bits=16, acc_bits=16)
    layers = (LayerSpec("dense", (len(first_weights),), (1,), NeuronSpec(threshold=100)),
              LayerSpec("dense", (1,), (1,), NeuronSpec(spiking=False)))
    weights = (np.array([first_weights], dtype=np.int64), np.array([[1]], dtype=np.int64))
    return IntNetwork(spec, layers, weights, timesteps=2)


def test_accumulator_bound_is_exact():
    acc_net([32767]).validate()  # exactly the largest 16-bit value
    acc_net([30000, -2767]).validate()  # |w| summed: 32767
    msg = refuse(acc_net([32767, 1]))
    assert msg == "layer 0: the largest possible input current 32768 overflows the 16-bit accumulator (max 32767)"
    assert "accumulator" in refuse(acc_net([30000, -2768]))  # negative weights count by magnitude


def test_accumulator_counts_the_pixel_range():
    # 8-bit pixels: one weight of 129 can bring 129 * 255 = 32895 > 32767
    acc_net([128], input_bits=8).validate()  # 128 * 255 = 32640
    msg = refuse(acc_net([129], input_bits=8))
    assert "32895" in msg and "16-bit accumulator" in msg


def test_accumulator_counts_pooled_spikes():
    """After a 2x2 sum-pool an input carries up to 4 events per timestep."""
    spec = IntSpec(weight_bits=16, input_bits=1, membrane_bits=16, acc_bits=16)

    def net(w: int) -> IntNetwork:
        layers = (LayerSpec("conv", (1, 4, 4), (1, 4, 4), NeuronSpec(threshold=3), pool=2),
                  LayerSpec("dense", (1, 2, 2), (2,), NeuronSpec(threshold=3)),
                  LayerSpec("dense", (2,), (2,), NeuronSpec(spiking=False)))
        weights = (np.ones((1, 1, 3, 3), dtype=np.int64),
                   np.array([[w, 0, 0, 0], [1, 1, 1, 1]], dtype=np.int64),
                   np.ones((2, 2), dtype=np.int64))
        return IntNetwork(spec, layers, weights, timesteps=2)

    net(8191).validate()  # 8191 * 4 = 32764
    msg = refuse(net(8192))  # 8192 * 4 = 32768
    assert msg == "layer 1: the largest possible input current 32768 overflows the 16-bit accumulator (max 32767)"


def test_realistic_overflow_with_default_widths():
    """A wide dense layer of maximal 8-bit weights overflows a narrowed accumulator."""
    spec = IntSpec(weight_bits=8, input_bits=8, membrane_bits=24, acc_bits=24)
    n = 300  # 300 * 127 * 255 = 9,715,500 > 2**23 - 1
    layers = (LayerSpec("dense", (n,), (2,), NeuronSpec(threshold=1000)),
              LayerSpec("dense", (2,), (2,), NeuronSpec(spiking=False)))
    weights = (np.full((2, n), 127, dtype=np.int64), np.ones((2, 2), dtype=np.int64))
    msg = refuse(IntNetwork(spec, layers, weights))
    assert "accumulator" in msg and "9715500" in msg and "24-bit" in msg
