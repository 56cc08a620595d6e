"""Boards for the UART board top: pins, constraints, and a real build for the iCEBreaker.

* :data:`quickspike.hw.boards.BOARDS`: the constraint files, and the pin table checked
  against the ``amaranth-boards`` package's board definitions (skipped without it).
* :func:`quickspike.hw.board_top.build_board` for the iCEBreaker (iCE40 UP5K) with a
  tiny configuration (2 lanes): yosys, nextpnr with the PCF (every port on its pin),
  icepack; the figures come from nextpnr's report.
"""

from __future__ import annotations

import json
import re

import pytest

from quickspike.errors import UsageError
from quickspike.hw.board_top import BOARD_TOP_NAME, build_board
from quickspike.hw.boards import BOARDS, PORTS, get_board
from quickspike.hw.uart import MIN_LINE_DIVISOR, uart_divisor



def test_boards_and_constraints():
    ice = get_board("icebreaker")
    assert (ice.clk_hz, ice.family, ice.target.name) == (12_000_000, "ice40", "ice40-up5k")
    name, text = ice.constraints()
    assert name == "board.pcf"
    assert "set_io clk 35" in text and "set_io -pullup yes uart_rx 6" in text and "set_io uart_tx 9" in text
    ulx = get_board("ulx3s-85f")
    assert (ulx.clk_hz, ulx.target.device_arg, ulx.target.package) == (25_000_000, "--85k", "CABGA381")
    name, text = ulx.constraints()
    assert name == "board.lpf"
    assert 'LOCATE COMP "uart_rx" SITE "M1";' in text and 'LOCATE COMP "uart_tx" SITE "L4";' in text
    assert 'FREQUENCY PORT "clk" 25 MHZ;' in text
    for board in BOARDS.values():
        assert uart_divisor(board.clk_hz, board.baud) >= MIN_LINE_DIVISOR
        assert all(p in board.pins for p in PORTS)
    with pytest.raises(UsageError, match="unknown board 'de0'"):
        get_board("de0")


def test_board_pins_match_amaranth_boards():
    """The pin table against the board definitions of the amaranth-boards package."""
    pytest.importorskip("amaranth_boards")
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    def pins(platform, name, number=0, sub=None):
        res = platform.lookup(name, number)
        io = res.ios[0] if sub is None else next(s for s in res.ios if s.name == sub).ios[0]
        return io.names[0], io.invert

    ice = get_board("icebreaker")
    p = ICEBreakerPlatform()
    assert p.default_clk_frequency == ice.clk_hz and p.device == "iCE40UP5K" and p.package == "SG48"
    assert pins(p, "clk12") == (ice.pins["clk"], False)
    assert pins(p, "uart", sub="rx")[0] == ice.pins["uart_rx"]
    assert pins(p, "uart", sub="tx")[0] == ice.pins["uart_tx"]
    assert pins(p, "led_g") == (ice.pins["led_busy"], True)
    assert pins(p, "led_r") == (ice.pins["led_error"], True)
    ulx = get_board("ulx3s-85f")
    p = ULX3S_85F_Platform()
    assert p.default_clk_frequency == ulx.clk_hz and p.package == "BG381" and p.device == "LFE5U-85F"
    assert pins(p, "clk25") == (ulx.pins["clk"], False)
    assert pins(p, "uart", sub="rx")[0] == ulx.pins["uart_rx"]
    assert pins(p, "uart", sub="tx")[0] == ulx.pins["uart_tx"]
    assert pins(p, "led", 0) == (ulx.pins["led_busy"], False)
    assert pins(p, "led", 1) == (ulx.pins["led_error"], False)


def test_icebreaker_build_places_on_the_board_pins(tmp_path):
    from quickspike.hw.config import HwConfig
    from quickspike.hw.testnets import dense_net

    hwcfg = HwConfig.from_network(dense_net(), 2)
    r = build_board(hwcfg, "icebreaker", tmp_path, cmd_fifo_words=64, res_fifo_words=64, progress=False)
    assert r.fits and r.timing_met and r.fmax_mhz >= 12
    assert r.io == len(PORTS) and 0 < r.luts <= 5280
    assert (tmp_path / "design.bin").stat().st_size > 100_000
    log = (tmp_path / "nextpnr.log").read_text()
    ice = get_board("icebreaker")
    constrained = dict(re.findall(r"constrained '(\w+)' to bel '([^']+)'", log))
    assert set(constrained) == set(PORTS)
    info = json.loads((tmp_path / "board.json").read_text())
    assert (info["board"], info["clk_hz"], info["baud"], info["divisor"]) == ("icebreaker", 12_000_000,
                                                                              1_000_000, 12)
    assert info["hwcfg"] == hwcfg.to_dict() and info["cmd_fifo_words"] == 64
    assert f"module {BOARD_TOP_NAME}" in (tmp_path / "board.v").read_text()
    assert (tmp_path / "board.pcf").read_text() == ice.constraints()[1]
