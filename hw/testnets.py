"""Tiny random networks for hardware tests and demos (amaranth.sim-sized)."""

__all__ = ["dense_net", "conv_net", "pixels"]

import numpy as np

from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import IntSpec, LayerSpec, NeuronSpec


def dense_net(seed=0, n_in=12, hidden=7, n_out=5, T=4, reset="subtract", leak=0,
              spec=IntSpec(weight_bits=6, input_bits=4, membrane_bits=12, acc_bits=16), v_init=3):
    rng = np.random.default_rng(seed)
    wlo, whi = spec.weight_range
    hid = NeuronSpec(threshold=int(rng.integers(20, 60)), v_init=v_init, leak_shift=leak, reset=reset)
    out = NeuronSpec(threshold=1, v_init=-v_init, leak_shift=leak, spiking=False)
    layers = (LayerSpec("dense", (n_in,), (hidden,), hid), LayerSpec("dense", (hidden,), (n_out,), out))
    w0 = rng.integers(wlo // 2, whi, size=(hidden, n_in))
    w1 = rng.integers(wlo, whi + 1, size=(n_out, hidden)) * 8
    w1 = np.clip(w1, wlo, whi)
    return IntNetwork(spec, layers, (w0, w1), timesteps=T).validate()


def pixels(net, n, seed=1, density=0.5):
    rng = np.random.default_rng(seed)
    shape = net.input_shape
    p = rng.integers(0, 256, size=(n, *shape))
    p[rng.random(p.shape) > density] = 0
    return p.astype(np.uint8)


def conv_net(seed=0, C=1, K=3, H=5, W=6, pool=2, n_out=4, T=3, reset="subtract", leak=0,
             spec=IntSpec(weight_bits=6, input_bits=4, membrane_bits=12, acc_bits=16), v_init=2,
             conv2=False):
    rng = np.random.default_rng(seed)
    wlo, whi = spec.weight_range
    layers, weights = [], []
    hid = NeuronSpec(threshold=int(rng.integers(15, 40)), v_init=v_init, leak_shift=leak, reset=reset)
    layers.append(LayerSpec("conv", (C, H, W), (K, H, W), hid, pool=1 if conv2 else pool))
    weights.append(rng.integers(wlo // 2, whi, size=(K, C, 3, 3)))
    shape = layers[-1].pooled_shape
    if conv2:
        K2 = K + 2
        hid2 = NeuronSpec(threshold=int(rng.integers(5, 15)), v_init=0, leak_shift=leak, reset=reset)
        layers.append(LayerSpec("conv", shape, (K2, *shape[1:]), hid2, pool=pool))
        weights.append(rng.integers(wlo // 2, whi, size=(K2, K, 3, 3)))
        shape = layers[-1].pooled_shape
    n_in = int(np.prod(shape))
    out = NeuronSpec(threshold=1, v_init=-v_init, leak_shift=leak, spiking=False)
    layers.append(LayerSpec("dense", (n_in,), (n_out,), out))
    weights.append(np.clip(rng.integers(wlo, whi + 1, size=(n_out, n_in)) * 4, wlo, whi))
    return IntNetwork(spec, tuple(layers), tuple(weights), timesteps=T).validate()
