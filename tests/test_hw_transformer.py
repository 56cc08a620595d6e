"""The SSNN temporal transformer in hardware (:mod:`quickspike.hw.transformer`) under amaranth.sim.

* RTL ``p`` == :meth:`TransformerSpec.split` on random and edge cases for several
  shapes: extreme weights, ``mul`` 0 and max, ``shift`` 0 and large (negative ``z``
  floors to -1), counts 0 and max, all ``z`` equal, saturated ``d`` (some ``e = 0``),
  ``n_out = 1``, ``n_in``/``n_out`` below and at the maxima; many runs back to back on one
  instance, switching boundaries and rewriting weights between runs (stale weights of
  other boundaries and stale counts past ``n_in`` must not leak in).
* Every run takes exactly :func:`latency` cycles; ``busy``/``done`` behave as documented,
  ``start`` while busy is ignored, a ``start`` in the ``done`` cycle is taken.
* Verilog generation works; bad parameters are refused.
"""

import random

import pytest
import torch
from amaranth.back import verilog
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from quickspike.hw.transformer import TemporalTransformer, acc_bound, latency
from quickspike.sw.spec import (
    EXP_TABLE_SIZE, MAX_STEPS, SPLIT_FRAC_BITS, TT_MUL_BITS, TT_SHIFT_MAX, TT_WEIGHT_BITS, TransformerSpec,
    signed_range,
)

W_LO, W_HI = signed_range(TT_WEIGHT_BITS)
MUL_MAX = (1 << TT_MUL_BITS) - 1
ONE = 1 << SPLIT_FRAC_BITS
DSAT = EXP_TABLE_SIZE - 1


def z_of(w, counts, mul, shift):
    """``z[k]`` in Python integers (for checking that a case covers what it claims)."""
    return [(sum(a * b for a, b in zip(row, counts)) * mul) >> shift for row in w]


def d_of(z):
    return [min(max(z) - x, DSAT) for x in z]


def golden(w, counts, mul, shift):
    tt = TransformerSpec(tuple(tuple(r) for r in w), mul, shift)
    return tt.split(torch.tensor([counts], dtype=torch.int64))[0].tolist()


