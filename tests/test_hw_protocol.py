"""Pure-Python parts of hw/: HwConfig, layout, the word protocol, check_fits, the lower bound,
and the generated Verilog (elaborates; builds under Verilator when it is installed)."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from quickspike.errors import FitError
from quickspike.hw import protocol as P
from quickspike.hw.config import HwConfig
from quickspike.hw.fit import check_fits
from quickspike.hw.generate import TOP_NAME, generate_verilog, manifest_json
from quickspike.hw.layout import network_layout, weight_rows
from quickspike.hw.perf import lower_bound_cycles
from quickspike.hw.testnets import conv_net, dense_net, pixels
from quickspike.sw.golden import encode_pixels, run_golden
from quickspike.sw.spec import IntSpec


def test_hwconfig_json_round_trip():
    cfg = HwConfig(spec=IntSpec(weight_bits=4, membrane_bits=16, acc_bits=20), lanes=3)
    assert HwConfig.loads(cfg.dumps()) == cfg
    assert HwConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("kw,exc", [
    ({"lanes": 0}, ValueError), ({"lanes": 2.0}, TypeError), ({"weight_words": 0}, ValueError),
    ({"max_map": 1000}, ValueError), ({"spec": "8bit"}, TypeError), ({"max_layers": True}, TypeError),
])
def test_hwconfig_bad_parameters_name_the_value(kw, exc):
    with pytest.raises(exc, match=list(kw)[0]):
        HwConfig(**kw)


def test_from_network_fits_and_rounds_to_powers_of_two():
    net = conv_net()
    cfg = HwConfig.from_network(net, lanes=3)
    check_fits(net, cfg)
    for name in ("weight_words", "neuron_words", "event_words", "max_inputs", "max_outputs"):
        v = getattr(cfg, name)
        assert v & (v - 1) == 0, name


def test_weight_rows_layout():
    net = dense_net(n_in=5, n_out=5)
    rows = weight_rows(net, 1, lanes=3)          # 7 inputs x ceil(5/3)=2 words
    w = net.weights[1]
    assert rows.shape == (7 * 2, 3)
    for r in range(7):
        for n in range(5):
            assert rows[r * 2 + n // 3, n % 3] == w[n, r]
        assert rows[r * 2 + 1, 2] == 0           # padding lane
    cnet = conv_net(C=2, K=5)
    crow = weight_rows(cnet, 0, lanes=4)
    cw = cnet.weights[0]
    assert crow[(1 * 9 + 2 * 3 + 0) * 2 + 1, 0] == cw[4, 1, 2, 0]


@pytest.mark.parametrize("field,value,limit", [
    ("max_layers", 2, None), ("weight_words", 8, None), ("neuron_words", 1, None),
    ("event_words", 1, None), ("max_inputs", 4, None), ("max_outputs", 2, None),
    ("max_timesteps", 2, None),
])
def test_check_fits_refuses_with_both_numbers(field, value, limit):
    net = conv_net() if field != "max_layers" else conv_net(conv2=True, pool=1)
    cfg = HwConfig.from_network(net, lanes=2, **{field: value})
    with pytest.raises(FitError, match=field) as e:
        check_fits(net, cfg)
    assert str(value) in str(e.value) and "\n" not in str(e.value)


def test_check_fits_refuses_large_map_and_other_spec():
    net = conv_net(H=9, W=9)
    with pytest.raises(FitError, match="max_map"):
        check_fits(net, HwConfig.from_network(net, lanes=2, max_map=8))
    with pytest.raises(FitError, match="spec"):
        check_fits(net, HwConfig.from_network(dense_net(), lanes=2, spec=IntSpec()))
    with pytest.raises(FitError):
        P.encode_network(net, HwConfig.from_network(net, lanes=2, weight_words=4))


def test_encode_network_words():
    net = dense_net()
    cfg = HwConfig.from_network(net, lanes=4)
    words = P.encode_network(net, cfg)
    ops = [w >> 60 for w in words]
    lay = network_layout(net, 4)
    # T, layers, exit rule/threshold/shift, compensation enable (off: the other registers are not
    # sent), input coding, stage count (0: unstaged)
    n_reg = 2 + 3 + 1 + 2 + len(net.layers) * len(P.LAYER_FIELDS)
    assert ops[:n_reg] == [P.OP["REG"]] * n_reg and ops[n_reg] == P.OP["WADDR"]
    n_wdata = ops.count(P.OP["WDATA"])
    assert n_wdata == lay.weight_words * P.beats_per_word(net.spec, 4)
    assert all(w < 1 << P.IN_WIDTH for w in words)


def test_encode_sample_sends_nonzero_pixels_in_order():
    spec = IntSpec(input_bits=4)
    img = np.zeros((1, 3, 4), dtype=np.uint8)
    img[0, 1, 2] = 255
    img[0, 2, 3] = 10
    img[0, 0, 0] = 5          # maps to 0 with 4 input bits: not sent
    words = P.encode_sample(img, spec)
    assert [w >> 60 for w in words] == [P.OP["START"], P.OP["PIXEL"], P.OP["PIXEL"], P.OP["RUN"]]
    b = words[1] & ((1 << 48) - 1)
    assert (b & 0xFFFF, (b >> 16) & 0xFFFF, (b >> 32) & 0xFF, (b >> 40) & 0xFF) == (15, 6, 2, 1)
    with pytest.raises(ValueError):
        P.encode_sample(np.full(5, 300), spec)


def test_decode_results_round_trip():
    spec = IntSpec(membrane_bits=12)
    pots = [[-5, 7, 2047], [-2048, 0, 3]]

    def w(tag, v):
        return (P.TAG[tag] << 32) | (v & 0xFFFFFFFF)
    words = [w("POT", v) for row in pots for v in row] + [w("CLASS", 2), w("STEPS", 2), w("CYCLES", 99)]
    r = P.decode_results(words, 3, spec)
    assert (r.potentials, r.predicted, r.timesteps, r.cycles) == (pots, 2, 2, 99)
    assert len(P.decode_all(words + words, 3, spec)) == 2
    with pytest.raises(ValueError):
        P.decode_results(words[:-1], 3, spec)


def test_lower_bound_counts():
    net = dense_net(n_in=6, hidden=5, n_out=3, T=2)
    x = pixels(net, 1)
    g = run_golden(net, x, record_spikes=True)
    lanes = 2
    # with input_bits=4 some small pixels encode to 0 and are not events
    expect = int((encode_pixels(x[0], net.spec) != 0).sum()) * 3 + int(g.spikes[0].sum()) * 2 + 2 * (3 + 2)
    assert lower_bound_cycles(net, tuple(s[0] for s in g.spikes), x[0], lanes) == expect
    assert lower_bound_cycles(net, None, x[0], lanes) == expect


def test_generate_verilog_and_manifest():
    cfg = HwConfig(lanes=3, weight_words=64, neuron_words=8, event_words=8)
    v = generate_verilog(cfg)
    assert f"module {TOP_NAME}" in v
    for port in ("cmd__payload", "cmd__valid", "cmd__ready", "res__payload", "res__valid",
                 "res__ready", "busy"):
        assert port in v
    m = json.loads(manifest_json(cfg))
    assert m["ports"]["cmd__payload"] == P.IN_WIDTH and m["hwcfg"]["lanes"] == 3
    assert m["protocol"]["exit_rules"] == {"none": 0, "margin": 1, "softmax": 2}
    assert m["protocol"]["result_tags"]["READOUT"] == P.TAG["READOUT"] == 5
    with pytest.raises(TypeError):
        generate_verilog({"lanes": 3})
    with pytest.raises(ValueError):
        generate_verilog(cfg, name="not a name")


def test_verilog_builds_under_verilator(tmp_path):
    try:
        from quickspike.cosim.toolchain import ensure_verilator
        ensure_verilator()
    except Exception:  # pragma: no cover - toolchain module optional
        pass
    exe = shutil.which("verilator")
    if exe is None:
        pytest.skip("verilator not installed")
    cfg = HwConfig(lanes=3, weight_words=64, neuron_words=8, event_words=8)
    src = tmp_path / "top.v"
    src.write_text(generate_verilog(cfg))
    r = subprocess.run([exe, "--lint-only", "-Wno-WIDTH", "-Wno-CASEINCOMPLETE", "--top-module", TOP_NAME,
                        str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
