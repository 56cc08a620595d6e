"""The SSNN temporal transformer: :class:`TemporalTransformer`.

At a stage boundary the unit turns the spike counts ``m[t]`` (``t < n_in``) of the
stage that just ran into the split weights ``p[k]`` (``k < n_out``) of the next
stage, bit for bit as :meth:`quickspike.sw.spec.TransformerSpec.split` does::

    z[k] = ((Σ_t W[k][t] · m[t]) · mul) >> shift        (arithmetic shift, exact product)
    d[k] = min(max_k z - z[k], EXP_TABLE_SIZE - 1);  e[k] = EXP_TABLE[d[k]];  S = Σ_k e[k]
    p[k] = (e[k] << SPLIT_FRAC_BITS) // S               (floor; S >= EXP_TABLE[0] > 0)

Everything is sequential and small: one ``TT_WEIGHT_BITS × count_bits`` multiplier,
one wide adder shared by a shift-and-add multiply and the shift, a few 5-bit adders,
a 32-entry exp table of constants (built from :data:`~quickspike.sw.spec.EXP_TABLE`)
and a restoring divider. No full-width ``z`` is stored per ``k``:

* **Pass 1** (``k = 0 .. n_out-1``): the MAC streams ``W[k][t] · m[t]`` (read weight
  and count → registered product → accumulate; ``n_in`` + 2 cycles), then one
  ``TT_MUL_BITS + shift``-cycle loop computes ``z = (acc · mul) >> shift`` LSB-first:
  ``R = (R + (mul[i] ? acc << TT_MUL_BITS : 0)) >> 1`` for the ``TT_MUL_BITS`` bits of
  ``mul``, then ``shift`` more plain ``R >>= 1``. Nested floor shifts compose
  (``⌊(⌊x/2⌋ + n)/2⌋ = ⌊(x + 2n)/4⌋``), so ``R`` ends at exactly ``⌊acc·mul / 2**shift⌋``
  with no barrel shifter. A compare cycle keeps the running maximum ``zmax`` and
  stores two 5-bit numbers for ``k``: ``c[k] = min(zmax_k - z[k], 31)`` (``zmax_k``
  the maximum over ``0..k``) and ``inc[k] = min(zmax_k - zmax_{k-1}, 31)``.
* **Pass 2** (``k = n_out-1 .. 0``, 2 cycles each): ``max z - zmax_k = Σ_{j>k} inc[j]``
  and every term is ``>= 0``, so clamping each piece at 31 changes nothing once the
  sum is clamped: ``a`` runs the suffix sum (clamped), ``d[k] = min(a + c[k], 31)``,
  ``S += EXP_TABLE[d[k]]``, ``d[k]`` replaces ``c[k]``.
* **Pass 3** (``k = 0 .. n_out-1``): ``e = EXP_TABLE[d[k]]`` and a restoring divide of
  ``e << SPLIT_FRAC_BITS`` by ``S``. ``e <= S`` makes ``p <= 2**SPLIT_FRAC_BITS``, so
  ``SPLIT_FRAC_BITS + 1`` quotient bits (cycles) suffice; ``p[k]`` goes to the result RAM.

**Latency** (exact, asserted by ``tests/test_hw_transformer.py``): if ``start`` is high
in cycle 0 (unit idle), ``done`` is high in cycle ::

    cycles(n_in, n_out, shift) = n_out · (n_in + shift + TT_MUL_BITS + SPLIT_FRAC_BITS + 8) + 1

(:func:`latency`; ``n_out · (n_in + shift + 32) + 1`` with today's constants), where
``shift`` is the selected boundary's.

**Storage**: the weights (``boundaries·max_out·max_in × TT_WEIGHT_BITS``), the counts
(``max_in × count_bits``), the per-``k`` scratch (``max_out × 10`` bits) and the
results (``max_out × (SPLIT_FRAC_BITS+1)``) are ``lib.memory`` RAMs with registered
read ports, whatever their size: one datapath for every shape; yosys maps a tiny RAM
to flip-flops and a larger one to block RAM. ``mul``/``shift`` per boundary are
registers (``boundaries`` is small); they reset to ``mul = 1, shift = 0``, the
:class:`~quickspike.sw.spec.TransformerSpec` defaults, and the weights to 0.

**Ports** (all synchronous to ``sync``):

* ``w_en``/``w_addr``/``w_data``: write ``W[b][k][t]`` at ``(b·max_out + k)·max_in + t``.
* ``ms_en``/``ms_b``/``ms_mul``/``ms_shift``: write boundary ``ms_b``'s ``mul`` and ``shift``.
* ``m_en``/``m_idx``/``m_data``: write ``m[m_idx]``.
* ``start`` (one-cycle pulse; ignored while ``busy``) samples ``boundary``, ``n_in``,
  ``n_out`` and the selected ``mul``/``shift``. ``busy`` is high from the cycle after
  ``start`` up to the cycle before ``done``; ``done`` is a one-cycle pulse, in a cycle
  where ``busy`` is already low (a new ``start`` may come in that same cycle).
* ``p_idx`` → ``p_data``: **registered read, one cycle of latency** (``p_data`` in cycle
  ``c + 1`` is ``p[p_idx in cycle c]``); valid from the ``done`` cycle on (so the
  address may be presented in the ``done`` cycle) until the next ``start``.

The three write ports are never blocked. ``mul``/``shift`` are copied at ``start``, so
rewriting them while ``busy`` is harmless; writing weights or counts while ``busy``
changes the running computation (the controller and the host must not). ``n_in``/``n_out``/``boundary`` outside their declared ranges give unspecified
``p`` but the unit always finishes (``n_in = 0`` / ``n_out = 0`` run as 1).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from quickspike.hw.config import bits_for
from quickspike.sw.spec import (
    EXP_TABLE, EXP_TABLE_SIZE, MAX_STEPS, SPLIT_FRAC_BITS, TT_MUL_BITS, TT_SHIFT_MAX, TT_WEIGHT_BITS,
)

__all__ = ["TemporalTransformer", "latency", "acc_bound"]


def latency(n_in: int, n_out: int, shift: int) -> int:
    """Cycles from the ``start`` cycle to the ``done`` cycle (see the module docstring)."""
    return n_out * (n_in + shift + TT_MUL_BITS + SPLIT_FRAC_BITS + 8) + 1


def acc_bound(max_in: int, count_bits: int) -> int:
    """The largest ``|Σ_t W[k][t]·m[t]|``: ``max_in · 2**(TT_WEIGHT_BITS-1) · (2**count_bits - 1)``."""
    return max_in * (1 << (TT_WEIGHT_BITS - 1)) * ((1 << count_bits) - 1)


def _check_positive(name: str, value, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < 1 or (hi is not None and value > hi):
        limit = f" and at most {hi}" if hi is not None else ""
        raise ValueError(f"{name} = {value} must be at least 1{limit}")


class TemporalTransformer(wiring.Component):
    """The SSNN temporal transformer (see the module docstring for ports and timing).

    ``max_in`` / ``max_out``: the largest ``n_in`` (timesteps of the stage before a
    boundary) and ``n_out`` (of the stage after it), each ``1 .. MAX_STEPS``;
    ``boundaries``: how many weight sets (``mul``/``shift`` pairs) are stored;
    ``count_bits``: the width of a spike count ``m[t]``.
    """

    def __init__(self, max_in: int, max_out: int, boundaries: int, count_bits: int):
        try:
            _check_positive("max_in", max_in, MAX_STEPS)
            _check_positive("max_out", max_out, MAX_STEPS)
            _check_positive("boundaries", boundaries)
            _check_positive("count_bits", count_bits)
        except (TypeError, ValueError):
            self._MustUse__used = True      # a refused instance is not an unused design
            raise
        self.max_in = max_in
        self.max_out = max_out
        self.boundaries = boundaries
        self.count_bits = count_bits
        self.weight_depth = boundaries * max_out * max_in
        super().__init__({
            "w_en": In(1),
            "w_addr": In(range(self.weight_depth)),
            "w_data": In(signed(TT_WEIGHT_BITS)),
            "ms_en": In(1),
            "ms_b": In(range(boundaries)),
            "ms_mul": In(TT_MUL_BITS),
            "ms_shift": In(range(TT_SHIFT_MAX + 1)),
            "m_en": In(1),
            "m_idx": In(range(max_in)),
            "m_data": In(count_bits),
            "start": In(1),
            "boundary": In(range(boundaries)),
            "n_in": In(range(1, max_in + 1)),
            "n_out": In(range(1, max_out + 1)),
            "busy": Out(1),
            "done": Out(1),
            "p_idx": In(range(max_out)),
            "p_data": Out(SPLIT_FRAC_BITS + 1),
        })

    # Widths. Worst cases: |W| <= 2**(WB-1), m <= 2**CB - 1, mul <= 2**MW - 1.
    @property
    def acc_bits(self) -> int:
        """Signed ``Σ_t W·m``: holds ``±acc_bound`` (every ``n_in <= max_in`` term at its extreme)."""
        return bits_for(acc_bound(self.max_in, self.count_bits)) + 1

    @property
    def z_bits(self) -> int:
        """Signed ``z``: holds ``±acc_bound · (2**TT_MUL_BITS - 1)`` (shift 0 is the largest)."""
        return bits_for(acc_bound(self.max_in, self.count_bits) * ((1 << TT_MUL_BITS) - 1)) + 1

    @property
    def r_bits(self) -> int:
        """Signed multiply/shift register: ``|R| <= acc_bound · 2**TT_MUL_BITS`` after every step
        (``R`` is a floor of ``acc · (mul mod 2**i) · 2**(MW-i)``). The sum ``R + acc·2**MW``
        (up to twice that) is formed one bit wider by Amaranth's arithmetic before ``>> 1``."""
        return bits_for(acc_bound(self.max_in, self.count_bits) << TT_MUL_BITS) + 1

    @property
    def sum_bits(self) -> int:
        """Unsigned ``S = Σ_k e[k] <= max_out · EXP_TABLE[0]``."""
        return bits_for(self.max_out * EXP_TABLE[0])

    def elaborate(self, platform):
        m = Module()
        WB, MW, SFB = TT_WEIGHT_BITS, TT_MUL_BITS, SPLIT_FRAC_BITS
        max_in, max_out = self.max_in, self.max_out
        DMAX = EXP_TABLE_SIZE - 1
        DB = bits_for(DMAX)                         # d, c, inc: 0 .. 31
        EB = bits_for(max(EXP_TABLE))               # e: 0 .. EXP_TABLE[0]
        NB = bits_for(max(EXP_TABLE) << SFB)        # dividend e << SFB

        # ---- storage
        m.submodules.wmem = wmem = memory.Memory(shape=signed(WB), depth=self.weight_depth, init=[])
        m.submodules.cmem = cmem = memory.Memory(shape=unsigned(self.count_bits), depth=max_in, init=[])
        # scratch per k: low DB bits c[k] (pass 1) then d[k] (pass 2); high DB bits inc[k]
        m.submodules.kmem = kmem = memory.Memory(shape=unsigned(2 * DB), depth=max_out, init=[])
        m.submodules.pmem = pmem = memory.Memory(shape=unsigned(SFB + 1), depth=max_out, init=[])
        w_rd, w_wr = wmem.read_port(), wmem.write_port()
        c_rd, c_wr = cmem.read_port(), cmem.write_port()
        k_rd, k_wr = kmem.read_port(), kmem.write_port()
        p_rd, p_wr = pmem.read_port(), pmem.write_port()
        exp_rom = Array(Const(v, EB) for v in EXP_TABLE)

        m.d.comb += [w_wr.en.eq(self.w_en), w_wr.addr.eq(self.w_addr), w_wr.data.eq(self.w_data),
                     c_wr.en.eq(self.m_en), c_wr.addr.eq(self.m_idx), c_wr.data.eq(self.m_data),
                     p_rd.addr.eq(self.p_idx), self.p_data.eq(p_rd.data)]

        mul_regs = Array(Signal(MW, init=1, name=f"mul{b}") for b in range(self.boundaries))
        shift_regs = Array(Signal(range(TT_SHIFT_MAX + 1), name=f"shift{b}") for b in range(self.boundaries))
        for b in range(self.boundaries):
            with m.If(self.ms_en & (self.ms_b == b)):
                m.d.sync += [mul_regs[b].eq(self.ms_mul), shift_regs[b].eq(self.ms_shift)]

        # ---- run parameters, sampled at start
        n_in = Signal.like(self.n_in)
        n_out = Signal.like(self.n_out)
        mul = Signal(MW)
        shift = Signal(range(TT_SHIFT_MAX + 1))

        # ---- pass 1 datapath
        t = Signal(range(max_in + 1))
        k = Signal(range(max_out + 1))
        row = Signal(range(self.weight_depth + 1))  # (b·max_out + k)·max_in
        v1 = Signal()                 # read data / product valid
        v2 = Signal()
        prod = Signal(signed(WB + self.count_bits))  # [-2**(WB-1), 2**(WB-1)-1] · [0, 2**CB-1]
        acc = Signal(signed(self.acc_bits))
        R = Signal(signed(self.r_bits))
        mulsh = Signal(MW)
        steps = Signal(range(MW + TT_SHIFT_MAX + 1))
        z = Signal(signed(self.z_bits))
        zmax = Signal(signed(self.z_bits))
        m.d.comb += [w_rd.addr.eq(row + t), c_rd.addr.eq(t), z.eq(R)]   # |R| <= z bound here
        m.d.sync += [v2.eq(v1), v1.eq(0)]
        with m.If(v1):
            m.d.sync += prod.eq(w_rd.data * c_rd.data)
        with m.If(v2):
            m.d.sync += acc.eq(acc + prod)

        # ---- passes 2 and 3
        a = Signal(DB)
        S = Signal(self.sum_bits)
        rem = Signal(NB)
        div = Signal(self.sum_bits + SFB)
        q = Signal(SFB + 1)
        dsteps = Signal(range(SFB + 1))
        k_c, k_inc = k_rd.data[:DB], k_rd.data[DB:]
        m.d.comb += [k_rd.addr.eq(k), k_wr.addr.eq(k), p_wr.addr.eq(k)]

        def clamp(x):
            return Mux(x >= DMAX, DMAX, x)[:DB]

        m.d.sync += self.done.eq(0)
        last_k_up = k + 1 >= n_out          # robust to n_out = 0
        with m.FSM(name="tt") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [
                        n_in.eq(self.n_in), n_out.eq(self.n_out),
                        mul.eq(mul_regs[self.boundary]), shift.eq(shift_regs[self.boundary]),
                        row.eq(self.boundary * (max_out * max_in)),
                        t.eq(0), k.eq(0), acc.eq(0), S.eq(0), a.eq(0),
                    ]
                    m.next = "MAC"
            with m.State("MAC"):            # issue reads t = 0 .. n_in-1
                m.d.sync += [v1.eq(1), t.eq(t + 1)]
                with m.If(t + 1 >= n_in):
                    m.next = "DRAIN1"
            with m.State("DRAIN1"):
                m.next = "DRAIN2"
            with m.State("DRAIN2"):         # the last product is added at the end of this cycle
                m.d.sync += [R.eq(0), mulsh.eq(mul), steps.eq(MW + shift - 1)]
                m.next = "MUL"
            with m.State("MUL"):            # MW + shift cycles: R = (acc · mul) >> shift
                addend = Mux(mulsh[0], acc << MW, 0)
                m.d.sync += [R.eq((R + addend) >> 1), mulsh.eq(mulsh >> 1), steps.eq(steps - 1)]
                with m.If(steps == 0):
                    m.next = "CMP"
            with m.State("CMP"):            # running max; c[k], inc[k]
                first = k == 0
                with m.If(first | (z > zmax)):
                    m.d.sync += zmax.eq(z)
                    m.d.comb += k_wr.data.eq(Cat(Const(0, DB), Mux(first, 0, clamp(z - zmax))))
                with m.Else():
                    m.d.comb += k_wr.data.eq(Cat(clamp(zmax - z), Const(0, DB)))
                m.d.comb += k_wr.en.eq(1)
                m.d.sync += [acc.eq(0), t.eq(0)]
                with m.If(last_k_up):
                    m.next = "P2_ADDR"      # k stays at n_out - 1
                with m.Else():
                    m.d.sync += [k.eq(k + 1), row.eq(row + max_in)]
                    m.next = "MAC"
            with m.State("P2_ADDR"):        # k_rd reads (c[k], inc[k])
                m.next = "P2"
            with m.State("P2"):
                d = clamp(a + k_c)
                m.d.comb += [k_wr.en.eq(1), k_wr.data.eq(Cat(d, k_inc))]
                m.d.sync += [S.eq(S + exp_rom[d]), a.eq(clamp(a + k_inc))]
                with m.If(k == 0):
                    m.next = "P3_ADDR"
                with m.Else():
                    m.d.sync += k.eq(k - 1)
                    m.next = "P2_ADDR"
            with m.State("P3_ADDR"):        # k_rd reads d[k]
                m.next = "P3"
            with m.State("P3"):
                m.d.sync += [rem.eq(exp_rom[k_c] << SFB), div.eq(S << SFB), q.eq(0), dsteps.eq(SFB)]
                m.next = "DIV"
            with m.State("DIV"):            # SFB + 1 restoring steps: S·2**i for i = SFB .. 0
                ge = rem >= div
                q_next = Cat(ge, q[:SFB])
                m.d.sync += [rem.eq(Mux(ge, rem - div, rem)), div.eq(div >> 1), q.eq(q_next),
                             dsteps.eq(dsteps - 1)]
                with m.If(dsteps == 0):
                    m.d.comb += [p_wr.en.eq(1), p_wr.data.eq(q_next)]
                    with m.If(last_k_up):
                        m.d.sync += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += k.eq(k + 1)
                        m.next = "P3_ADDR"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