class TB:
    """Drives one :class:`TemporalTransformer` and keeps the model of what it stores."""

    def __init__(self, dut, rng):
        self.dut, self.rng = dut, rng
        self.weights = [[[0] * dut.max_in for _ in range(dut.max_out)] for _ in range(dut.boundaries)]
        self.ms = [(1, 0)] * dut.boundaries          # the reset values
        self.counts = [0] * dut.max_in

    async def write_weights(self, ctx, b, w):
        dut = self.dut
        ctx.set(dut.w_en, 1)
        for k in range(dut.max_out):
            for t in range(dut.max_in):
                ctx.set(dut.w_addr, (b * dut.max_out + k) * dut.max_in + t)
                ctx.set(dut.w_data, w[k][t])
                await ctx.tick()
        ctx.set(dut.w_en, 0)
        self.weights[b] = [list(r) for r in w]

    async def write_ms(self, ctx, b, mul, shift):
        dut = self.dut
        ctx.set(dut.ms_en, 1)
        ctx.set(dut.ms_b, b)
        ctx.set(dut.ms_mul, mul)
        ctx.set(dut.ms_shift, shift)
        await ctx.tick()
        ctx.set(dut.ms_en, 0)
        self.ms[b] = (mul, shift)

    async def write_counts(self, ctx, counts):
        dut = self.dut
        ctx.set(dut.m_en, 1)
        for i, c in enumerate(counts):
            ctx.set(dut.m_idx, i)
            ctx.set(dut.m_data, c)
            await ctx.tick()
        ctx.set(dut.m_en, 0)
        self.counts[:len(counts)] = counts

    def expected(self, b, n_in, n_out):
        w = [r[:n_in] for r in self.weights[b][:n_out]]
        return golden(w, self.counts[:n_in], *self.ms[b])

    async def start(self, ctx, b, n_in, n_out):
        dut = self.dut
        assert not ctx.get(dut.busy)
        ctx.set(dut.start, 1)
        ctx.set(dut.boundary, b)
        ctx.set(dut.n_in, n_in)
        ctx.set(dut.n_out, n_out)
        await ctx.tick()
        ctx.set(dut.start, 0)
        self.first_p = ctx.get(dut.p_data)      # p[p_idx at the start cycle] of the run before

    async def wait_done(self, ctx, poke=None):
        """Cycles from the start cycle to the done cycle; checks busy/done on the way."""
        dut, n = self.dut, 1
        while not ctx.get(dut.done):
            assert ctx.get(dut.busy), f"busy low before done at cycle {n}"
            if poke is not None and n in poke[0]:        # a start while busy: ignored
                ctx.set(dut.start, 1)
                ctx.set(dut.boundary, poke[1])
                ctx.set(dut.n_in, 1)
                ctx.set(dut.n_out, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            n += 1
            assert n < 10 * latency(self.dut.max_in, self.dut.max_out, TT_SHIFT_MAX), "no done"
        assert not ctx.get(dut.busy), "busy still high in the done cycle"
        return n

    async def read_p(self, ctx, n_out):
        """``p`` through the registered read port (address in cycle c, data in cycle c+1)."""
        dut, p = self.dut, []
        for k in range(n_out):
            ctx.set(dut.p_idx, k)
            before = ctx.get(dut.p_data)
            await ctx.tick()
            p.append(ctx.get(dut.p_data))
            if k and p[-1] != p[-2]:
                assert before == p[-2], "p_data changed before the clock edge: not a registered read"
            assert not ctx.get(dut.done), "done is longer than one cycle"
        return p

    async def run(self, ctx, b, n_in, n_out, poke=None):
        await self.start(ctx, b, n_in, n_out)
        cycles = await self.wait_done(ctx, poke)
        return await self.read_p(ctx, n_out), cycles


def rand_matrix(rng, rows, cols, extreme=0.2):
    return [[rng.choice((W_LO, W_HI)) if rng.random() < extreme else rng.randint(W_LO, W_HI)
             for _ in range(cols)] for _ in range(rows)]


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


SHAPES = [  # (max_in, max_out, boundaries, count_bits)
    (1, 1, 1, 1),
    (5, 4, 3, 6),
    (8, 6, 2, 10),
    (12, 3, 1, 16),
    (3, 8, 4, 4),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_transformer_matches_split(shape):
    max_in, max_out, boundaries, count_bits = shape
    cmax = (1 << count_bits) - 1
    rng = random.Random(sum(v << (8 * i) for i, v in enumerate(shape)))
    dut = TemporalTransformer(max_in, max_out, boundaries, count_bits)
    tb = TB(dut, rng)
    log = []            # (what, b, n_in, n_out, expected p, got p, cycles, expected cycles)
    covered = set()

    def below(hi):
        return rng.randint(1, max(1, hi - 1)) if hi > 1 else 1

    async def check(ctx, what, b, n_in, n_out, poke=None):
        exp = tb.expected(b, n_in, n_out)
        p, cycles = await tb.run(ctx, b, n_in, n_out, poke)
        log.append((what, b, n_in, n_out, exp, p, cycles, latency(n_in, n_out, tb.ms[b][1])))
        return exp

    def zd(b, n_in, n_out):
        w = [r[:n_in] for r in tb.weights[b][:n_out]]
        z = z_of(w, tb.counts[:n_in], *tb.ms[b])
        return z, d_of(z)

    async def bench(ctx):
        # different random weights and mul/shift in every boundary
        for b in range(boundaries):
            await tb.write_weights(ctx, b, rand_matrix(rng, max_out, max_in))
            await tb.write_ms(ctx, b, rng.randint(1, 300), rng.randint(0, 8))
        await tb.write_counts(ctx, [rng.randint(0, cmax) for _ in range(max_in)])

        # random runs back to back, switching boundaries, stale counts past n_in
        for i in range(12):
            b = rng.randrange(boundaries)
            if i % 4 == 3:
                await tb.write_weights(ctx, b, rand_matrix(rng, max_out, max_in))
                await tb.write_ms(ctx, b, rng.choice((0, MUL_MAX, rng.randint(1, MUL_MAX))),
                                  rng.choice((0, TT_SHIFT_MAX, rng.randint(0, TT_SHIFT_MAX))))
            if i % 2:
                await tb.write_counts(ctx, [rng.choice((0, cmax, rng.randint(0, cmax))) for _ in range(max_in)])
            n_in, n_out = below(max_in), below(max_out)
            if i % 4 == 1:      # a shift that brings the spread of z near the table's range
                mul = rng.randint(1, MUL_MAX)
                spread = max(z_of([r[:n_in] for r in tb.weights[b][:n_out]], tb.counts[:n_in], mul, 0))
                spread -= min(z_of([r[:n_in] for r in tb.weights[b][:n_out]], tb.counts[:n_in], mul, 0))
                await tb.write_ms(ctx, b, mul, min(TT_SHIFT_MAX, max(0, spread.bit_length() - 5)))
            await check(ctx, "random", b, n_in, n_out)

        b = boundaries - 1          # the edge cases use the last boundary; the others keep theirs
        # all z equal (mul 0): p = floor(256 / n_out)
        await tb.write_ms(ctx, b, 0, rng.randint(0, TT_SHIFT_MAX))
        n_out = below(max_out)
        exp = await check(ctx, "equal z (mul 0)", b, below(max_in), n_out)
        assert exp == [ONE // n_out] * n_out
        covered.add("equal")
        # all z equal with mul max: identical rows
        row = [rng.randint(W_LO, W_HI) for _ in range(max_in)]
        await tb.write_weights(ctx, b, [row] * max_out)
        await tb.write_ms(ctx, b, MUL_MAX, 0)
        exp = await check(ctx, "equal z (same rows)", b, max_in, max_out)
        assert exp == [ONE // max_out] * max_out

        # worst-case magnitudes: W = -128 / 127, counts max, mul max, shift 0, n_in = max_in
        await tb.write_counts(ctx, [cmax] * max_in)
        ext = [[W_LO if (k + t) % 2 == 0 else W_HI for t in range(max_in)] for k in range(max_out)]
        ext[0] = [W_LO] * max_in
        if max_out > 1:
            ext[1] = [W_HI] * max_in
        await tb.write_weights(ctx, b, ext)
        await tb.write_ms(ctx, b, MUL_MAX, 0)
        await check(ctx, "extreme", b, max_in, max_out)
        z, _ = zd(b, max_in, max_out)
        assert min(z) == -acc_bound(max_in, count_bits) * MUL_MAX          # the width bound is reached
        if max_out > 1:
            # the largest |z| difference, and a saturated d (e = 0): p[0] = 0
            exp = await check(ctx, "saturated", b, max_in, 2)
            assert zd(b, max_in, 2)[1][0] == DSAT and exp[0] == 0
            covered.add("saturated")

        # a mix of saturated and unsaturated d, shift > 0
        if max_out > 2:
            # column 0 sets the differences (count 1); the other columns are the same in
            # every row, a common offset; mul = 2**shift keeps z exact
            common = rand_matrix(rng, 1, max_in, extreme=0.5)[0]
            w = [[-rng.randint(0, 2 * DSAT)] + common[1:] for _ in range(max_out)]
            w[0][0], w[1][0], w[2][0] = 0, -rng.randint(1, DSAT - 1), -rng.randint(DSAT, 4 * DSAT)
            counts = [1] + [rng.choice((0, cmax, rng.randint(0, cmax))) for _ in range(max_in - 1)]
            shift = rng.randint(0, TT_MUL_BITS - 1)
            mul = 1 << shift
            await tb.write_weights(ctx, b, w)
            await tb.write_counts(ctx, counts)
            await tb.write_ms(ctx, b, mul, shift)
            exp = await check(ctx, "mixed d", b, max_in, max_out)
            d = zd(b, max_in, max_out)[1]
            assert DSAT in d and any(0 < x < DSAT for x in d), d
            assert 0 in exp and any(0 < x < ONE for x in exp), exp
            covered.add("mixed")

        # large shift on negative sums: z floors to -1 next to z = 0 (d = 1)
        if max_out > 1:
            w = [[0] * max_in for _ in range(max_out)]
            w[0][0] = -1
            await tb.write_weights(ctx, b, w)
            await tb.write_counts(ctx, [1] + [cmax] * (max_in - 1))
            await tb.write_ms(ctx, b, 1, TT_SHIFT_MAX)
            exp = await check(ctx, "negative floor", b, max_in, max_out)
            assert zd(b, max_in, max_out)[0][0] == -1 and exp[0] < exp[1]
            covered.add("floor")

        # counts all 0: every z = 0
        await tb.write_weights(ctx, b, rand_matrix(rng, max_out, max_in, extreme=1.0))
        await tb.write_ms(ctx, b, MUL_MAX, 0)
        await tb.write_counts(ctx, [0] * max_in)
        exp = await check(ctx, "counts 0", b, below(max_in), max_out)
        assert exp == [ONE // max_out] * max_out

        # n_out = 1: p = 256
        await tb.write_counts(ctx, [rng.randint(0, cmax) for _ in range(max_in)])
        exp = await check(ctx, "n_out 1", b, max_in, 1)
        assert exp == [ONE]
        covered.add("n_out1")

        # a start while busy is ignored; a start in the done cycle is taken
        for bb in range(boundaries):
            await tb.write_weights(ctx, bb, rand_matrix(rng, max_out, max_in))
            await tb.write_ms(ctx, bb, rng.randint(1, MUL_MAX), rng.randint(0, 16))
        b0, b1 = 0, boundaries - 1
        want = latency(max_in, max_out, tb.ms[b0][1])
        await check(ctx, "start while busy", b0, max_in, max_out, poke=({3, want // 2, want - 3, want - 1}, b1))
        exp1 = tb.expected(b1, max_in, max_out)
        await tb.start(ctx, b1, max_in, max_out)
        c1 = await tb.wait_done(ctx)
        log.append(("back to back (first)", b1, max_in, max_out, [], [], c1, latency(max_in, max_out, tb.ms[b1][1])))
        ctx.set(dut.p_idx, 0)
        await check(ctx, "start in the done cycle", b0, max_in, max_out)
        assert tb.first_p == exp1[0]            # p of the first run was readable in its done cycle

        # n_in = 0 / n_out = 0 (outside the declared ranges) run as 1 and finish
        exp = tb.expected(b0, 1, 1)
        await tb.start(ctx, b0, 0, 0)
        c = await tb.wait_done(ctx)
        p = await tb.read_p(ctx, 1)
        log.append(("n 0", b0, 1, 1, exp, p, c, latency(1, 1, tb.ms[b0][1])))

    simulate(dut, bench)
    assert len(log) >= 20
    spread = sum(1 for entry in log if entry[4] and max(entry[4]) < ONE)
    assert max_out == 1 or spread >= 3, "too few runs with a non-one-hot p"
    for what, b, n_in, n_out, exp, got, cycles, want in log:
        case = f"{what}: b={b} n_in={n_in} n_out={n_out}"
        assert got == exp, f"{case}: p {got} != split {exp}"
        assert cycles == want, f"{case}: {cycles} cycles, documented {want}"
    want_cov = {"equal", "n_out1"} | ({"saturated", "floor"} if max_out > 1 else set()) \
        | ({"mixed"} if max_out > 2 else set())
    assert want_cov <= covered, want_cov - covered


def test_latency_formula():
    """The documented formula, by hand for today's constants, and its linear growth."""
    assert latency(1, 1, 0) == TT_MUL_BITS + SPLIT_FRAC_BITS + 10
    assert latency(16, 8, 10) - latency(15, 8, 10) == 8                  # one MAC cycle per (k, t)
    assert latency(16, 8, 11) - latency(16, 8, 10) == 8                  # one shift cycle per k
    assert latency(16, 9, 10) - latency(16, 8, 10) == 16 + 10 + TT_MUL_BITS + SPLIT_FRAC_BITS + 8


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (16, 8, 3, 12)], ids=lambda s: "x".join(map(str, s)))
def test_transformer_verilog(shape):
    dut = TemporalTransformer(*shape)
    text = verilog.convert(dut, name="temporal_transformer")
    assert "module temporal_transformer" in text
    for port in ("w_addr", "ms_mul", "m_data", "p_data", "busy", "done"):
        assert port in text


def test_transformer_widths():
    """The internal widths hold the worst-case sums and are not grossly oversized."""
    dut = TemporalTransformer(12, 3, 1, 16)
    Fragment.get(dut, None)
    bound = acc_bound(12, 16)
    assert bound == 12 * (-W_LO) * ((1 << 16) - 1)
    for bits, mag in ((dut.acc_bits, bound), (dut.z_bits, bound * MUL_MAX)):
        lo, hi = signed_range(bits)
        assert lo <= -mag and mag <= hi
        assert mag > signed_range(bits - 2)[1]
    assert dut.sum_bits >= (3 * 4096).bit_length()


def test_transformer_bad_parameters():
    with pytest.raises(TypeError, match="max_in"):
        TemporalTransformer(2.0, 2, 1, 4)
    with pytest.raises(ValueError, match="max_out = 0"):
        TemporalTransformer(2, 0, 1, 4)
    with pytest.raises(ValueError, match="max_in"):
        TemporalTransformer(MAX_STEPS + 1, 2, 1, 4)
    with pytest.raises(ValueError, match="boundaries"):
        TemporalTransformer(2, 2, 0, 4)
    with pytest.raises(TypeError, match="count_bits"):
        TemporalTransformer(2, 2, 1, True)
