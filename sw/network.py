"""The quantized network: integer spec, layer graph, integer weights and metadata.

An :class:`IntNetwork` is what a bundle stores and what the golden model and the
hardware generator consume. :meth:`IntNetwork.validate` is the single gate every
network passes: shapes chain, weights are in range, and no current can overflow the
accumulator (so accumulation order never matters).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from quickspike.errors import SpecError
from quickspike.sw.spec import INPUT_CODINGS, MAX_STEPS, CompensationSpec, ExitSpec, IntSpec, LayerSpec, StageSpec

__all__ = ["IntNetwork"]


@dataclass(frozen=True)
class IntNetwork:
    spec: IntSpec
    layers: tuple[LayerSpec, ...]
    #: One int64 array per layer, of ``layer.weight_shape``.
    weights: tuple[np.ndarray, ...]
    #: Timesteps the network was trained for (the default at run time).
    timesteps: int = 4
    #: Free-form, JSON-serializable facts: algorithm, dataset, accuracies, ...
    meta: dict = field(default_factory=dict)
    #: The early-exit rule (ATSNN); ``rule="none"`` runs every sample for ``timesteps``.
    exit: ExitSpec = field(default_factory=ExitSpec)
    #: IC-SNN coding compensation at readout (last hidden layer's residuals).
    compensation: CompensationSpec = field(default_factory=CompensationSpec)
    #: ``direct`` (multi-bit pixels, the same current every timestep) or ``events``
    #: (binary spike frames, one per timestep of the first stage).
    input_coding: str = "direct"
    #: SSNN shrinking-timestep stages; empty: every layer runs ``timesteps``.
    stages: StageSpec = field(default_factory=StageSpec)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.layers[0].in_shape

    @property
    def num_classes(self) -> int:
        return self.layers[-1].n_out

    @property
    def staged(self) -> bool:
        return self.stages.staged

    @property
    def input_steps(self) -> int:
        """Timesteps of the first layer: the number of input frames an ``events`` network takes."""
        return self.stages.steps[0] if self.staged else self.timesteps

    @property
    def output_steps(self) -> int:
        """Timesteps the output layer runs (``timesteps`` unless staged)."""
        return self.stages.steps[-1] if self.staged else self.timesteps

    @property
    def average_steps(self) -> float:
        """SSNN's average timestep ``Σ n_i·T_i / Σ n_i`` (``timesteps`` unless staged)."""
        return self.stages.average_steps(len(self.layers)) if self.staged else float(self.timesteps)

    def validate(self) -> "IntNetwork":
        """Check the whole network against its spec; raise :class:`SpecError` naming the problem."""
        spec = self.spec
        if not self.layers:
            raise SpecError("the network has no layers")
        if len(self.weights) != len(self.layers):
            raise SpecError(f"{len(self.weights)} weight arrays for {len(self.layers)} layers")
        if isinstance(self.timesteps, bool) or not isinstance(self.timesteps, int) or not 1 <= self.timesteps <= MAX_STEPS:
            raise SpecError(f"timesteps = {self.timesteps!r} must be an integer in [1, {MAX_STEPS}]")
        if self.input_coding not in INPUT_CODINGS:
            raise SpecError(f"input_coding = {self.input_coding!r}; expected one of {', '.join(INPUT_CODINGS)}")
        if not isinstance(self.stages, StageSpec):
            raise SpecError("stages must be a StageSpec")
        self.stages.validate(len(self.layers))
        if not isinstance(self.exit, ExitSpec):
            raise SpecError("exit must be an ExitSpec")
        self.exit.validate(spec, self.num_classes)
        if not isinstance(self.compensation, CompensationSpec):
            raise SpecError("compensation must be a CompensationSpec")
        self.compensation.validate(spec)
        if self.staged:
            if self.timesteps != self.stages.steps[0]:
                raise SpecError(f"timesteps = {self.timesteps} must equal the first stage's "
                                f"{self.stages.steps[0]} in a staged network")
            if self.exit.rule != "none":
                raise SpecError("an exit rule cannot be combined with SSNN stages")
            if self.compensation.enabled:
                raise SpecError("the coding compensation cannot be combined with SSNN stages")
        if self.compensation.enabled:
            if len(self.layers) < 2 or self.layers[-1].kind != "dense":
                raise SpecError("compensation needs a hidden layer and a dense output layer")
            worst = int(np.abs(self.weights[-1].astype(np.int64)).sum(axis=1).max(initial=0)) \
                * self.input_multiplicity(len(self.layers) - 1) * ((1 << self.compensation.frac_bits) - 1)
            if worst > spec.acc_range[1]:
                raise SpecError(f"compensation: the largest readout current {worst} overflows the "
                                f"{spec.acc_bits}-bit accumulator (max {spec.acc_range[1]})")
        wlo, whi = spec.weight_range
        alo, ahi = spec.acc_range
        for i, (layer, w) in enumerate(zip(self.layers, self.weights)):
            owner = f"layer {i}"
            layer.validate(spec, owner)
            last = i == len(self.layers) - 1
            if layer.neuron.spiking == last:
                raise SpecError(f"{owner}: {'the output layer must be non-spiking' if last else 'hidden layers must spike'}")
            if i > 0:
                prev = self.layers[i - 1].pooled_shape
                if layer.kind == "conv" and layer.in_shape != prev:
                    raise SpecError(f"{owner}.in_shape = {layer.in_shape} does not match the {prev} before it")
                if layer.kind == "dense" and layer.n_in != int(np.prod(prev)):
                    raise SpecError(f"{owner} takes {layer.n_in} inputs but the layer before gives {int(np.prod(prev))}")
            if not isinstance(w, np.ndarray) or w.dtype.kind not in "iu":
                raise SpecError(f"{owner}: weights must be an integer array")
            if tuple(w.shape) != layer.weight_shape:
                raise SpecError(f"{owner}: weights have shape {tuple(w.shape)}, expected {layer.weight_shape}")
            if w.size and (int(w.min()) < wlo or int(w.max()) > whi):
                bad = int(w.min()) if int(w.min()) < wlo else int(w.max())
                raise SpecError(f"{owner}: weight {bad} does not fit {spec.weight_bits} bits [{wlo}, {whi}]")
            worst = self._worst_current(i)
            if self.staged and i in self.stages.starts[1:]:
                # a stage's first layer sums the spike currents of the whole stage before it
                worst *= self.stages.steps[self.stages.stage_of(i) - 1]
            if worst > ahi:
                raise SpecError(
                    f"{owner}: the largest possible input current {worst} overflows the "
                    f"{spec.acc_bits}-bit accumulator (max {ahi})")
        return self

    def input_multiplicity(self, index: int) -> int:
        """The most a single input of layer ``index`` can carry in one timestep."""
        if index == 0:
            return 1 if self.input_coding == "events" else self.spec.input_max
        prev = self.layers[index - 1]
        return prev.pool * prev.pool if prev.kind == "conv" else 1

    def _worst_current(self, index: int) -> int:
        """An upper bound of |I| for layer ``index`` over all possible inputs."""
        layer, w = self.layers[index], np.abs(self.weights[index].astype(np.int64))
        m = self.input_multiplicity(index)
        if layer.kind == "dense":
            return int(w.sum(axis=1).max(initial=0)) * m
        return int(w.sum(axis=(1, 2, 3)).max(initial=0)) * m
