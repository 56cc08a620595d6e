"""A few-pin serial wrapper for a core-only build: :class:`SerialWrapper`.

A generated core has wide stream ports (the accelerator: a 64-bit command and a 36-bit
result, about 105 pins) but no board; an iCE40 UP5K in the SG48 package has 39 IOs.
To place and route the core as it would sit on a board, and to keep the tools from
optimizing any of it away, :class:`SerialWrapper` instantiates the core (a Verilog
black box) and connects every port to a handful of pins through shift registers:

========== ===== ============================================================
pin        dir   meaning
========== ===== ============================================================
clk, rst   in    the core's ``sync`` domain (synchronous reset)
sdi        in    serial data in (LSB first)
shift      in    when 1: the input chain takes ``sdi``, the output chain moves
                 one bit towards ``sdo``
sdo        out   serial data out (bit 0 of the output chain)
push       in    pulse: copy the input chain to the input holding register and
                 raise ``valid`` on every input stream (each drops on its own
                 handshake)
pop        in    pulse: copy the captured output words into the output chain
                 and free the capture registers for the next words
in_pending out   an input stream still holds an unaccepted word
out_full   out   an output stream has a captured word waiting for ``pop``
(others)   in/out the core's 1-bit ports that are not stream handshakes, by name
========== ===== ============================================================

Streams are found by name: ``X__payload``/``X__valid``/``X__ready`` with payload and
valid in the same direction and ready opposite (the ports of an Amaranth
``stream.Signature``). The input chain is every input stream's payload followed by
every other multi-bit input, in port order; the output chain is every output
stream's payload followed by every other multi-bit output (sampled at ``pop``). All
pin inputs are registered once. The wrapper costs about 2 × (inputs + outputs)
flip-flops and no logic on the core's paths, so utilization and Fmax are the
core's; it is a synthesis harness, not a board top (a UART board top replaces it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from amaranth.back import verilog as amaranth_verilog
from amaranth.hdl import Cat, ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Port", "verilog_ports", "SerialWrapper", "wrap_verilog", "WRAPPER_TOP"]

#: Module name of the generated wrapper.
WRAPPER_TOP = "quickspike_serial_wrap"

_PINS = ("sdi", "shift", "push", "pop", "sdo", "in_pending", "out_full")


@dataclass(frozen=True)
class Port:
    """One port of the wrapped core."""

    name: str
    width: int
    #: ``"input"`` or ``"output"``.
    direction: str


_DECL = re.compile(
    r"\b(input|output|inout)\b\s*(?:wire|reg|logic)?\s*(?:signed\s*)?(?:\[\s*(\d+)\s*:\s*(\d+)\s*\])?"
    r"\s*([A-Za-z_][A-Za-z0-9_$]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_$]*)*)")


def verilog_ports(verilog: str, top: str) -> list[Port]:
    """The ports of module ``top`` in ``verilog`` (ANSI or non-ANSI declarations)."""
    match = re.search(rf"\bmodule\s+\\?{re.escape(top)}\b(.*?)\bendmodule\b", verilog, re.S)
    if not match:
        raise ValueError(f"module {top!r} is not defined in the Verilog")
    body = re.sub(r"/\*.*?\*/|//[^\n]*|\(\*.*?\*\)", " ", match.group(1), flags=re.S)
    ports: dict[str, Port] = {}
    for m in _DECL.finditer(body):
        direction, msb, lsb, names = m.groups()
        if direction == "inout":
            raise ValueError(f"module {top!r} has an inout port; the serial wrapper does not support it")
        width = abs(int(msb) - int(lsb)) + 1 if msb is not None else 1
        for name in re.split(r"\s*,\s*", names.strip()):
            if name in ("wire", "reg", "logic", "signed") or name in ports:
                continue
            ports[name] = Port(name, width, direction)
    if not ports:
        raise ValueError(f"module {top!r} declares no ports")
    return list(ports.values())


class SerialWrapper(wiring.Component):
    """Serial shift-register pins around a core instantiated by name.

    ``ports`` lists the core's ports (:func:`verilog_ports`); ``clk``/``rst`` are the
    core's clock and reset and join the wrapper's ``sync`` domain.
    """

    def __init__(self, core: str, ports: list[Port], clock: str = "clk", reset: str = "rst"):
        if not isinstance(core, str) or not core.isidentifier():
            raise ValueError(f"core module name {core!r} is not an identifier")
        self.core = core
        self.ports = list(ports)
        self.clock, self.reset = clock, reset
        by_name = {p.name: p for p in self.ports}
        if clock not in by_name:
            raise ValueError(f"core {core!r} has no clock port {clock!r}")
        self.in_streams, self.out_streams = [], []
        used = {clock, reset}
        for p in self.ports:
            if not p.name.endswith("__payload"):
                continue
            base = p.name[:-len("__payload")]
            valid, ready = by_name.get(base + "__valid"), by_name.get(base + "__ready")
            if valid is None or ready is None or valid.width != 1 or ready.width != 1:
                continue
            if p.direction == valid.direction == "input" and ready.direction == "output":
                self.in_streams.append((p, valid, ready))
            elif p.direction == valid.direction == "output" and ready.direction == "input":
                self.out_streams.append((p, valid, ready))
            else:
                continue
            used |= {p.name, valid.name, ready.name}
        rest = [p for p in self.ports if p.name not in used]
        self.direct = [p for p in rest if p.width == 1]
        self.chain_in = [p for p in rest if p.width > 1 and p.direction == "input"]
        self.chain_out = [p for p in rest if p.width > 1 and p.direction == "output"]
        for p in self.direct:
            if p.name in _PINS:
                raise ValueError(f"core port {p.name!r} clashes with a wrapper pin name")
        self.in_bits = sum(s[0].width for s in self.in_streams) + sum(p.width for p in self.chain_in)
        self.out_bits = sum(s[0].width for s in self.out_streams) + sum(p.width for p in self.chain_out)
        members = {
            "sdi": In(1), "shift": In(1), "push": In(1), "pop": In(1),
            "sdo": Out(1), "in_pending": Out(1), "out_full": Out(1),
        }
        for p in self.direct:
            members[p.name] = In(1) if p.direction == "input" else Out(1)
        super().__init__(members)

    @property
    def pins(self) -> int:
        """User IO pins the wrapper needs (clock and reset included)."""
        return 2 + len(_PINS) + len(self.direct)

    def elaborate(self, platform):
        m = Module()
        conns = [("i", self.clock, ClockSignal("sync"))]
        if any(p.name == self.reset for p in self.ports):
            conns.append(("i", self.reset, ResetSignal("sync")))

        # registered pins
        sdi, shift, push, pop = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [sdi.eq(self.sdi), shift.eq(self.shift), push.eq(self.push), pop.eq(self.pop)]

        # input side: chain -> holding register -> stream payloads / static inputs
        if self.in_bits:
            isr = Signal(self.in_bits)
            hold = Signal(self.in_bits)
            with m.If(shift):
                m.d.sync += isr.eq(Cat(isr[1:], sdi)) if self.in_bits > 1 else isr.eq(sdi)
            with m.If(push):
                m.d.sync += hold.eq(isr)
            pos = 0
            pending = []
            for payload, valid, ready in self.in_streams:
                v, r = Signal(name=f"{payload.name[:-9]}_valid"), Signal(name=f"{payload.name[:-9]}_ready")
                conns += [("i", payload.name, hold[pos:pos + payload.width]), ("i", valid.name, v),
                          ("o", ready.name, r)]
                pos += payload.width
                with m.If(push):
                    m.d.sync += v.eq(1)
                with m.Elif(v & r):
                    m.d.sync += v.eq(0)
                pending.append(v)
            for p in self.chain_in:
                conns.append(("i", p.name, hold[pos:pos + p.width]))
                pos += p.width
            m.d.comb += self.in_pending.eq(Cat(*pending).any() if pending else 0)
        # output side: stream payloads -> capture registers -> chain
        if self.out_bits:
            osr = Signal(self.out_bits)
            snapshot = []
            full_flags = []
            for payload, valid, ready in self.out_streams:
                d = Signal(payload.width, name=f"{payload.name[:-9]}_data")
                v = Signal(name=f"{payload.name[:-9]}_valid")
                cap = Signal(payload.width, name=f"{payload.name[:-9]}_cap")
                full = Signal(name=f"{payload.name[:-9]}_full")
                conns += [("o", payload.name, d), ("o", valid.name, v), ("i", ready.name, ~full)]
                with m.If(v & ~full):
                    m.d.sync += [cap.eq(d), full.eq(1)]
                with m.If(pop):
                    m.d.sync += full.eq(0)
                snapshot.append(cap)
                full_flags.append(full)
            for p in self.chain_out:
                s = Signal(p.width, name=f"{p.name}_out")
                conns.append(("o", p.name, s))
                snapshot.append(s)
            with m.If(pop):
                m.d.sync += osr.eq(Cat(*snapshot))
            with m.Elif(shift):
                m.d.sync += osr.eq(osr >> 1)
            m.d.comb += [self.sdo.eq(osr[0]), self.out_full.eq(Cat(*full_flags).any() if full_flags else 0)]
        for p in self.direct:
            conns.append(("i" if p.direction == "input" else "o", p.name, getattr(self, p.name)))
        m.submodules.core = Instance(self.core, *conns)
        return m


def wrap_verilog(verilog: str, top: str, name: str = WRAPPER_TOP) -> tuple[str, SerialWrapper]:
    """Verilog of a :class:`SerialWrapper` (module ``name``) around module ``top``.

    The returned text defines only the wrapper; synthesize it together with ``verilog``.
    """
    wrapper = SerialWrapper(top, verilog_ports(verilog, top))
    return amaranth_verilog.convert(wrapper, name=name, emit_src=False), wrapper
