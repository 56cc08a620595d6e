"""ATSNN in software: the time-dependent loss, ``train --algo atsnn``, ``calibrate``,
``eval`` with an exit rule (histogram, ``--no-exit``), ``atsnn-table`` and their
one-line refusals. Tiny digits networks only."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from quickspike.cli import main
from quickspike.sw.atsnn import time_dependent_loss, timestep_weights

from test_cli_errors import assert_misuse, run_cli


# --------------------------------------------------------------------------- the loss


def test_timestep_weights():
    assert timestep_weights("uniform", 4).tolist() == [0.25] * 4
    assert torch.allclose(timestep_weights("increasing", 4), torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64))
    assert torch.allclose(timestep_weights("decreasing", 4), torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64))
    assert timestep_weights("decreasing", 1).tolist() == [1.0]


def test_time_dependent_loss_on_a_known_tensor():
    pots = torch.tensor([[[1.0, 0.0], [2.0, 2.0]]], requires_grad=True)  # (B=1, T=2, C=2)
    y = torch.tensor([0])
    # t=1: logits [1, 0] -> log(1 + e^-1); t=2: mean [1, 1] -> log 2
    ce1, ce2 = math.log(1 + math.exp(-1)), math.log(2)
    loss = time_dependent_loss(pots, y, torch.tensor([0.5, 0.5]))
    assert loss.item() == pytest.approx(0.5 * ce1 + 0.5 * ce2, abs=1e-6)
    assert time_dependent_loss(pots, y, torch.tensor([0.25, 0.75])).item() == pytest.approx(0.25 * ce1 + 0.75 * ce2, abs=1e-6)
    loss.backward()
    assert pots.grad is not None and pots.grad.abs().sum() > 0


def test_time_dependent_loss_with_all_weight_at_t_is_the_snn_loss():
    gen = torch.Generator().manual_seed(0)
    pots = torch.randn(5, 3, 4, generator=gen).cumsum(dim=1)
    y = torch.tensor([0, 1, 2, 3, 0])
    snn = F.cross_entropy(pots[:, -1] / 3, y)
    assert time_dependent_loss(pots, y, torch.tensor([0.0, 0.0, 1.0])).item() == pytest.approx(snn.item(), abs=1e-6)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def atsnn_bundle(tmp_path_factory) -> Path:
    """A tiny atsnn network: digits, MLP, 2 epochs, T=3 (a few seconds)."""
    from quickspike.sw.quantize import quantize_run

    root = tmp_path_factory.mktemp("atsnn")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["train", "--algo", "atsnn", "--td-weights", "uniform", "--dataset", "digits", "--arch", "mlp",
                     "--epochs", "2", "--timesteps", "3", "--quiet", "--out", str(root / "run")])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    summary = json.loads((root / "run" / "train.json").read_text())
    assert summary["options"]["algo"] == "atsnn" and summary["options"]["td_weights"] == "uniform"
    assert len(summary["qat_accuracy_by_timestep"]) == 3
    _net, path = quantize_run(root / "run", root / "atsnn.qsb")
    return path


def test_atsnn_bundle_meta(atsnn_bundle):
    from quickspike.sw.bundle import load_bundle

    net = load_bundle(atsnn_bundle)
    assert net.meta["algo"] == "atsnn" and net.meta["td_weights"] == "uniform"
    assert net.timesteps == 3 and net.exit.rule == "none"


# --------------------------------------------------------------------------- calibrate


@pytest.mark.parametrize("rule", ["margin", "softmax"])
def test_calibrate_meets_the_target_on_the_train_split(capsys, tmp_path, atsnn_bundle, rule):
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.golden import run_golden
    from quickspike.sw.spec import ExitSpec

    out = tmp_path / "cal.qsb"
    code, stdout, err = run_cli(capsys, "calibrate", atsnn_bundle, "--rule", rule, "--target-accuracy-drop", "1",
                                "--dataset", "digits", "--out", out, "--json", tmp_path / "cal.json")
    assert code == 0, err
    assert "train" in stdout and "test" in stdout
    net = load_bundle(out)
    assert net.exit.rule == rule
    data = load_dataset("digits")
    y = np.asarray(data.y_train)
    fixed = run_golden(net, data.x_train, exit=ExitSpec())
    adaptive = run_golden(net, data.x_train)
    base = float((fixed.predicted.numpy() == y).mean())
    acc = float((adaptive.predicted.numpy() == y).mean())
    assert acc >= base - 0.01 - 1e-12
    r = json.loads((tmp_path / "cal.json").read_text())
    cal = r["calibration"]
    assert cal["split"] == "train" and cal["samples"] == len(y)
    assert cal["accuracy"] == acc and cal["no_exit_accuracy"] == base
    assert cal["avg_timesteps"] == float(adaptive.timesteps.double().mean())
    assert net.meta["exit_calibration"]["exit"] == net.exit.to_dict()
    # the calibrated rule is optimal: one notch less cautious either misses the target or is no faster
    if rule == "margin" and net.exit.threshold > 0:
        looser = run_golden(net, data.x_train, exit=ExitSpec("margin", net.exit.threshold - 1))
        looser_acc = float((looser.predicted.numpy() == y).mean())
        assert looser_acc < base - 0.01 - 1e-12 or looser.timesteps.sum() == adaptive.timesteps.sum()


def test_calibrate_zero_drop_and_t_max(tmp_path, atsnn_bundle):
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.calibrate import calibrate_bundle
    from quickspike.sw.data import load_dataset

    data = load_dataset("digits")
    net, cal = calibrate_bundle(load_bundle(atsnn_bundle), data, "margin", 0.0, timesteps=5)
    assert net.timesteps == 5 and cal.timesteps == 5
    assert cal.accuracy >= cal.no_exit_accuracy
    assert cal.avg_timesteps >= 1.0 and cal.avg_timesteps <= 5.0


# --------------------------------------------------------------------------- eval


def test_eval_exit_histogram_and_no_exit(capsys, tmp_path, atsnn_bundle):
    from quickspike.sw.bundle import load_bundle, save_bundle
    from quickspike.sw.spec import ExitSpec
    from dataclasses import replace

    bundle = save_bundle(replace(load_bundle(atsnn_bundle), exit=ExitSpec("margin", 1)), tmp_path / "m.qsb")
    code, stdout, err = run_cli(capsys, "eval", bundle, "--dataset", "digits", "--json", tmp_path / "e.json")
    assert code == 0, err
    assert "exit timesteps" in stdout
    r = json.loads((tmp_path / "e.json").read_text())
    assert r["exit"] == {"rule": "margin", "threshold": 1, "shift": 0}
    assert set(r["exit_histogram"]) == {"1", "2", "3"}
    assert sum(r["exit_histogram"].values()) == r["samples"] == 359
    assert r["avg_timesteps"] == pytest.approx(sum(int(t) * n for t, n in r["exit_histogram"].items()) / 359)
    assert r["avg_timesteps"] < 3
    assert 0 < r["relative_complexity"] <= 1

    code, _, err = run_cli(capsys, "eval", bundle, "--dataset", "digits", "--no-exit", "--timesteps", "2,3",
                           "--json", tmp_path / "n.json")
    assert code == 0, err
    n = json.loads((tmp_path / "n.json").read_text())
    assert n["exit"]["rule"] == "none"
    for T in (2, 3):
        by = n["by_timesteps"][str(T)]
        assert by["avg_timesteps"] == T
        assert by["exit_histogram"] == {**{str(t): 0 for t in range(1, T)}, str(T): 359}
        assert by["relative_complexity"] == 1.0
    assert n["avg_timesteps"] == 3.0


# --------------------------------------------------------------------------- the table


def test_atsnn_table_from_bundles(capsys, tmp_path, tiny_bundle, atsnn_bundle):
    out = tmp_path / "table"
    code, stdout, err = run_cli(capsys, "atsnn-table", "--dataset", "digits", "--timesteps", "3",
                                "--snn-bundle", tiny_bundle, "--atsnn-bundle", atsnn_bundle,
                                "--target-accuracy-drop", "1", "--out", out)
    assert code == 0, err
    r = json.loads((out / "table.json").read_text())
    md = (out / "table.md").read_text()
    assert [(row["algorithm"], row["rule"]) for row in r["rows"]] == [
        ("snn", "none"), ("snn+exit", "softmax"), ("snn+exit", "margin"),
        ("atsnn", "none"), ("atsnn", "softmax"), ("atsnn", "margin")]
    for row in r["rows"]:
        assert row["t_max"] == 3 and 1 <= row["avg_timesteps"] <= 3
        assert sum(row["exit_histogram"].values()) == 359
        assert f"({row['t_max']})" in md
        if row["rule"] == "none":
            assert row["avg_timesteps"] == 3 and row["relative_complexity"] == 1.0
            assert row["accuracy"] == row["no_exit_accuracy"]
        assert Path(row["bundle"]).is_file()
    assert md.count("\n| ") == 1 + 6
    assert "[snn+exit margin]" in stdout and "table.md" in stdout


# --------------------------------------------------------------------------- refusals

OUT = "/nonexistent-quickspike-test-dir/out.qsb"


@pytest.mark.parametrize("args, expected", [
    (["calibrate", "x.qsb", "--out", OUT], "the following arguments are required: --rule"),
    (["calibrate", "x.qsb", "--rule", "entropy", "--out", OUT], "argument --rule: invalid choice: 'entropy'"),
    (["calibrate", "x.qsb", "--rule", "margin"], "the following arguments are required: --out"),
    (["calibrate", "x.qsb", "--rule", "margin", "--target-accuracy-drop", "-1", "--out", OUT],
     "argument --target-accuracy-drop: '-1' must be between 0 and 100 points"),
    (["calibrate", "x.qsb", "--rule", "margin", "--target-accuracy-drop", "abc", "--out", OUT],
     "argument --target-accuracy-drop: 'abc' is not a number of accuracy points"),
    (["calibrate", "x.qsb", "--rule", "margin", "--timesteps", "0", "--out", OUT], "argument --timesteps: 0 must be at least 1"),
    (["calibrate", "/nonexistent-quickspike-test-dir/x.qsb", "--rule", "margin", "--out", OUT],
     "bundle /nonexistent-quickspike-test-dir/x.qsb does not exist"),
    (["eval", "x.qsb", "--no-exit", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--algo", "atsnnn", "--out", OUT], "unknown --algo 'atsnnn'; expected one of snn, atsnn"),
    (["train", "--td-weights", "uniform", "--out", OUT], "--td-weights applies to --algo atsnn only"),
    (["train", "--algo", "atsnn", "--td-weights", "log", "--out", OUT],
     "unknown --td-weights 'log'; expected one of uniform, increasing, decreasing"),
    (["atsnn-table", "--timesteps", "0", "--out", OUT], "argument --timesteps: 0 must be at least 1"),
    (["atsnn-table"], "the following arguments are required: --out"),
    (["atsnn-table", "--td-weights", "log", "--out", OUT],
     "unknown --td-weights 'log'; expected one of uniform, increasing, decreasing"),
    (["atsnn-table", "--arch", "rnn", "--out", OUT], "unknown architecture 'rnn'; expected one of mlp, conv"),
    (["atsnn-table", "--snn-bundle", "/nonexistent-quickspike-test-dir/s.qsb", "--out", OUT],
     "--snn-bundle /nonexistent-quickspike-test-dir/s.qsb does not exist"),
    (["atsnn-table", "--dataset", "cifar99", "--out", OUT], "unknown dataset 'cifar99'"),
])
def test_misuse_exits_2_with_one_line(capsys, args, expected):
    assert_misuse(capsys, args, expected)
    assert not Path(OUT).parent.exists()


def test_calibrate_on_a_mismatched_dataset_writes_nothing(capsys, tmp_path, atsnn_bundle):
    from test_cli_errors import _npz

    data = _npz(tmp_path / "ten.npz", (10, 10), 10)
    out = tmp_path / "cal.qsb"
    assert_misuse(capsys, ["calibrate", atsnn_bundle, "--rule", "margin", "--dataset", data, "--out", out],
                  f"data set {data} has images (1, 10, 10), the bundle expects (1, 8, 8)")
    assert os.listdir(tmp_path) == ["ten.npz"]
