"""cocotb testbench for the accumulator built in ``tests/test_cosim_toolchain.py``.

The design adds ``din`` into ``acc`` and counts the additions in ``count`` while
``en`` is high and ``done`` (``count >= limit``) is low. The testbench reads its
stimulus from the JSON file named by ``$COUNTER_TB_CONFIG``::

    {"limit": 5, "stimulus": [[en, din], ...], "model_bias": 0, "observed": "path.json"}

drives one stimulus pair per clock cycle, checks every cycle against a Python
model (``model_bias`` skews the model, so a test can prove that a wrong model
fails) and writes the observed ``[acc, count, done]`` per cycle to ``observed``.
"""

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

CONFIG_ENV = "COUNTER_TB_CONFIG"


def model_step(state, en, din, limit, acc_width, count_width):
    """Next ``(acc, count)`` after one rising edge; the reference for the DUT."""
    acc, count = state
    if en and count < limit:
        acc = (acc + din) % (1 << acc_width)
        count = (count + 1) % (1 << count_width)
    return acc, count


class TB:
    """Owns the clock and reset of the accumulator DUT."""

    def __init__(self, dut):
        self.dut = dut
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self, limit):
        self.dut.rst.value = 1
        self.dut.en.value = 0
        self.dut.din.value = 0
        self.dut.limit.value = limit
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0


@cocotb.test()
async def check_against_model(dut):
    config = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    limit = config["limit"]
    acc_width, count_width = len(dut.acc), len(dut.count)
    tb = TB(dut)
    await tb.reset(limit)

    state = (0, 0)
    observed = []
    for cycle, (en, din) in enumerate(config["stimulus"]):
        await FallingEdge(dut.clk)
        dut.en.value = en
        dut.din.value = din
        await RisingEdge(dut.clk)
        await ReadOnly()
        state = model_step(state, en, din, limit, acc_width, count_width)
        expected = (state[0] + config.get("model_bias", 0), state[1], int(state[1] >= limit))
        got = (int(dut.acc.value), int(dut.count.value), int(dut.done.value))
        observed.append(list(got))
        assert got == expected, f"cycle {cycle}: DUT {got} != model {expected}"

    Path(config["observed"]).write_text(json.dumps(observed))
