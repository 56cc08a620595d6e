"""The command line: misuse exits 2 with one line, refusals leave no half-written files,
and the train -> quantize -> eval round trip on a real (tiny) run.

Every case calls :func:`quickspike.cli.main` in-process and reads stderr with ``capsys``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from quickspike.cli import main
from quickspike.errors import UsageError

PREFIX = "quickspike: error: "


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """Run the CLI in-process; a Python warning counts as stderr output (the console
    script would print it there, pytest would otherwise swallow it)."""
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return code, out, shown + err


def assert_one_line_error(err: str, expected: str) -> None:
    assert err.startswith(PREFIX), err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert "Traceback" not in err
    assert expected in err, f"{expected!r} not in {err!r}"


def assert_misuse(capsys, args, expected: str) -> str:
    code, out, err = run_cli(capsys, *args)
    assert code == 2 == UsageError.exit_code, (code, err)
    assert out == ""
    assert_one_line_error(err, expected)
    return err


# --------------------------------------------------------------------------- parser misuse

OUT = "/nonexistent-quickspike-test-dir/run"  # never created: every case fails before writing

MISUSE = [
    (["frobnicate"], "argument command: invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: command"),
    (["train", "--dataset", "digits"], "the following arguments are required: --out"),
    (["quantize", "somerun"], "the following arguments are required: --out"),
    (["eval"], "the following arguments are required: bundle"),
    (["train", "--timesteps", "0", "--out", OUT], "argument --timesteps: 0 must be at least 1"),
    (["train", "--timesteps", "-3", "--out", OUT], "argument --timesteps: -3 must be at least 1"),
    (["train", "--timesteps", "a", "--out", OUT], "argument --timesteps: 'a' is not an integer"),
    (["train", "--timesteps", "2.5", "--out", OUT], "argument --timesteps: '2.5' is not an integer"),
    (["train", "--epochs", "-1", "--out", OUT], "argument --epochs: -1 must be at least 1"),
    (["train", "--epochs", "0", "--out", OUT], "argument --epochs: 0 must be at least 1"),
    (["train", "--batch-size", "0", "--out", OUT], "argument --batch-size: 0 must be at least 1"),
    (["train", "--seed", "x", "--out", OUT], "argument --seed: invalid int value: 'x'"),
    (["train", "--lr", "fast", "--out", OUT], "argument --lr: invalid float value: 'fast'"),
    (["train", "--bogus", "--out", OUT], "unrecognized arguments: --bogus"),
    (["eval", "x.qsb", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["eval", "x.qsb", "--timesteps", "0"], "argument --timesteps: '0': timesteps must be positive integers"),
    (["eval", "x.qsb", "--timesteps", "1,0,4"], "argument --timesteps: '1,0,4': timesteps must be positive integers"),
    (["eval", "x.qsb", "--timesteps", "a,b"], "argument --timesteps: 'a,b' is not a comma-separated list of integers"),
    (["eval", "x.qsb", "--timesteps", ","], "argument --timesteps: ',': timesteps must be positive integers"),
    (["eval", "x.qsb", "--samples", "0"], "argument --samples: 0 must be at least 1"),
    (["flow", "--epochs", "0"], "argument --epochs: 0 must be at least 1"),
    (["flow", "--timesteps", "x"], "argument --timesteps: 'x' is not an integer"),
]


@pytest.mark.parametrize("args, expected", MISUSE, ids=[" ".join(a) or "(none)" for a, _ in MISUSE])
def test_parser_misuse_exits_2_with_one_line(capsys, args, expected):
    assert_misuse(capsys, args, expected)
    assert not Path(OUT).parent.exists()


def test_version_and_help_are_not_errors(capsys):
    for flag in ("--version", "--help"):
        with pytest.raises(SystemExit) as e:
            main([flag])
        assert e.value.code == 0
    assert "quickspike" in capsys.readouterr().out


# --------------------------------------------------------------------------- train refusals


def test_unknown_dataset(capsys, tmp_path):
    out = tmp_path / "run"
    assert_misuse(capsys, ["train", "--dataset", "cifar99", "--out", out],
                  "unknown dataset 'cifar99': expected one of digits, mnist5k")
    assert not out.exists()


def test_missing_dataset_file(capsys, tmp_path):
    out = tmp_path / "run"
    missing = tmp_path / "nope.npz"
    assert_misuse(capsys, ["train", "--dataset", missing, "--out", out], f"{missing}: no such file or directory")
    assert not out.exists()


@pytest.mark.parametrize("args, expected", [
    (["--algo", "ann"], "unknown --algo 'ann'; expected one of snn"),
    (["--leak-shift", "-1"], "--leak-shift must be 0 or more, not -1"),
    (["--lr", "0"], "--lr must be positive, not 0.0"),
    (["--lr", "-0.1"], "--lr must be positive, not -0.1"),
    (["--lr", "nan"], "--lr must be positive, not nan"),
    (["--lr", "inf"], "--lr must be positive, not inf"),
])
def test_train_option_refusals(capsys, tmp_path, args, expected):
    out = tmp_path / "run"
    assert_misuse(capsys, ["train", "--dataset", "digits", "--epochs", "1", *args, "--out", out], expected)
    assert not out.exists()


def test_unknown_arch_fails_before_training(capsys, tmp_path, monkeypatch):
    import torch

    def no_training(*_a, **_k):
        raise AssertionError("training started before the architecture was checked")

    monkeypatch.setattr(torch.optim, "Adam", no_training)
    out = tmp_path / "run"
    assert_misuse(capsys, ["train", "--dataset", "digits", "--arch", "transformer", "--epochs", "1",
                           "--timesteps", "2", "--quiet", "--out", out],
                  "unknown architecture 'transformer'; expected one of mlp, conv")
    assert not out.exists()


# --------------------------------------------------------------------------- quantize refusals


def test_quantize_non_run_directory(capsys, tmp_path):
    run = tmp_path / "notarun"
    run.mkdir()
    (run / "README").write_text("hello")
    out = tmp_path / "out" / "model.qsb"
    assert_misuse(capsys, ["quantize", run, "--out", out], f"{run} is not a training run: {run / 'model.pt'} is missing")
    assert not out.parent.exists()


def test_quantize_missing_run(capsys, tmp_path):
    run = tmp_path / "nope"
    out = tmp_path / "model.qsb"
    assert_misuse(capsys, ["quantize", run, "--out", out], f"{run} is not a training run")
    assert os.listdir(tmp_path) == []


def _broken_runs(tiny_run: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    runs = {}
    for name in ("truncated_model", "garbage_model", "no_summary", "bad_summary"):
        run = tmp_path / name
        shutil.copytree(tiny_run, run)
        runs[name] = run
    model = (tiny_run / "model.pt").read_bytes()
    (runs["truncated_model"] / "model.pt").write_bytes(model[: len(model) // 2])
    (runs["garbage_model"] / "model.pt").write_bytes(b"\x80\x04 not a torch file")
    (runs["no_summary"] / "train.json").unlink()
    (runs["bad_summary"] / "train.json").write_text('{"options": ')
    return {
        "truncated_model": (runs["truncated_model"], f"cannot read training run {runs['truncated_model']}: "),
        "garbage_model": (runs["garbage_model"], f"cannot read training run {runs['garbage_model']}: "),
        "no_summary": (runs["no_summary"], f"cannot read training run {runs['no_summary']}: FileNotFoundError"),
        "bad_summary": (runs["bad_summary"], f"cannot read training run {runs['bad_summary']}: JSONDecodeError"),
    }


@pytest.mark.parametrize("kind", [
    "truncated_model",
    "garbage_model",
    "no_summary", "bad_summary",
])
def test_quantize_broken_run_writes_nothing(capsys, tmp_path, tiny_run, kind):
    run, expected = _broken_runs(tiny_run, tmp_path / "runs")[kind]
    outdir = tmp_path / "out"
    outdir.mkdir()
    previous = outdir / "existing.qsb"
    previous.write_bytes(b"previous content")
    assert_misuse(capsys, ["quantize", run, "--out", outdir / "model.qsb"], expected)
    # no bundle, no temporary file, and an existing output is left alone
    assert sorted(os.listdir(outdir)) == ["existing.qsb"]
    assert_misuse(capsys, ["quantize", run, "--out", previous], expected)
    assert previous.read_bytes() == b"previous content"
    assert sorted(os.listdir(outdir)) == ["existing.qsb"]


# --------------------------------------------------------------------------- eval refusals


def test_eval_missing_bundle_exits_2(capsys, tmp_path):
    missing = tmp_path / "nope.qsb"
    assert_misuse(capsys, ["eval", missing, "--dataset", "digits"], f"bundle {missing} does not exist")


def test_eval_missing_bundle_is_one_line(capsys, tmp_path):
    missing = tmp_path / "nope.qsb"
    code, out, err = run_cli(capsys, "eval", missing, "--dataset", "digits", "--json", tmp_path / "r.json")
    assert code in (1, 2)
    assert out == ""
    assert_one_line_error(err, f"bundle {missing} does not exist")
    assert os.listdir(tmp_path) == []


def test_eval_directory_as_bundle(capsys, tmp_path):
    code, out, err = run_cli(capsys, "eval", tmp_path, "--dataset", "digits")
    assert code in (1, 2) and out == ""
    assert_one_line_error(err, f"bundle {tmp_path} is not a file")


def test_eval_unknown_dataset(capsys, tmp_path, tiny_bundle):
    assert_misuse(capsys, ["eval", tiny_bundle, "--dataset", "cifar99", "--json", tmp_path / "r.json"],
                  "unknown dataset 'cifar99'")
    assert os.listdir(tmp_path) == []


def _npz(path: Path, shape: tuple[int, ...], classes: int) -> Path:
    rng = np.random.default_rng(0)
    n = 2 * classes
    y = np.arange(n) % classes
    np.savez(path, x_train=rng.integers(0, 256, (n, *shape), dtype=np.uint8), y_train=y,
             x_test=rng.integers(0, 256, (n, *shape), dtype=np.uint8), y_test=y)
    return path


def test_eval_image_shape_mismatch_npz(capsys, tmp_path, tiny_bundle):
    data = _npz(tmp_path / "ten.npz", (10, 10), 10)
    result = tmp_path / "r.json"
    assert_misuse(capsys, ["eval", tiny_bundle, "--dataset", data, "--json", result],
                  f"data set {data} has images (1, 10, 10), the bundle expects (1, 8, 8)")
    assert sorted(os.listdir(tmp_path)) == ["ten.npz"]


def test_eval_too_many_classes(capsys, tmp_path, tiny_bundle):
    data = _npz(tmp_path / "twelve.npz", (8, 8), 12)
    assert_misuse(capsys, ["eval", tiny_bundle, "--dataset", data],
                  f"data set {data} has 12 classes, the bundle only 10")


def test_eval_digits_bundle_on_mnist5k(capsys, tmp_path, tiny_bundle):
    result = tmp_path / "r.json"
    result.write_text("old result")
    assert_misuse(capsys, ["eval", tiny_bundle, "--dataset", "mnist5k", "--json", result],
                  "data set mnist5k has images (1, 28, 28), the bundle expects (1, 8, 8)")
    assert result.read_text() == "old result"  # a refused eval leaves an existing result alone
    assert os.listdir(tmp_path) == ["r.json"]


# --------------------------------------------------------------------------- the real round trip


def _golden_accuracy(net, T: int, samples: int | None = None) -> float:
    from quickspike.sw.data import load_dataset
    from quickspike.sw.golden import run_golden

    data = load_dataset("digits")
    x, y = data.x_test[:samples], data.y_test[:samples]
    return float((run_golden(net, x, T).predicted.numpy() == np.asarray(y)).mean())


def test_quantize_round_trip(capsys, tmp_path, tiny_run):
    from quickspike.sw.bundle import load_bundle

    out = tmp_path / "bundles" / "tiny.qsb"
    code, stdout, err = run_cli(capsys, "quantize", tiny_run, "--out", out)
    assert code == 0, err
    assert err == ""
    m = re.fullmatch(rf"bundle {re.escape(str(out))}: 2 layers, integer accuracy (\d\.\d{{4}}) "
                     r"\(float (\d\.\d{4})\)\n", stdout)
    assert m, stdout
    assert os.listdir(out.parent) == ["tiny.qsb"]  # no temporary file left

    net = load_bundle(out)
    summary = json.loads((tiny_run / "train.json").read_text())
    assert net.timesteps == 2
    assert net.input_shape == (1, 8, 8) and net.num_classes == 10
    assert [layer.kind for layer in net.layers] == ["dense", "dense"]
    assert [layer.neuron.spiking for layer in net.layers] == [True, False]
    assert net.meta["algo"] == "snn" and net.meta["arch"] == "mlp" and net.meta["dataset"] == "digits"
    assert net.meta["float_accuracy"] == summary["float_accuracy"]
    assert m.group(1) == f"{net.meta['int_accuracy']:.4f}"
    assert m.group(2) == f"{summary['float_accuracy']:.4f}"
    assert net.meta["int_accuracy"] == _golden_accuracy(net, 2)


def test_eval_json_by_timesteps(capsys, tmp_path, tiny_bundle):
    from quickspike.sw.bundle import load_bundle

    result = tmp_path / "out.json"
    code, stdout, err = run_cli(capsys, "eval", tiny_bundle, "--dataset", "digits", "--timesteps", "1,2",
                                "--json", result)
    assert code == 0, err
    assert err == ""
    assert "digits" in stdout
    assert os.listdir(tmp_path) == ["out.json"]  # complete file, no leftover temporary
    r = json.loads(result.read_text())
    net = load_bundle(tiny_bundle)
    assert r["dataset"] == "digits"
    assert r["samples"] == 359
    assert r["timesteps"] == 2
    assert set(r["by_timesteps"]) == {"1", "2"}
    for T in (1, 2):
        by = r["by_timesteps"][str(T)]
        assert by["accuracy"] == _golden_accuracy(net, T)
        assert by["avg_timesteps"] == float(T)
        assert by["avg_spikes"] >= 0
    assert r["accuracy"] == r["by_timesteps"]["2"]["accuracy"] == net.meta["int_accuracy"]
    assert r["avg_timesteps"] == 2.0


def test_eval_json_defaults_and_samples(capsys, tmp_path, tiny_bundle):
    from quickspike.sw.bundle import load_bundle

    result = tmp_path / "sub" / "out.json"
    result.parent.mkdir()
    result.write_text("stale")
    code, _, err = run_cli(capsys, "eval", tiny_bundle, "--dataset", "digits", "--samples", "50", "--json", result)
    assert code == 0, err
    r = json.loads(result.read_text())
    net = load_bundle(tiny_bundle)
    assert r["samples"] == 50
    assert r["timesteps"] == net.timesteps == 2
    assert "by_timesteps" not in r
    assert r["accuracy"] == _golden_accuracy(net, 2, samples=50)
    assert r["avg_timesteps"] == 2.0
    assert os.listdir(result.parent) == ["out.json"]
