"""The performance lower bound an event-driven LIF array is measured against.

``lower_bound_cycles`` counts, for one sample, the cycles an ideal ``lanes``-wide
array needs when it spends exactly one cycle per weight word and per neuron word:

* each non-zero input pixel, once per sample: ``ceil(fanout / lanes)``;
* each input event of a later layer (a spike of the layer before, after sum-pooling
  an event of multiplicity ``n`` counts ``n`` times), every timestep:
  ``ceil(fanout / lanes)``; for a conv layer the fanout is the number of valid
  ``(i, j)`` targets times ``ceil(K / lanes)`` words (lanes run over channels);
* each layer-timestep's fire sweep: ``ceil(n_out / lanes)``.

With an early exit only the timesteps a sample actually runs count (its exit step,
``GoldenResult.timesteps``): spikes after the exit are never computed.

Event input (``input_coding == "events"``): each set input of each frame, every
timestep of the first stage, costs ``ceil(fanout / lanes)`` of the first layer (there
is no once-per-sample term). SSNN stages: every layer counts its own stage's
timesteps (fire sweeps ``T_i·ceil(n_out / lanes)``), and a stage's first layer pays for
the events of the layer before it at *that* layer's timesteps (it accumulates
``C = Σ_t W·s_b[t]`` while the stage before runs). The temporal transformer
(:func:`quickspike.hw.transformer.latency`) and its ``COUNT``/``SPLIT`` words are not in
the bound: :func:`transformer_cycles` gives that fixed cost per sample.

With the coding compensation on, the readout adds, once per sample:

* each neuron of the last hidden layer with ``q > 0`` at the readout timestep (inside
  whole pool windows; :func:`compensation_events`): ``ceil(fanout / lanes)`` of the
  output layer, as a spike would;
* a sweep of the last hidden layer's residuals, ``ceil(n_hidden / lanes)``, and a
  readout sweep of the output layer, ``ceil(n_out / lanes)``.

The fire term follows the project's definition (``ceil(n_out / lanes)``); the
hardware sweeps a conv layer in ``H·W·ceil(K / lanes)`` words, which is larger when
``K`` is not a multiple of ``lanes`` (see :func:`fire_words`).
"""

from __future__ import annotations

import operator

import numpy as np

import torch

from quickspike.sw.golden import encode_input, encode_pixels, layer_current, lif_step, run_golden, sum_pool
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import CompensationSpec, ExitSpec, LayerSpec

__all__ = ["lower_bound_cycles", "fire_words", "event_cost_map", "compensation_events", "transformer_cycles"]


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def fire_words(layer: LayerSpec, lanes: int) -> int:
    """Words the hardware's fire phase sweeps for ``layer``."""
    if layer.kind == "dense":
        return _ceil(layer.n_out, lanes)
    k, h, w = layer.out_shape
    return h * w * _ceil(k, lanes)


def event_cost_map(layer: LayerSpec, lanes: int) -> np.ndarray:
    """Cycles one input event at each input position of ``layer`` costs (shape ``in_shape``)."""
    if layer.kind == "dense":
        return np.full(layer.in_shape, _ceil(layer.n_out, lanes), dtype=np.int64)
    c, h, w = layer.in_shape
    ny = np.array([sum(0 <= y - i + 1 < h for i in range(3)) for y in range(h)])
    nx = np.array([sum(0 <= x - j + 1 < w for j in range(3)) for x in range(w)])
    per = np.outer(ny, nx) * _ceil(layer.out_shape[0], lanes)
    return np.broadcast_to(per, (c, h, w)).astype(np.int64)


def compensation_events(net: IntNetwork, pixels, steps: int,
                        compensation: CompensationSpec | None = None) -> int:
    """Neurons of the last hidden layer with ``q > 0`` after timestep ``steps`` of one sample.

    The hidden layers are run with the golden model's step functions; neurons in rows
    or columns past whole pool windows do not count (the address map drops them).
    """
    comp = net.compensation if compensation is None else compensation
    layers = net.layers
    events = net.input_coding == "events"
    if events:
        x = encode_input(net, np.asarray(pixels).reshape(-1, *net.input_shape)[None], net.timesteps)
    else:
        x = encode_pixels(np.asarray(pixels).reshape(net.input_shape)[None], net.spec)
    weights = [torch.as_tensor(w, dtype=torch.float64) for w in net.weights[:-1]]
    v = [torch.full((1, *layer.out_shape), layer.neuron.v_init, dtype=torch.int64) for layer in layers[:-1]]
    first = None if events else layer_current(layers[0], weights[0], x)
    for _t in range(steps):
        current = layer_current(layers[0], weights[0], x[:, _t]) if events else first
        for i, layer in enumerate(layers[:-1]):
            if i > 0:
                current = layer_current(layer, weights[i], inputs)
            s, v[i] = lif_step(current, v[i], layer.neuron, net.spec)
            inputs = sum_pool(s, layer.pool) if layer.kind == "conv" else s
    hidden = layers[-2]
    q = comp.fraction(v[-1], hidden.neuron.threshold)
    if hidden.kind == "conv" and hidden.pool > 1:
        _, hp, wp = hidden.pooled_shape
        q = q[..., :hp * hidden.pool, :wp * hidden.pool]
    return int((q > 0).sum())


