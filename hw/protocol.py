"""The word protocol between a host and the accelerator (pure Python, no Amaranth).

Ports of the generated Verilog (top module ``quickspike_top`` by default), all in the
single clock domain ``clk`` with synchronous active-high reset ``rst``:

============== ===== ========= ==============================================
port           dir   width     meaning
============== ===== ========= ==============================================
``cmd__payload`` in  ``IN_WIDTH``  command word (below)
``cmd__valid``  in   1         host has a command word
``cmd__ready``  out  1         accelerator takes it this cycle
``res__payload`` out ``OUT_WIDTH`` result word (below)
``res__valid``  out  1         accelerator has a result word
``res__ready``  in   1         host takes it this cycle
``busy``        out  1         a sample is being processed
============== ===== ========= ==============================================

Handshake (``amaranth.lib.stream``): a word moves on a rising edge of ``clk`` where
``valid`` and ``ready`` are both high. The producer keeps ``payload`` stable and
``valid`` high until the word moves; ``ready`` may depend on ``valid``. The host may
hold ``res__ready`` high all the time; the accelerator stalls when it is low.

**Command word** (``IN_WIDTH`` = 64 bits): ``op`` = bits [63:60], ``a`` = [59:48],
``b`` = [47:0].

===== ========== ==========================================================
op    name       fields
===== ========== ==========================================================
0     NOP        ignored
1     REG        write register ``a`` with ``b`` (two's complement, low bits used)
2     WADDR      next weight word goes to address ``b``
3     WDATA      ``WEIGHTS_PER_BEAT(spec)`` signed weights in ``b``, lane order,
                 LSB first; ``beats_per_word`` beats fill one weight word (lanes
                 ``0..lanes-1``), which is then written and the address advances
4     START      begin a sample: reset the cycle counter
5     PIXEL      a non-zero input: ``b[15:0]`` value (already ``input_bits``;
                 1 for an event), ``b[31:16]`` flat index, ``b[39:32]`` x,
                 ``b[47:40]`` y, ``a`` channel (y/x/channel are used by a conv first
                 layer, the index by a dense one)
6     RUN        all pixels (of this frame) sent: run the timestep(s)
7     TWEIGHT    SSNN transformer weight: ``b[7:0]`` the signed weight, ``b[47:8]``
                 its address ``(boundary·max_stage_steps + k)·max_stage_steps + t``
                 (weight ``Wt[k][t]`` of that boundary's
                 :class:`~quickspike.sw.spec.TransformerSpec`)
8     TSCALE     SSNN transformer scale of boundary ``a``: ``b[15:0]`` ``mul``,
                 ``b[23:16]`` ``shift``
===== ========== ==========================================================

Registers (``a``):

* 0 ``REG_T``: ``T``, the timesteps a sample runs at most;
* 1 ``REG_LAYERS``: the number of layers;
* 2 ``REG_EXIT_RULE``: the early-exit rule, its index in ``sw.spec.EXIT_RULES``
  (:data:`EXIT_RULE_CODES`: 0 none = fixed-T, 1 margin, 2 softmax); 0 after reset;
* 3 ``REG_EXIT_THRESHOLD``: the rule's threshold (``ExitSpec.threshold``, unsigned);
* 4 ``REG_EXIT_SHIFT``: the softmax shift (``ExitSpec.shift``);
* 5 ``REG_COMP_ENABLE``: 1 turns the IC-SNN coding compensation at readout on
  (``CompensationSpec.enabled``); 0 after reset;
* 6 ``REG_COMP_FRAC_BITS``, 7 ``REG_COMP_MUL``, 8 ``REG_COMP_SHIFT``: ``frac_bits``,
  ``mul`` and ``shift`` of :class:`~quickspike.sw.spec.CompensationSpec`;
* 9 ``REG_COMP_VMIN``: the smallest residual membrane of the last hidden layer whose
  ``q`` is non-zero (:func:`comp_vmin`, derived from ``mul``, ``shift`` and that layer's
  threshold; ``2**(membrane_bits-1)``: none). The sweep only makes events of neurons
  with ``v >= REG_COMP_VMIN``; ``q`` itself is always computed exactly, so a smaller
  value only costs cycles and a larger one drops events;
* 10 ``REG_INPUT_EVENTS``: 1 for an ``events`` network (a binary frame every timestep
  of the first stage, see *Samples* below); 0 after reset (``direct``);
* 11 ``REG_STAGES``: the number of SSNN stages (0 or 1: unstaged, every layer runs
  ``REG_T`` timesteps); stage ``i``'s first layer at ``STAGE_BASE + 2·i`` (0x20 + 2i)
  and its timesteps at ``STAGE_BASE + 2·i + 1``. Only a design with
  ``HwConfig.max_stages > 1`` has these registers (and TWEIGHT/TSCALE do something);
* layer ``l``'s field ``f`` (see :data:`LAYER_FIELDS`) at ``LAYER_BASE + l·LAYER_STRIDE + f``.

:func:`encode_network` writes them all, the weights and (SSNN) the transformers'
TSCALE/TWEIGHT words; configure once, then send :func:`encode_sample` words for each
sample. The exit registers may be rewritten
between samples (``encode_registers(..., exit=ExitSpec())`` or :func:`encode_exit`) to
run the same network with another rule or threshold, or without an exit; a host that
never writes them gets the fixed-T behaviour. The compensation registers work the same
way (``encode_registers(..., compensation=CompensationSpec())`` or
:func:`encode_compensation`); a host that never writes them gets no compensation.
Writing ``REG_LAYERS`` or a layer field marks the current RAM for a one-time clear,
done before the next ``START`` is taken
(``cmd.ready`` low for about as many cycles as the network has neuron words; not
counted in ``CYCLES``).

**Samples.** ``direct``: START, one PIXEL per non-zero pixel, RUN; the pixels are
accumulated once into the first layer's current, which is reused every timestep.
``events``: START, then for each of the ``T_1`` frames (timesteps of the first stage)
one PIXEL of value 1 per set input followed by RUN; the controller accumulates frame
``t`` into the first layer's (cleared) current, fires the layers of timestep ``t`` and
only then takes frame ``t + 1`` (``cmd.ready`` stays low in between). A host must
therefore read result words while it still sends frames (an events network streams
its POT rows from timestep 0 on): the accelerator stalls, it never drops a word, but
a host that only starts reading after the last RUN deadlocks it. After an early exit
the frames not yet taken are consumed and ignored before the next START.

**Result word** (``OUT_WIDTH`` = 36 bits): ``tag`` = bits [35:32], ``data`` = [31:0].
Per sample, first, for an SSNN network (``REG_STAGES`` >= 2), at the end of every
stage but the last, as soon as its temporal transformer is done: ``T_i`` words
``COUNT`` (``m[t]``, the spikes of the stage's last layer at its timestep ``t``, all
neurons before pooling) then ``T_{i+1}`` words ``SPLIT`` (the split weights ``p[k]``,
unsigned, in units of ``2**-SPLIT_FRAC_BITS``). Then, after every timestep the output
layer runs (the last stage's, for SSNN), ``n_out`` words ``POT`` (output potential, two's
complement ``membrane_bits`` sign-extended to 32 bits, neuron 0 first; always the
uncompensated potentials), then, only when the compensation is on, ``n_out`` words
``READOUT`` (the compensated readout ``sat(v_out + ((W_out · q) >> frac_bits))`` at
the last timestep run, same format), then one ``CLASS`` (argmax of the READOUT words,
or without compensation of the last POT row; ties go to the lowest index), one
``STEPS`` (timesteps run: ``T``, or the timestep where the exit rule first held; an
SSNN network's last stage's ``T_n``) and
one ``CYCLES`` (clock cycles from START accepted to the CYCLES word) word. With an exit
rule a sample that exits at timestep ``t`` sends exactly ``t`` rows of ``POT`` words
(:func:`quickspike.sw.golden.apply_exit` semantics); the exit rule watches the POT
values. Without compensation no READOUT words are sent (and the compensation costs no
cycle), so the stream is exactly what hosts that predate it expect; a host that wants
the readout in either case reads :attr:`SampleResult.scores`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from quickspike.sw.spec import EXIT_RULES, CompensationSpec, ExitSpec, IntSpec

__all__ = [
    "IN_WIDTH", "OUT_WIDTH", "OP", "TAG", "REG_T", "REG_LAYERS", "REG_EXIT_RULE",
    "REG_EXIT_THRESHOLD", "REG_EXIT_SHIFT", "REG_COMP_ENABLE", "REG_COMP_FRAC_BITS", "REG_COMP_MUL",
    "REG_COMP_SHIFT", "REG_COMP_VMIN", "REG_INPUT_EVENTS", "REG_STAGES", "STAGE_BASE",
    "EXIT_RULE_CODES", "LAYER_BASE", "LAYER_STRIDE",
    "LAYER_FIELDS", "weights_per_beat", "beats_per_word", "in_width", "out_width",
    "cmd", "encode_network", "encode_sample", "encode_registers", "encode_exit", "encode_weights",
    "encode_compensation", "comp_vmin", "encode_stages", "encode_transformers",
    "SampleResult", "decode_results", "decode_all",
]

IN_WIDTH = 64
OUT_WIDTH = 36
_A_BITS, _B_BITS, _OP_SHIFT, _A_SHIFT = 12, 48, 60, 48
_DATA_BITS = 32

OP = {"NOP": 0, "REG": 1, "WADDR": 2, "WDATA": 3, "START": 4, "PIXEL": 5, "RUN": 6, "TWEIGHT": 7, "TSCALE": 8}
TAG = {"POT": 1, "CLASS": 2, "STEPS": 3, "CYCLES": 4, "READOUT": 5, "COUNT": 6, "SPLIT": 7}

REG_T = 0
REG_LAYERS = 1
REG_EXIT_RULE = 2
REG_EXIT_THRESHOLD = 3
REG_EXIT_SHIFT = 4
REG_COMP_ENABLE = 5
REG_COMP_FRAC_BITS = 6
REG_COMP_MUL = 7
REG_COMP_SHIFT = 8
REG_COMP_VMIN = 9
REG_INPUT_EVENTS = 10
REG_STAGES = 11
#: Stage ``i``'s first layer at ``STAGE_BASE + 2·i``, its timesteps at ``STAGE_BASE + 2·i + 1``.
STAGE_BASE = 0x20
#: ``REG_EXIT_RULE`` values.
EXIT_RULE_CODES = {name: i for i, name in enumerate(EXIT_RULES)}
LAYER_BASE = 0x100
LAYER_STRIDE = 0x20
#: Per-layer register fields, in address order (see ``layout.LayerLayout``).
LAYER_FIELDS = (
    "kind", "wbase", "sbase", "row_words", "out_words", "last_lanes", "threshold", "v_init",
    "leak_shift", "reset", "spiking", "map_h", "map_w", "pool", "pool_h", "pool_w",
    "row_stride", "k9", "in_hw",
)


def in_width(spec: IntSpec | None = None) -> int:
    """Width of ``cmd__payload`` (constant; ``spec`` accepted for symmetry)."""
    return IN_WIDTH


def out_width(spec: IntSpec | None = None) -> int:
    """Width of ``res__payload``."""
    return OUT_WIDTH


def weights_per_beat(spec: IntSpec) -> int:
    return _B_BITS // spec.weight_bits


def beats_per_word(spec: IntSpec, lanes: int) -> int:
    return -(-lanes // weights_per_beat(spec))


def cmd(op: str, a: int = 0, b: int = 0) -> int:
    """One command word."""
    if op not in OP:
        raise ValueError(f"unknown opcode {op!r}; expected one of {', '.join(OP)}")
    if not 0 <= a < (1 << _A_BITS):
        raise ValueError(f"field a = {a} does not fit {_A_BITS} bits")
    return (OP[op] << _OP_SHIFT) | (a << _A_SHIFT) | (int(b) & ((1 << _B_BITS) - 1))


def encode_exit(rule: ExitSpec) -> list[int]:
    """REG words that set the early-exit rule (``ExitSpec()``: none, fixed-T)."""
    if not isinstance(rule, ExitSpec):
        raise TypeError(f"exit must be an ExitSpec, not {type(rule).__name__}")
    if rule.rule not in EXIT_RULE_CODES:
        raise ValueError(f"unknown exit rule {rule.rule!r}; expected one of {', '.join(EXIT_RULES)}")
    for name in ("threshold", "shift"):
        value = getattr(rule, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << _B_BITS:
            raise ValueError(f"exit {name} = {value!r} must be a non-negative integer")
    return [cmd("REG", REG_EXIT_RULE, EXIT_RULE_CODES[rule.rule]),
            cmd("REG", REG_EXIT_THRESHOLD, rule.threshold),
            cmd("REG", REG_EXIT_SHIFT, rule.shift)]


def comp_vmin(comp: CompensationSpec, threshold: int, spec: IntSpec) -> int:
    """``REG_COMP_VMIN``: the smallest ``v`` with ``comp.fraction(v, threshold) > 0``.

    ``q`` grows with ``v`` and is 0 for ``v <= 0``; it is non-zero from
    ``ceil(2**shift / mul)`` on, provided that is below ``threshold`` (residuals are
    clamped to ``threshold - 1``). ``2**(membrane_bits-1)`` (above every membrane) when
    no residual gives a non-zero ``q``.
    """
    never = 1 << (spec.membrane_bits - 1)
    if comp.mul <= 0:
        return never
    v = -(-(1 << comp.shift) // comp.mul)
    return v if v <= threshold - 1 else never


def encode_compensation(comp: CompensationSpec, threshold: int, spec: IntSpec) -> list[int]:
    """REG words that set the coding compensation (``CompensationSpec()``: off).

    ``threshold`` is the last hidden layer's (it sets ``REG_COMP_VMIN``).
    """
    if not isinstance(comp, CompensationSpec):
        raise TypeError(f"compensation must be a CompensationSpec, not {type(comp).__name__}")
    comp.validate(spec)
    if not comp.enabled:
        return [cmd("REG", REG_COMP_ENABLE, 0)]
    return [cmd("REG", REG_COMP_ENABLE, 1), cmd("REG", REG_COMP_FRAC_BITS, comp.frac_bits),
            cmd("REG", REG_COMP_MUL, comp.mul), cmd("REG", REG_COMP_SHIFT, comp.shift),
            cmd("REG", REG_COMP_VMIN, comp_vmin(comp, threshold, spec))]


def encode_registers(net, hwcfg, timesteps: int | None = None, *, exit: ExitSpec | None = None,
                     compensation: CompensationSpec | None = None) -> list[int]:
    """REG words for ``T``, the layer count, the exit rule, the compensation and every layer field.

    ``exit`` overrides the network's rule (``ExitSpec()`` runs every sample for ``T``);
    ``compensation`` overrides the network's coding compensation (``CompensationSpec()``: off).
    """
    from quickspike.hw.layout import network_layout
    lay = network_layout(net, hwcfg.lanes)
    T = net.timesteps if timesteps is None else timesteps
    comp = net.compensation if compensation is None else compensation
    out = [cmd("REG", REG_T, T), cmd("REG", REG_LAYERS, len(net.layers))]
    out += encode_exit(net.exit if exit is None else exit)
    hidden_th = net.layers[-2].neuron.threshold if len(net.layers) > 1 else 1
    out += encode_compensation(comp, hidden_th, net.spec)
    out += encode_stages(net)
    for li, ll in enumerate(lay.layers):
        for f, name in enumerate(LAYER_FIELDS):
            out.append(cmd("REG", LAYER_BASE + li * LAYER_STRIDE + f, getattr(ll, name)))
    return out


def encode_stages(net) -> list[int]:
    """REG words for the input coding and the SSNN stages (``REG_STAGES`` = 0: unstaged)."""
    out = [cmd("REG", REG_INPUT_EVENTS, int(net.input_coding == "events"))]
    if not net.staged:
        return out + [cmd("REG", REG_STAGES, 0)]
    out.append(cmd("REG", REG_STAGES, len(net.stages.steps)))
    for i, (start, steps) in enumerate(zip(net.stages.starts, net.stages.steps)):
        out += [cmd("REG", STAGE_BASE + 2 * i, start), cmd("REG", STAGE_BASE + 2 * i + 1, steps)]
    return out


def encode_transformers(net, hwcfg) -> list[int]:
    """TSCALE and TWEIGHT words that load the temporal transformers of a staged ``net``.

    Boundary ``b``'s weight ``Wt[k][t]`` goes to address
    ``(b·max_stage_steps + k)·max_stage_steps + t`` of the transformer's weight RAM.
    """
    if not net.staged:
        return []
    n = hwcfg.max_stage_steps
    out = []
    for b, tt in enumerate(net.stages.transformers):
        out.append(cmd("TSCALE", b, tt.mul | tt.shift << 16))
        for k, row in enumerate(tt.weights):
            for t, w in enumerate(row):
                out.append(cmd("TWEIGHT", 0, ((b * n + k) * n + t) << 8 | (int(w) & 0xFF)))
    return out


def encode_weights(net, hwcfg) -> list[int]:
    """WADDR + WDATA words that load every layer's weights."""
    from quickspike.hw.layout import network_layout, weight_rows
    spec, lanes = net.spec, hwcfg.lanes
    lay = network_layout(net, lanes)
    per, beats = weights_per_beat(spec), beats_per_word(spec, lanes)
    mask = (1 << spec.weight_bits) - 1
    out: list[int] = []
    for li, ll in enumerate(lay.layers):
        rows = weight_rows(net, li, lanes)
        if not len(rows):
            continue
        out.append(cmd("WADDR", 0, ll.wbase))
        padded = np.zeros((rows.shape[0], beats * per), dtype=np.int64)
        padded[:, :lanes] = rows
        for row in padded.tolist():
            for k in range(beats):
                b = 0
                for j, w in enumerate(row[k * per:(k + 1) * per]):
                    b |= (w & mask) << (j * spec.weight_bits)
                out.append(cmd("WDATA", 0, b))
    return out


