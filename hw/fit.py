"""Does a network fit a generated accelerator? :func:`check_fits`.

Every limit of :class:`~quickspike.hw.config.HwConfig` is checked; the first one
exceeded raises :class:`quickspike.errors.FitError` with a one-line message that names
the limit and both numbers.
"""

from __future__ import annotations

import dataclasses

from quickspike.errors import FitError
from quickspike.hw.config import COMP_FRAC_BITS, COMP_MUL_BITS, COMP_SHIFT_MAX, HwConfig
from quickspike.hw.layout import network_layout
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import EXP_TABLE, CompensationSpec, ExitSpec

__all__ = ["check_fits"]


def _need(what: str, have: int, limit: int, name: str) -> None:
    if have > limit:
        raise FitError(f"{what} {have} exceeds the hardware limit {name} = {limit}")


def check_fits(net: IntNetwork, hwcfg: HwConfig, *, timesteps: int | None = None,
               exit: ExitSpec | None = None, compensation: CompensationSpec | None = None) -> None:
    """Raise :class:`FitError` unless ``net`` (run for ``timesteps``) fits ``hwcfg``.

    ``exit`` is the early-exit rule the run will use (default: the network's); an
    invalid rule raises :class:`~quickspike.errors.SpecError`. ``compensation`` is the
    coding compensation the run will use (default: the network's); one the network
    cannot take (no hidden layer, a readout current that could overflow the
    accumulator) raises :class:`~quickspike.errors.SpecError` from the network's own
    validation.
    """
    if not isinstance(hwcfg, HwConfig):
        raise TypeError(f"hwcfg must be a HwConfig, not {type(hwcfg).__name__}")
    if net.spec != hwcfg.spec:
        raise FitError(f"the network's integer spec {net.spec} differs from the hardware's {hwcfg.spec}")
    out = net.layers[-1]
    if out.kind != "dense":
        raise FitError(f"the output layer is a {out.kind} layer; the hardware needs a dense output layer")
    if out.neuron.spiking:
        raise FitError("the output layer spikes; the hardware needs non-spiking output integrators")
    for i, layer in enumerate(net.layers[:-1]):
        if not layer.neuron.spiking:
            raise FitError(f"layer {i} does not spike; only the output layer may be non-spiking")
    rule = net.exit if exit is None else exit
    if not isinstance(rule, ExitSpec):
        raise TypeError(f"exit must be an ExitSpec, not {type(rule).__name__}")
    rule.validate(net.spec, out.n_out)
    if net.staged:
        n = len(net.stages.steps)
        if not hwcfg.stages:
            raise FitError(f"the network has {n} SSNN stages but the hardware has no stage support "
                           f"(max_stages = {hwcfg.max_stages})")
        _need("the network's stage count", n, hwcfg.max_stages, "max_stages")
        for i, steps in enumerate(net.stages.steps):
            _need(f"stage {i}'s timesteps", steps, hwcfg.max_stage_steps, "max_stage_steps")
        if timesteps is not None and timesteps != net.timesteps:
            raise FitError(f"an SSNN network runs its stages {list(net.stages.steps)}: "
                           f"timesteps = {timesteps} cannot replace them")
        if rule.rule != "none":
            raise FitError(f"the exit rule {rule.rule!r} cannot be combined with SSNN stages")
    # the threshold register holds a margin (< 2**membrane_bits) or a table sum (<= n_out·EXP_TABLE[0])
    th_limit = max((1 << net.spec.membrane_bits) - 1, hwcfg.max_outputs * EXP_TABLE[0])
    _need("the exit threshold", rule.threshold, th_limit, "the exit threshold register's maximum")
    comp = net.compensation if compensation is None else compensation
    if not isinstance(comp, CompensationSpec):
        raise TypeError(f"compensation must be a CompensationSpec, not {type(comp).__name__}")
    if comp != net.compensation:
        dataclasses.replace(net, compensation=comp).validate()
    else:
        comp.validate(net.spec)
    if comp.enabled and not hwcfg.compensation:
        raise FitError("the run uses the coding compensation, but the design was generated without it "
                       "(HwConfig.compensation)")
    if rule.rule != "none" and not hwcfg.early_exit:
        raise FitError(f"the run uses the exit rule {rule.rule!r}, but the design was generated without "
                       f"early exit (HwConfig.early_exit)")
    if any(layer.kind == "conv" for layer in net.layers) and not hwcfg.conv:
        raise FitError("the network has conv layers, but the design was generated without them (HwConfig.conv)")
    if comp.enabled:
        _need("the compensation frac_bits", comp.frac_bits, COMP_FRAC_BITS, "COMP_FRAC_BITS")
        _need("the compensation shift", comp.shift, COMP_SHIFT_MAX, "COMP_SHIFT_MAX")
        _need("the compensation mul", comp.mul, (1 << COMP_MUL_BITS) - 1, "2**COMP_MUL_BITS - 1")
    lay = network_layout(net, hwcfg.lanes)
    _need("the network's layer count", len(net.layers), hwcfg.max_layers, "max_layers")
    _need("the network's weight words", lay.weight_words, hwcfg.weight_words, "weight_words")
    _need("the network's neuron words", lay.neuron_words, hwcfg.neuron_words, "neuron_words")
    _need("a layer's spike event entries", lay.event_words, hwcfg.event_words, "event_words")
    _need("the input size", net.layers[0].n_in, hwcfg.max_inputs, "max_inputs")
    _need("the output layer size", net.layers[-1].n_out, hwcfg.max_outputs, "max_outputs")
    T = net.timesteps if timesteps is None else timesteps
    _need("the timestep count", T, hwcfg.max_timesteps, "max_timesteps")
    for i, layer in enumerate(net.layers):
        if layer.kind == "conv":
            _need(f"layer {i}'s conv map size", max(layer.in_shape[1:]), hwcfg.max_map, "max_map")
            if i == 0:
                _need("the first layer's input channels", layer.in_shape[0], 4095, "the 12-bit channel field")
        # a flat index n·L + lane of the next layer's input must fit the index field
    for i, layer in enumerate(net.layers[1:], 1):
        _need(f"layer {i}'s input count", layer.n_in, 1 << hwcfg.index_bits, "2**index_bits")
