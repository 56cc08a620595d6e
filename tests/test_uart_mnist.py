"""50 mnist5k samples through the board top over its UART, bit-exact (opt-in: minutes).

The board top of a real mnist5k MLP bundle (784-128-10, 8 lanes) runs as Verilog under
cocotb + Verilator, driven by :class:`quickspike.run_client.HostSession` through the
bit-banged UART of ``tests/cocotb_tests/uart_tb.py``: the whole configuration (about
25,600 command words, 205 KB) and 50 test samples go over the simulated line, every
result is compared with the golden model (every POT word, class, timesteps) and every
``CYCLES`` word with the bare accelerator's under the pyverilator engine.

The line runs at 2 clock cycles per bit (a divisor only a same-clock sender can use; a
board uses 12 or 25). Most of the time is the configuration: about 4 M simulated
cycles, and cocotb's clock costs some 7 µs per cycle here. Run it with::

    QUICKSPIKE_UART_MNIST=/path/mlp.qsb pytest -s tests/test_uart_mnist.py
    QUICKSPIKE_UART_MNIST=1 pytest -s tests/test_uart_mnist.py       # trains one first (~1 min)
    python tests/test_uart_mnist.py /path/mlp.qsb --samples 50 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_uart import run_board_cosim  # noqa: E402

ENV = "QUICKSPIKE_UART_MNIST"


def mnist_over_uart(bundle: Path, work: Path, samples: int = 50, divisor: int = 2, lanes: int = 8,
                    compare_cycles: bool = True) -> dict:
    from quickspike.cosim import engines
    from quickspike.cosim.compare import compare_all, expected_from_golden
    from quickspike.cosim.run import hwconfig_for
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.golden import run_golden

    net = load_bundle(bundle)
    data = load_dataset("mnist5k")
    hwcfg = hwconfig_for(net, lanes)
    x = np.asarray(data.x_test[:samples]).reshape(samples, *net.input_shape)
    t0 = time.perf_counter()
    (got,), out, result = run_board_cosim([(net, x, 512)], hwcfg, divisor=divisor, work=work,
                                          max_cycles=500_000_000)
    seconds = time.perf_counter() - t0
    golden = run_golden(net, x)
    board = compare_all(got, expected_from_golden(golden))
    job = out["jobs"][0]
    figures = {
        "bundle": str(bundle), "samples": samples, "divisor": divisor, "lanes": lanes,
        "mismatches": len(board.mismatches), "first_mismatches": [m.to_dict() for m in board.mismatches[:10]],
        "accuracy_board": float(np.mean(np.array([r.predicted for r in got]) == np.asarray(data.y_test[:samples]))),
        "cycles_per_inference": float(np.mean([r.cycles for r in got])),
        "bytes_to_board": job["bytes_out"], "bytes_from_board": job["bytes_in"],
        "config_sim_cycles": job["config_sim_ns"] // 10, "sim_cycles": job["sim_ns"] // 10,
        "config_seconds": round(job["config_seconds"], 1), "job_seconds": round(job["seconds"], 1),
        "total_seconds": round(seconds, 1), "build_hit": result.build.hit,
    }
    if compare_cycles:
        bare = engines.run_samples(net, x.reshape(samples, -1), hwcfg, "pyverilator")
        figures["cycles_equal_bare"] = [r.cycles for r in got] == [r.cycles for r in bare.results]
    return figures


def _bundle(tmp: Path) -> Path:
    value = os.environ[ENV]
    if value != "1":
        return Path(value)
    from quickspike.cli import main

    assert main(["train", "--dataset", "mnist5k", "--arch", "mlp", "--epochs", "2", "--timesteps", "4",
                 "--quiet", "--out", str(tmp / "mlp")]) == 0
    assert main(["quantize", str(tmp / "mlp"), "--out", str(tmp / "mlp.qsb")]) == 0
    return tmp / "mlp.qsb"


@pytest.mark.skipif(not os.environ.get(ENV), reason=f"opt-in: set {ENV} to a mnist5k mlp bundle (or 1)")
def test_mnist_over_uart(tmp_path):
    f = mnist_over_uart(_bundle(tmp_path), tmp_path / "sim")
    print(json.dumps(f, indent=1))
    assert f["mismatches"] == 0, f["first_mismatches"]
    assert f["cycles_equal_bare"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--divisor", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("build/uart_mnist"))
    ap.add_argument("--no-cycles", action="store_true", help="skip the pyverilator comparison of CYCLES")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    # absolute: the simulator runs in its own directory and reads the work files from there
    figures = mnist_over_uart(a.bundle.resolve(), a.work.resolve(), a.samples, a.divisor,
                              compare_cycles=not a.no_cycles)
    text = json.dumps(figures, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")
    sys.exit(1 if figures["mismatches"] else 0)