def encode_network(net, hwcfg, timesteps: int | None = None, *, exit: ExitSpec | None = None,
                   compensation: CompensationSpec | None = None) -> list[int]:
    """All words that configure the accelerator for ``net`` (registers, then weights).

    ``exit`` overrides the network's early-exit rule (``ExitSpec()``: fixed-T, as a
    host's ``--no-exit`` would ask); ``compensation`` overrides its coding compensation
    (``CompensationSpec()``: off). Raises :class:`quickspike.errors.FitError` when
    ``net`` does not fit ``hwcfg`` (:class:`~quickspike.errors.SpecError` for an
    invalid ``exit`` or ``compensation``).
    """
    from quickspike.hw.fit import check_fits
    check_fits(net, hwcfg, timesteps=timesteps, exit=exit, compensation=compensation)
    return (encode_registers(net, hwcfg, timesteps, exit=exit, compensation=compensation)
            + encode_weights(net, hwcfg) + encode_transformers(net, hwcfg))


def _pixel(value: int, idx: int, h: int, w: int) -> int:
    c, rem = divmod(idx, h * w)
    y, x = divmod(rem, w)
    return cmd("PIXEL", c & 0xFFF, (int(value) | idx << 16 | (x & 0xFF) << 32 | (y & 0xFF) << 40))


