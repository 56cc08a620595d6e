"""SSNN: a tiny end-to-end run (train -> quantize -> eval) whose golden accuracy equals the
evaluation, the model's transformer split equals :meth:`TransformerSpec.split`, the
uniform-T SNN on events, the ablation command and the CLI's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from quickspike.cli import main
from quickspike.errors import UsageError
from quickspike.sw.spec import TransformerSpec

from test_cli_errors import assert_misuse, run_cli


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ssnn_run(tmp_path_factory, one_thread) -> Path:
    run = tmp_path_factory.mktemp("ssnn") / "run"
    code = main(["train", "--algo", "ssnn", "--dataset", "digits-events", "--stages", "3,2,1", "--hidden", "32,16",
                 "--epochs", "2", "--quiet", "--out", str(run)])
    assert code == 0
    return run


def test_ssnn_end_to_end(ssnn_run, tmp_path, capsys):
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.events import network_input
    from quickspike.sw.golden import run_golden
    from quickspike.sw.ssnn import load_ssnn_run

    summary = json.loads((ssnn_run / "train.json").read_text())
    assert summary["options"]["algo"] == "ssnn" and summary["stage_starts"] == [0, 1, 2]
    assert summary["average_steps"] == 2.0 and summary["average_steps_paper"] == 2.5
    assert len(summary["early_accuracy"]) == 2

    bundle = tmp_path / "ssnn.qsb"
    code, out, err = run_cli(capsys, "quantize", ssnn_run, "--out", bundle)
    assert code == 0, err
    assert "stages 3,2,1" in out and "average timestep 2" in out
    net = load_bundle(bundle)
    assert net.input_coding == "events" and net.staged and net.stages.steps == (3, 2, 1)
    assert net.timesteps == 3 and net.input_steps == 3 and net.output_steps == 1 and net.average_steps == 2.0
    assert len(net.layers) == 3 and len(net.stages.transformers) == 2  # early classifiers dropped
    assert net.layers[0].in_shape == (2, 8, 8)

    data = load_dataset("digits-events")
    x = network_input(net, data)
    r = run_golden(net, x)
    golden = float((r.predicted.numpy() == data.y_test).mean())
    assert net.meta["int_accuracy"] == golden
    assert int(r.spike_counts[:, :, 0].sum()) > 0 and int(r.spike_counts[:, :2, 1].sum()) > 0  # not a silent net

    # the quantization-aware model computes what the golden model computes
    model, _ = load_ssnn_run(ssnn_run)
    model.eval()
    with torch.no_grad():
        pots, early, splits = model.forward_all(torch.from_numpy(x))
    assert abs(net.meta["qat_accuracy"] - golden) <= 0.01
    scale = model.scales()[-1]
    assert torch.allclose(pots * scale, r.potentials.to(pots.dtype), atol=1e-3)
    for mine, theirs in zip(splits, r.splits):
        assert torch.equal(mine, theirs)

    js = tmp_path / "eval.json"
    code, out, err = run_cli(capsys, "eval", bundle, "--dataset", "digits-events", "--json", js)
    assert code == 0, err
    result = json.loads(js.read_text())
    assert result["accuracy"] == golden and result["avg_timesteps"] == 2.0 and result["avg_timesteps_paper"] == 2.5
    assert "average timestep 2" in out
    assert_misuse(capsys, ["eval", bundle, "--dataset", "digits-events", "--timesteps", "2"],
                  "an SSNN bundle runs its stages 3,2,1; --timesteps cannot be used with it")
    assert_misuse(capsys, ["eval", bundle, "--dataset", "digits"],
                  "data set digits has images (1, 8, 8), the bundle expects (2, 8, 8)")


@pytest.mark.parametrize("leak_shift", [0, 2])
def test_transformer_split_matches_the_spec(one_thread, leak_shift):
    """With random transformers, and with IF (leak 0) and leaky neurons."""
    from quickspike.sw.model import ModelConfig
    from quickspike.sw.ssnn import SSNNModel, transformer_scale

    torch.manual_seed(0)
    cfg = ModelConfig(arch="mlp", input_shape=(2, 4, 4), num_classes=3, hidden=(24, 12), input_coding="events",
                      leak_shift=leak_shift)
    model = SSNNModel(cfg, (5, 3, 2))
    with torch.no_grad():
        for p in model.tt:
            p.copy_(torch.randn_like(p) * 3)
    assert model.tt_scales == [transformer_scale(24), transformer_scale(12)]
    mul, shift = transformer_scale(24)
    assert abs(mul / 2 ** shift - 4 / (24 * 16)) < 2e-5 * 4 / (24 * 16)  # mul has 16 bits
    counts = torch.randint(0, 25, (64, 5))
    p, p_int = model.split_weights(0, counts.float())
    spec = model.transformer_spec(0)
    spec.validate(5, 3)
    assert torch.equal(p_int, spec.split(counts))
    assert torch.allclose(p, p_int.float() / 256)
    assert not torch.equal(p_int, torch.full_like(p_int, 85))  # the random weights do split unevenly
    # gradients reach the transformer weights through the float softmax
    (p * torch.randn_like(p)).sum().backward()
    assert model.tt[0].grad is not None and model.tt[0].grad.abs().sum() > 0
    # all-zero weights are plain averaging: p = floor(256 / T)
    zero = TransformerSpec(weights=((0,) * 5,) * 3, mul=mul, shift=shift)
    assert zero.split(counts).unique().tolist() == [85]
    # and the whole forward pass equals the golden model with these random transformers
    from quickspike.sw.golden import run_golden
    from quickspike.sw.ssnn import export_ssnn

    net = export_ssnn(model)
    x = (torch.rand(32, 5, 2, 4, 4) < 0.3).to(torch.uint8)
    r = run_golden(net, x.numpy())
    with torch.no_grad():
        pots, _, splits = model.forward_all(x)
    assert torch.allclose(pots * model.scales()[-1], r.potentials.float(), atol=1e-3)
    assert all(torch.equal(a, b) for a, b in zip(splits, r.splits))
    assert int(r.spike_counts.sum()) > 0


def test_default_starts_and_average():
    from quickspike.sw.ssnn import default_starts

    assert default_starts(3, 3) == (0, 1, 2)
    assert default_starts(5, 2) == (0, 3)
    assert default_starts(4, 3) == (0, 2, 3)
    with pytest.raises(UsageError, match="3 stages need at least 3 layers; the network has 2"):
        default_starts(2, 3)


def test_uniform_snn_on_events(tmp_path, capsys, one_thread):
    from quickspike.sw.bundle import load_bundle

    run, bundle = tmp_path / "run", tmp_path / "snn.qsb"
    assert main(["train", "--dataset", "digits-events", "--timesteps", "2", "--hidden", "16", "--epochs", "1",
                 "--quiet", "--out", str(run)]) == 0
    code, out, err = run_cli(capsys, "quantize", run, "--out", bundle)
    assert code == 0, err
    net = load_bundle(bundle)
    assert net.input_coding == "events" and not net.staged
    from quickspike.sw.train import load_run

    model, _ = load_run(run)
    # binary frames: the first layer's threshold is its scale q_0 (not 255 · q_0 as for pixels)
    assert net.layers[0].neuron.threshold == model.scales()[0] == model.thresholds()[0]
    js = tmp_path / "e.json"
    code, out, err = run_cli(capsys, "eval", bundle, "--dataset", "digits-events", "--timesteps", "1,2", "--json", js)
    assert code == 0, err
    result = json.loads(js.read_text())
    assert result["by_timesteps"]["2"]["accuracy"] == net.meta["int_accuracy"]


def test_ablation_command(tmp_path, capsys, one_thread):
    out = tmp_path / "abl"
    code, text, err = run_cli(capsys, "ssnn-ablation", "--dataset", "digits-events", "--stages", "3,2,1",
                              "--hidden", "16,8", "--epochs", "1", "--seed", "0", "--quiet", "--out", out)
    assert code == 0, err
    result = json.loads((out / "ablation.json").read_text())
    assert [r["variant"] for r in result["rows"]] == ["ssnn", "uniform", "no-transformer", "no-early"]
    assert result["uniform_timesteps"] == 2 and not result["uniform_rounded"]
    by = {r["variant"]: r for r in result["rows"]}
    assert by["uniform"]["stages"] == [2] and by["ssnn"]["avg_timesteps"] == 2.0
    from quickspike.sw.bundle import load_bundle

    flat = load_bundle(by["no-transformer"]["bundle"])
    assert all(w == 0 for tt in flat.stages.transformers for row in tt.weights for w in row)
    md = (out / "ablation.md").read_text()
    assert "uniform-T SNN" in md and "SSNN without early classifiers" in md and "| SSNN |" in md
    assert "SSNN minus uniform" in text
    # a second run reuses every run
    code, text, err = run_cli(capsys, "ssnn-ablation", "--dataset", "digits-events", "--stages", "3,2,1",
                              "--hidden", "16,8", "--epochs", "1", "--seed", "0", "--quiet", "--out", out)
    assert code == 0 and text.count("up to date") == 4


OUT = "/nonexistent-quickspike-test-dir/run"

MISUSE = [
    (["--algo", "ssnn", "--stages", "4,4"], "--stages 4,4 must shrink strictly (T1 > T2 > ...)"),
    (["--algo", "ssnn", "--stages", "2,4"], "--stages 2,4 must shrink strictly"),
    (["--algo", "ssnn", "--stages", "4"], "--stages 4: give at least two stages"),
    (["--algo", "ssnn", "--stages", "6,4,2", "--hidden", "16"], "3 stages need at least 3 layers; the network has 2"),
    (["--algo", "snn", "--stages", "6,4,2"], "--stages applies to --algo ssnn only"),
    (["--stage-starts", "0,1"], "--stage-starts applies to --algo ssnn only"),
    (["--early-weights", "1"], "--early-weights applies to --algo ssnn only"),
    (["--no-transformer"], "--no-transformer applies to --algo ssnn only"),
    (["--algo", "ssnn", "--timesteps", "4"], "--timesteps does not apply to --algo ssnn (its timesteps are --stages)"),
    (["--algo", "ssnn", "--td-weights", "uniform"], "--td-weights does not apply to --algo ssnn"),
    (["--algo", "ssnn", "--early-weights", "1"], "--early-weights needs 2 weights (one per early classifier), not 1"),
    (["--algo", "ssnn", "--early-weights", "1,-1"], "--early-weights must be finite and 0 or more"),
    (["--algo", "ssnn", "--stage-starts", "0,2"], "--stage-starts needs 3 layers (one per stage), not 2"),
    (["--algo", "ssnn", "--stage-starts", "0,2,5"], "--stage-starts 0,2,5 must begin at 0 and increase"),
    (["--algo", "ssnn", "--stage-starts", "1,2,0"], "--stage-starts 1,2,0 must begin at 0"),
    (["--algo", "ssnn", "--arch", "conv", "--hidden", "8,8"], "--hidden applies to --arch mlp only"),
    (["--algo", "snn", "--arch", "conv", "--hidden", "8"], "--hidden applies to --arch mlp only"),
    (["--algo", "ssnn", "--stages", "3,x"], "argument --stages: '3,x' is not a comma-separated list of integers"),
    (["--algo", "ssnn", "--early-weights", "a"], "argument --early-weights: 'a' is not a comma-separated list of numbers"),
    (["--algo", "ssnn", "--dataset", "digits", "--stage-starts", "0,1,2", "--arch", "transformer"],
     "unknown architecture 'transformer'"),
]


@pytest.mark.parametrize("args, expected", MISUSE, ids=[" ".join(a) for a, _ in MISUSE])
def test_ssnn_train_misuse(capsys, args, expected):
    dataset = [] if "--dataset" in args else ["--dataset", "digits-events"]
    assert_misuse(capsys, ["train", *dataset, "--epochs", "1", "--quiet", *args, "--out", OUT], expected)
    assert not Path(OUT).parent.exists()


@pytest.mark.parametrize("args, expected", [
    (["--stages", "4,4"], "--stages 4,4 must shrink strictly"),
    (["--stages", "6,4,2", "--hidden", "8"], "3 stages need at least 3 layers; the network has 2"),
    (["--early-weights", "1,2,3"], "--early-weights needs 2 weights"),
    (["--seed", "-1"], "argument --seed: '-1': give integers of 0 or more"),
])
def test_ablation_misuse(capsys, args, expected):
    assert_misuse(capsys, ["ssnn-ablation", "--dataset", "digits-events", *args, "--out", OUT], expected)
    assert not Path(OUT).parent.exists()
