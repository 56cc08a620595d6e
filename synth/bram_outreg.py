"""ECP5 block RAM output registers: :func:`fold_output_registers`.

A DP16KD read without its output register (``REGMODE = "NOREG"``, what yosys'
``memory_libmap`` always emits) has a clock-to-output of about 5.6 ns: half of a
100 MHz cycle before the data leaves the block. The block has an output register of
its own (``REGMODE = "OUTREG"``, clock-to-output about 1 ns). When the RTL puts a plain
register right after a RAM's read data, as the accelerator does for its weight banks
and its current RAM, that register and the block's output register are the same
thing, so this pass moves it into the block: it sets ``REGMODE`` of the port, gives its
``OCE`` (output clock enable) the register's enable, and removes the flip-flops,
driving their nets from the RAM's outputs.

A port is folded only when the result is the same circuit:

* the RAM is in a true dual-port width (``DATA_WIDTH`` of the port <= 18, so its
  ``DO`` pins belong to that port; the 36-bit mode is left alone);
* every ``DO`` pin of the port that is used drives exactly one cell input, the ``DI``
  of a ``TRELLIS_FF``, and nothing else (no other logic, no top-level output);
* those flip-flops are clocked by the port's clock (``CLKMUX = "CLK"``), share one
  clock enable, have no set/reset (``LSR`` constant 0) and no global set/reset, and
  their outputs are not also ports of the module.

The pass works on yosys' JSON netlist (``write_json``) between synthesis and place and
route; :func:`fold_netlist_file` rewrites ``netlist.json`` in place (via a temporary
file) and returns what it folded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["fold_output_registers", "fold_netlist_file"]

_MAX_TRUE_DUAL_WIDTH = 18


def _param_int(value) -> int:
    """A yosys JSON parameter as an int (binary string, or already an int)."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text, 2) if text and set(text) <= {"0", "1"} else int(text)


def _top_module(netlist: dict) -> dict:
    tops = [m for m in netlist["modules"].values() if str(m.get("attributes", {}).get("top", "0")).strip("0 ")]
    if len(tops) != 1:
        raise ValueError("the netlist has no single top module")
    return tops[0]


def fold_output_registers(netlist: dict) -> list[dict]:
    """Fold flip-flops that register DP16KD read data into the RAMs (see the module doc).

    Changes ``netlist`` in place. Returns one record per folded port:
    ``{"ram": cell name, "port": "A" | "B", "bits": folded flip-flops}``.
    """
    mod = _top_module(netlist)
    cells = mod["cells"]
    port_bits = {b for p in mod.get("ports", {}).values() for b in p["bits"] if isinstance(b, int)}
    sinks: dict[int, list[tuple[str, str]]] = {}
    for name, cell in cells.items():
        for pin, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(pin) == "input":
                for b in bits:
                    if isinstance(b, int):
                        sinks.setdefault(b, []).append((name, pin))

    folded = []
    for ram_name, ram in list(cells.items()):
        if ram["type"] != "DP16KD":
            continue
        params, conn = ram["parameters"], ram["connections"]
        for side in "AB":
            if str(params.get(f"REGMODE_{side}", "NOREG")).strip() != "NOREG":
                continue
            if _param_int(params.get(f"DATA_WIDTH_{side}", 0)) > _MAX_TRUE_DUAL_WIDTH:
                continue
            clock = conn.get(f"CLK{side}")
            ffs = []          # (DO pin, flip-flop name)
            ok = True
            for pin, bits in conn.items():
                if not (pin.startswith(f"DO{side}") and pin[3:].isdigit()):
                    continue
                bit = bits[0]
                if not isinstance(bit, int):
                    continue
                users = sinks.get(bit, [])
                if not users:
                    continue
                if bit in port_bits or len(users) != 1:
                    ok = False
                    break
                ff_name, ff_pin = users[0]
                ff = cells[ff_name]
                fp, fc = ff["parameters"], ff["connections"]
                if (ff["type"] != "TRELLIS_FF" or ff_pin != "DI" or fc.get("CLK") != clock
                        or str(fp.get("CLKMUX", "CLK")).strip() != "CLK"
                        or str(fp.get("GSR", "DISABLED")).strip() != "DISABLED"
                        or str(fp.get("LSRMUX", "LSR")).strip() != "LSR"
                        or fc.get("LSR", ["0"]) != ["0"] or fc["Q"][0] in port_bits):
                    ok = False
                    break
                ffs.append((pin, ff_name))
            if not ok or not ffs:
                continue
            # one clock enable for all of them: the CE pin (CEMUX "CE") or none (CEMUX "1")
            enables = set()
            for _, ff_name in ffs:
                ff = cells[ff_name]
                mux = str(ff["parameters"].get("CEMUX", "CE")).strip()
                if mux == "1":
                    enables.add(("1",))
                elif mux == "CE":
                    enables.add(tuple(ff["connections"].get("CE", ["1"])))
                else:
                    enables.add(None)
            if len(enables) != 1 or None in enables:
                continue
            enable = list(enables.pop())
            params[f"REGMODE_{side}"] = "OUTREG"
            conn[f"OCE{side}"] = enable
            for pin, ff_name in ffs:
                conn[pin] = list(cells[ff_name]["connections"]["Q"])
                del cells[ff_name]
            folded.append({"ram": ram_name, "port": side, "bits": len(ffs)})
    return folded


def fold_netlist_file(path: "str | Path") -> list[dict]:
    """:func:`fold_output_registers` on a JSON netlist file, rewritten atomically."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    folded = fold_output_registers(netlist)
    if folded:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(netlist))
        os.replace(tmp, path)
    return folded