def encode_sample(pixels, spec: IntSpec, shape: tuple[int, int, int] | None = None, *,
                  events: bool = False) -> list[int]:
    """START, one PIXEL per non-zero input (in index order), RUN.

    ``pixels`` are uint8 (0..255), mapped to ``input_bits`` exactly like
    :func:`quickspike.sw.golden.encode_pixels`. Pass them shaped ``(C, H, W)``, or flat
    with ``shape=(C, H, W)``, when the first layer is a convolution; a flat input
    without a shape is treated as ``(1, 1, n)`` (fine for a dense first layer).

    ``events=True`` (a network with ``input_coding == "events"``): ``pixels`` are the
    sample's binary frames, ``(T, C, H, W)`` or ``(T, n)`` (with ``shape`` for a conv
    first layer), one per timestep of the first stage; the words are START, then per
    frame one PIXEL of value 1 per set input (in index order) and RUN.
    """
    arr = np.asarray(pixels)
    if events:
        if arr.ndim < 2:
            raise ValueError(f"event input needs frames (T, ...), got shape {arr.shape}")
        frames = arr.reshape(arr.shape[0], -1).astype(np.int64)
        if shape is None:
            shape = tuple(arr.shape[1:]) if arr.ndim == 4 else (1, 1, frames.shape[1])
        if frames.shape[1] != shape[0] * shape[1] * shape[2]:
            raise ValueError(f"frames of {frames.shape[1]} inputs do not match shape {shape}")
        if frames.size and (frames.min() < 0 or frames.max() > 1):
            raise ValueError("event frames must hold 0 or 1")
        if frames.shape[1] > 1 << 16:
            raise ValueError(f"{frames.shape[1]} inputs exceed the 16-bit pixel index field")
        _, h, w = shape
        out = [cmd("START")]
        for frame in frames:
            out += [_pixel(1, idx, h, w) for idx in np.nonzero(frame)[0].tolist()]
            out.append(cmd("RUN"))
        return out
    if shape is None:
        shape = tuple(arr.shape) if arr.ndim == 3 else (1, 1, arr.size)
    flat = arr.reshape(-1).astype(np.int64)
    if flat.size != shape[0] * shape[1] * shape[2]:
        raise ValueError(f"{flat.size} pixels do not match shape {shape}")
    if flat.size and (flat.min() < 0 or flat.max() > 255):
        raise ValueError("input pixels must lie in 0..255")
    if flat.size > 1 << 16:
        raise ValueError(f"{flat.size} inputs exceed the 16-bit pixel index field")
    vals = flat if spec.input_bits == 8 else (flat * spec.input_max + 127) // 255
    _, h, w = shape
    out = [cmd("START")]
    out += [_pixel(vals[idx], idx, h, w) for idx in np.nonzero(vals)[0].tolist()]
    out.append(cmd("RUN"))
    return out