def transformer_cycles(net: IntNetwork) -> int:
    """Cycles of the temporal transformers of one sample (0 unless staged), not in the bound.

    Per boundary: the transformer's latency (``start`` to ``done``) plus one result word
    per ``m[t]`` and ``p[k]``.
    """
    if not net.staged:
        return 0
    from quickspike.hw.transformer import latency
    st = net.stages
    return sum(latency(a, b, tt.shift) + a + b for a, b, tt in zip(st.steps, st.steps[1:], st.transformers))


def _input_events(net, golden_spikes, i: int):
    """Layer ``i``'s input events per timestep, ``(T, n_in)``: the spikes of layer ``i - 1``
    (one sample's), pooled when that layer is a conv layer."""
    s = golden_spikes[i - 1]
    s = s[0] if s.dim() == len(net.layers[i - 1].out_shape) + 2 else s
    prev = net.layers[i - 1]
    counts = sum_pool(s.double(), prev.pool) if prev.kind == "conv" else s.double()
    return counts.reshape(counts.shape[0], -1).numpy()


def lower_bound_cycles(net: IntNetwork, golden_spikes, pixels, lanes: int,
                       timesteps: int | None = None, *, steps: int | None = None,
                       exit: ExitSpec | None = None, compensation: CompensationSpec | None = None) -> int:
    """The lower bound for one sample ``pixels`` (shaped like the input).

    ``golden_spikes``: the ``spikes`` of ``run_golden(..., record_spikes=True)`` for
    this sample (a tuple with one ``(T, *out_shape)`` or ``(1, T, *out_shape)``
    tensor per hidden layer), or ``None`` to run the golden model here.
    ``steps``: the timesteps the sample runs (``GoldenResult.timesteps`` of the sample);
    when ``None`` and an exit rule is in force (``exit``, default the network's), it is
    found by running the golden model here; only the first ``steps`` timesteps count.
    ``compensation`` (default the network's): when enabled, the readout pass counts.
    """
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"lanes = {lanes!r} must be a positive integer")
    events = net.input_coding == "events"
    pix = np.asarray(pixels).reshape(-1, *net.input_shape) if events else np.asarray(pixels).reshape(net.input_shape)
    rule = net.exit if exit is None else exit
    if golden_spikes is None or (steps is None and rule.rule != "none"):
        g = run_golden(net, pix[None], timesteps, exit=rule, record_spikes=golden_spikes is None)
        if golden_spikes is None:
            golden_spikes = g.spikes
        if steps is None and rule.rule != "none":
            steps = int(g.timesteps[0])
    if steps is not None:
        try:
            if isinstance(steps, bool):
                raise TypeError
            steps = operator.index(steps.item() if hasattr(steps, "item") else steps)
        except (TypeError, ValueError):
            raise ValueError(f"steps = {steps!r} must be a positive integer") from None
        if steps < 1:
            raise ValueError(f"steps = {steps!r} must be a positive integer")
    first = net.layers[0]
    if events:
        T0 = net.input_steps if steps is None else min(net.input_steps, steps)
        frames = pix[:T0].reshape(T0, -1)
        total = int(((frames != 0) * event_cost_map(first, lanes).reshape(1, -1)).sum())
    else:
        x = encode_pixels(pix, net.spec).numpy()
        total = int((event_cost_map(first, lanes).reshape(-1)[x.reshape(-1) != 0]).sum())
    if net.staged:
        # each layer's events and fire sweeps over its own stage's timesteps (no exit)
        layer_T = net.stages.layer_steps(len(net.layers))
        for i, layer in enumerate(net.layers):
            if i > 0:
                counts = _input_events(net, golden_spikes, i)[:layer_T[i - 1]]
                total += int((counts * event_cost_map(layer, lanes).reshape(1, -1)).sum())
            total += layer_T[i] * _ceil(layer.n_out, lanes)
        return total
    T = None
    for i, layer in enumerate(net.layers):
        if i > 0:
            counts = _input_events(net, golden_spikes, i)  # (T, n_in)
            if steps is not None:
                counts = counts[:steps]
            T = counts.shape[0]
            cost = event_cost_map(layer, lanes).reshape(-1)
            total += int((counts * cost[None, :]).sum())
    if T is None:
        T = net.timesteps if timesteps is None else timesteps
        T = T if steps is None else min(T, steps)
    total += T * sum(_ceil(layer.n_out, lanes) for layer in net.layers)
    comp = net.compensation if compensation is None else compensation
    if comp.enabled and len(net.layers) > 1:
        out, hidden = net.layers[-1], net.layers[-2]
        events = compensation_events(net, pix, T, comp)
        total += events * _ceil(out.n_out, lanes) + _ceil(hidden.n_out, lanes) + _ceil(out.n_out, lanes)
    return total
