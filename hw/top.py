"""The accelerator: :class:`Accelerator`, an event-driven LIF array.

One ``wiring.Component`` with a command stream in and a result stream out (the word
protocol is :mod:`quickspike.hw.protocol`). Everything about the network is loaded at
run time; the generation-time parameters are a :class:`~quickspike.hw.config.HwConfig`.

Datapath (``L`` = lanes; all RAMs are ``lib.memory`` with registered read ports):

* **Weight RAM** ``weight_words × (L·weight_bits)``, **current RAM** ``neuron_words ×
  (L·acc_bits + 1)`` and **membrane RAM** ``neuron_words × L·membrane_bits`` sharing
  addresses, an **event buffer** ``event_words × (mask, g, sp, yp/xp or a membrane
  address)`` and a small **output buffer** for the output layer's potentials.
* **Event pipeline** (accumulate phase): an event source (pixels from the command
  stream during a sample's load, multiplied by their value; or the event-buffer
  expander, one set mask bit per cycle) → two registered address stages (index and
  weight row, with the flatten stride and a conv's channel offset) → a scatter stage
  that turns a conv event into its valid ``(i, j)`` bursts without bubbles (a dense
  event is one burst) → the **burst engine**, which issues one weight word per cycle
  and takes the next burst in the cycle it issues the last word of the current one.
  The weight RAM is single-ported (one address for loading and reading; iCE40 maps it
  to SPRAM) and banked by ``weight_bank_words``: weight read (S0) → every bank's output
  registered (S1) → bank select (S1B). Read-modify-write of the current RAM, one cycle
  behind: read (S1) → memory register (S1B) → multiply
  by the event's value (S2: a pixel, 1 for a spike, or a compensation ``q``; the
  multipliers are ``max(input_bits, COMP_FRAC_BITS)`` wide) → add (S3) → write from a
  register (S4); the four writes that a read may miss are forwarded from a 4-deep
  history (the older ones chosen in S2, so S3 is a 2:1 mux and the add), so
  back-to-back events on the same word never stall.
* **Current RAM epoch**: every current word carries one extra bit, the parity of the
  sample that wrote it (``epoch`` flips at each START); a word of another parity
  reads as 0 (so an event frame, or an SSNN stage's summed current, starts from 0 in
  every sample without a clearing sweep). So a sample that exits early (leaving the
  first layer's static current and the partial currents of a speculative timestep
  behind) needs no clearing sweep. Every word of the network is written at timestep 0
  of every sample (of its stage, for SSNN: every stage runs), which keeps the parity
  unambiguous; a change of layout (``REG_LAYERS`` or a layer field written)
  clears the network's words once, before the next START is taken (not counted in
  CYCLES).
* **Fire phase** per layer-timestep: an 8-stage sweep over the layer's words:
  read (F0) → registered v and I, ``v_init`` replacing v at timestep 0 (F1) → the
  leak's run-time shift ``v >> shift`` (F2) → the leak's subtract, and the current
  clamped to ``membrane_bits + 1`` bits (a sum with any membrane saturates as with the
  full current) (F2L) → saturating add, and the current cleared (F3; the first layer's
  static current, or an SSNN stage's summed current ``C`` of its first layer, is written
  back until the stage's last timestep; an event frame is cleared) → ``v - threshold``
  (F4) → fire and reset (F4D) → write back and write one event entry per word with a
  spike (F5). A conv layer's
  sweep keeps its coordinates and pooled coordinates in counters, so pooling and
  flattening are address maps on the entries (rows/cols past whole pool windows are
  dropped there).
* **Output streamer and exit unit** (:class:`~quickspike.hw.exit_unit.ExitUnit`): the
  output layer's F4 writes the output buffer; the streamer serializes it (one
  potential per cycle, the read port prefetching the next word from a registered
  address, so a pass costs ``n_out`` cycles plus one, and one more per word of a single
  lane: ``lanes`` = 1, or a last word of one lane) while the next timestep already
  runs. The exit unit watches the ``POT`` words as they leave: argmax (ties to the
  lowest index) and, for ``margin``, top-1/top-2; for ``softmax`` the streamer sends the
  potentials through it a second time (``n_out`` cycles, no result words). After the
  last timestep it sends the class (a cycle after the last ``POT`` word at the
  earliest: the exit unit registers its input), the timestep count and the cycle count.
  Result words leave from a register with a one-word skid buffer: the streamer's ready
  is a flip-flop (the skid is empty), and the consumer sees them a cycle later.
* **Timestep controller**: fixed-T (``REG_EXIT_RULE`` = 0) or adaptive (ATSNN) mode,
  or stage-major (SSNN, below); ``T`` is a run-time register. Layer-major within a
  timestep: fire layer 0 (static current, or this timestep's event frame) → accumulate
  layer 1 from its events → fire layer 1 → … → fire the output layer. The per-layer
  fields are read through one registered copy (``cur_*``) of the selected layer,
  loaded in a one-cycle setup state, so no wide register-file mux sits on a datapath.
  A REG word's address is decoded as it is taken (a strobe per register) and applied
  a cycle later; START waits for it, and the sample begins a cycle after START is
  taken (``BEGIN``). Both state machines are one-hot in synthesis (``fsm_encoding``).
* **Adaptive mode**: after the output potentials of timestep ``t`` are out, the
  controller does not wait for the exit decision: it starts timestep ``t + 1``
  speculatively (it only waits, as in fixed-T mode, before it would overwrite the
  output buffer). When the rule holds (``t < T``) the streamer sends CLASS (argmax at
  ``t``), STEPS = ``t`` and CYCLES, and the controller drops the speculative work in
  flight (pipeline valid bits cleared; its writes are harmless, see the epoch bit).
  The check therefore costs nothing while a timestep takes longer than the streamer
  (``n_out + 5`` cycles for margin, ``2·n_out + 7`` for softmax, counted from the end
  of the output layer's fire sweep); at the exit timestep that is the latency before
  CLASS. At ``t == T`` no decision is needed. With the rule ``none`` the mode is
  exactly fixed-T.
* **Coding compensation** (IC-SNN, ``REG_COMP_ENABLE``): at the readout timestep (the
  exit timestep, or ``T``), after the output layer's fire sweep:

  1. *q sweep* of the last hidden layer (``cmode``): the fire pipeline reads its
     membranes without leak, current, fire or write-back, and writes one event entry
     per word whose lanes hold a residual ``v >= REG_COMP_VMIN`` (exactly the neurons
     with ``q > 0``), with the pooled coordinates and the word's membrane address;
  2. *expansion* (``cexp``): the event-buffer expander re-reads each entry's membrane
     word and emits one event per set lane carrying its ``v``; the address stages
     clamp it to ``[0, θ-1]`` (G1), multiply by ``mul`` (G2, the one extra multiplier)
     and make ``q = min((v·mul) >> shift, 2**frac_bits - 1)`` (loading G3, with a
     thermometer mask for the saturation); the burst engine and the S2 multipliers
     accumulate ``W_out · q`` into the output layer's currents (cleared by its fire
     sweep, so they end up holding exactly ``C``) through the same flatten address
     map as spikes;
  3. *readout sweep* (``rmode``) of the output layer, once the streamer has sent the
     ``POT`` words: ``sat(v_out + (C >> frac_bits))`` (arithmetic shift, no leak) into
     the output buffer (the membranes stay as they are);
  4. the streamer sends the ``READOUT`` words through the exit unit's pass 1 (cleared
     first), whose argmax is ``CLASS``.

  The exit unit watches the uncompensated ``POT`` values. With an exit rule, the
  speculative timestep must not overwrite the last hidden layer's membranes before the
  decision: its fire sweep waits for the streamer (as the output layer's does), so
  the check is no longer free when the layers before it take less than the decision
  latency (a 2-layer network pays ``n_out + 5`` (margin) or ``2·n_out + 7`` (softmax)
  cycles per timestep). When the rule holds, the speculative work is dropped and the
  pass runs on the exit timestep's state. With ``REG_COMP_ENABLE`` = 0 nothing of
  this runs and the cycle counts are those of a design without it.

* **Event input** (``REG_INPUT_EVENTS``, ``input_coding == "events"``): the first
  layer gets a new binary frame every timestep of the first stage. Each timestep of
  that stage starts in the pixel states (``PIX_SETUP`` → ``PIXELS`` → ``PIX_DRAIN``):
  the host's PIXEL words (value 1) for frame ``t`` go through the event pipeline into
  layer 0's current, RUN ends the frame, and layer 0 fires with its current *cleared*
  (not written back as a static direct-coded current is). The command stream is not
  taken between frames (``cmd.ready`` low), so the host paces nothing; with an exit
  rule a decision may land while the controller waits for the next frame (the pixel
  states drop the speculative work as the others do).
* **SSNN stages** (only generated when ``HwConfig.max_stages > 1``; ``REG_STAGES`` >= 2
  at run time): stage-major. Stage ``i`` (layers ``starts[i] .. starts[i+1]-1``, the
  registered copies ``st_first``/``st_bound``/``st_T`` of its fields) runs its
  ``steps[i]`` timesteps counted from 0 (``v_init`` at its timestep 0), layer-major
  within a timestep as above. After its last (boundary) layer ``b`` fires, the
  accumulate phase of layer ``b + 1`` runs from ``b``'s events (``bacc``) but that
  layer is not fired: the controller goes on to the stage's next timestep, so after the
  stage ``b + 1``'s current RAM words hold ``C = Σ_t W·s_b[t]`` exactly (the epoch bit
  makes the first write of a sample start from 0). During ``b``'s fire sweeps a
  popcount of the F4 spike mask (every neuron, rows/cols that a pooling drops
  included, padding lanes never) gives ``m[t]``, kept in ``count`` registers and
  written into the :class:`~quickspike.hw.transformer.TemporalTransformer`. At the end
  of the stage (``T_START`` → ``T_WAIT``) the transformer computes ``p``; the streamer
  then sends ``T_i`` COUNT and ``T_{i+1}`` SPLIT words (reading ``p`` through the
  transformer's registered read port one word ahead, and copying it into ``split``
  registers), and the next stage starts (``T_EMIT`` → ``S_SETUP``). The next stage's
  first layer at its timestep ``k`` takes ``(C · p[k]) >> SPLIT_FRAC_BITS`` in F2→F3
  (one ``acc_bits × (SPLIT_FRAC_BITS+1)`` multiplier per lane, ``cur_p`` = ``p[t]``
  registered) and writes ``C`` back until the stage's last timestep, as layer 0 keeps
  its static current. ``STEPS`` is the last stage's ``T_n``. Cost per boundary:
  the transformer's latency (:func:`~quickspike.hw.transformer.latency`, about
  ``T_{i+1}·(T_i + shift + 32)``), ``T_i + T_{i+1}`` result words and ~3 cycles; per
  stage timestep the boundary accumulate phase (~10 cycles beyond its events).
  With ``max_stages == 1`` none of this exists and the design is the unstaged one.
  Measured (8 lanes, 500 mnist5k-events test samples, trained 5-epoch bundles, before
  the S1B and F5 pipeline stages, which add a cycle per accumulate phase and fire sweep):
  784-256-128-10 stages (6, 4, 2) 27,486 cycles per inference against a bound of
  26,824 (1.025x; the two transformers take 390 of the difference); conv 16c-p2,
  32c-p2, dense 10 stages (6, 4, 2) 194,013 against 193,315 (1.004x).

Costs beyond the lower bound (:mod:`quickspike.hw.perf`): about 21 cycles per hidden
layer-timestep (setup and pipeline drains: 1 + 7 for a fire phase, 1 + ~12 for an
accumulate phase; the F2L and F4D stages, S4 and the registered drain flags added 2 to
each: the mnist5k mlp at 2 and 4 lanes went from 11,106.6 and 5,715.7 to 11,132.6 and
5,741.7 cycles per image), a conv layer's fire sweep of ``H·W·ceil(K/L)`` words instead of
``ceil(K·H·W/L)``, the output streamer (``n_out + 1`` cycles, or the exit check above)
when a timestep is shorter than it, and with an exit the decision latency at the
exit timestep. On a 784-128-10 network with 8 lanes this measured 1.02-1.05x the
bound; on tiny test networks the fixed overhead dominates. The compensation pass
costs ``events·ceil(n_out/L) + W_hidden + ceil(n_out/L)`` cycles (``events``: neurons
with ``q > 0``; ``W_hidden``: the words of the hidden sweep, ``H·W·ceil(K/L)`` for a
conv layer) and about 29 more of setups, pipeline drains and READOUT words (23 measured
before the stages above, which add 2 to each of its two sweeps and its accumulate
phase; with an exit rule add the decision waits above).

During a sample (after START) the command stream only carries PIXEL words (taken at
the accumulate rate: ``cmd.ready`` low while the event pipeline is full) and RUN (one
per frame with event input);
other words are consumed and ignored. START is not taken until the previous sample's
CYCLES word has gone out (nor, after a layout change, until the one-time clear is
done). The exit registers take effect at the next sample.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from quickspike.hw import protocol as P
from quickspike.hw.config import COMP_FRAC_BITS, COMP_MUL_BITS, COMP_SHIFT_MAX, HwConfig, bits_for
from quickspike.hw.exit_unit import ExitUnit, shift_bits, threshold_bits
from quickspike.sw.spec import SPLIT_FRAC_BITS

__all__ = ["Accelerator"]


def _lane(word, i: int, bits: int):
    return word[i * bits:(i + 1) * bits].as_signed()


class Accelerator(wiring.Component):
    """The LIF-array accelerator for one :class:`HwConfig`.

    Ports: ``cmd`` (``In(stream.Signature(IN_WIDTH))``), ``res``
    (``Out(stream.Signature(OUT_WIDTH))``), ``busy`` (``Out(1)``); with
    ``collision_poison`` (simulation only) also ``collisions`` (``Out(32)``).
    """

    def __init__(self, hwcfg: HwConfig, *, collision_poison: bool = False):
        if not isinstance(hwcfg, HwConfig):
            raise TypeError(f"hwcfg must be a HwConfig, not {type(hwcfg).__name__}")
        self.hwcfg = hwcfg
        #: Simulation check of the RAMs' ``no_rw_check``: a read of a word written in the
        #: same cycle returns its bits inverted, and ``collisions`` counts such reads.
        self.collision_poison = bool(collision_poison)
        ports = {
            "cmd": In(stream.Signature(P.IN_WIDTH)),
            "res": Out(stream.Signature(P.OUT_WIDTH)),
            "busy": Out(1),
        }
        if self.collision_poison:
            ports["collisions"] = Out(32)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        cfg = self.hwcfg
        spec = cfg.spec
        L = cfg.lanes
        WB, MB, AB, IB = spec.weight_bits, spec.membrane_bits, spec.acc_bits, spec.input_bits
        WAB, NAB = cfg.weight_addr_bits, cfg.neuron_addr_bits
        MAPB, IDXB = cfg.map_bits, cfg.index_bits
        NCNT = NAB + 1  # counts of neuron words
        WCNT = WAB + 1
        mlo, mhi = spec.membrane_range

        # ---------------------------------------------------------------- registers
        field_shapes = {
            "kind": 1, "wbase": WCNT, "sbase": NCNT, "row_words": NCNT, "out_words": NCNT,
            "last_lanes": bits_for(L), "threshold": signed(MB), "v_init": signed(MB),
            "leak_shift": cfg.shift_bits, "reset": 1, "spiking": 1,
            "map_h": MAPB, "map_w": MAPB, "pool": 3, "pool_h": MAPB, "pool_w": MAPB,
            "row_stride": NCNT, "k9": WCNT, "in_hw": 2 * MAPB,
        }
        assert tuple(field_shapes) == P.LAYER_FIELDS
        regs = {name: Array(Signal(shape, name=f"l{li}_{name}") for li in range(cfg.max_layers))
                for name, shape in field_shapes.items()}
        reg_T = Signal(cfg.step_bits)
        reg_nl = Signal(bits_for(cfg.max_layers))
        reg_exit_rule = Signal(2)
        reg_exit_th = Signal(threshold_bits(spec, cfg.max_outputs))
        reg_exit_shift = Signal(shift_bits(spec))
        # coding compensation (IC-SNN)
        FB = COMP_FRAC_BITS
        MW = cfg.event_value_bits        # an event's value: a pixel or a compensation q
        reg_comp_en = Signal()
        reg_comp_fb = Signal(bits_for(FB))
        reg_comp_mul = Signal(COMP_MUL_BITS)
        reg_comp_shift = Signal(bits_for(COMP_SHIFT_MAX))
        reg_comp_vmin = Signal(MB)       # unsigned: 2**(MB-1) is above every membrane
        comp_thm1 = Signal(MB - 1)       # the last hidden layer's threshold - 1
        comp_top = Signal(FB)            # 2**frac_bits - 1
        m.d.comb += comp_top.eq((Const(1, FB + 1) << reg_comp_fb) - 1)
        # frac_bits - 1 (0..7 for the valid 1..8): a 3-level readout shifter
        comp_fbm1 = Signal(bits_for(FB - 1))
        m.d.comb += comp_fbm1.eq(reg_comp_fb - 1)
        # the controller's compensation phases (registered: set on entering, cleared on
        # leaving its states): the q sweep of the last hidden layer, the expansion of its
        # events, the readout sweep of the outputs
        cmode = Signal()
        cexp = Signal()
        rmode = Signal()
        layer = Signal(cfg.layer_bits)           # the layer the controller works on
        cur = {name: Signal(shape, name=f"cur_{name}") for name, shape in field_shapes.items()}
        for name in field_shapes:
            m.d.sync += cur[name].eq(regs[name][layer])
        t = Signal(cfg.step_bits)
        t_last = Signal()           # t + 1 == the stage's T (registered, from a registered T - 1: t and
                                    # T change states before it is used)
        is_last_layer = Signal()
        nl_m1 = Signal.like(reg_nl, name="nl_m1")     # the output layer (reg_nl - 1), registered
        nl_m2 = Signal.like(reg_nl, name="nl_m2")     # the last hidden layer
        m.d.sync += [nl_m1.eq(reg_nl - 1), nl_m2.eq(reg_nl - 2)]
        m.d.comb += is_last_layer.eq(layer == nl_m1)

        # ---------------------------------------------------------------- input coding, SSNN stages
        reg_events = Signal()       # REG_INPUT_EVENTS: a new binary frame every timestep of stage 0
        SH = cfg.stages             # generate the SSNN hardware
        SFB = SPLIT_FRAC_BITS
        si = Signal(range(max(2, cfg.max_stages)))   # the stage running
        stage0 = Signal()
        m.d.comb += stage0.eq(si == 0)
        if SH:
            NS, NT = cfg.max_stages, cfg.max_stage_steps
            reg_nst = Signal(bits_for(NS))
            reg_st_start = [Signal(cfg.layer_bits, name=f"st{i}_start") for i in range(NS)]
            reg_st_steps = [Signal(cfg.stage_step_bits, name=f"st{i}_steps") for i in range(NS)]
            staged = Signal()
            m.d.comb += staged.eq(reg_nst > 1)
            # registered copies of the running stage's fields (si changes a few cycles
            # before they are used: no register-file mux on a datapath)
            st_first = Signal(cfg.layer_bits)       # the stage's first layer
            st_T = Signal(cfg.step_bits)            # its timesteps
            st_bound = Signal(cfg.layer_bits)       # its last layer (when a stage follows)
            st_more = Signal()                      # a stage follows this one
            st_nfirst = Signal(cfg.layer_bits)      # the next stage's first layer
            st_Tn = Signal(cfg.stage_step_bits)     # the next stage's timesteps
            nxt_start = Array([*reg_st_start[1:], Const(0, cfg.layer_bits)])
            nxt_steps = Array([*reg_st_steps[1:], Const(0, cfg.stage_step_bits)])
            m.d.sync += [st_first.eq(Mux(staged, Array(reg_st_start)[si], 0)),
                         st_T.eq(Mux(staged, Array(reg_st_steps)[si], reg_T)),
                         st_nfirst.eq(nxt_start[si]), st_bound.eq(nxt_start[si] - 1),
                         st_Tn.eq(nxt_steps[si]), st_more.eq(staged & (si + 1 < reg_nst))]
            bacc = Signal()             # accumulating the next stage's first layer (not fired)
            tt_go = Signal()            # the transformer is done: stream COUNT and SPLIT words
            tk = Signal(cfg.stage_step_bits)
            count_regs = [Signal(cfg.count_bits, name=f"count{k}") for k in range(NT)]
            split_regs = [Signal(SFB + 1, name=f"split{k}") for k in range(NT)]
            from quickspike.hw.transformer import TemporalTransformer
            m.submodules.transformer = tt = TemporalTransformer(NT, NT, NS - 1, cfg.count_bits)
        else:
            st_first, st_T, st_more = Const(0, cfg.layer_bits), reg_T, Const(0, 1)
        is_boundary = Signal()      # the stage's last layer, a stage follows
        if SH:
            m.d.comb += is_boundary.eq(st_more & (layer == st_bound))

        # ---------------------------------------------------------------- memories
        # the weight RAM, in banks of ``weight_bank_words`` (one bank when 0): every bank
        # reads the same low address and its output goes straight into a register (wq), so
        # the bank select mux sits between two registers, not after the block RAMs
        WBK = cfg.weight_bank_words or cfg.weight_words
        wbanks = []
        for b in range(-(-cfg.weight_words // WBK)):
            bank = memory.Memory(shape=unsigned(L * WB), depth=min(WBK, cfg.weight_words - b * WBK), init=[])
            m.submodules[f"wmem{b}" if cfg.weight_bank_words else "wmem"] = bank
            wbanks.append((bank.read_port(), bank.write_port()))
        # The four RAMs below are declared ``no_rw_check``: the design never uses what a
        # read returns for a word written in the same cycle (the read-modify-write forwards
        # such words from its history; a sweep never reads a word it has in flight), so
        # synthesis maps them without the bypass logic that emulates read-old-data (on
        # iCE40: a register per write data bit, an address compare and a mux after the
        # RAM). ``collision_poison`` checks the claim in simulation (see ``rd_data``).
        NRW = {"no_rw_check": 1}
        # the current RAM carries one epoch bit per word: a word written in an earlier
        # sample reads as 0, so a sample that exits early needs no clearing sweep
        m.submodules.amem = amem = memory.Memory(shape=unsigned(L * AB + 1), depth=cfg.neuron_words, init=[],
                                                 attrs=NRW)
        m.submodules.vmem = vmem = memory.Memory(shape=unsigned(L * MB), depth=cfg.neuron_words, init=[],
                                                 attrs=NRW)
        # ``pos``: the pooled coordinates (spikes; a conv layer after uses them) or, for
        # the compensation, the membrane word (the output layer after is dense): a union
        # keeps the entry as wide as it was whenever NAB <= 2·MAPB
        ev_layout = data.StructLayout({
            "mask": L, "g": NCNT, "sp": 2 * MAPB,
            "pos": data.UnionLayout({"yx": data.StructLayout({"yp": MAPB, "xp": MAPB}), "addr": NAB})})
        m.submodules.emem = emem = memory.Memory(shape=ev_layout, depth=cfg.event_words, init=[], attrs=NRW)
        m.submodules.omem = omem = memory.Memory(shape=unsigned(L * MB), depth=cfg.out_words, init=[], attrs=NRW)
        a_rd, a_wr = amem.read_port(), amem.write_port()
        v_rd, v_wr = vmem.read_port(), vmem.write_port()
        # two read ports on the event buffer: entry ``eptr`` and entry ``eptr + 1`` (both
        # addresses are registers), so taking an entry never drives a RAM address
        e_rd, e_rd1, e_wr = emem.read_port(), emem.read_port(), emem.write_port()
        o_rd, o_wr = omem.read_port(), omem.write_port()
        collisions = []

        def rd_data(rd, wr, name):
            # a read port's data; with ``collision_poison``, every bit inverted after a read of
            # the word written in the same cycle (what no_rw_check allows the RAM to return)
            if not self.collision_poison:
                return rd.data
            hit = Signal(name=f"{name}_collided")
            m.d.sync += hit.eq(rd.en & wr.en.any() & (rd.addr == wr.addr))
            collisions.append(hit)
            out = Signal.like(rd.data, name=f"{name}_data")
            raw = Value.cast(rd.data)
            m.d.comb += Value.cast(out).eq(raw ^ Mux(hit, Const(-1, len(raw)), 0))
            return out

        a_rd_data, v_rd_data = rd_data(a_rd, a_wr, "a_rd"), rd_data(v_rd, v_wr, "v_rd")
        e_rd_data, e_rd1_data = rd_data(e_rd, e_wr, "e_rd"), rd_data(e_rd1, e_wr, "e_rd1")
        o_rd_data = rd_data(o_rd, o_wr, "o_rd")
        if self.collision_poison:
            m.d.sync += self.collisions.eq(self.collisions + sum(collisions))
        epoch = Signal()
        # the current RAM's output goes straight into registers (block RAM outputs are slow):
        # ``a_q`` is the word read in the last cycle, 0 unless written this sample (S2 of the
        # read-modify-write, F2 of the fire sweep)
        a_q_raw = Signal(L * AB, reset_less=True)
        a_q_ep = Signal(reset_less=True)
        a_q = Signal(L * AB)
        m.d.sync += [a_q_raw.eq(a_rd_data[:L * AB]), a_q_ep.eq(a_rd_data[L * AB])]
        m.d.comb += a_q.eq(Mux(a_q_ep == epoch, a_q_raw, 0))
        a_wr_data = Signal(L * AB)
        m.d.comb += a_wr.data.eq(Cat(a_wr_data, epoch))

        # ---------------------------------------------------------------- command decode
        p = self.cmd.payload
        op = p[60:64]
        fa = p[48:60]
        fb = p[0:48]

        # weight loading
        per = P.weights_per_beat(spec)
        beats = P.beats_per_word(spec, L)
        wptr = Signal(WCNT)
        wbeat = Signal(bits_for(beats))
        wsr = Signal(beats * 48)
        next_sr = Signal(beats * 48)
        m.d.comb += next_sr.eq(Cat(wsr[48:], fb) if beats > 1 else fb)
        word_bits = []
        for k in range(beats):
            for j in range(per):
                if len(word_bits) < L:
                    lo = k * 48 + j * WB
                    word_bits.append(next_sr[lo:lo + WB])
        # one address for both weight ports (the burst engine's, or the load pointer in
        # the cycle after a weight word is complete: the write is registered, so no
        # controller decode drives the banks' address and enables) and no read while
        # writing: a single-port RAM, which yosys maps to iCE40 SPRAM (SB_SPRAM256KA)
        w_addr = Signal(WAB)
        w_we = Signal()
        w_ptr_q = Signal(WAB)
        w_data_q = Signal(L * WB)
        m.d.sync += [w_ptr_q.eq(wptr), w_data_q.eq(Cat(*word_bits))]
        w_bank = Signal(range(max(2, len(wbanks))))   # at least 1 bit: no zero-width wires in the Verilog
        m.d.comb += w_bank.eq(w_addr // WBK if len(wbanks) > 1 else 0)
        # (data registers right after block RAMs carry no reset: a reset would put logic
        # between the RAM and the register, and keep synthesis from using the RAM's own
        # output register)
        wq = [Signal(L * WB, name=f"wq{b}", reset_less=True) for b in range(len(wbanks))]
        for b, (w_rd, w_wr) in enumerate(wbanks):
            # each bank has its own registered write enable (one enable register does not
            # fan out to every block RAM) and its own address select
            we_b = Signal(name=f"w_we{b}")
            addr_b = Signal(WAB, name=f"w_addr{b}")
            m.d.sync += we_b.eq(w_we & ((wptr[:WAB] // WBK == b) if len(wbanks) > 1 else 1))
            m.d.comb += [addr_b.eq(Mux(we_b, w_ptr_q, w_addr)), w_wr.addr.eq(addr_b % WBK),
                         w_rd.addr.eq(addr_b % WBK), w_rd.en.eq(~we_b), w_wr.en.eq(we_b), w_wr.data.eq(w_data_q)]
            m.d.sync += wq[b].eq(w_rd.data)

        # ---------------------------------------------------------------- state
        counting = Signal()
        cycles = Signal(32)
        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)

        # ---------------------------------------------------------------- event pipeline
        # EV stage
        ev_valid = Signal()
        ev_c = Signal(IDXB + 1)
        ev_y = Signal(MAPB)
        ev_x = Signal(MAPB)
        ev_sp = Signal(2 * MAPB)
        ev_m = Signal(IB)
        ev_v = Signal(signed(MB))              # compensation: the residual
        # G1
        g1_valid = Signal()
        g1_idx = Signal(IDXB + 2 * MAPB + 1)   # dense: c·in_hw + sp ; conv: c·k9
        g1_y = Signal(MAPB)
        g1_x = Signal(MAPB)
        g1_ny = Signal(NCNT + MAPB + 1)
        g1_nx = Signal(NCNT + MAPB + 1)
        g1_m = Signal(IB)
        g1_vc = Signal(MB - 1)                 # compensation: the residual clamped to [0, θ-1]
        # G2
        g2_valid = Signal()
        g2_wa = Signal(WCNT + IDXB + 2 * MAPB + NCNT)
        g2_na = Signal(NCNT + MAPB + 2)
        g2_ilo = Signal()
        g2_ihi = Signal(2)
        g2_jlo = Signal()
        g2_jhi = Signal(2)
        g2_m = Signal(MW)
        g2_prod = Signal(MB - 1 + COMP_MUL_BITS)   # compensation: clamped residual · mul
        # G3 scatter
        g3_valid = Signal()
        g3_i = Signal(2)
        g3_j = Signal(2)
        g3_jlo = Signal()
        g3_ihi = Signal(2)
        g3_jhi = Signal(2)
        g3_wrow = Signal(WCNT + 2)
        g3_nrow = Signal(signed(NCNT + MAPB + 3))
        g3_m = Signal(MW)
        # burst engine
        be_valid = Signal()
        be_wa = Signal(WCNT)
        be_na = Signal(NCNT)
        be_rem = Signal(NCNT)
        be_m = Signal(MW)
        # RMW pipeline
        s1_valid = Signal()
        s1_na = Signal(NAB)
        s1_m = Signal(MW)
        # S1B: the weight banks' outputs registered (wq); the current RAM is read here
        s1b_valid = Signal()
        s1b_na = Signal(NAB)
        s1b_m = Signal(MW)
        s1_wb = Signal.like(w_bank)
        s2_valid = Signal()
        s2_na = Signal(NAB)
        s2_m = Signal(MW)
        s2_w = Signal(L * WB)
        s2_a = a_q
        s3_valid = Signal()
        s3_na = Signal(NAB)
        s3_p = Signal(L * AB)
        # the sums of the last four events, newest first: h0 is written to the current RAM
        # (S4); a read misses the writes of up to four events before its own
        HD = 4
        hist = [(Signal(name=f"h{k}_valid"), Signal(NAB, name=f"h{k}_na", reset_less=True),
                 Signal(L * AB, name=f"h{k}_sum", reset_less=True)) for k in range(HD)]

        acc_phase = Signal()      # the event pipeline owns the current RAM (the controller's states)
        # ... registered: what selects the current RAM's ports. A cycle late is early enough:
        # the pipeline's first read (S1) comes cycles after an accumulate state is entered,
        # and a fire sweep starts a setup state after it is left
        acc_q = Signal()
        m.d.sync += acc_q.eq(acc_phase)
        kw = cur["row_words"]
        kw3 = Signal(NCNT + 2)      # 3·kw (a conv row of weights), registered beside cur
        m.d.sync += kw3.eq((regs["row_words"][layer] << 1) + regs["row_words"][layer])
        kw_m1 = Signal(NCNT)        # kw - 1 (a layer's last word), registered beside cur
        m.d.sync += kw_m1.eq(regs["row_words"][layer] - 1)

        # --- burst engine
        be_last = Signal()          # be_rem == 1, registered beside be_rem (off the ready chain)
        be_ready = Signal()
        m.d.comb += be_ready.eq(~be_valid | be_last)
        with m.If(be_valid):
            m.d.sync += [be_wa.eq(be_wa + 1), be_na.eq(be_na + 1), be_rem.eq(be_rem - 1),
                         be_last.eq(be_rem == 2)]
            with m.If(be_last):
                m.d.sync += be_valid.eq(0)
        m.d.sync += [s1_valid.eq(be_valid), s1_na.eq(be_na), s1_m.eq(be_m), s1_wb.eq(w_bank)]
        m.d.sync += [s1b_valid.eq(s1_valid), s1b_na.eq(s1_na), s1b_m.eq(s1_m)]
        # the bank select, one-hot: each bit gates one bank's word (no select bit fans out
        # to every bank's bits)
        s1b_bank = Signal(len(wbanks))
        m.d.sync += s1b_bank.eq(Cat(*[s1_wb == b for b in range(len(wbanks))]))

        # --- G3 scatter: conv events give bursts for i in [ilo, ihi], j in [jlo, jhi]
        g3_wa = Signal(WCNT)
        g3_na = Signal(NCNT)
        jw = Signal(NCNT + 2)
        g3_lastb = Signal()
        if cfg.conv:
            m.d.comb += [jw.eq(Mux(g3_j == 0, 0, Mux(g3_j == 1, kw, kw << 1))),
                         g3_lastb.eq((g3_i == g3_ihi) & (g3_j == g3_jhi))]
        else:           # dense events only: one burst each
            m.d.comb += [jw.eq(0), g3_lastb.eq(1)]
        m.d.comb += [g3_wa.eq(g3_wrow + jw), g3_na.eq(g3_nrow - jw)]
        g3_ready = Signal()
        m.d.comb += g3_ready.eq(~g3_valid | (g3_lastb & be_ready))
        with m.If(g3_valid & be_ready):
            m.d.sync += [be_valid.eq(1), be_wa.eq(g3_wa), be_na.eq(g3_na), be_rem.eq(kw), be_last.eq(kw == 1),
                         be_m.eq(g3_m)]
            with m.If(g3_j == g3_jhi):
                m.d.sync += [g3_j.eq(g3_jlo), g3_i.eq(g3_i + 1),
                             g3_wrow.eq(g3_wrow + kw3), g3_nrow.eq(g3_nrow - cur["row_stride"])]
            with m.Else():
                m.d.sync += g3_j.eq(g3_j + 1)
            with m.If(g3_lastb):
                m.d.sync += g3_valid.eq(0)
        # load G3 from G2; compensation events: q = min((v · mul) >> shift, 2**frac_bits - 1).
        # It saturates when v · mul has a bit at shift + frac_bits or above (a thermometer
        # mask, no wide shifter); otherwise q is the low FB bits of the shifted product.
        q_low = Signal(FB)
        q_sat = Signal()
        k_sat = Signal(range(COMP_SHIFT_MAX + FB + 1))
        m.d.comb += [k_sat.eq(reg_comp_shift + reg_comp_fb), q_low.eq(g2_prod >> reg_comp_shift),
                     q_sat.eq(Cat(*[g2_prod[i] & (k_sat <= i) for i in range(len(g2_prod))]).any())]
        # G2 -> G3 through a one-entry skid buffer: G2 (and so G1, EV and the event
        # sources) stall on a register (the skid is full), not on the burst engine's state
        i0 = Mux(g2_ilo, kw3, 0)   # g3_wrow/g3_nrow: row starts at j = 0
        item = {"ilo": g2_ilo, "jlo": g2_jlo, "ihi": g2_ihi, "jhi": g2_jhi,
                "m": Mux(cexp, Mux(q_sat, comp_top, q_low), g2_m),
                "wrow": g2_wa + i0, "nrow": g2_na - Mux(g2_ilo, cur["row_stride"], 0)}
        g3_in = {"ilo": g3_i, "jlo": g3_jlo, "ihi": g3_ihi, "jhi": g3_jhi, "m": g3_m, "wrow": g3_wrow,
                 "nrow": g3_nrow}
        sk_valid = Signal()
        skid = {k: Signal.like(v, name=f"sk_{k}") for k, v in g3_in.items()}
        g2_ready = Signal()
        m.d.comb += g2_ready.eq(~sk_valid)
        # (G3 loads whenever it can: its data registers take whatever is offered, valid or
        # not, so the enable is g3_ready alone)
        with m.If(g3_ready):
            m.d.sync += [g3_valid.eq(sk_valid | g2_valid), g3_j.eq(Mux(sk_valid, skid["jlo"], item["jlo"]))]
            m.d.sync += [g3_in[k].eq(Mux(sk_valid, skid[k], item[k])) for k in g3_in]
            m.d.sync += sk_valid.eq(0)
        with m.If(~sk_valid & g2_valid & ~g3_ready):
            m.d.sync += [sk_valid.eq(1), *[skid[k].eq(item[k]) for k in g3_in]]
        # --- G2
        g1_ready = Signal()
        m.d.comb += g1_ready.eq(~g1_valid | g2_ready)
        with m.If(g2_ready):
            m.d.sync += g2_valid.eq(g1_valid)
            with m.If(g1_valid):
                with m.If(cur["kind"] == 0):
                    m.d.sync += [g2_wa.eq(cur["wbase"] + g1_idx * kw), g2_na.eq(cur["sbase"]),
                                 g2_ilo.eq(0), g2_ihi.eq(0), g2_jlo.eq(0), g2_jhi.eq(0)]
                with m.Else():
                    h, w = cur["map_h"], cur["map_w"]
                    m.d.sync += [
                        g2_wa.eq(cur["wbase"] + g1_idx),
                        g2_na.eq(cur["sbase"] + g1_ny + g1_nx),
                        g2_ilo.eq(g1_y + 1 >= h), g2_ihi.eq(Mux(g1_y >= 1, 2, 1)),
                        g2_jlo.eq(g1_x + 1 >= w), g2_jhi.eq(Mux(g1_x >= 1, 2, 1)),
                    ]
                m.d.sync += [g2_m.eq(g1_m), g2_prod.eq(g1_vc * reg_comp_mul)]
        # --- G1
        ev_ready = Signal()
        m.d.comb += ev_ready.eq(~ev_valid | g1_ready)
        with m.If(g1_ready):
            m.d.sync += g1_valid.eq(ev_valid)
            with m.If(ev_valid):
                with m.If(cur["kind"] == 0):
                    m.d.sync += g1_idx.eq(ev_c * cur["in_hw"] + ev_sp)
                with m.Else():
                    m.d.sync += g1_idx.eq(ev_c * cur["k9"])
                m.d.sync += [g1_y.eq(ev_y), g1_x.eq(ev_x), g1_m.eq(ev_m),
                             g1_vc.eq(Mux(ev_v < 0, 0, Mux(ev_v > comp_thm1, comp_thm1, ev_v))),
                             g1_ny.eq((ev_y + 1) * cur["row_stride"]), g1_nx.eq((ev_x + 1) * kw)]
        # ev stage consumption (sources set ev_valid when they emit)
        with m.If(g1_ready):
            m.d.sync += ev_valid.eq(0)

        # --- S1..S4: read-modify-write of the current RAM
        m.d.comb += w_addr.eq(be_wa)     # the burst engine's read address
        with m.If(acc_q):
            m.d.comb += a_rd.addr.eq(s1_na)
        m.d.sync += [s2_valid.eq(s1b_valid), s2_na.eq(s1b_na), s2_m.eq(s1b_m),
                     s2_w.eq(_or_reduce([Mux(s1b_bank[b], wq[b], 0) for b in range(len(wbanks))]))]
        mult = Cat(s2_m, Const(0, 1)).as_signed()
        prods = [_lane(s2_w, i, WB) * mult for i in range(L)]
        m.d.sync += [s3_valid.eq(s2_valid), s3_na.eq(s2_na)]
        m.d.sync += s3_p.eq(Cat(*[_sext(pv, AB) for pv in prods]))
        # What S3 adds to, chosen in S2 and registered: the word of the event S3 holds now
        # (in h0 next cycle: ``fsel0``), or else the newest of the older sums in flight
        # (h0..h2 now, h1..h3 then) and the RAM word (``s3_base``). So S3 is one 2:1 mux
        # and the add: the loop h0 -> add -> h0 of back-to-back events on one word. The
        # address compares are made a stage earlier still (S1B, registered into ``s2_hit``):
        # what S2 sees in S3, h0, h1, h2 is in S2, S3, h0, h1 then.
        s2_hit = [Signal(name=f"s2_hit{k}") for k in range(HD)]
        ahead = [(s2_valid, s2_na), (s3_valid, s3_na), (hist[0][0], hist[0][1]), (hist[1][0], hist[1][1])]
        m.d.sync += [s2_hit[k].eq(v & (na == s1b_na)) for k, (v, na) in enumerate(ahead)]
        fsel0 = Signal()
        s3_base = Signal(L * AB, reset_less=True)
        m.d.sync += fsel0.eq(s2_hit[0])
        base = s2_a
        for k in reversed(range(HD - 1)):                  # oldest first; newest overrides
            base = Mux(s2_hit[k + 1], hist[k][2], base)
        m.d.sync += s3_base.eq(base)
        # both sums are made and the select comes after the adders: fsel0, which fans out to
        # every bit, arrives while the carries run
        s3_sum = Signal(L * AB)
        m.d.comb += s3_sum.eq(Cat(*[Mux(fsel0, _lane(hist[0][2], i, AB) + _lane(s3_p, i, AB),
                                        _lane(s3_base, i, AB) + _lane(s3_p, i, AB))[:AB] for i in range(L)]))
        m.d.sync += [hist[0][0].eq(s3_valid), hist[0][1].eq(s3_na), hist[0][2].eq(s3_sum)]
        for k in range(1, HD):
            m.d.sync += [hist[k][0].eq(hist[k - 1][0]), hist[k][1].eq(hist[k - 1][1]),
                         hist[k][2].eq(hist[k - 1][2])]
        pipe_busy = Signal()
        m.d.comb += pipe_busy.eq(ev_valid | g1_valid | g2_valid | sk_valid | g3_valid | be_valid |
                                 s1_valid | s1b_valid | s2_valid | s3_valid | hist[0][0])
        # ... registered (the controller acts a cycle later; nothing enters an idle pipeline
        # in the states that wait for it: no source runs there)
        pipe_idle_q = Signal()
        m.d.sync += pipe_idle_q.eq(~pipe_busy)

        # --- event-buffer expander
        ev_count = Signal(cfg.event_addr_bits + 1)
        eptr = Signal(cfg.event_addr_bits + 1)
        ent_valid = Signal()
        ent_mask = Signal(L)
        ent_g = Signal(NCNT)
        ent_yp = Signal(MAPB)
        ent_xp = Signal(MAPB)
        ent_sp = Signal(2 * MAPB)
        eptr1 = Signal.like(eptr)    # eptr + 1, kept as a register
        advance = Signal()
        advanced = Signal()         # an entry was taken in the last cycle: e_rd1 presents eptr
        m.d.comb += [e_rd.addr.eq(eptr), e_rd1.addr.eq(eptr1)]
        m.d.sync += advanced.eq(advance)
        e_cur = Signal(ev_layout)   # entry eptr, the next one to take
        m.d.comb += e_cur.eq(Mux(advanced, e_rd1_data, e_rd_data))
        ent_addr = Signal(NAB)
        expand = Signal()
        low = Signal(range(L))       # lowest set bit of ent_mask
        ent_one = Signal()          # ent_mask has one set bit (registered beside it)
        for i in reversed(range(L)):
            with m.If(ent_mask[i]):
                m.d.comb += low.eq(i)
        can_load = Signal()         # eptr < ev_count, kept as a register beside eptr
        # the expansion is over: no entry, none to load, the pipeline empty (registered: the
        # controller leaves ACC a cycle later; in an expand state this condition stays)
        acc_drained = Signal()
        m.d.sync += acc_drained.eq(expand & ~ent_valid & ~can_load & ~pipe_busy)

        # ent_mask less its lowest lane, and whether at most one lane is left (made outside
        # the conditions below: their comb signals would be gated by them)
        rest = _drop_lowest(m, ent_mask, "ent_rest")
        rest_one = _drop_lowest(m, rest, "ent_rest2") == 0
        e_cur_one = _drop_lowest(m, e_cur.mask, "e_cur_mask") == 0

        def load_entry():
            m.d.comb += advance.eq(1)
            m.d.sync += [eptr.eq(eptr1), eptr1.eq(eptr1 + 1), can_load.eq(eptr1 < ev_count),
                         ent_valid.eq(1), ent_mask.eq(e_cur.mask), ent_one.eq(e_cur_one)]

        # the entry's fields take entry eptr whenever an entry could be taken (whether one is,
        # ent_valid says), so their enable is not the whole load condition
        with m.If(~ent_valid | (ev_ready & ent_one)):
            m.d.sync += [ent_g.eq(e_cur.g), ent_yp.eq(e_cur.pos.yx.yp), ent_xp.eq(e_cur.pos.yx.xp),
                         ent_sp.eq(e_cur.sp), ent_addr.eq(e_cur.pos.addr)]

        with m.If(expand):
            with m.If(~ent_valid):
                with m.If(can_load):
                    load_entry()
            with m.Elif(ev_ready):
                m.d.sync += ev_valid.eq(1)      # the entry's lowest set lane (its fields: below)
                with m.If(ent_one):
                    with m.If(can_load):
                        load_entry()
                    with m.Else():
                        m.d.sync += ent_valid.eq(0)
                with m.Else():
                    m.d.sync += [ent_mask.eq(rest), ent_one.eq(rest_one)]

        # The event registers take a value whenever EV can take one (whether it is an event,
        # ev_valid says), so their enable is ev_ready alone: the expander's event in its
        # states, else the command word as a pixel.
        with m.If(ev_ready):
            with m.If(expand):
                # a compensation event carries its residual, re-read from the membrane
                # RAM (the entry's word, presented since the entry was loaded); G1 clamps
                # it to [0, θ-1], G2 multiplies by mul, the G3 load makes q
                m.d.sync += [ev_c.eq(ent_g * L + low), ev_y.eq(ent_yp), ev_x.eq(ent_xp), ev_sp.eq(ent_sp),
                             ev_m.eq(1), ev_v.eq(Array(_lane(v_rd_data, i, MB) for i in range(L))[low])]
            with m.Else():
                m.d.sync += [ev_m.eq(fb[0:16]), ev_sp.eq(0), ev_c.eq(Mux(cur["kind"], fa, fb[16:32])),
                             ev_x.eq(fb[32:40]), ev_y.eq(fb[40:48])]

        # ---------------------------------------------------------------- fire pipeline
        f_k = Signal(NCNT)          # word being issued
        f_go = Signal()             # issue one word this cycle
        f_done = Signal()           # sweep issued all words
        # conv coordinate counters (of the word being issued)
        c_g = Signal(NCNT)
        c_x = Signal(MAPB)
        c_y = Signal(MAPB)
        c_xs = Signal(3)
        c_xp = Signal(MAPB)
        c_ys = Signal(3)
        c_yp = Signal(MAPB)
        c_rowp = Signal(2 * MAPB)
        meta_layout = data.StructLayout({
            "valid": 1, "k": NCNT, "g": NCNT, "yp": MAPB, "xp": MAPB, "sp": 2 * MAPB, "pv": 1})
        f1 = Signal(meta_layout)
        f2 = Signal(meta_layout)
        f3 = Signal(meta_layout)
        f4 = Signal(meta_layout)
        f1_addr, f2_addr, f3_addr, f4_addr = (Signal(NAB, name=f"f{i}_addr") for i in range(1, 5))
        f2_v = Signal(L * MB)
        f2_i = Signal(L * AB)
        m.d.comb += f2_i.eq(Mux(cmode, 0, a_q))
        f3_v = Signal(L * MB)
        CB = min(AB, MB + 1)        # F3's current: clamped to MB + 1 bits
        f3_i = Signal(L * CB, reset_less=True)
        f4_v = Signal(L * MB)
        first_step = Signal()
        m.d.comb += first_step.eq((t == 0) & ~cmode & ~rmode)
        keep_cur = Signal()
        # a stage's first layer keeps its static (direct) or summed (SSNN) current until
        # the stage's last timestep; event frames are cleared at every fire (registered,
        # from t_last: layer and t are set a setup state before a sweep, and its first F3
        # write is 4 cycles into it)
        m.d.sync += keep_cur.eq((layer == st_first) & ~t_last & ~(reg_events & stage0))
        st_T_m1 = Signal.like(st_T, name="st_T_m1")     # the stage's T - 1, registered
        m.d.sync += [st_T_m1.eq(st_T - 1), t_last.eq(t == st_T_m1)]

        f_addr = Signal(NCNT)       # sbase + f_k, kept as a register
        with m.If(~acc_q):
            m.d.comb += [a_rd.addr.eq(f_addr)]
        # the expander of compensation events reads the membrane word of its entry
        if cfg.compensation:
            m.d.comb += v_rd.addr.eq(Mux(cexp, Mux(advance, e_cur.pos.addr, ent_addr), f_addr))
        else:   # no expansion re-reads membranes: keep the event expander off this address
            m.d.comb += v_rd.addr.eq(f_addr)
        pooled_ok = Signal()
        m.d.comb += pooled_ok.eq((c_yp < cur["pool_h"]) & (c_xp < cur["pool_w"]))
        m.d.sync += [f1.valid.eq(f_go), f1.k.eq(f_k), f1.g.eq(Mux(cur["kind"], c_g, f_k)),
                     f1.yp.eq(c_yp), f1.xp.eq(c_xp), f1.sp.eq(c_rowp + c_xp),
                     f1.pv.eq(Mux(cur["kind"], pooled_ok, 1)), f1_addr.eq(f_addr)]
        # the sweep's last word, compared against a register (out_words - 1 of the layer)
        f_kmax = Signal(NCNT)
        m.d.sync += f_kmax.eq(regs["out_words"][layer] - 1)
        with m.If(f_go):
            m.d.sync += [f_k.eq(f_k + 1), f_addr.eq(f_addr + 1)]
            with m.If(f_k == f_kmax):
                m.d.sync += f_done.eq(1)
            # advance conv coordinates: g fastest, then x, then y (a design without conv
            # layers has only dense ones, whose maps are 1 x 1: the coordinates stay 0)
            if cfg.conv:
                with m.If(c_g + 1 == kw):
                    m.d.sync += c_g.eq(0)
                    with m.If(c_x + 1 == cur["map_w"]):
                        m.d.sync += [c_x.eq(0), c_xs.eq(0), c_xp.eq(0), c_y.eq(c_y + 1)]
                        with m.If(c_ys + 1 == cur["pool"]):
                            m.d.sync += [c_ys.eq(0), c_yp.eq(c_yp + 1), c_rowp.eq(c_rowp + cur["pool_w"])]
                        with m.Else():
                            m.d.sync += c_ys.eq(c_ys + 1)
                    with m.Else():
                        m.d.sync += c_x.eq(c_x + 1)
                        with m.If(c_xs + 1 == cur["pool"]):
                            m.d.sync += [c_xs.eq(0), c_xp.eq(c_xp + 1)]
                        with m.Else():
                            m.d.sync += c_xs.eq(c_xs + 1)
                with m.Else():
                    m.d.sync += c_g.eq(c_g + 1)
        # F1 -> F2: registered memory outputs, v_init at timestep 0
        vinit_word = Cat(*[cur["v_init"] for _ in range(L)])
        m.d.sync += [f2.eq(f1), f2_addr.eq(f1_addr),
                     f2_v.eq(Mux(first_step, vinit_word, v_rd_data))]
        # F2 -> F2L: the leak's shift ``v >> shift`` (0 without leak: shift 0 or a
        # compensation sweep) registered beside v; the readout sweep's current is the
        # compensation current C >> frac_bits (arithmetic)
        sh = cur["leak_shift"]
        noleak = Signal()           # shift 0 or a compensation sweep: registered (stable in a sweep)
        m.d.sync += noleak.eq((regs["leak_shift"][layer] == 0) | cmode | rmode)
        f2l = Signal(meta_layout)
        f2l_addr = Signal(NAB)
        f2l_v = Signal(L * MB, reset_less=True)
        f2l_sh = Signal(L * MB, reset_less=True)
        f2l_i = Signal(L * AB, reset_less=True)
        shifted, comp_i = [], []
        for i in range(L):
            shifted.append(Mux(noleak, 0, _lane(f2_v, i, MB) >> sh)[:MB])
            comp_i.append(((_lane(f2_i, i, AB) >> 1) >> comp_fbm1)[:AB])
        if SH:
            # SSNN: a later stage's first layer gets (C · p[t]) >> SPLIT_FRAC_BITS
            # (arithmetic); C itself is written back
            split_mode = Signal()
            m.d.sync += split_mode.eq(staged & ~stage0 & (layer == st_first))
            cur_p = Signal(SFB + 1)
            m.d.sync += cur_p.eq(Array(split_regs)[t])
            split_i = [((_lane(f2_i, i, AB) * cur_p) >> SFB)[:AB] for i in range(L)]
            f2l_c = Signal(L * AB, reset_less=True)
            f3_c = Signal(L * AB, reset_less=True)
            m.d.sync += [f2l_c.eq(f2_i), f3_c.eq(f2l_c)]
            f2l_src = Mux(split_mode, Cat(*split_i), f2_i)
        else:
            f3_c = Signal(L * AB, reset_less=True)     # the current written back
            m.d.sync += f3_c.eq(f2l_i)
            f2l_src = f2_i
        m.d.sync += [f2l.eq(f2), f2l_addr.eq(f2_addr), f2l_v.eq(f2_v), f2l_sh.eq(Cat(*shifted)),
                     f2l_i.eq(Mux(rmode, Cat(*comp_i), f2l_src))]
        # F2L -> F3: the leak v - (v >> shift); the current clamped to CB = MB + 1 bits
        # (v + I saturates to the same rail: |I| >= 2**MB already takes any v past it)
        clamped = []
        for i in range(L):
            c = _lane(f2l_i, i, AB)
            if AB > CB:
                top = c[MB:]
                c = Mux((top == 0) | top.all(), c[:CB],
                        Mux(c[-1], Const(-(1 << MB), signed(CB)), Const((1 << MB) - 1, signed(CB))))
            clamped.append(c[:CB])
        m.d.sync += [f3.eq(f2l), f3_addr.eq(f2l_addr), f3_i.eq(Cat(*clamped)),
                     f3_v.eq(Cat(*[(_lane(f2l_v, i, MB) - _lane(f2l_sh, i, MB))[:MB] for i in range(L)]))]
        # F3 -> F4: saturating add. The sum is in range when its bits from MB-1 up are all
        # equal (no compare against the rails: on iCE40 those are two more carry chains)
        assert (mlo, mhi) == (-(1 << (MB - 1)), (1 << (MB - 1)) - 1)
        integ = []
        for i in range(L):
            s = _lane(f3_v, i, MB) + _lane(f3_i, i, CB)
            top = s[MB - 1:]
            inr = (top == 0) | top.all()
            integ.append(Mux(inr, s[:MB], Mux(s[-1], Const(mlo, signed(MB)), Const(mhi, signed(MB))))[:MB])
        m.d.sync += [f4.eq(f3), f4_addr.eq(f3_addr), f4_v.eq(Cat(*integ))]
        # F4 -> F4D: v - th registered beside v (its sign is the threshold compare)
        # the q sweep writes an entry per word with residuals >= REG_COMP_VMIN (q > 0)
        # (registered: valid 1 cycle after cur, 4 cycles before a sweep's first F4)
        th = Signal(signed(MB + 1))
        m.d.sync += th.eq(Mux(cmode, reg_comp_vmin, cur["threshold"]))
        f4d = Signal(meta_layout)
        f4d_addr = Signal(NAB)
        f4d_v = Signal(L * MB, reset_less=True)
        f4d_d = Signal(L * (MB + 2), reset_less=True)
        m.d.sync += [f4d.eq(f4), f4d_addr.eq(f4_addr), f4d_v.eq(f4_v),
                     f4d_d.eq(Cat(*[(_lane(f4_v, i, MB) - th)[:MB + 2] for i in range(L)]))]
        # the lanes that may fire (not the padding lanes of a layer's last word), registered
        # at F4 -> F4D beside the membranes
        lane_ok = Signal(L)
        f3_last_word = Signal()     # f3.g == kw - 1, registered at F2L -> F3
        f4_last_word = Signal()
        lane_in = Signal(L)         # lane i < the last word's lanes, registered beside cur
        m.d.sync += [f3_last_word.eq(f2l.g == kw_m1), f4_last_word.eq(f3_last_word),
                     lane_in.eq(Cat(*[i < regs["last_lanes"][layer] for i in range(L)])),
                     lane_ok.eq(Cat(*[(~f4_last_word | lane_in[i]) & cur["spiking"] for i in range(L)]))]
        # F4D: fire
        spikes = Signal(L)
        newv = []
        for i in range(L):
            v = _lane(f4d_v, i, MB)
            d = _lane(f4d_d, i, MB + 2)
            s = lane_ok[i] & ~d[-1]
            m.d.comb += spikes[i].eq(s)
            newv.append(Mux(s, Mux(cur["reset"], 0, d), v)[:MB])
        # F4D -> F5: the spikes and new membranes registered; F5 writes them back (the
        # threshold compare does not drive the write enables directly)
        f5 = Signal(meta_layout)
        f5_addr = Signal(NAB)
        f5_new = Signal(L * MB)
        f5_spikes = Signal(L)
        f5_any = Signal()
        m.d.sync += [f5.eq(f4d), f5_addr.eq(f4d_addr), f5_new.eq(Cat(*newv)), f5_spikes.eq(spikes),
                     f5_any.eq(spikes != 0)]
        with m.If(f5.valid & ~cmode & ~rmode):
            m.d.comb += [v_wr.addr.eq(f5_addr), v_wr.data.eq(f5_new), v_wr.en.eq(1)]
        if SH:
            # SSNN: the spikes of the sweep (every neuron, before pooling; never padding lanes)
            m_cnt = Signal(cfg.count_bits)
            with m.If(f4d.valid & ~cmode & ~rmode):
                m.d.sync += m_cnt.eq(m_cnt + sum(spikes[i] for i in range(L)))
        ev_wr_ptr = Signal(cfg.event_addr_bits + 1)
        m.d.comb += [e_wr.addr.eq(ev_wr_ptr), e_wr.data.mask.eq(f5_spikes), e_wr.data.g.eq(f5.g),
                     e_wr.data.sp.eq(f5.sp)]
        with m.If(cmode):
            m.d.comb += e_wr.data.pos.addr.eq(f5_addr)
        with m.Else():
            m.d.comb += [e_wr.data.pos.yx.yp.eq(f5.yp), e_wr.data.pos.yx.xp.eq(f5.xp)]
        with m.If(f5.valid & f5_any & f5.pv):
            m.d.comb += e_wr.en.eq(1)
            m.d.sync += ev_wr_ptr.eq(ev_wr_ptr + 1)
        with m.If(f5.valid & is_last_layer):
            m.d.comb += [o_wr.addr.eq(f5.k), o_wr.data.eq(f5_new), o_wr.en.eq(1)]
        # the sweep is in flight: f_go, or a valid F1..F5 (``f_busy_r``: registered from what
        # F0..F4D held, so no wide OR sits before the controller's state)
        f_busy = Signal()
        f_busy_r = Signal()
        m.d.comb += f_busy.eq(f_go | f_busy_r)

        # current RAM write port: one-time clear, RMW S4, or the fire phase's F3 (clear
        # the current; the first layer's static current is written back, so every word
        # of the network carries this sample's epoch after timestep 0)
        clearing = Signal()
        clr_k = Signal(NCNT)
        clr_stop = Signal()             # clr_k has reached clr_end (registered)
        clr_end = Signal(NCNT + 1)      # the end of the layer in cur (registered beside it)
        m.d.sync += clr_end.eq(regs["sbase"][layer] + regs["out_words"][layer])
        with m.If(clearing):
            m.d.comb += [a_wr.addr.eq(clr_k), a_wr_data.eq(0), a_wr.en.eq(1)]
        with m.Elif(acc_q):
            m.d.comb += [a_wr.addr.eq(hist[0][1]), a_wr_data.eq(hist[0][2]), a_wr.en.eq(hist[0][0])]
        with m.Else():
            m.d.comb += [a_wr.addr.eq(f3_addr), a_wr_data.eq(Mux(keep_cur, f3_c, 0)), a_wr.en.eq(f3.valid & ~cmode)]

        # ---------------------------------------------------------------- output streamer + exit unit
        m.submodules.exit_unit = xu = ExitUnit(spec, cfg.max_outputs)
        m.d.comb += [xu.rule.eq(reg_exit_rule), xu.threshold.eq(reg_exit_th), xu.shift.eq(reg_exit_shift)]
        st_start = Signal()
        st_final = Signal()
        st_rwait = Signal()         # POT words out; waiting for the readout sweep
        rd_go = Signal()            # the readout is in the output buffer
        st_busy = Signal()
        abort = Signal()            # the exit rule held: end the sample now
        abort_q = Signal()          # ... registered: what the controller acts on, a cycle later
        m.d.sync += abort_q.eq(abort)
        m.d.sync += f_busy_r.eq((f_go | f1.valid | f2.valid | f2l.valid | f3.valid | f4.valid | f4d.valid)
                                & ~abort_q)
        st_rw = Signal(NCNT)
        st_rw_m1 = Signal(NCNT)     # the last word
        st_last_m1 = Signal(bits_for(L))    # the last word's lanes - 1
        st_lastw = Signal()         # st_sr holds the last word
        st_nxt = Signal(NCNT)       # word the output-buffer read port presents next
        st_nxt1 = Signal(NCNT)      # the word after it (wrapping to 0)
        st_wrap = Signal()          # st_nxt1 is the last word (st_nxt1 == st_rw_m1), registered
        st_nxt_last = Signal()      # st_nxt is the last word, registered
        st_at0 = Signal()           # between passes: present word 0
        st_loading = Signal()       # a word is taken this cycle
        st_loaded = Signal()        # ... in the last cycle: the next one is not read yet
        st_lrem = Signal(bits_for(L))      # lanes of st_sr after the one presented
        st_sr = Signal(L * MB)
        st_step = Signal(cfg.step_bits)
        res_tag = Signal(4)
        res_data = Signal(32)
        # the read address is a register (word 0 between passes): taking a word does not
        # drive it, so the next word is there two cycles after a load; a word of one lane
        # (``lanes`` = 1, or a last word of one lane) holds its lane for a cycle (st_hold)
        m.d.comb += o_rd.addr.eq(Mux(st_at0, 0, st_nxt))
        # The result words leave from a register with a one-word skid buffer: the streamer
        # sees ready = the skid is empty (a flip-flop), never the consumer's ready, and the
        # consumer sees valid and payload from flip-flops. With a consumer that is always
        # ready the skid stays empty: the streamer runs as if res were its own port.
        res_valid = Signal()
        res_ready = Signal()
        res_out_valid = Signal()
        res_out = Signal(P.OUT_WIDTH, reset_less=True)
        res_skid_valid = Signal()
        res_skid = Signal(P.OUT_WIDTH, reset_less=True)
        res_word = Cat(res_data, res_tag)
        m.d.comb += [res_ready.eq(~res_skid_valid), self.res.valid.eq(res_out_valid), self.res.payload.eq(res_out)]
        with m.If(self.res.ready | ~res_out_valid):
            m.d.sync += [res_out_valid.eq(res_skid_valid | res_valid), res_out.eq(Mux(res_skid_valid, res_skid, res_word)),
                         res_skid_valid.eq(0)]
        with m.Elif(res_valid & ~res_skid_valid):
            m.d.sync += [res_skid_valid.eq(1), res_skid.eq(res_word)]
        m.d.sync += st_loaded.eq(st_loading)
        st_v = st_sr[:MB].as_signed()
        st_endw = Signal(init=1)    # st_lrem == 0, kept as a register beside it
        st_last_one = Signal()      # the last word has one lane (st_last_m1 == 0)
        st_lastv = Signal()
        st_hold = Signal()
        m.d.comb += [st_hold.eq(st_loaded & st_endw),
                     st_lastv.eq(st_lastw & st_endw),
                     xu.value.eq(st_v), xu.last.eq(st_lastv)]

        def st_load():
            # the read port has presented word st_nxt since the last load: take it and
            # prefetch the next one (wrapping to word 0 for a second pass)
            m.d.comb += st_loading.eq(1)
            m.d.sync += [st_nxt_last.eq(st_wrap), st_sr.eq(o_rd_data), st_lastw.eq(st_nxt_last),
                         st_lrem.eq(Mux(st_nxt_last, st_last_m1, L - 1)),
                         st_endw.eq(Mux(st_nxt_last, st_last_one, L == 1)),
                         st_nxt.eq(st_nxt1), st_nxt1.eq(Mux(st_wrap, 0, st_nxt1 + 1)),
                         st_wrap.eq(Mux(st_wrap, st_rw_m1 == 0, st_nxt1 + 1 == st_rw_m1))]

        def st_rewind(words):
            m.d.comb += st_at0.eq(1)
            m.d.sync += [st_nxt.eq(0), st_nxt1.eq(Mux(words == 1, 0, 1)), st_nxt_last.eq(words == 1),
                         st_wrap.eq(words <= 2)]

        def st_advance():
            with m.If(st_endw):
                with m.If(~st_lastw):
                    st_load()
            with m.Else():
                m.d.sync += [st_sr.eq(st_sr >> MB), st_lrem.eq(st_lrem - 1), st_endw.eq(st_lrem == 1)]

        with m.FSM(name="streamer") as st_fsm:
            with m.State("IDLE"):
                st_rewind(cur["row_words"])
                with m.If(st_start):
                    m.d.comb += xu.clear.eq(1)
                    m.d.sync += [st_rw.eq(cur["row_words"]), st_rw_m1.eq(kw_m1),
                                 st_last_m1.eq(cur["last_lanes"] - 1), st_last_one.eq(cur["last_lanes"] == 1),
                                 st_step.eq(t + 1)]
                    m.next = "LOAD"
                if SH:
                    with m.Elif(tt_go):
                        m.d.sync += tk.eq(0)
                        m.next = "TCOUNT"
            if SH:
                with m.State("TCOUNT"):     # SSNN boundary: m[t], t < T_i
                    m.d.comb += [res_valid.eq(1), res_tag.eq(P.TAG["COUNT"]),
                                 res_data.eq(Array(count_regs)[tk])]
                    with m.If(res_ready):
                        m.d.sync += tk.eq(tk + 1)
                        with m.If(tk + 1 == st_T):
                            m.d.sync += tk.eq(0)
                            m.next = "TSPLIT"
                with m.State("TSPLIT"):     # p[k], k < T_{i+1}, kept for the next stage's splits
                    m.d.comb += [res_valid.eq(1), res_tag.eq(P.TAG["SPLIT"]),
                                 res_data.eq(tt.p_data), tt.p_idx.eq(Mux(res_ready, tk + 1, tk))]
                    with m.If(res_ready):     # (p_idx is read one cycle ahead; 0 in TCOUNT)
                        m.d.sync += [tk.eq(tk + 1), Array(split_regs)[tk].eq(tt.p_data)]
                        with m.If(tk + 1 == st_Tn):
                            m.next = "IDLE"
            with m.State("LOAD"):
                st_load()
                m.next = "EMIT"
            with m.State("EMIT"):           # pass 1: POT words, argmax and top-2 on the way
                m.d.comb += [res_valid.eq(~st_hold), res_tag.eq(P.TAG["POT"]),
                             res_data.eq(st_v)]
                with m.If(res_ready & ~st_hold):
                    m.d.comb += xu.p1_valid.eq(1)
                    st_advance()
                    with m.If(st_lastv):
                        with m.If(st_final):
                            m.next = "CLASS"
                            with m.If(reg_comp_en):
                                m.next = "RWAIT"
                        with m.Elif(reg_exit_rule == P.EXIT_RULE_CODES["none"]):
                            m.next = "IDLE"
                        with m.Elif(reg_exit_rule == P.EXIT_RULE_CODES["softmax"]):
                            st_load()       # word 0 again
                            m.next = "PASS2"
                        with m.Else():
                            m.next = "WAIT"
            with m.State("PASS2"):          # softmax: the potentials again, one per cycle
                with m.If(~st_hold):
                    m.d.comb += xu.p2_valid.eq(1)
                    st_advance()
                    with m.If(st_lastv):
                        m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(xu.done):
                    with m.If(xu.holds):
                        m.d.comb += abort.eq(1)
                        m.next = "CLASS"
                        with m.If(reg_comp_en):
                            m.next = "RWAIT"
                    with m.Else():
                        m.next = "IDLE"
            with m.State("RWAIT"):          # compensation: the readout sweep writes the output buffer
                m.d.comb += st_rwait.eq(1)
                st_rewind(st_rw)
                with m.If(rd_go):
                    m.d.comb += xu.clear.eq(1)
                    m.next = "RLOAD"
            with m.State("RLOAD"):
                st_load()
                m.next = "REMIT"
            with m.State("REMIT"):          # READOUT words; the exit unit's argmax gives CLASS
                m.d.comb += [res_valid.eq(~st_hold), res_tag.eq(P.TAG["READOUT"]),
                             res_data.eq(st_v)]
                with m.If(res_ready & ~st_hold):
                    m.d.comb += xu.p1_valid.eq(1)
                    st_advance()
                    with m.If(st_lastv):
                        m.next = "CLASS"
            with m.State("CLASS"):
                m.d.comb += [res_valid.eq(~xu.busy), res_tag.eq(P.TAG["CLASS"]),
                             res_data.eq(xu.best_index)]
                with m.If(res_ready & ~xu.busy):
                    m.next = "STEPS"
            with m.State("STEPS"):
                m.d.comb += [res_valid.eq(1), res_tag.eq(P.TAG["STEPS"]), res_data.eq(st_step)]
                with m.If(res_ready):
                    m.next = "CYCLES"
            with m.State("CYCLES"):
                m.d.comb += [res_valid.eq(1), res_tag.eq(P.TAG["CYCLES"]), res_data.eq(cycles)]
                with m.If(res_ready):
                    m.d.sync += [counting.eq(0), st_final.eq(0)]
                    m.next = "IDLE"

        # one-hot in synthesis (each state a flip-flop: shallow next-state logic; the reset,
        # which every top holds after configuration, sets IDLE); busy in every other state
        st_fsm.state.attrs["fsm_encoding"] = "one-hot"
        m.d.comb += st_busy.eq(~st_fsm.ongoing("IDLE"))

        # ---------------------------------------------------------------- controller
        def start_fire():
            m.d.sync += [f_k.eq(0), f_addr.eq(regs["sbase"][layer]), f_done.eq(0), c_g.eq(0), c_x.eq(0), c_y.eq(0), c_xs.eq(0),
                         c_xp.eq(0), c_ys.eq(0), c_yp.eq(0), c_rowp.eq(0)]
            if SH:
                m.d.sync += m_cnt.eq(0)

        def next_step_state():
            # the next timestep of the stage starts with its first layer (layer 0 of an
            # events network first takes the frame)
            with m.If(reg_events & stage0):
                m.next = "PIX_SETUP"
            with m.Else():
                m.next = "F_SETUP"

        def on_abort():
            # the exit rule held during a speculative timestep: end the sample, or with
            # the compensation first run its pass on the exit timestep's membranes
            with m.If(abort_q):
                with m.If(reg_comp_en):
                    m.d.sync += layer.eq(nl_m2)
                    m.next = "C_SETUP"
                with m.Else():
                    m.next = "FINISH"

        # with an exit rule and the compensation, the last hidden layer's membranes must
        # survive until the exit decision: its fire sweep waits for it, as the output
        # layer's waits for the streamer
        hold = Signal()
        m.d.comb += hold.eq(is_last_layer | (reg_comp_en & (reg_exit_rule != P.EXIT_RULE_CODES["none"])
                                             & (layer == nl_m2)))
        dirty = Signal(init=1)      # the layout changed: clear the current RAM before START
        # A REG word is applied in the cycle after it is taken, from registers (its address
        # decode, which drives the enables of every register below, starts at a flip-flop);
        # START waits for it and a cycle more.
        rw_pending = Signal()
        rw_fb = Signal.like(fb, name="rw_fb", reset_less=True)
        rw_settle = Signal()        # a REG word was applied in the last cycle (nl_m1 .. follow now)
        m.d.sync += [rw_pending.eq(0), rw_settle.eq(rw_pending)]
        # the registers a REG word may write, by address; the address is decoded as the word
        # is taken (one strobe flip-flop per register), so applying it is an enable from a
        # flip-flop
        rw_targets = [(P.REG_T, reg_T), (P.REG_LAYERS, reg_nl), (P.REG_INPUT_EVENTS, reg_events)]
        if cfg.early_exit:          # else: the rule stays none
            rw_targets += [(P.REG_EXIT_RULE, reg_exit_rule), (P.REG_EXIT_THRESHOLD, reg_exit_th),
                           (P.REG_EXIT_SHIFT, reg_exit_shift)]
        # without the compensation datapath its registers keep their reset values (and
        # synthesis drops what they drive)
        if cfg.compensation:
            rw_targets += [(P.REG_COMP_ENABLE, reg_comp_en), (P.REG_COMP_FRAC_BITS, reg_comp_fb),
                           (P.REG_COMP_MUL, reg_comp_mul), (P.REG_COMP_SHIFT, reg_comp_shift),
                           (P.REG_COMP_VMIN, reg_comp_vmin)]
        if SH:
            rw_targets += [(P.REG_STAGES, reg_nst)]
            for i in range(cfg.max_stages):
                rw_targets += [(P.STAGE_BASE + 2 * i, reg_st_start[i]), (P.STAGE_BASE + 2 * i + 1, reg_st_steps[i])]
        for li in range(cfg.max_layers):
            for f, name in enumerate(P.LAYER_FIELDS):
                if name != "kind" or cfg.conv:     # without conv layers the kind stays 0 (dense)
                    rw_targets.append((P.LAYER_BASE + li * P.LAYER_STRIDE + f, regs[name][li]))
        rw_sel = Signal(len(rw_targets))
        rw_dirty = Signal()         # the word changes the layout
        m.d.sync += [rw_sel.eq(0), rw_dirty.eq(0)]
        for k, (addr, reg) in enumerate(rw_targets):
            with m.If(rw_sel[k]):
                m.d.sync += reg.eq(rw_fb)
        with m.If(rw_dirty):
            m.d.sync += dirty.eq(1)
        with m.FSM(name="ctrl") as ctrl_fsm:
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    with m.Switch(op):
                        with m.Case(P.OP["REG"]):
                            m.d.sync += [rw_pending.eq(1), rw_fb.eq(fb),
                                         rw_sel.eq(Cat(*[fa == addr for addr, _ in rw_targets])),
                                         rw_dirty.eq((fa == P.REG_LAYERS) | (fa >= P.LAYER_BASE))]
                        with m.Case(P.OP["WADDR"]):
                            m.d.sync += [wptr.eq(fb), wbeat.eq(0)]
                        with m.Case(P.OP["WDATA"]):
                            m.d.sync += wsr.eq(next_sr)
                            with m.If(wbeat == beats - 1):
                                m.d.comb += w_we.eq(1)
                                m.d.sync += [wbeat.eq(0), wptr.eq(wptr + 1)]
                            with m.Else():
                                m.d.sync += wbeat.eq(wbeat + 1)
                        with m.Case(P.OP["TWEIGHT"]):
                            if SH:
                                m.d.comb += [tt.w_en.eq(1), tt.w_addr.eq(fb[8:]), tt.w_data.eq(fb[0:8])]
                        with m.Case(P.OP["TSCALE"]):
                            if SH:
                                m.d.comb += [tt.ms_en.eq(1), tt.ms_b.eq(fa), tt.ms_mul.eq(fb[0:16]),
                                             tt.ms_shift.eq(fb[16:24])]
                        with m.Case(P.OP["START"]):
                            with m.If(rw_pending | rw_settle):
                                m.d.comb += self.cmd.ready.eq(0)     # the last REG word first
                            with m.Elif(dirty):
                                m.d.comb += self.cmd.ready.eq(0)
                                m.next = "CLR_BEGIN"
                            with m.Else():
                                m.next = "BEGIN"
            with m.State("BEGIN"):          # a sample starts (START taken in the last cycle)
                m.d.sync += [cycles.eq(0), counting.eq(1), layer.eq(0), t.eq(0), epoch.eq(~epoch), si.eq(0)]
                m.next = "PIX_SETUP"
            with m.State("CLR_BEGIN"):      # the layout changed: clear the network's currents
                m.d.sync += [layer.eq(nl_m1), clr_k.eq(0)]
                m.next = "CLR_SETUP"
            with m.State("CLR_SETUP"):      # cur <= the last layer: its end is the network's end
                m.d.sync += clr_stop.eq(0)
                m.next = "CLEAR"
            with m.State("CLEAR"):          # words 0 .. clr_end - 1 (at least word 0)
                with m.If(~clr_stop):
                    m.d.comb += clearing.eq(1)
                    m.d.sync += [clr_k.eq(clr_k + 1), clr_stop.eq(clr_k + 1 >= clr_end)]
                with m.Else():
                    m.d.sync += dirty.eq(0)
                    m.next = "IDLE"
            with m.State("PIX_SETUP"):      # cur <= layer 0
                m.next = "PIXELS"
                on_abort()
            with m.State("PIXELS"):
                m.d.comb += acc_phase.eq(1)
                with m.If(op == P.OP["PIXEL"]):
                    m.d.comb += self.cmd.ready.eq(ev_ready)
                    with m.If(self.cmd.valid & ev_ready):
                        m.d.sync += ev_valid.eq(1)
                with m.Else():
                    m.d.comb += self.cmd.ready.eq(1)
                    with m.If(self.cmd.valid & (op == P.OP["RUN"])):
                        m.next = "PIX_DRAIN"
                on_abort()
            with m.State("PIX_DRAIN"):
                m.d.comb += acc_phase.eq(1)
                with m.If(pipe_idle_q):
                    m.next = "F_SETUP"
                on_abort()
            with m.State("F_SETUP"):        # cur <= layer; wait for the streamer before the output layer
                start_fire()
                m.d.sync += ev_wr_ptr.eq(0)
                with m.If(~hold | ~st_busy):
                    m.next = "FIRE"
                on_abort()
            with m.State("FIRE"):
                m.d.comb += f_go.eq(~f_done)
                with m.If(~f_busy & f_done):
                    with m.If(is_last_layer):
                        m.d.comb += st_start.eq(1)
                        m.d.sync += [t.eq(t + 1), layer.eq(st_first)]
                        with m.If(t_last):
                            m.d.sync += st_final.eq(1)
                            m.next = "FINISH"
                            with m.If(reg_comp_en):
                                m.d.sync += layer.eq(nl_m2)
                                m.next = "C_SETUP"
                        with m.Else():
                            next_step_state()
                    with m.Else():
                        m.d.sync += [layer.eq(layer + 1), ev_count.eq(ev_wr_ptr), eptr.eq(0), eptr1.eq(1),
                                     can_load.eq(ev_wr_ptr != 0), ent_valid.eq(0)]
                        m.next = "A_SETUP"
                        if SH:
                            with m.If(is_boundary):     # m[t]; then accumulate the next layer only
                                m.d.sync += [bacc.eq(1), Array(count_regs)[t].eq(m_cnt)]
                                m.d.comb += [tt.m_en.eq(1), tt.m_idx.eq(t), tt.m_data.eq(m_cnt)]
                on_abort()
            with m.State("A_SETUP"):        # cur <= layer; event RAM read of entry 0
                m.d.comb += acc_phase.eq(1)
                m.next = "ACC"
                on_abort()
            with m.State("ACC"):
                m.d.comb += [acc_phase.eq(1), expand.eq(1)]
                with m.If(acc_drained):
                    m.next = "F_SETUP"
                    if SH:
                        with m.If(bacc):        # boundary: the stage's next timestep, or its end
                            m.d.sync += [bacc.eq(0), t.eq(t + 1), layer.eq(st_first)]
                            with m.If(t_last):
                                m.next = "T_START"
                            with m.Else():
                                next_step_state()
                on_abort()
            # ---- coding compensation at readout (the exit timestep, or T)
            with m.State("C_SETUP"):        # cur <= the last hidden layer
                start_fire()
                m.d.sync += [ev_wr_ptr.eq(0), cmode.eq(1)]
                m.next = "CSWEEP"
            with m.State("CSWEEP"):         # one entry per word with a residual >= REG_COMP_VMIN
                m.d.comb += f_go.eq(~f_done)
                m.d.sync += comp_thm1.eq(cur["threshold"] - 1)
                with m.If(~f_busy & f_done):
                    m.d.sync += [layer.eq(nl_m1), ev_count.eq(ev_wr_ptr), eptr.eq(0), eptr1.eq(1),
                                 can_load.eq(ev_wr_ptr != 0), ent_valid.eq(0), cmode.eq(0), cexp.eq(1)]
                    m.next = "CA_SETUP"
            with m.State("CA_SETUP"):       # cur <= the output layer; event RAM read of entry 0
                m.d.comb += acc_phase.eq(1)
                m.next = "CACC"
            with m.State("CACC"):           # C = W_out · q into the output layer's (cleared) currents
                m.d.comb += [acc_phase.eq(1), expand.eq(1)]
                with m.If(acc_drained):
                    m.d.sync += cexp.eq(0)
                    m.next = "R_SETUP"
            with m.State("R_SETUP"):        # the POT words must be out of the output buffer
                start_fire()
                with m.If(st_rwait):
                    m.d.sync += rmode.eq(1)
                    m.next = "RSWEEP"
            with m.State("RSWEEP"):         # readout = sat(v_out + (C >> frac_bits)) into the output buffer
                m.d.comb += f_go.eq(~f_done)
                with m.If(~f_busy & f_done):
                    m.d.comb += rd_go.eq(1)
                    m.d.sync += rmode.eq(0)
                    m.next = "FINISH"
            if SH:
                # ---- SSNN stage boundary: the transformer, its result words, the next stage
                with m.State("T_START"):
                    m.d.comb += [tt.start.eq(1), tt.boundary.eq(si), tt.n_in.eq(st_T),
                                 tt.n_out.eq(st_Tn)]
                    m.next = "T_WAIT"
                with m.State("T_WAIT"):
                    with m.If(tt.done):
                        m.d.comb += tt_go.eq(1)
                        m.next = "T_EMIT"
                with m.State("T_EMIT"):     # the streamer sends COUNT and SPLIT words
                    with m.If(~st_busy):
                        m.d.sync += [si.eq(si + 1), t.eq(0), layer.eq(st_nfirst)]
                        m.next = "S_SETUP"
                with m.State("S_SETUP"):    # st_* <= the new stage
                    m.next = "F_SETUP"
            with m.State("FINISH"):
                with m.If(~counting & pipe_idle_q & ~f_busy):
                    m.next = "IDLE"

        ctrl_fsm.state.attrs["fsm_encoding"] = "one-hot"      # as the streamer's
        m.d.comb += self.busy.eq(~ctrl_fsm.ongoing("IDLE"))

        # Early exit while the next timestep already runs (speculatively): drop the work
        # in flight. Its writes are harmless: membranes restart from v_init, the event
        # buffer from its pointer, and currents written this sample read as 0 in the next.
        with m.If(abort_q):
            m.d.sync += [ev_valid.eq(0), g1_valid.eq(0), g2_valid.eq(0), sk_valid.eq(0), g3_valid.eq(0), be_valid.eq(0),
                         s1_valid.eq(0), s1b_valid.eq(0), s2_valid.eq(0), s3_valid.eq(0), ent_valid.eq(0), f_done.eq(1),
                         f1.valid.eq(0), f2.valid.eq(0), f2l.valid.eq(0), f3.valid.eq(0), f4.valid.eq(0), f4d.valid.eq(0),
                         f5.valid.eq(0)]
            m.d.sync += [h[0].eq(0) for h in hist]
        return m


def _drop_lowest(m, bits, name: str):
    """``bits`` without its lowest set bit: ``x & (x - 1)`` from prefix ORs, no carry chain
    (each prefix a bit of its own signal: nested expressions would be emitted unshared)."""
    seen = Signal(len(bits), name=f"{name}_seen")     # seen[i]: any of bits[0..i]
    for i in range(len(bits)):
        m.d.comb += seen[i].eq(bits[i] | (seen[i - 1] if i else 0))
    return bits & (seen << 1)[:len(bits)]


def _or_reduce(values):
    """The bitwise OR of ``values`` (a balanced tree)."""
    while len(values) > 1:
        values = [values[i] | values[i + 1] if i + 1 < len(values) else values[i] for i in range(0, len(values), 2)]
    return values[0]


def _sext(value, bits: int):
    """Sign-extend (or truncate) a signed value to ``bits`` bits, as raw bits."""
    value = value.as_signed()
    if len(value) >= bits:
        return value[:bits]
    return Cat(value, *([value[-1]] * (bits - len(value))))