@dataclass(frozen=True)
class SampleResult:
    """What the accelerator reports for one sample."""

    #: ``[steps][n_out]`` output potentials after every timestep run (uncompensated).
    potentials: list[list[int]]
    predicted: int
    timesteps: int
    cycles: int
    #: ``[n_out]`` compensated readout at the last timestep run (``READOUT`` words), or
    #: ``None`` when the compensation is off (then the readout is ``potentials[-1]``).
    readout: list[int] | None = None
    #: SSNN, per stage boundary: the spike counts ``m[t]`` of the stage's last layer
    #: (``COUNT`` words, ``T_i`` of them); empty for an unstaged network.
    counts: list[list[int]] = field(default_factory=list)
    #: SSNN, per stage boundary: the transformer's split weights ``p[k]`` (``SPLIT``
    #: words, ``T_{i+1}`` of them).
    splits: list[list[int]] = field(default_factory=list)

    @property
    def scores(self) -> list[int]:
        """The values ``predicted`` is the argmax of: the readout, else the last potentials."""
        if self.readout is not None:
            return self.readout
        return self.potentials[-1] if self.potentials else []


def _field(word: int) -> tuple[int, int]:
    return word >> _DATA_BITS, word & ((1 << _DATA_BITS) - 1)


def _sext(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def decode_all(words, n_out: int, spec: IntSpec) -> list[SampleResult]:
    """Split a result stream into one :class:`SampleResult` per sample."""
    results, pots, row, rec, readout = [], [], [], {}, []
    counts, splits = [], []
    for word in words:
        tag, data = _field(int(word))
        if tag == TAG["COUNT"]:
            if pots or row or readout:
                raise ValueError("a COUNT word after the output potentials")
            if not counts or splits[-1]:
                counts.append([])
                splits.append([])
            counts[-1].append(data)
        elif tag == TAG["SPLIT"]:
            if not counts:
                raise ValueError("a SPLIT word before any COUNT word")
            if pots or row or readout:
                raise ValueError("a SPLIT word after the output potentials")
            splits[-1].append(data)
        elif tag == TAG["POT"]:
            if readout:
                raise ValueError("a POT word after READOUT words")
            row.append(_sext(data, spec.membrane_bits))
            if len(row) == n_out:
                pots.append(row)
                row = []
        elif tag == TAG["READOUT"]:
            if row:
                raise ValueError(f"READOUT words after {len(row)} of {n_out} potentials")
            if len(readout) == n_out:
                raise ValueError(f"more than {n_out} READOUT words in a sample")
            readout.append(_sext(data, spec.membrane_bits))
        elif tag == TAG["CLASS"]:
            if readout and len(readout) != n_out:
                raise ValueError(f"CLASS after {len(readout)} of {n_out} READOUT words")
            rec["predicted"] = data
        elif tag == TAG["STEPS"]:
            rec["timesteps"] = data
        elif tag == TAG["CYCLES"]:
            if row:
                raise ValueError(f"a timestep ended after {len(row)} of {n_out} potentials")
            if readout and len(readout) != n_out:
                raise ValueError(f"a sample ended after {len(readout)} of {n_out} READOUT words")
            if counts and not splits[-1]:
                raise ValueError("a stage boundary sent COUNT words but no SPLIT words")
            results.append(SampleResult(pots, rec.get("predicted", -1), rec.get("timesteps", len(pots)), data,
                                        readout or None, counts, splits))
            pots, rec, readout, counts, splits = [], {}, [], [], []
        else:
            raise ValueError(f"unknown result tag {tag} in word {word:#x}")
    if pots or row or rec or readout or counts:
        raise ValueError("the result stream ends in the middle of a sample")
    return results


def decode_results(words, n_out: int, spec: IntSpec) -> SampleResult:
    """Decode the result words of exactly one sample."""
    res = decode_all(words, n_out, spec)
    if len(res) != 1:
        raise ValueError(f"expected the results of one sample, found {len(res)}")
    return res[0]
