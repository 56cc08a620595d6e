"""ECP5 block RAM output-register folding (synth/bram_outreg.py) on small netlists.

A port is folded only when the flip-flops after it are exactly the RAM's own output
register (same clock, one enable, no reset, nothing else reading the RAM's outputs);
every other case must leave the netlist as it was.
"""

import copy
import json

import pytest

from quickspike.synth.bram_outreg import fold_netlist_file, fold_output_registers

CLK, OTHER_CLK, EN, RST = 2, 3, 4, 5


def _ff(di, q, *, clk=CLK, ce=None, lsr=None):
    conn = {"DI": [di], "Q": [q], "CLK": [clk], "LSR": [lsr] if lsr else ["0"]}
    params = {"CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR", "REGSET": "RESET", "SRMODE": "LSR_OVER_CE",
              "CEMUX": "CE" if ce else "1"}
    if ce:
        conn["CE"] = [ce]
    return {"type": "TRELLIS_FF", "parameters": params, "attributes": {}, "connections": conn,
            "port_directions": {"DI": "input", "Q": "output", "CLK": "input", "CE": "input", "LSR": "input"}}


def _netlist(width=18, ffs=None, extra_reader=False):
    """A DP16KD whose port A outputs DOA0, DOA1 (nets 10, 11) feed two flip-flops (Q 20, 21)."""
    ram = {"type": "DP16KD", "attributes": {},
           "parameters": {"DATA_WIDTH_A": format(width, "032b"), "REGMODE_A": "NOREG", "REGMODE_B": "NOREG",
                          "DATA_WIDTH_B": format(width, "032b")},
           "connections": {"CLKA": [CLK], "CLKB": [CLK], "OCEA": ["0"], "OCEB": ["0"],
                           "DOA0": [10], "DOA1": [11], "DOA2": [12]},
           "port_directions": {"CLKA": "input", "CLKB": "input", "OCEA": "input", "OCEB": "input",
                               "DOA0": "output", "DOA1": "output", "DOA2": "output"}}
    cells = {"ram": ram, **(ffs if ffs is not None else {"ff0": _ff(10, 20), "ff1": _ff(11, 21)})}
    cells["lut"] = {"type": "LUT4", "parameters": {}, "attributes": {},
                    "connections": {"A": [20], "B": [21], "C": [12 if extra_reader else "0"], "Z": [50]},
                    "port_directions": {"A": "input", "B": "input", "C": "input", "Z": "output"}}
    return {"modules": {"top": {"attributes": {"top": "00000000000000000000000000000001"},
                                "ports": {"clk": {"direction": "input", "bits": [CLK]},
                                          "q": {"direction": "output", "bits": [50]}},
                                "cells": cells, "netnames": {}}}}


def test_register_after_ram_becomes_the_output_register():
    net = _netlist()
    folded = fold_output_registers(net)
    assert folded == [{"ram": "ram", "port": "A", "bits": 2}]
    cells = net["modules"]["top"]["cells"]
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_A"] == "OUTREG" and ram["parameters"]["REGMODE_B"] == "NOREG"
    assert ram["connections"]["OCEA"] == ["1"]
    assert ram["connections"]["DOA0"] == [20] and ram["connections"]["DOA1"] == [21]
    assert "ff0" not in cells and "ff1" not in cells and "lut" in cells


def test_clock_enable_moves_to_the_output_clock_enable():
    net = _netlist(ffs={"ff0": _ff(10, 20, ce=EN), "ff1": _ff(11, 21, ce=EN)})
    assert len(fold_output_registers(net)) == 1
    assert net["modules"]["top"]["cells"]["ram"]["connections"]["OCEA"] == [EN]


@pytest.mark.parametrize("case", ["reset", "other_clock", "two_enables", "second_reader", "wide_mode",
                                  "output_port"])
def test_anything_but_a_plain_register_is_left_alone(case):
    ffs = {"ff0": _ff(10, 20), "ff1": _ff(11, 21)}
    kwargs = {}
    if case == "reset":
        ffs["ff1"] = _ff(11, 21, lsr=RST)
    elif case == "other_clock":
        ffs["ff0"] = _ff(10, 20, clk=OTHER_CLK)
    elif case == "two_enables":
        ffs = {"ff0": _ff(10, 20, ce=EN), "ff1": _ff(11, 21)}
    elif case == "second_reader":
        kwargs["extra_reader"] = True
        ffs["ff2"] = _ff(12, 22)        # DOA2 drives a flip-flop and the LUT
    elif case == "wide_mode":
        kwargs["width"] = 36
    net = _netlist(ffs=ffs, **kwargs)
    if case == "output_port":
        net["modules"]["top"]["ports"]["q"]["bits"] = [21]
    before = copy.deepcopy(net)
    assert fold_output_registers(net) == []
    assert net == before


def test_file_is_rewritten_in_place(tmp_path):
    path = tmp_path / "netlist.json"
    path.write_text(json.dumps(_netlist()))
    assert len(fold_netlist_file(path)) == 1
    assert json.loads(path.read_text())["modules"]["top"]["cells"]["ram"]["parameters"]["REGMODE_A"] == "OUTREG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["netlist.json"]
