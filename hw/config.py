"""Parameters of one generated accelerator: :class:`HwConfig`.

A :class:`HwConfig` fixes everything that is decided at generation time: the integer
spec (all datapath widths derive from it), the number of lanes (processing elements)
and the depths of the on-chip memories. Everything else (layer shapes, thresholds,
weights, timesteps) is loaded at run time through the command stream, so one
generated Verilog serves every network that :func:`quickspike.hw.fit.check_fits`
accepts for it.

Widths are never typed by hand: they derive from ``spec`` and from the depths via the
properties below.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import MAX_STEPS, IntSpec

__all__ = ["HwConfig", "words", "bits_for", "COMP_FRAC_BITS", "COMP_SHIFT_MAX", "COMP_MUL_BITS"]

#: Hard limits of the word protocol (see :mod:`quickspike.hw.protocol`).
_MAX_INPUTS = 1 << 16       # flat pixel index field
_MAX_MAP = 1 << 8           # conv y / x fields
_MAX_CHANNELS = 1 << 12     # conv channel field
_MAX_TIMESTEPS = 1 << 16

#: The coding-compensation registers hold every value
#: :meth:`quickspike.sw.spec.CompensationSpec.validate` accepts: ``frac_bits`` up to
#: this (``q`` is this many bits wide), ``shift`` up to ``COMP_SHIFT_MAX``, ``mul`` of
#: ``COMP_MUL_BITS`` bits (``tests/test_hw_compensation.py`` pins them to the spec).
COMP_FRAC_BITS = 8
COMP_SHIFT_MAX = 24
COMP_MUL_BITS = 24


def words(n: int, lanes: int) -> int:
    """``ceil(n / lanes)``: memory words that hold ``n`` lane values."""
    return -(-n // lanes)


def bits_for(n: int) -> int:
    """Bits of an unsigned counter that holds values ``0..n`` (at least 1)."""
    return max(1, int(n).bit_length())


def _pow2(n: int) -> int:
    return 1 << max(0, (max(1, n) - 1).bit_length())


@dataclass(frozen=True)
class HwConfig:
    """Generation-time parameters of the accelerator.

    Memory depths are in words; one word holds ``lanes`` values (weights, membranes
    or currents of neurons ``g·lanes + 0 .. g·lanes + lanes-1``).
    """

    spec: IntSpec = IntSpec()
    #: Processing elements: neurons updated / synapses accumulated per cycle.
    lanes: int = 8
    #: Weight RAM depth (words of ``lanes × weight_bits``).
    weight_words: int = 4096
    #: Membrane RAM and current RAM depth (words), shared by all layers.
    neuron_words: int = 64
    #: Spike event buffer depth (entries = memory words with at least one spike).
    event_words: int = 64
    #: Layers the register file holds.
    max_layers: int = 4
    #: Largest first-layer input (flat pixel count).
    max_inputs: int = 1024
    #: Largest output layer (classes).
    max_outputs: int = 16
    #: Largest conv map height / width.
    max_map: int = 32
    #: Largest timestep count a run may ask for.
    max_timesteps: int = 1024
    #: SSNN stages the controller can run (1: no SSNN hardware at all: no temporal
    #: transformer, spike counters, split multipliers or stage registers).
    max_stages: int = 1
    #: Most timesteps of one stage (sizes the temporal transformer: its weight RAM holds
    #: ``(max_stages - 1) · max_stage_steps²`` weights); unused when ``max_stages == 1``.
    max_stage_steps: int = 8
    #: Weight RAM bank depth (a power of two; 0: one bank). Each bank's output is
    #: registered before the bank select, so a weight RAM spread over many block RAMs
    #: (ECP5) has no wide mux right after them; the same cycles either way.
    weight_bank_words: int = 0
    #: Generate the conv datapath (kind = 1 layers: scatter, coordinates, pooling). Off,
    #: the layer kind register is never written and synthesis drops that logic.
    conv: bool = True
    #: Generate the coding-compensation datapath (IC-SNN). Off, its registers are never
    #: written and synthesis drops its multiplier, shifters and clamps.
    compensation: bool = True
    #: Generate the early-exit rules (ATSNN: margin, softmax). Off, the exit registers are
    #: never written (the rule stays ``none``) and synthesis drops the decision datapath
    #: and the speculative-timestep control; the argmax that gives CLASS stays.
    early_exit: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.spec, IntSpec):
            raise TypeError(f"HwConfig.spec must be an IntSpec, not {type(self.spec).__name__}")
        limits = {
            "lanes": (1, 64), "weight_words": (1, 1 << 24), "neuron_words": (1, 1 << 20),
            "event_words": (1, 1 << 20), "max_layers": (2, 16), "max_inputs": (1, _MAX_INPUTS),
            "max_outputs": (1, 1 << 12), "max_map": (1, _MAX_MAP - 1),
            "max_timesteps": (1, _MAX_TIMESTEPS - 1), "max_stages": (1, 16),
            "max_stage_steps": (1, MAX_STEPS), "weight_bank_words": (0, 1 << 24),
        }
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"HwConfig.{name} must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"HwConfig.{name} = {value} is out of range [{lo}, {hi}]")
        for name in ("conv", "compensation", "early_exit"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"HwConfig.{name} must be a bool, not {getattr(self, name)!r}")
        if self.weight_bank_words & (self.weight_bank_words - 1):
            raise ValueError(f"HwConfig.weight_bank_words = {self.weight_bank_words} is not a power of two")

    # -- derived widths ---------------------------------------------------------------

    @property
    def weight_addr_bits(self) -> int:
        return bits_for(self.weight_words - 1)

    @property
    def neuron_addr_bits(self) -> int:
        return bits_for(self.neuron_words - 1)

    @property
    def event_addr_bits(self) -> int:
        return bits_for(self.event_words)

    @property
    def out_words(self) -> int:
        """Words of the output-potential buffer."""
        return words(self.max_outputs, self.lanes)

    @property
    def lane_bits(self) -> int:
        """Bits of a lane index."""
        return bits_for(self.lanes - 1)

    @property
    def map_bits(self) -> int:
        """Bits of a conv coordinate (y or x), with room for ``H`` itself."""
        return bits_for(self.max_map)

    @property
    def index_bits(self) -> int:
        """Bits of a flat input index of any layer (``< max(neuron_words·lanes, max_inputs)``)."""
        return bits_for(max(self.neuron_words * self.lanes, self.max_inputs))

    @property
    def step_bits(self) -> int:
        return bits_for(self.max_timesteps)

    @property
    def layer_bits(self) -> int:
        return bits_for(self.max_layers - 1)

    @property
    def shift_bits(self) -> int:
        return bits_for(self.spec.membrane_bits - 1)

    @property
    def class_bits(self) -> int:
        return bits_for(self.max_outputs - 1)

    @property
    def event_value_bits(self) -> int:
        """Width of an event's value in the accumulate engine: a pixel or a compensation ``q``."""
        return max(self.spec.input_bits, COMP_FRAC_BITS)

    @property
    def stages(self) -> bool:
        """Whether the design has the SSNN hardware (stage-major controller, transformer)."""
        return self.max_stages > 1

    @property
    def count_bits(self) -> int:
        """Bits of a per-timestep spike count of one layer (``<= neuron_words · lanes``)."""
        return bits_for(self.neuron_words * self.lanes)

    @property
    def stage_step_bits(self) -> int:
        return bits_for(self.max_stage_steps)

    # -- JSON -------------------------------------------------------------------------

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "HwConfig":
        if not isinstance(data, dict):
            raise TypeError(f"HwConfig must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"HwConfig has unknown field {unknown[0]!r}")
        data = dict(data)
        if "spec" in data:
            data["spec"] = IntSpec.from_dict(data["spec"])
        return cls(**data)

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> "HwConfig":
        return cls.from_dict(json.loads(text))

    # -- sizing -----------------------------------------------------------------------

    @classmethod
    def from_network(cls, net: IntNetwork, lanes: int = 8, *, pow2: bool = True,
                     **overrides) -> "HwConfig":
        """The smallest configuration (depths rounded up to powers of two) that fits ``net``."""
        from quickspike.hw.layout import network_layout  # local: layout imports config
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes = {lanes!r} must be a positive integer")
        lay = network_layout(net, lanes)
        r = _pow2 if pow2 else (lambda n: max(1, n))
        maps = [max(layer.out_shape[1:]) for layer in net.layers if layer.kind == "conv"]
        params = dict(
            spec=net.spec, lanes=lanes,
            weight_words=r(lay.weight_words), neuron_words=r(lay.neuron_words),
            event_words=r(max(lay.event_words, 1)), max_layers=max(2, len(net.layers)),
            max_inputs=r(net.layers[0].n_in), max_outputs=r(net.layers[-1].n_out),
            max_map=min(_MAX_MAP - 1, r(max(maps, default=1))),
            max_timesteps=max(1024, net.timesteps),
        )
        if net.staged:
            params.update(max_stages=len(net.stages.steps), max_stage_steps=max(net.stages.steps))
        params.update(overrides)
        return cls(**params)
