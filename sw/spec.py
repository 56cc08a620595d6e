"""The integer semantics of the accelerator: the one source of truth.

Everything the hardware computes is defined here as integer arithmetic, and both the
golden model (:mod:`quickspike.sw.golden`) and the Amaranth generator (``hw/``) read
these dataclasses. No width is typed by hand anywhere else.

The arithmetic, per layer and timestep ``t`` (all integers):

* **Input current** ``I[t]``: for the first layer, ``W0 · x`` with the multi-bit
  input ``x`` (unsigned, ``input_bits``), computed once per sample and reused every
  timestep; for later layers ``W · s[t]`` with the binary spikes ``s[t]`` of the
  layer before (after its sum-pooling, if any) *in the same timestep*. The sum is
  exact: it is accumulated in ``acc_bits`` and a network whose worst-case current
  could overflow that width is refused (:meth:`IntNetwork.validate`), so the order
  in which events arrive never changes the result.
* **Leak**: ``leak(v) = v - (v >> leak_shift)`` with an arithmetic (floor) shift, or
  no leak when ``leak_shift == 0`` (integrate-and-fire). On negative potentials the
  floor makes the leak round away from zero: ``-3 - (-3 >> 1) = -3 - (-2) = -1``.
* **Integrate**: ``v = sat(leak(v) + I[t])`` where ``sat`` clamps to the signed
  ``membrane_bits`` range (saturation, never wrap-around).
* **Fire** (spiking layers only): ``s = v >= threshold``; where ``s`` is set,
  ``v = v - threshold`` (reset by subtraction) or ``v = 0`` (reset to zero).
* **Output layer**: a non-spiking integrator (same leak and saturation, no fire).
  The class is the index of the largest output potential after the last timestep
  run; ties go to the lowest index.
* **Early exit** (:class:`ExitSpec`, ATSNN): after every timestep ``t`` the output
  potentials are checked and the sample stops at the first ``t`` where the rule
  holds (or at ``T``); the class is then the argmax at ``t``. ``margin``: the largest
  potential minus the second largest is ``>= threshold``. ``softmax``: with
  ``d_j = min((v_max - v_j) >> shift, EXP_TABLE_SIZE - 1)`` and
  ``S = Σ_j EXP_TABLE[d_j]`` (``EXP_TABLE[0] = 2**EXP_FRAC_BITS``, so
  ``max softmax probability = EXP_TABLE[0] / S``), exit when ``S <= threshold``.
  Both need no division; the threshold and shift are run-time registers.
* **Coding compensation** (:class:`CompensationSpec`, IC-SNN): at readout the
  residual membrane of the last hidden layer adds the fraction of a spike it holds.
  For each of its neurons ``q = min((clamp(v, 0, threshold - 1) · mul) >> shift,
  2**frac_bits - 1)`` (``mul ≈ 2**(frac_bits + shift) / threshold``: no divide), the
  ``q`` go through the same pooling/flatten address map as spikes, and the readout is
  ``sat(v_out + ((W_out · q) >> frac_bits))`` (arithmetic shift). The exit rule
  watches the uncompensated potentials; the class is the argmax of the readout.
* **Input coding** (``IntNetwork.input_coding``): ``direct`` feeds multi-bit pixels
  as above; ``events`` feeds binary spike frames ``x[t]`` (``(C, H, W)`` of 0/1, e.g.
  the two polarities of an event camera binned into ``T`` frames): the first layer's
  current is ``W0 · x[t]``, a new one every timestep (accumulate-only, no multiply).
* **Shrinking timesteps** (:class:`StageSpec`, SSNN): the layers are cut into stages
  ``starts[i] .. starts[i+1]-1`` that run ``steps[0] > steps[1] > … `` timesteps,
  stage-major (stage ``i`` runs all its timesteps before stage ``i+1`` starts; each
  stage counts its timesteps from 0, and ``v_init`` is loaded at its timestep 0).
  At the boundary after stage ``i`` (its last layer ``b``; the next layer ``n``):

  1. ``m[t]`` = the number of spikes layer ``b`` emits at stage timestep ``t`` (all
     its neurons, before pooling): the per-timestep mean times ``n_out`` of ``b``;
  2. the next layer's spike currents are summed over the stage:
     ``C = Σ_t W_n · s_b[t]`` (exact, in ``acc_bits``; the network is refused if it
     could overflow);
  3. the temporal transformer (:class:`TransformerSpec`) makes the split weights
     ``p[k]`` (``k < steps[i+1]``): ``z[k] = ((Σ_t Wt[k][t] · m[t]) · mul) >> shift``
     (arithmetic shift; ``mul/2**shift`` folds ``1/n_out``, the weight scale and the
     exp table's step of 1/4 into one multiply), ``d[k] = min(max(z) - z[k],
     EXP_TABLE_SIZE - 1)``, ``e[k] = EXP_TABLE[d[k]]``, ``p[k] = (e[k] <<
     SPLIT_FRAC_BITS) // Σ e`` (a floor divide: ``p`` is the softmax in units of
     ``2**-SPLIT_FRAC_BITS``, ``Σ p <= 2**SPLIT_FRAC_BITS``);
  4. layer ``n``'s input current at its stage timestep ``k`` is
     ``(C · p[k]) >> SPLIT_FRAC_BITS`` (arithmetic shift): the summed spikes split by
     ``p[k]`` — ``W_n · (Σ_t s_b[t] · p[k])`` in exact arithmetic (the split commutes
     with the weights), rounded once per neuron.

  The output layer runs ``steps[-1]`` timesteps; its potentials after each of them
  are the outputs. Stages exclude an exit rule and the compensation.
* **Initial state**: every membrane starts at its layer's ``v_init`` at the start of
  each sample.
* **Pooling**: a convolutional layer may sum-pool its output spikes ``pool × pool``
  (stride ``pool``, rows/columns beyond a whole window dropped) before the next
  layer: an address map in hardware, so an input to the next layer can carry up to
  ``pool²`` events per timestep.
* **Flatten**: a dense layer after a convolution reads its inputs in ``(C, H, W)``
  order, index ``c·H·W + y·W + x``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from quickspike.errors import SpecError

__all__ = [
    "IntSpec", "NeuronSpec", "LayerSpec",
    "sat", "leak", "signed_range", "dumps",
    "RESET_MODES", "LAYER_KINDS",
    "ExitSpec", "EXIT_RULES", "CompensationSpec", "EXP_TABLE", "EXP_TABLE_SIZE", "EXP_FRAC_BITS",
    "INPUT_CODINGS", "StageSpec", "TransformerSpec", "SPLIT_FRAC_BITS", "TT_WEIGHT_BITS", "TT_MUL_BITS",
    "TT_SHIFT_MAX", "MAX_STEPS",
]

RESET_MODES = ("subtract", "zero")
LAYER_KINDS = ("dense", "conv")
EXIT_RULES = ("none", "margin", "softmax")
INPUT_CODINGS = ("direct", "events")

#: Timesteps of a network or a stage are at most this.
MAX_STEPS = 1024
#: SSNN split weights ``p[k]`` are in units of ``2**-SPLIT_FRAC_BITS``.
SPLIT_FRAC_BITS = 8
#: Signed temporal-transformer weights.
TT_WEIGHT_BITS = 8
#: Unsigned transformer logit multiplier and the largest right shift after it.
TT_MUL_BITS = 16
TT_SHIFT_MAX = 40

#: Fixed-point exp table of the softmax exit rule: ``EXP_TABLE[k] = round(2**12 · e**(-k/4))``,
#: and 0 for the last entry (a difference that large counts as probability zero).
EXP_FRAC_BITS = 12
EXP_TABLE_SIZE = 32
EXP_TABLE = tuple(
    round((1 << EXP_FRAC_BITS) * math.exp(-k / 4)) if k < EXP_TABLE_SIZE - 1 else 0
    for k in range(EXP_TABLE_SIZE)
)


def signed_range(bits: int) -> tuple[int, int]:
    """The inclusive range of a two's-complement integer of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def sat(value: int, bits: int) -> int:
    """Clamp ``value`` to the signed ``bits`` range (scalar reference)."""
    lo, hi = signed_range(bits)
    return lo if value < lo else hi if value > hi else value


