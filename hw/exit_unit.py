"""The early-exit unit (ATSNN): :class:`ExitUnit`.

After every timestep the output streamer feeds the output layer's potentials through
this unit, one per cycle, in neuron order; the unit decides whether the exit rule of
:class:`quickspike.sw.spec.ExitSpec` holds, exactly as
:func:`quickspike.sw.golden.exit_holds` does, and tracks the class (argmax, ties to
the lowest index) on the way.

* **Pass 1** (``p1_valid``: the potentials as their ``POT`` words leave): sequential
  top-1 / top-2 tracking (no comparator tree; the comparisons of a value are made as
  it enters the unit's input register, see below). ``v > top1``
  moves top-1 down to top-2; otherwise ``v > top2`` replaces top-2, so a value equal
  to top-1 becomes top-2 (a tie gives margin 0, as ``topk`` does). top-2 starts at
  the most negative membrane value, which is exact for ``n_out >= 2``.
  ``margin`` decides three cycles after the last value (taken into the unit's input
  register): ``top1 - top2`` is registered, then compared, ``>= threshold``.
* **Pass 2** (``p2_valid``: ``softmax`` only, the same potentials again, once ``v_max
  = top1`` is known): a 4-stage pipeline ``diff = v_max - v`` → ``d = min(diff >>
  shift, EXP_TABLE_SIZE - 1)`` → a read of the exp ROM (built from
  :data:`quickspike.sw.spec.EXP_TABLE`) → ``S += EXP_TABLE[d]``; five cycles after
  the last value (one in the input register) ``done`` rises with ``holds = S <= threshold``.

``rule``, ``threshold`` and ``shift`` are run-time registers of the accelerator
(:data:`quickspike.hw.protocol.REG_EXIT_RULE` ..); ``rule`` is the index in
:data:`quickspike.sw.spec.EXIT_RULES` (0 none, 1 margin, 2 softmax). ``clear`` starts
a new timestep (it takes priority over the value inputs). With rule ``none`` the unit
still tracks the class and reports ``done`` with ``holds = 0`` after pass 1.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from quickspike.hw.config import bits_for
from quickspike.hw.protocol import EXIT_RULE_CODES as RULE_CODES
from quickspike.sw.spec import EXP_TABLE, EXP_TABLE_SIZE, IntSpec

__all__ = ["ExitUnit", "RULE_CODES", "threshold_bits", "shift_bits"]

def threshold_bits(spec: IntSpec, max_outputs: int) -> int:
    """Width of the threshold register: a margin (``< 2**membrane_bits``) or a table sum."""
    return max(spec.membrane_bits, bits_for(max_outputs * EXP_TABLE[0]))


def shift_bits(spec: IntSpec) -> int:
    """Width of the softmax shift register (``0 .. membrane_bits``)."""
    return bits_for(spec.membrane_bits)


class ExitUnit(wiring.Component):
    """Exit decision and argmax over one timestep's output potentials.

    Ports (all synchronous to ``sync``):

    ``rule`` (In 2), ``threshold`` (In :func:`threshold_bits`), ``shift`` (In
    :func:`shift_bits`): the run-time rule. ``clear`` (In 1): forget the last
    timestep (registered: ``done`` stays up in the next cycle). ``value`` (In
    ``signed(membrane_bits)``), ``p1_valid`` / ``p2_valid`` (In 1): a potential of pass
    1 / pass 2 this cycle; ``last`` (In 1): it is the last one of its pass.
    ``best_index`` (Out): argmax of pass 1 so far. ``done`` (Out 1): the decision is
    ready (until ``clear``); ``holds`` (Out 1): the rule holds.
    ``busy`` (Out 1): the value of the last cycle is still in the input register
    (``best_index`` is final when it is low).
    """

    def __init__(self, spec: IntSpec, max_outputs: int):
        if not isinstance(spec, IntSpec) or isinstance(max_outputs, bool) or \
                not isinstance(max_outputs, int) or max_outputs < 1:
            self._MustUse__used = True      # a refused instance is not an unused design
            if not isinstance(spec, IntSpec):
                raise TypeError(f"spec must be an IntSpec, not {type(spec).__name__}")
            raise ValueError(f"max_outputs = {max_outputs!r} must be a positive integer")
        self.spec = spec
        self.max_outputs = max_outputs
        super().__init__({
            "rule": In(2),
            "threshold": In(threshold_bits(spec, max_outputs)),
            "shift": In(shift_bits(spec)),
            "clear": In(1),
            "value": In(signed(spec.membrane_bits)),
            "p1_valid": In(1),
            "p2_valid": In(1),
            "last": In(1),
            "best_index": Out(bits_for(max_outputs - 1)),
            "done": Out(1),
            "holds": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        MB = self.spec.membrane_bits
        mlo, _ = self.spec.membrane_range
        # the inputs are registered, as is ``clear`` (which still wins over a value of its
        # cycle): the streamer's handshake does not reach the comparators. ``busy``: a
        # value is in that register, not yet in best_index
        v = Signal(signed(MB))
        p1_valid = Signal()
        p2_valid = Signal()
        last = Signal()
        clear = Signal()
        m.d.sync += [v.eq(self.value), p1_valid.eq(self.p1_valid), p2_valid.eq(self.p2_valid),
                     last.eq(self.last), clear.eq(self.clear)]
        m.d.comb += self.busy.eq(p1_valid | p2_valid)

        # ---- pass 1: top-1 / top-2 / argmax, one value per cycle
        top1 = Signal(signed(MB))
        top2 = Signal(signed(MB))
        count = Signal(bits_for(self.max_outputs))
        fresh = Signal(init=1)
        m_pend = Signal()
        # The comparisons of a value are made while it enters the input register, against
        # everything top-1 / top-2 can be when it is used: top-1 and top-2 now, the value
        # in the register now (v, about to be taken) and the floor mlo; which one applies
        # follows from what v does (d1: v becomes top-1, d2: v becomes top-2). So no
        # comparator sits between these registers and the top-1 / top-2 updates.
        nv = self.value
        q_t1 = Signal()
        q_t2 = Signal()
        q_vp = Signal()
        q_lo = Signal()
        d1 = Signal()
        d2 = Signal()
        d1_q = Signal()
        d2_q = Signal()
        fr_q = Signal()
        gt1 = Signal()
        gt2 = Signal()
        m.d.sync += [q_t1.eq(nv > top1), q_t2.eq(nv > top2), q_vp.eq(nv > v), q_lo.eq(nv > mlo),
                     d1_q.eq(d1), d2_q.eq(d2), fr_q.eq(fresh)]
        m.d.comb += [gt1.eq(Mux(d1_q, q_vp, q_t1)),                                 # v > top1
                     gt2.eq(Mux(d1_q, Mux(fr_q, q_lo, q_t1), Mux(d2_q, q_vp, q_t2))),  # v > top2
                     d1.eq(p1_valid & (fresh | gt1)), d2.eq(p1_valid & ~(fresh | gt1) & gt2)]
        with m.If(p1_valid):
            m.d.sync += [count.eq(count + 1), fresh.eq(0), m_pend.eq(last)]
            with m.If(d1):
                m.d.sync += [top1.eq(v), top2.eq(Mux(fresh, mlo, top1)), self.best_index.eq(count)]
            with m.Elif(d2):
                m.d.sync += top2.eq(v)
        with m.Else():
            m.d.sync += m_pend.eq(0)
        # the margin is registered before the compare (no subtract-then-compare chain)
        margin = Signal(unsigned(MB))                   # 0 .. 2**MB - 1
        m_pend2 = Signal()
        m.d.sync += [margin.eq(top1 - top2), m_pend2.eq(m_pend & (self.rule != RULE_CODES["softmax"]))]
        with m.If(m_pend2):
            m.d.sync += [self.done.eq(1),
                         self.holds.eq((self.rule == RULE_CODES["margin"]) & (margin >= self.threshold))]

        # ---- pass 2: S = sum EXP_TABLE[min((v_max - v) >> shift, N - 1)]
        m.submodules.rom = rom = memory.Memory(
            shape=unsigned(bits_for(max(EXP_TABLE))), depth=EXP_TABLE_SIZE, init=EXP_TABLE)
        rd = rom.read_port()
        top = EXP_TABLE_SIZE - 1
        a_valid = Signal()
        a_last = Signal()
        a_diff = Signal(unsigned(MB))
        s_valid = Signal()
        s_last = Signal()
        s_idx = Signal(range(EXP_TABLE_SIZE))
        b_valid = Signal()
        b_last = Signal()
        c_last = Signal()
        total = Signal(bits_for(self.max_outputs * EXP_TABLE[0]))
        m.d.sync += [a_valid.eq(p2_valid), a_last.eq(last), a_diff.eq(top1 - v)]
        # min(diff >> shift, top) without a wide shifter: the low index bits of the shifted
        # difference, saturated when the difference has a bit at shift + index bits or above
        # (a thermometer mask); registered, so the shifter does not drive the ROM
        XB = len(s_idx)
        low = Signal(XB)
        high = Signal()
        hmask = Signal(max(1, MB - XB))     # bit i - XB: shift + XB <= i (registered: shift is static)
        m.d.sync += hmask.eq(Cat(*[self.shift + XB <= i for i in range(XB, MB)]))
        m.d.comb += [low.eq(a_diff >> self.shift),
                     high.eq((a_diff[XB:] & hmask).any())]
        m.d.sync += [s_valid.eq(a_valid), s_last.eq(a_last & a_valid),
                     s_idx.eq(Mux(high | (low >= top), top, low))]
        m.d.comb += rd.addr.eq(s_idx)
        m.d.sync += [b_valid.eq(s_valid), b_last.eq(s_last)]
        with m.If(b_valid):
            m.d.sync += total.eq(total + rd.data)
        m.d.sync += c_last.eq(b_last)
        with m.If(c_last):
            m.d.sync += [self.done.eq(1), self.holds.eq(total <= self.threshold)]

        with m.If(clear):
            m.d.sync += [fresh.eq(1), count.eq(0), m_pend.eq(0), self.done.eq(0), self.holds.eq(0),
                         total.eq(0), a_valid.eq(0), s_valid.eq(0), s_last.eq(0), b_valid.eq(0), b_last.eq(0),
                         c_last.eq(0), m_pend2.eq(0)]
        return m
