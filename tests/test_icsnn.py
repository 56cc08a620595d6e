"""IC-SNN: the QCFS ANN, its exact integer conversion, the initial potentials, the ablation."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from quickspike.sw.golden import run_golden
from quickspike.sw.icsnn import (DEFAULT_LEVELS, ANNConfig, QCFSNet, ann_accuracy, ann_levels, compensation_for,
                                 export_icsnn, qcfs)
from quickspike.sw.icsnn_init import (conversion_error, fit_timesteps, fit_v_init, init_fractions,
                                      v_init_fractions, with_v_init)
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import IntSpec, LayerSpec, NeuronSpec


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_qcfs_values_on_known_inputs():
    x = torch.tensor([-1.0, 0.0, 0.1, 0.125, 0.2, 0.4, 0.9, 1.0, 2.0])
    # floor(4x + 0.5) / 4, clamped to [0, 1]
    assert qcfs(x, torch.tensor(1.0), 4).tolist() == [0, 0, 0, 0.25, 0.25, 0.5, 1, 1, 1]
    # λ = 2 scales the input and the output: 2 · clamp(floor(4 · x/2 + 0.5)/4, 0, 1)
    assert qcfs(torch.tensor([0.25, 0.6, 1.9, 3.0]), torch.tensor(2.0), 4).tolist() == [0.5, 0.5, 2.0, 2.0]
    # L = 1 is a step at λ/2
    assert qcfs(torch.tensor([0.49, 0.5, 0.7]), torch.tensor(1.0), 1).tolist() == [0, 1, 1]


def test_qcfs_straight_through_gradients():
    x = torch.tensor([-0.5, 0.3, 0.7, 1.5], requires_grad=True)
    lam = torch.tensor(1.0, requires_grad=True)
    qcfs(x, lam, 4).sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 0]  # identity inside the clip, zero outside
    # d/dλ: 1 for a clipped input (1.5), the quantization error for the others, 0 below zero
    expected = 1.0 + (0.25 - 0.3) + (0.75 - 0.7)
    assert lam.grad.item() == pytest.approx(expected)


def _hand_net(v_init: int, theta: int = 10) -> IntNetwork:
    spec = IntSpec()
    hidden = LayerSpec("dense", (2,), (2,), NeuronSpec(threshold=theta, v_init=v_init, leak_shift=0))
    out = LayerSpec("dense", (2,), (2,), NeuronSpec(threshold=1, spiking=False, leak_shift=0))
    weights = (np.array([[1, 0], [0, 1]], dtype=np.int64), np.array([[1, 0], [0, 1]], dtype=np.int64))
    return IntNetwork(spec, (hidden, out), weights, timesteps=4, meta={"levels": 4}).validate()


def test_half_init_conversion_by_hand():
    """θ = 10, constant currents 4 and 6, T = L = 4.

    ANN: k = floor(I·L/θ + 0.5) = floor(1.6 + 0.5) = 2 and floor(2.4 + 0.5) = 2.
    IF from v = 5 (θ/2), current 4: 9, 13→fire 3, 7, 11→fire 1: 2 spikes (= k).
    IF from v = 0, current 4: 4, 8, 12→fire 2, 6: 1 spike (the plain conversion's error).
    Current 6 from θ/2: 11→1, 7, 13→3, 9: 2 spikes; from 0: 6, 12→2, 8, 14→4: 2 spikes.
    """
    pixels = np.array([[4, 6]], dtype=np.uint8)
    ks, logits = ann_levels(_hand_net(5), pixels)
    assert ks[0].tolist() == [[2, 2]] and logits.tolist() == [[2, 2]]
    half = run_golden(_hand_net(5), pixels, 4, record_spikes=True)
    assert half.spikes[0][0].sum(dim=0).tolist() == [2, 2]
    assert half.potentials[0, -1].tolist() == [2, 2]
    zero = run_golden(_hand_net(0), pixels, 4, record_spikes=True)
    assert zero.spikes[0][0].sum(dim=0).tolist() == [1, 2]
    # the residual membranes left for the coding compensation: 1 and 9 (from θ/2), 6 and 4 (from 0)
    comp = compensation_for(_hand_net(0), frac_bits=4)
    net = replace(_hand_net(0), compensation=comp)
    r = run_golden(net, pixels, 4)
    q = [comp.fraction(6, 10), comp.fraction(4, 10)]
    assert q == [9, 6]  # floor(16 · 6/10), floor(16 · 4/10)
    assert r.readout[0, -1].tolist() == [1 + (q[0] >> 4), 2 + (q[1] >> 4)]


def _digits():
    from quickspike.sw.data import load_dataset

    return load_dataset("digits")


def _random_ann(arch: str, levels: int = 4, seed: int = 0) -> QCFSNet:
    data = _digits()
    torch.manual_seed(seed)
    model = QCFSNet(ANNConfig(arch=arch, input_shape=data.shape, num_classes=10, levels=levels,
                              hidden=(24,), channels=(4, 8)))
    model.init_lambdas(torch.from_numpy(np.array(data.x_train[:128])), quantile=0.9)
    return model


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_export_gives_exact_integer_thresholds(arch):
    model = _random_ann(arch)
    thetas, scales = model.integer_params()
    net = export_icsnn(model, timesteps=4)
    lams = [float(v) for v in model.lambdas.detach()]
    spec = net.spec
    for i, layer in enumerate(net.layers[:-1]):
        n = layer.neuron
        assert n.threshold == thetas[i] and isinstance(n.threshold, int) and n.threshold >= 1
        assert (n.leak_shift, n.reset, n.spiking, n.v_init) == (0, "subtract", True, 0)
        # θ in membrane units is λ in the float units of the layer's input
        unit = spec.input_max if i == 0 else 1 / lams[i - 1]
        assert n.threshold / scales[i] == pytest.approx(unit * lams[i], rel=1e-9)
    out = net.layers[-1].neuron
    assert not out.spiking and out.leak_shift == 0
    for w in net.weights:  # 8-bit weights using the full range
        assert int(np.abs(w).max()) == spec.weight_range[1]
    # the fake-quantized float ANN and the integer ANN agree
    data = _digits()
    with torch.no_grad():
        float_pred = model(torch.from_numpy(np.array(data.x_test))).argmax(1).numpy()
    int_logits = ann_levels(net, data.x_test)[1]
    assert (int_logits.argmax(1).numpy() == float_pred).mean() > 0.98


def test_fitted_init_no_worse_than_zero_on_its_objective():
    model = _random_ann("conv")
    net = export_icsnn(model, timesteps=4)
    xs = _digits().x_train[:64]
    fit = fit_v_init(net, xs, grid=8)
    assert fit["timesteps"] == fit_timesteps(4) == [1, 2, 4]
    assert len(fit["fractions"]) == 2 and all(0 <= f <= 1 for f in fit["fractions"])
    for f, errors in zip(fit["fractions"], fit["errors"]):
        assert errors[fit["grid"].index(f)] == min(errors) <= errors[0]
    fitted = with_v_init(net, fit["fractions"])
    assert v_init_fractions(fitted) == pytest.approx(fit["fractions"], abs=1e-3)
    zero_err = conversion_error(net, xs)
    fit_err = conversion_error(fitted, xs)
    assert fit_err[0] <= zero_err[0]
    # layer 1 is fitted on top of the fitted layer 0: no worse than zero on that same input
    assert fit_err[1] <= conversion_error(with_v_init(net, [fit["fractions"][0], 0.0]), xs)[1]
    # the fixed prefix is kept as given
    again = fit_v_init(net, xs, grid=8, fixed=[0.25])
    assert again["fractions"][0] == 0.25 and len(again["errors"]) == 1


def test_half_rule_keeps_the_compensated_layer_at_zero():
    net = export_icsnn(_random_ann("conv"), timesteps=4)
    assert init_fractions(net, "half") == [0.5, 0.5]
    assert init_fractions(replace(net, compensation=compensation_for(net)), "half") == [0.5, 0.0]
    assert init_fractions(net, "zero") == [0.0, 0.0]


def test_compensation_for_is_valid_and_close_to_the_fraction():
    net = export_icsnn(_random_ann("mlp"), timesteps=4)
    comp = compensation_for(net, frac_bits=8)
    theta = net.layers[-2].neuron.threshold
    assert comp.enabled and comp.mul == round(2 ** (comp.frac_bits + comp.shift) / theta)
    replace(net, compensation=comp).validate()
    for v in (0, 1, theta // 3, theta // 2, theta - 1):
        assert abs(comp.fraction(v, theta) - 256 * v / theta) <= 1


@pytest.fixture(scope="module")
def icsnn_bundle(tmp_path_factory):
    from quickspike.cli import main

    root = tmp_path_factory.mktemp("icsnn")
    run, bundle = root / "run", root / "b.qsb"
    assert main(["train", "--algo", "icsnn", "--dataset", "digits", "--arch", "mlp", "--epochs", "3",
                 "--timesteps", "2", "--quiet", "--out", str(run)]) == 0
    assert main(["quantize", str(run), "--out", str(bundle), "--fit-samples", "64"]) == 0
    return run, bundle


def test_train_quantize_records_ann_accuracy(icsnn_bundle):
    from quickspike.sw.bundle import load_bundle

    run, bundle = icsnn_bundle
    summary = json.loads((run / "train.json").read_text())
    assert summary["options"]["algo"] == "icsnn" and summary["model"]["levels"] == DEFAULT_LEVELS
    net = load_bundle(bundle)
    meta = net.meta
    assert meta["algo"] == "icsnn" and meta["levels"] == DEFAULT_LEVELS
    assert 0.5 < meta["ann_accuracy"] <= 1 and 0 <= meta["int_accuracy"] <= 1
    assert meta["v_init"]["mode"] == "fitted" and net.compensation.enabled
    assert v_init_fractions(net) == pytest.approx(meta["v_init"]["with_compensation"], abs=1e-3)
    data = _digits()
    assert meta["ann_accuracy"] == ann_accuracy(net, data.x_test, data.y_test)
    assert all(layer.neuron.leak_shift == 0 and layer.neuron.reset == "subtract" for layer in net.layers)


def test_eval_writes_the_ablation(icsnn_bundle, tmp_path, capsys):
    from quickspike.cli import main

    _run, bundle = icsnn_bundle
    out = tmp_path / "eval.json"
    assert main(["eval", str(bundle), "--dataset", "digits", "--timesteps", "1,2", "--samples", "100",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "IC-SNN ablation" in text and "plain conversion" in text
    result = json.loads(out.read_text())
    assert 0 < result["ann_accuracy"] <= 1
    ab = result["ablation"]
    assert set(ab["accuracy"]) == {"ann", "plain", "init", "compensation", "init+compensation"}
    assert ab["accuracy"]["ann"] == result["ann_accuracy"] and ab["timesteps"] == [1, 2]
    for name in ("plain", "init", "compensation", "init+compensation"):
        assert set(ab["accuracy"][name]) == {"1", "2"}
    assert set(ab["gain_over_plain"]) == {"init", "compensation", "init+compensation"}
    assert ab["v_init_fractions"]["plain"] == [0.0] and ab["levels"] == DEFAULT_LEVELS
    # the bundle itself is the "init+compensation" variant
    assert result["by_timesteps"]["2"]["accuracy"] == ab["accuracy"]["init+compensation"]["2"]


def test_icsnn_flags_are_refused_for_other_runs(tiny_run, tmp_path, capsys):
    from quickspike.cli import main

    assert main(["quantize", str(tiny_run), "--out", str(tmp_path / "x.qsb"), "--init", "half"]) == 2
    assert "icsnn runs only" in capsys.readouterr().err
    assert main(["train", "--levels", "4", "--dataset", "digits", "--out", str(tmp_path / "r")]) == 2
    assert main(["quantize", str(tmp_path / "nope"), "--out", str(tmp_path / "y.qsb")]) == 2


def test_quantize_half_without_compensation(icsnn_bundle, tmp_path):
    from quickspike.cli import main
    from quickspike.sw.ablation import icsnn_ablation
    from quickspike.sw.bundle import load_bundle

    run, _bundle = icsnn_bundle
    out = tmp_path / "half.qsb"
    assert main(["quantize", str(run), "--out", str(out), "--init", "half", "--no-compensation"]) == 0
    net = load_bundle(out)
    assert not net.compensation.enabled and net.meta["v_init"]["mode"] == "half"
    assert v_init_fractions(net) == pytest.approx([0.5], abs=1e-3)
    data = _digits()
    ab = icsnn_ablation(net, data.x_test[:50], data.y_test[:50], [2])["ablation"]
    assert ab["compensation"]["enabled"]  # the ablation supplies the compensation the bundle lacks
    assert ab["v_init_fractions"]["init"] == pytest.approx([0.5], abs=1e-3)
    assert ab["v_init_fractions"]["init+compensation"] == [0.0]