def leak(v: int, shift: int) -> int:
    """``v - (v >> shift)`` with an arithmetic shift; identity when ``shift == 0``."""
    return v if shift == 0 else v - (v >> shift)


def _check_int(owner: str, name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{owner}.{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise SpecError(f"{owner}.{name} = {value} is out of range [{lo}, {hi}]")


@dataclass(frozen=True)
class IntSpec:
    """Widths of the accelerator's integers, shared by every layer."""

    #: Signed synaptic weights.
    weight_bits: int = 8
    #: Unsigned multi-bit input of the first layer (pixels).
    input_bits: int = 8
    #: Signed membrane potentials, saturating.
    membrane_bits: int = 24
    #: Signed current accumulators; a network that could overflow them is refused.
    acc_bits: int = 32

    def __post_init__(self) -> None:
        _check_int("IntSpec", "weight_bits", self.weight_bits, 2, 16)
        _check_int("IntSpec", "input_bits", self.input_bits, 1, 16)
        _check_int("IntSpec", "membrane_bits", self.membrane_bits, 4, 32)
        _check_int("IntSpec", "acc_bits", self.acc_bits, self.membrane_bits, 48)

    @property
    def weight_range(self) -> tuple[int, int]:
        return signed_range(self.weight_bits)

    @property
    def membrane_range(self) -> tuple[int, int]:
        return signed_range(self.membrane_bits)

    @property
    def acc_range(self) -> tuple[int, int]:
        return signed_range(self.acc_bits)

    @property
    def input_max(self) -> int:
        return (1 << self.input_bits) - 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "IntSpec":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class NeuronSpec:
    """The neuron parameters of one layer, in membrane units."""

    threshold: int = 1
    v_init: int = 0
    #: 0: no leak (IF); k > 0: ``v - (v >> k)`` each timestep.
    leak_shift: int = 0
    reset: str = "subtract"
    #: False for the output layer's non-spiking integrators.
    spiking: bool = True

    def validate(self, spec: IntSpec, owner: str = "NeuronSpec") -> None:
        lo, hi = spec.membrane_range
        _check_int(owner, "threshold", self.threshold, 1, hi)
        _check_int(owner, "v_init", self.v_init, lo, hi)
        _check_int(owner, "leak_shift", self.leak_shift, 0, spec.membrane_bits - 1)
        if self.reset not in RESET_MODES:
            raise SpecError(f"{owner}.reset = {self.reset!r}; expected one of {', '.join(RESET_MODES)}")
        if not isinstance(self.spiking, bool):
            raise SpecError(f"{owner}.spiking must be true or false, not {self.spiking!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "NeuronSpec":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the network graph.

    ``dense``: ``in_shape = (n_in,)`` or the ``(C, H, W)`` of a convolution before it
    (flattened), ``out_shape = (n_out,)``, weights ``(n_out, n_in)``.
    ``conv``: ``in_shape = (C, H, W)``, ``out_shape = (K, H, W)`` (3×3 kernel, stride
    1, zero padding 1: the map keeps its size), weights ``(K, C, 3, 3)``; ``pool``
    sum-pools the output spikes for the next layer.
    """

    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    neuron: NeuronSpec = field(default_factory=NeuronSpec)
    kernel: int = 3
    pool: int = 1

    @property
    def n_in(self) -> int:
        return _prod(self.in_shape)

    @property
    def n_out(self) -> int:
        return _prod(self.out_shape)

    @property
    def pooled_shape(self) -> tuple[int, ...]:
        """The shape the next layer sees (after sum-pooling)."""
        if self.kind != "conv" or self.pool == 1:
            return self.out_shape
        k, h, w = self.out_shape
        return (k, h // self.pool, w // self.pool)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.kind == "dense":
            return (self.n_out, self.n_in)
        return (self.out_shape[0], self.in_shape[0], self.kernel, self.kernel)

    def validate(self, spec: IntSpec, owner: str = "layer") -> None:
        if self.kind not in LAYER_KINDS:
            raise SpecError(f"{owner}.kind = {self.kind!r}; expected one of {', '.join(LAYER_KINDS)}")
        for name in ("in_shape", "out_shape"):
            shape = getattr(self, name)
            if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
                raise SpecError(f"{owner}.{name} = {shape!r} must be a tuple of positive integers")
        if self.kind == "dense":
            if len(self.out_shape) != 1:
                raise SpecError(f"{owner}.out_shape = {self.out_shape!r}: a dense layer has one output dimension")
            if self.pool != 1:
                raise SpecError(f"{owner}.pool = {self.pool}: only convolutions pool")
        else:
            if len(self.in_shape) != 3 or len(self.out_shape) != 3:
                raise SpecError(f"{owner}: a conv layer needs (C, H, W) shapes, got {self.in_shape} -> {self.out_shape}")
            if self.in_shape[1:] != self.out_shape[1:]:
                raise SpecError(f"{owner}: a conv layer keeps H and W, got {self.in_shape} -> {self.out_shape}")
            if self.kernel != 3:
                raise SpecError(f"{owner}.kernel = {self.kernel}: only 3x3 kernels are supported")
            _check_int(owner, "pool", self.pool, 1, 4)
            if self.pool > 1 and min(self.out_shape[1:]) < self.pool:
                raise SpecError(f"{owner}.pool = {self.pool} is larger than the map {self.out_shape[1:]}")
        self.neuron.validate(spec, f"{owner}.neuron")

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
            "neuron": self.neuron.to_dict(), "kernel": self.kernel, "pool": self.pool,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "LayerSpec":
        if not isinstance(data, dict):
            raise SpecError(f"a layer must be a JSON object, not {type(data).__name__}")
        data = dict(data)
        try:
            data["in_shape"] = tuple(data["in_shape"])
            data["out_shape"] = tuple(data["out_shape"])
            data["neuron"] = NeuronSpec.from_dict(data.get("neuron", {}))
        except KeyError as e:
            raise SpecError(f"layer is missing field {e.args[0]!r}") from None
        except TypeError:
            raise SpecError("layer shapes must be lists of integers") from None
        return _from_dict(cls, data)


@dataclass(frozen=True)
class ExitSpec:
    """The early-exit rule checked after every timestep (see the module docstring)."""

    rule: str = "none"
    #: margin: minimum top-1 minus top-2 potential; softmax: maximum table sum S.
    threshold: int = 0
    #: softmax only: right shift applied to potential differences (the temperature).
    shift: int = 0

    def validate(self, spec: IntSpec, n_out: int, owner: str = "exit") -> None:
        if self.rule not in EXIT_RULES:
            raise SpecError(f"{owner}.rule = {self.rule!r}; expected one of {', '.join(EXIT_RULES)}")
        _check_int(owner, "shift", self.shift, 0, spec.membrane_bits)
        if self.rule == "margin":
            _check_int(owner, "threshold", self.threshold, 0, (1 << spec.membrane_bits) - 1)
        elif self.rule == "softmax":
            _check_int(owner, "threshold", self.threshold, 0, n_out * EXP_TABLE[0])
        if self.rule != "none" and n_out < 2:
            raise SpecError(f"{owner}: an exit rule needs at least 2 outputs, the network has {n_out}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ExitSpec":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class CompensationSpec:
    """IC-SNN coding compensation at readout (see the module docstring)."""

    enabled: bool = False
    frac_bits: int = 4
    mul: int = 0
    shift: int = 16

    def validate(self, spec: IntSpec, owner: str = "compensation") -> None:
        if not isinstance(self.enabled, bool):
            raise SpecError(f"{owner}.enabled must be true or false, not {self.enabled!r}")
        _check_int(owner, "frac_bits", self.frac_bits, 1, 8)
        _check_int(owner, "shift", self.shift, 0, 24)
        _check_int(owner, "mul", self.mul, 0, (1 << 24) - 1)

    def fraction(self, v, threshold: int):
        """``q`` of membrane ``v`` (int or int64 tensor) for a layer with ``threshold``."""
        top = (1 << self.frac_bits) - 1
        if isinstance(v, int):
            return min((min(max(v, 0), threshold - 1) * self.mul) >> self.shift, top)
        return ((v.clamp(0, threshold - 1) * self.mul) >> self.shift).clamp_(max=top)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CompensationSpec":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class TransformerSpec:
    """The temporal transformer between two SSNN stages (see the module docstring)."""

    #: ``(steps_out, steps_in)`` signed ``TT_WEIGHT_BITS`` integers.
    weights: tuple[tuple[int, ...], ...]
    mul: int = 1
    shift: int = 0

    @property
    def steps_out(self) -> int:
        return len(self.weights)

    @property
    def steps_in(self) -> int:
        return len(self.weights[0]) if self.weights else 0

    def validate(self, steps_in: int, steps_out: int, owner: str = "transformer") -> None:
        if (not isinstance(self.weights, tuple) or len(self.weights) != steps_out
                or any(not isinstance(r, tuple) or len(r) != steps_in for r in self.weights)):
            raise SpecError(f"{owner}.weights must be a {steps_out}x{steps_in} integer matrix")
        lo, hi = signed_range(TT_WEIGHT_BITS)
        for r in self.weights:
            for w in r:
                _check_int(owner, "weights[.]", w, lo, hi)
        _check_int(owner, "mul", self.mul, 0, (1 << TT_MUL_BITS) - 1)
        _check_int(owner, "shift", self.shift, 0, TT_SHIFT_MAX)

    def split(self, counts):
        """``p`` (int64 ``(B, steps_out)``) from the spike counts ``m`` (int64 ``(B, steps_in)``)."""
        import torch  # the spec itself needs only the standard library

        w = torch.tensor(self.weights, dtype=torch.int64)
        z = ((counts.to(torch.int64) @ w.T) * self.mul) >> self.shift
        d = (z.max(dim=-1, keepdim=True).values - z).clamp_(max=EXP_TABLE_SIZE - 1)
        e = torch.tensor(EXP_TABLE, dtype=torch.int64)[d]
        return (e << SPLIT_FRAC_BITS) // e.sum(dim=-1, keepdim=True)

    def to_dict(self) -> dict:
        return {"weights": [list(r) for r in self.weights], "mul": self.mul, "shift": self.shift}

    @classmethod
    def from_dict(cls, data: dict) -> "TransformerSpec":
        if not isinstance(data, dict) or not isinstance(data.get("weights"), list):
            raise SpecError("a transformer must be a JSON object with a 'weights' matrix")
        data = dict(data)
        if any(not isinstance(r, list) for r in data["weights"]):
            raise SpecError("transformer weights must be a list of rows")
        data["weights"] = tuple(tuple(r) for r in data["weights"])
        return _from_dict(cls, data)


@dataclass(frozen=True)
class StageSpec:
    """SSNN stages: empty ``steps`` means one stage (every layer runs ``timesteps``)."""

    #: Timesteps per stage, strictly shrinking.
    steps: tuple[int, ...] = ()
    #: The first layer of each stage (``starts[0] == 0``).
    starts: tuple[int, ...] = ()
    #: One per boundary (``len(steps) - 1``).
    transformers: tuple[TransformerSpec, ...] = ()

    @property
    def staged(self) -> bool:
        return len(self.steps) > 1

    def stage_of(self, layer: int) -> int:
        """The stage that layer index ``layer`` belongs to."""
        return max(i for i, s in enumerate(self.starts) if s <= layer)

    def layer_steps(self, n_layers: int) -> tuple[int, ...]:
        """Timesteps each layer runs."""
        return tuple(self.steps[self.stage_of(i)] for i in range(n_layers))

    def average_steps(self, n_layers: int) -> float:
        """``Σ n_i·T_i / Σ n_i`` with ``n_i`` the layers of stage ``i`` (the output layer counted)."""
        return sum(self.layer_steps(n_layers)) / n_layers

    def validate(self, n_layers: int, owner: str = "stages") -> None:
        if not self.steps and not self.starts and not self.transformers:
            return
        if not isinstance(self.steps, tuple) or not isinstance(self.starts, tuple) \
                or not isinstance(self.transformers, tuple):
            raise SpecError(f"{owner}: steps, starts and transformers must be lists")
        n = len(self.steps)
        if n < 2:
            raise SpecError(f"{owner}.steps = {list(self.steps)}: give at least two stages (or none)")
        for i, t in enumerate(self.steps):
            _check_int(owner, f"steps[{i}]", t, 1, MAX_STEPS)
        if any(b >= a for a, b in zip(self.steps, self.steps[1:])):
            raise SpecError(f"{owner}.steps = {list(self.steps)} must shrink strictly (T1 > T2 > ...)")
        if len(self.starts) != n:
            raise SpecError(f"{owner}: {len(self.starts)} stage starts for {n} stages")
        for i, s in enumerate(self.starts):
            _check_int(owner, f"starts[{i}]", s, 0, n_layers - 1)
        if self.starts[0] != 0 or any(b <= a for a, b in zip(self.starts, self.starts[1:])):
            raise SpecError(f"{owner}.starts = {list(self.starts)} must begin at 0 and increase "
                            f"(each stage needs a layer; the network has {n_layers})")
        if len(self.transformers) != n - 1:
            raise SpecError(f"{owner}: {len(self.transformers)} transformers for {n - 1} stage boundaries")
        for i, tt in enumerate(self.transformers):
            if not isinstance(tt, TransformerSpec):
                raise SpecError(f"{owner}.transformers[{i}] must be a TransformerSpec")
            tt.validate(self.steps[i], self.steps[i + 1], f"{owner}.transformers[{i}]")

    def to_dict(self) -> dict:
        return {"steps": list(self.steps), "starts": list(self.starts),
                "transformers": [tt.to_dict() for tt in self.transformers]}

    @classmethod
    def from_dict(cls, data: dict) -> "StageSpec":
        if not isinstance(data, dict):
            raise SpecError(f"stages must be a JSON object, not {type(data).__name__}")
        data = dict(data)
        for key in ("steps", "starts", "transformers"):
            if not isinstance(data.get(key, []), list):
                raise SpecError(f"stages.{key} must be a list")
        data["steps"] = tuple(data.get("steps", []))
        data["starts"] = tuple(data.get("starts", []))
        data["transformers"] = tuple(TransformerSpec.from_dict(d) for d in data.get("transformers", []))
        return _from_dict(cls, data)


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _from_dict(cls, data: dict):
    if not isinstance(data, dict):
        raise SpecError(f"{cls.__name__} must be a JSON object, not {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{cls.__name__} has unknown field {unknown[0]!r}")
    try:
        return cls(**data)
    except TypeError as e:
        raise SpecError(f"{cls.__name__}: {e}") from None


def dumps(obj: IntSpec | NeuronSpec | LayerSpec) -> str:
    """JSON text of a spec object (for manifests and humans)."""
    return json.dumps(obj.to_dict(), sort_keys=True)
