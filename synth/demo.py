"""A small stand-alone design for synthesis smoke tests: :class:`MemAdder`.

A ``wiring.Component`` with the accelerator's port shape (a command stream in, a result
stream out): a command either writes a word of a ``lib.memory.Memory`` or reads one and
adds an accumulator to it in a two-stage pipeline, sending the sum out. It synthesizes
in seconds and exercises what the flow must get right: a memory that has to map to
block RAM, carry chains, a stream handshake and the serial wrapper.
"""

from __future__ import annotations

from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MemAdder", "mem_adder_verilog"]


class MemAdder(wiring.Component):
    """``cmd`` payload: ``[width-1:0]`` data, then address, then 1 write bit."""

    def __init__(self, width: int = 16, depth: int = 256, acc_width: int | None = None):
        for name, value in (("width", width), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MemAdder {name} = {value!r} must be a positive integer")
        self.width, self.depth = width, depth
        self.abits = max(1, (depth - 1).bit_length())
        self.acc_width = acc_width or width + 8
        super().__init__({
            "cmd": In(stream.Signature(width + self.abits + 1)),
            "res": Out(stream.Signature(self.acc_width)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W, A = self.width, self.abits
        m.submodules.mem = mem = memory.Memory(shape=W, depth=self.depth, init=[])
        rd, wr = mem.read_port(), mem.write_port()
        data, addr, write = self.cmd.payload[:W], self.cmd.payload[W:W + A], self.cmd.payload[W + A]
        acc = Signal(self.acc_width)
        s1_valid, s2_valid = Signal(), Signal()
        s2_word = Signal(W)
        res_valid = Signal()
        res_data = Signal(self.acc_width)
        stall = res_valid & ~self.res.ready
        m.d.comb += [self.cmd.ready.eq(~stall), rd.addr.eq(addr), rd.en.eq(~stall),
                     wr.addr.eq(addr), wr.data.eq(data),
                     wr.en.eq(self.cmd.valid & write & ~stall)]
        with m.If(~stall):
            m.d.sync += [s1_valid.eq(self.cmd.valid & ~write), s2_valid.eq(s1_valid), s2_word.eq(rd.data)]
            with m.If(s2_valid):
                m.d.sync += [acc.eq(acc + s2_word), res_data.eq(acc + s2_word)]
            m.d.sync += res_valid.eq(s2_valid)
        m.d.comb += [self.res.valid.eq(res_valid), self.res.payload.eq(res_data),
                     self.busy.eq(s1_valid | s2_valid)]
        return m


def mem_adder_verilog(name: str = "mem_adder", **kwargs) -> str:
    """Verilog of a :class:`MemAdder` (module ``name``)."""
    return verilog.convert(MemAdder(**kwargs), name=name, emit_src=False)
