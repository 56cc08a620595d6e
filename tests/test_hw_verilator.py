"""The generated Verilog (not just the Amaranth model) is bit-exact: Verilator via
cosim.pyverilator_engine, driven through the stream ports exactly as protocol.py says.

Verilator's C++ names mangle ``__`` into ``___05F`` (``cmd__payload`` -> ``cmd___05Fpayload``).
"""

import pytest

from quickspike.hw import protocol as P
from quickspike.hw.config import HwConfig
from quickspike.hw.generate import TOP_NAME, generate_verilog
from quickspike.hw.testnets import conv_net, dense_net, pixels
from quickspike.sw.golden import run_golden

engine = pytest.importorskip("quickspike.cosim.pyverilator_engine")


def _port(name):
    return name.replace("__", "___05F")


def drive(sim, words, n_samples, max_idle=1_000_000):
    out, done = [], 0
    sim.set(_port("res__ready"), 1)

    def cycle():
        nonlocal done
        if sim.get(_port("res__valid")):
            w = sim.get(_port("res__payload"))
            out.append(w)
            done += w >> 32 == P.TAG["CYCLES"]
    for w in words:
        sim.set(_port("cmd__payload"), w)
        sim.set(_port("cmd__valid"), 1)
        while True:
            ready = sim.get(_port("cmd__ready"))
            cycle()
            sim.tick()
            if ready:
                break
    sim.set(_port("cmd__valid"), 0)
    for _ in range(max_idle):
        if done >= n_samples:
            break
        cycle()
        sim.tick()
    return out


@pytest.mark.parametrize("make,lanes", [
    (lambda: dense_net(seed=3, n_out=10, reset="zero", leak=2), 3),
    (lambda: conv_net(seed=5, conv2=True, pool=2, H=7, W=5, K=5), 3),
])
def test_verilog_bit_exact(make, lanes):
    net = make()
    cfg = HwConfig.from_network(net, lanes=lanes)
    try:
        sim = engine.PyVerilatorSim(generate_verilog(cfg), TOP_NAME)
    except Exception as e:  # pragma: no cover - toolchain missing on this machine
        pytest.skip(f"Verilator build unavailable: {e}")
    sim.reset()
    x = pixels(net, 3)
    shape = net.input_shape if len(net.input_shape) == 3 else None
    words = P.encode_network(net, cfg)
    for img in x:
        words += P.encode_sample(img.reshape(-1), net.spec, shape=shape)
    res = P.decode_all(drive(sim, words, len(x)), net.layers[-1].n_out, net.spec)
    g = run_golden(net, x)
    assert len(res) == len(x)
    for i, r in enumerate(res):
        assert r.potentials == g.potentials[i].tolist()
        assert r.predicted == int(g.predicted[i])
        assert r.timesteps == net.timesteps
