"""Verilator builds cached by content hash.

A build is identified by :func:`content_hash` of everything that can change its
output: the Verilog text, the toplevel name, the engine (which also names the
version of the code that drives the build), the build arguments and the tool
versions. :func:`cached_build` keeps one folder per hash under :func:`cache_root`
(``build/verilator-cache/`` in the repository, or ``$QUICKSPIKE_CACHE``).

Concurrent builders (pytest-xdist workers, parallel CLI runs) are safe: a builder
takes an exclusive ``flock`` on a per-hash lock file, builds into a private
temporary folder, writes a marker file last and renames the folder into place.
A folder with a marker is therefore always complete, a crashed build leaves only a
temporary folder behind, and a process that waited on the lock finds the finished
build and reuses it.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CACHE_ENV", "CacheEntry", "cache_root", "content_hash", "cached_build"]

CACHE_ENV = "QUICKSPIKE_CACHE"
"""Environment variable that overrides the cache folder."""

_MARKER = "quickspike-build.json"
_HASH_FORMAT = 1


@dataclass(frozen=True)
class CacheEntry:
    """A finished build folder."""

    path: Path
    """Folder that holds the build products."""
    key: str
    """Content hash naming the folder."""
    hit: bool
    """True when this call reused an existing build instead of building."""
    seconds: float
    """Wall time of this call (the build, or the look-up on a hit)."""


def cache_root() -> Path:
    """Folder that holds all cached builds.

    ``$QUICKSPIKE_CACHE`` when set; otherwise ``build/verilator-cache`` at the top of
    the source checkout, or ``~/.cache/quickspike/verilator`` for an installed copy.
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "build" / "verilator-cache"
    return Path.home() / ".cache" / "quickspike" / "verilator"


def content_hash(
    verilog: str,
    toplevel: str,
    engine: str,
    build_args: Sequence[str] = (),
    tool_versions: Mapping[str, str] | None = None,
) -> str:
    """SHA-256 (hex) over the inputs of one build.

    ``engine`` names the simulation engine and the version of our code driving it
    (e.g. ``"cocotb/1"``); bump that version when the generated build changes.
    The order of ``build_args`` matters; the order of ``tool_versions`` does not.
    """
    if not toplevel:
        raise ValueError(f"toplevel must be a non-empty module name, not {toplevel!r}")
    payload = {
        "format": _HASH_FORMAT,
        "engine": engine,
        "toplevel": toplevel,
        "build_args": list(build_args),
        "tools": dict(sorted((tool_versions or {}).items())),
        "verilog": verilog,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def cached_build(
    key: str,
    build: Callable[[Path], None],
    *,
    meta: Mapping[str, object] | None = None,
    root: Path | None = None,
) -> CacheEntry:
    """Return the build folder for ``key``, calling ``build(folder)`` only on a miss.

    ``build`` receives an empty temporary folder and must leave every product in it;
    it must not rely on the folder's final path. ``meta`` (JSON-serialisable) is
    stored in the folder's marker file beside the build time. An exception from
    ``build`` propagates and leaves no cache entry.
    """
    start = time.perf_counter()
    root = cache_root() if root is None else root
    final = root / key
    if (final / _MARKER).is_file():
        return CacheEntry(final, key, True, time.perf_counter() - start)

    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / f".{key}.lock"):
        if (final / _MARKER).is_file():
            return CacheEntry(final, key, True, time.perf_counter() - start)
        if final.exists():
            shutil.rmtree(final)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
            build(staging)
            seconds = time.perf_counter() - start
            marker = {"key": key, "build_seconds": round(seconds, 3),
                      "created": time.time(), **(meta or {})}
            (staging / _MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True))
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return CacheEntry(final, key, False, time.perf_counter() - start)
