"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A real training run directory: digits (8x8), MLP, 1 epoch, T=2 (a few seconds)."""
    import torch

    from quickspike.cli import main

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only add overhead (and fight over busy CPUs)
    try:
        code = main(["train", "--dataset", "digits", "--arch", "mlp", "--epochs", "1", "--timesteps", "2",
                     "--quiet", "--out", str(run)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    assert (run / "model.pt").is_file() and (run / "train.json").is_file()
    return run


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tmp_path_factory) -> Path:
    """The bundle of :func:`tiny_run` (read-only: copy it before damaging it)."""
    from quickspike.sw.quantize import quantize_run

    _net, path = quantize_run(tiny_run, tmp_path_factory.mktemp("tiny_bundle") / "tiny.qsb")
    return path
