"""Where a network lives in the accelerator's memories (pure Python, no Amaranth).

:func:`network_layout` assigns every layer its weight-RAM base, its neuron-RAM base
and the run-time register values the hardware needs (see
:data:`quickspike.hw.protocol.LAYER_FIELDS`). The protocol encoder, the fit check
and :meth:`HwConfig.from_network` all use it, so they agree by construction.

Memory maps (``lanes`` = L):

* **Neurons** (membrane RAM and current RAM share addresses). Dense layer: neuron
  ``n`` is lane ``n % L`` of word ``sbase + n // L``. Conv layer ``(K, H, W)``:
  neuron ``(k, y, x)`` is lane ``k % L`` of word ``sbase + (y·W + x)·KW + k // L``
  with ``KW = ceil(K / L)`` (lanes run over output channels).
* **Weights**. Dense: input row ``r`` occupies words ``wbase + r·RW ..`` with
  ``RW = ceil(n_out / L)``, lane ``j`` of word ``g`` holding ``W[g·L + j, r]``.
  Conv: row ``(c, i, j)`` (index ``c·9 + i·3 + j``) occupies ``KW`` words, lane ``l``
  of word ``g`` holding ``W[g·L + l, c, i, j]``. Lanes past the layer's outputs hold 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quickspike.sw.network import IntNetwork

__all__ = ["LayerLayout", "NetworkLayout", "network_layout", "weight_rows"]


def _words(n: int, lanes: int) -> int:
    return -(-n // lanes)


@dataclass(frozen=True)
class LayerLayout:
    """Run-time register values of one layer (names match ``protocol.LAYER_FIELDS``)."""

    kind: int          # 0 dense, 1 conv
    wbase: int         # first weight word
    sbase: int         # first neuron word
    row_words: int     # words per weight row (dense: ceil(n_out/L); conv: KW)
    out_words: int     # neuron words swept by the fire phase
    last_lanes: int    # valid lanes in the last word of a row / channel group
    threshold: int
    v_init: int
    leak_shift: int
    reset: int         # 0 subtract, 1 zero
    spiking: int
    map_h: int         # conv: map height (1 for dense)
    map_w: int         # conv: map width (1 for dense)
    pool: int          # conv: pooling of this layer's output spikes
    pool_h: int        # map_h // pool
    pool_w: int        # map_w // pool
    row_stride: int    # conv: neuron words per map row (map_w · KW)
    k9: int            # conv: weight words per input channel (9 · KW)
    in_hw: int         # dense after conv: pooled H·W of the layer before (flatten stride); else 1
    weight_words: int  # weight words the layer occupies


@dataclass(frozen=True)
class NetworkLayout:
    layers: tuple[LayerLayout, ...]
    weight_words: int
    neuron_words: int
    #: Most event entries one layer-timestep can write (max hidden out_words).
    event_words: int


def network_layout(net: IntNetwork, lanes: int) -> NetworkLayout:
    """Assign memory regions and register values to every layer of ``net``."""
    out = []
    wbase = sbase = 0
    event_words = 0
    for i, layer in enumerate(net.layers):
        n = layer.neuron
        if layer.kind == "dense":
            rw = _words(layer.n_out, lanes)
            ow = rw
            last = layer.n_out - (rw - 1) * lanes
            h = w = p = 1
            ww = layer.n_in * rw
        else:
            k, h, w = layer.out_shape
            rw = _words(k, lanes)
            ow = h * w * rw
            last = k - (rw - 1) * lanes
            p = layer.pool
            ww = layer.in_shape[0] * 9 * rw
        in_hw = 1
        if i > 0 and layer.kind == "dense" and net.layers[i - 1].kind == "conv":
            ps = net.layers[i - 1].pooled_shape
            in_hw = ps[1] * ps[2]
        out.append(LayerLayout(
            kind=0 if layer.kind == "dense" else 1, wbase=wbase, sbase=sbase, row_words=rw,
            out_words=ow, last_lanes=last, threshold=n.threshold, v_init=n.v_init,
            leak_shift=n.leak_shift, reset=0 if n.reset == "subtract" else 1,
            spiking=int(n.spiking), map_h=h, map_w=w, pool=p, pool_h=h // p, pool_w=w // p,
            row_stride=w * rw, k9=9 * rw, in_hw=in_hw, weight_words=ww))
        if n.spiking:
            event_words = max(event_words, ow)
        wbase += ww
        sbase += ow
    return NetworkLayout(tuple(out), wbase, sbase, event_words)


def weight_rows(net: IntNetwork, index: int, lanes: int) -> np.ndarray:
    """Layer ``index``'s weights as a (words, lanes) int64 array in weight-RAM order."""
    layer, w = net.layers[index], np.asarray(net.weights[index], dtype=np.int64)
    if layer.kind == "dense":
        n_out, n_in = w.shape
        rw = _words(n_out, lanes)
        pad = np.zeros((rw * lanes, n_in), dtype=np.int64)
        pad[:n_out] = w
        # row r, word g, lane j -> W[g*L + j, r]
        return pad.T.reshape(n_in * rw, lanes)
    k, c = w.shape[:2]
    rw = _words(k, lanes)
    pad = np.zeros((rw * lanes, c, 3, 3), dtype=np.int64)
    pad[:k] = w
    # row (c, i, j), word g, lane l -> W[g*L + l, c, i, j]
    return pad.transpose(1, 2, 3, 0).reshape(c * 9 * rw, lanes)
