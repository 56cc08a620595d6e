"""Synthesis smoke tests: real yosys / nextpnr / pack runs on small designs.

* iCE40 UP5K: the generated accelerator in a tiny configuration, inside the serial
  wrapper (the real top has ~105 ports; the SG48 package has 39 IOs).
* ECP5-25k: the small :class:`~quickspike.synth.demo.MemAdder` (a memory that must
  become block RAM, a carry chain, stream handshakes).
* A design too big for the UP5K is refused after yosys, naming the resource, and the
  ``synth`` command exits non-zero with that one line.

Every figure checked is read back from the tools' own reports, not recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quickspike.errors import FitError, UsageError
from quickspike.synth.demo import mem_adder_verilog
from quickspike.synth.prepare import strip_zero_memory_init
from quickspike.synth.run import synthesize
from quickspike.synth.targets import TARGETS, get_target
from quickspike.synth.wrapper import SerialWrapper, verilog_ports, wrap_verilog


# ---------------------------------------------------------------------------- no tools

def test_targets():
    up5k = get_target("ice40-up5k")
    assert (up5k.family, up5k.luts, up5k.bram, up5k.spram, up5k.dsp) == ("ice40", 5280, 30, 4, 8)
    assert get_target("ecp5-25k").family == get_target("ecp5-85k").family == "ecp5"
    assert set(TARGETS) == {"ice40-up5k", "ecp5-25k", "ecp5-85k"}
    with pytest.raises(UsageError, match="unknown target 'xc7'"):
        get_target("xc7")


def test_ports_wrapper_and_init_stripping():
    v = mem_adder_verilog(width=16, depth=64)
    ports = {p.name: (p.width, p.direction) for p in verilog_ports(v, "mem_adder")}
    assert ports["cmd__payload"] == (16 + 6 + 1, "input")
    assert ports["res__payload"] == (24, "output")
    assert ports["cmd__ready"] == (1, "output") and ports["clk"] == (1, "input")
    text, w = wrap_verilog(v, "mem_adder")
    assert isinstance(w, SerialWrapper) and "mem_adder core" in text
    assert (w.in_bits, w.out_bits) == (23, 24)
    assert [p.name for p in w.direct] == ["busy"]
    assert w.pins == 10
    stripped, names = strip_zero_memory_init(v)
    assert names == ["mem"] and "mem[63] = " in v and "mem[63] = " not in stripped
    rom = "  initial begin\n    r[0] = 8'h00;\n    r[1] = 8'h2a;\n  end\n"
    assert strip_zero_memory_init(rom) == (rom, [])
    with pytest.raises(ValueError, match="not defined"):
        verilog_ports(v, "nope")


# -------------------------------------------------------------------------- tool runs

def _check_against_reports(r, out: Path):
    """The result's figures are the ones in the tools' report files."""
    saved = json.loads((out / "synth.json").read_text())
    for key in ("target", "luts", "ffs", "bram", "spram", "dsp", "fmax_mhz", "fits", "bitstream"):
        assert key in saved
        assert saved[key] == getattr(r, key)
    report = json.loads((out / "nextpnr_report.json").read_text())
    achieved = min(c["achieved"] for c in report["fmax"].values())
    assert r.fmax_mhz == pytest.approx(achieved) and r.fmax_mhz > 0
    util = report["utilization"]
    lc = "ICESTORM_LC" if r.family == "ice40" else "TRELLIS_COMB"
    assert r.luts == util[lc]["used"] > 0
    assert r.ffs > 0
    assert r.fits is True and r.timing_met == (r.fmax_mhz >= r.freq_mhz)
    bit = Path(r.bitstream)
    assert bit.is_file() and bit.stat().st_size > 1000
    cp = r.critical_path
    assert cp["delay_ns"] == pytest.approx(1000.0 / r.fmax_mhz, rel=0.02)
    assert cp["start_signal"] and cp["end_signal"]
    text = (out / "report.txt").read_text()
    assert f"Fmax {r.fmax_mhz:.2f} MHz" in text and "critical path:" in text
    assert all(t > 0 for k, t in r.times.items() if k in ("yosys", "nextpnr"))


def test_ice40_tiny_accelerator(tmp_path):
    from quickspike.hw.config import HwConfig
    from quickspike.hw.generate import TOP_NAME, generate_verilog
    from quickspike.hw.testnets import dense_net

    cfg = HwConfig.from_network(dense_net(), lanes=2)
    out = tmp_path / "ice40"
    r = synthesize(generate_verilog(cfg), TOP_NAME, "ice40-up5k", out, progress=False)
    _check_against_reports(r, out)
    assert r.wrapped and r.io <= get_target("ice40-up5k").ios
    assert r.spram == 0 and r.bram >= 1
    mems = {m["name"].split(".")[-1]: m for m in r.memories}
    assert mems["wmem"]["mapped_to"] == "BRAM"             # never flip-flops
    assert mems["wmem"]["depth"] == cfg.weight_words
    assert "wmem" in r.memory_init_stripped
    assert r.bitstream.endswith(".bin")


def test_ecp5_mem_adder(tmp_path):
    out = tmp_path / "ecp5"
    r = synthesize(mem_adder_verilog(width=18, depth=1024), "mem_adder", "ecp5-25k", out, 80,
                   progress=False)
    _check_against_reports(r, out)
    assert r.freq_mhz == 80 and r.bram >= 1 and r.spram == 0
    assert [m["mapped_to"] for m in r.memories] == ["BRAM"]
    assert r.bitstream.endswith(".bit")


def test_overflow_messages():
    from quickspike.synth.run import _early_overflow, _overflow_from_nextpnr, _overflow_message

    up5k = get_target("ice40-up5k")
    res = {"luts": 9120, "ffs": 100, "bram": 31, "spram": 0, "dsp": 2}
    ov = _early_overflow(res, up5k, io_bits=10)
    assert _overflow_message(ov, up5k) == "design needs 9,120 LUT4 but ice40-up5k has 5,280; also 31 BRAM (has 30)"
    assert _early_overflow({**res, "luts": 10, "bram": 3}, up5k, io_bits=10) is None
    assert _early_overflow({**res, "luts": 10, "bram": 3}, up5k, io_bits=105)["resource"] == "IO"
    log = ("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:    6721/   5280   127%\n"
           "Info: \t        ICESTORM_RAM:      16/     30    53%\n")
    err = "nextpnr: failed: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_LC'"
    ov = _overflow_from_nextpnr(err, log)
    assert (ov["resource"], ov["needed"], ov["available"]) == ("LUT4", 6721, 5280)


def test_too_big_is_refused(tmp_path, capsys):
    """32 × 4 kbit of block RAM on a UP5K (30): refused after yosys, exit 1, one line."""
    from quickspike.cli import main

    src = tmp_path / "big.v"
    src.write_text(mem_adder_verilog(width=16, depth=8192))
    out = tmp_path / "big"
    code = main(["synth", str(src), "--top", "mem_adder", "--target", "ice40-up5k", "--out", str(out), "--quiet"])
    line = capsys.readouterr().err.strip()
    assert code == FitError.exit_code != 0
    assert "\n" not in line
    assert line.startswith("quickspike: error: design needs 32 BRAM but ice40-up5k has 30")
    saved = json.loads((out / "synth.json").read_text())
    assert saved["fits"] is False and saved["bitstream"] is None
    assert (saved["overflow"]["resource"], saved["overflow"]["needed"]) == ("BRAM", 32)
    assert "DOES NOT FIT" in (out / "report.txt").read_text()
    assert not (out / "nextpnr_report.json").exists()


def test_synth_command_usage_errors(tmp_path, capsys):
    from quickspike.cli import main

    assert main(["synth", str(tmp_path / "missing.qsb")]) == 2
    assert "missing.qsb does not exist" in capsys.readouterr().err
    (tmp_path / "x.v").write_text("module x(input a, output b); assign b = a; endmodule\n")
    assert main(["synth", str(tmp_path / "x.v")]) == 2
    assert "needs --top" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "x.v"), "--top", "y"]) == 2
    assert "module 'y' is not defined" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "x.v"), "--top", "x", "--lanes", "4", "--weight-words", "8"]) == 2
    assert "--weight-words is for a bundle input" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "x.v"), "--top", "x", "--target", "xc7"]) == 2


def test_spiker_comparison_and_design_options():
    from quickspike.hw.config import HwConfig
    from quickspike.hw.fit import check_fits
    from quickspike.hw.testnets import conv_net, dense_net
    from quickspike.sw.spec import ExitSpec
    from quickspike.synth.run import SPIKER_PLUS, SynthResult, spiker_comparison, text_report

    c = spiker_comparison(5000, 50.0, 5000.0, 0.95, lanes=4)
    assert (c["latency_us"], c["logic_below"], c["latency_below"], c["accuracy_at_least"]) == (100.0, True, True, True)
    assert spiker_comparison(8000, None, None, 0.9)["latency_us"] is None
    r = SynthResult(target="ecp5-25k", family="ecp5", part="p", top="t", wrapped=True, freq_mhz=100.0,
                    luts=8000, fmax_mhz=50.0, fits=True)
    r.comparison = spiker_comparison(r.luts, r.fmax_mhz, 5000.0, 0.9, lanes=4)
    text = text_report(r)
    assert "Beside Spiker+ (MNIST), 4 lanes" in text and f"{SPIKER_PLUS['logic_cells']:,}" in text
    assert "100.0" in text and "NO" in text        # more logic, lower accuracy than Spiker+
    # design options: banks must be a power of two; a network needing a datapath that was
    # left out is refused
    with pytest.raises(ValueError, match="power of two"):
        HwConfig(weight_bank_words=1000)
    with pytest.raises(TypeError):
        HwConfig(conv=1)
    cnet, dnet = conv_net(), dense_net()
    with pytest.raises(FitError, match="conv"):
        check_fits(cnet, HwConfig.from_network(cnet, lanes=2, conv=False))
    check_fits(dnet, HwConfig.from_network(dnet, lanes=2, conv=False, compensation=False, weight_bank_words=4))
    lean = HwConfig.from_network(dnet, lanes=2, early_exit=False)
    check_fits(dnet, lean)                                          # the network's rule is none
    with pytest.raises(FitError, match="HwConfig.early_exit"):
        check_fits(dnet, lean, exit=ExitSpec("margin", 3))
    with pytest.raises(TypeError):
        HwConfig(early_exit="no")
