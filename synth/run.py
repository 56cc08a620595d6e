"""Synthesis, place and route and bitstream of one Verilog core: :func:`synthesize`.

The flow is a list of named steps; each leaves its artifact and log in ``out_dir`` and
its time in the result:

1. **wrap** (optional, default on): :func:`~quickspike.synth.wrapper.wrap_verilog`
   puts the core behind a few serial pins, so it fits any package and nothing is
   optimized away (``wrapper.v``).
2. **yosys**: ``synth_ice40 -device u -dsp -spram`` or ``synth_ecp5`` → ``netlist.json``,
   ``stat.json``, ``memories.txt`` (the memories before mapping), ``yosys.log``.
   Every memory's mapping (SPRAM, block RAM, LUT RAM or flip-flops) is read from the
   log. The cell counts are then checked against the target, so a design that cannot
   fit is refused before place and route, naming the resource:
   ``design needs 9,120 LUT4 but ice40-up5k has 5,280``.
   On ECP5, memories of at most :data:`ECP5_LUTRAM_WORDS` words (with a write port)
   are mapped to LUT RAM (a block RAM holds 512 or more words: a 35-word membrane RAM
   would take three of them), and flip-flops right after a block RAM's read data are
   moved into the RAM's output register (:mod:`~quickspike.synth.bram_outreg`).
3. **nextpnr**: ``nextpnr-ice40``/``nextpnr-ecp5`` with ``--freq``,
   ``--timing-allow-fail`` and no pin constraints → ``design.asc``/``design.config``,
   ``nextpnr_report.json`` (utilization, Fmax, critical paths), ``nextpnr.log``.
   Running out of a resource there is also a fit failure naming it.
4. **pack**: ``icepack``/``ecppack`` → ``design.bin``/``design.bit``.

The figures of the result come from the tools' own reports: logic cells, BRAM, SPRAM,
DSP and IO from the nextpnr report's ``utilization``; flip-flops from it on ECP5
(``TRELLIS_FF``) and from the yosys netlist on iCE40 (its logic cell packs LUT and FF,
so nextpnr does not count FFs apart); Fmax and the critical path from the report's
``fmax`` and ``critical_paths``. ``synth.json`` (:class:`SynthResult`) and
``report.txt`` are written beside them, also when the design does not fit; then
:func:`synthesize` raises :class:`~quickspike.errors.FitError` after writing them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from quickspike.errors import FitError, UsageError, UserError
from quickspike.synth.bram_outreg import fold_netlist_file
from quickspike.synth.prepare import strip_zero_memory_init
from quickspike.synth.targets import Target, get_target
from quickspike.synth.tools import ToolError, run_tool
from quickspike.synth.wrapper import WRAPPER_TOP, verilog_ports, wrap_verilog

#: ECP5: memories of at most this many words go to LUT RAM, not block RAM.
ECP5_LUTRAM_WORDS = 64

__all__ = ["SynthResult", "synthesize", "SPIKER_PLUS", "spiker_comparison", "netlist_resources", "parse_nextpnr_report", "critical_path_summary"]


@dataclass
class SynthResult:
    """What one synthesis run measured (``synth.json``)."""

    target: str
    family: str
    part: str
    top: str
    #: The core was synthesized inside the serial wrapper (the top is the wrapper).
    wrapped: bool
    #: Clock constraint given to nextpnr (MHz).
    freq_mhz: float
    #: SHA-256 of the Verilog given (before any clean-up): which design these figures are of.
    core_sha256: str = ""
    #: iCE40: logic cells (``ICESTORM_LC``: LUT4 + FF + carry); ECP5: LUT4s (``TRELLIS_COMB``).
    luts: int | None = None
    ffs: int | None = None
    bram: int | None = None
    spram: int | None = None
    dsp: int | None = None
    io: int | None = None
    #: Achieved Fmax of the critical clock (MHz), from the nextpnr report.
    fmax_mhz: float | None = None
    timing_met: bool | None = None
    fits: bool = False
    #: When ``fits`` is false: ``{"resource", "needed", "available", "stage"}``.
    overflow: dict | None = None
    error: str | None = None
    bitstream: str | None = None
    critical_path: dict | None = None
    #: One entry per memory of the design: name, depth, width, bits, mapped_to.
    memories: list = field(default_factory=list)
    #: Memories whose all-zero initializer was removed before synthesis.
    memory_init_stripped: list = field(default_factory=list)
    #: ECP5: block RAM read ports whose output flip-flops were moved into the RAM's own
    #: output register (:mod:`~quickspike.synth.bram_outreg`): ram, port, bits.
    bram_output_registers: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    #: nextpnr utilization: resource -> {"used", "available"}.
    utilization: dict = field(default_factory=dict)
    #: yosys cell counts of the mapped netlist.
    netlist_cells: dict = field(default_factory=dict)
    #: Which report each figure comes from.
    sources: dict = field(default_factory=dict)
    #: Seconds per step.
    times: dict = field(default_factory=dict)
    out_dir: str = ""
    files: dict = field(default_factory=dict)
    #: Side by side with Spiker+ on MNIST (:func:`spiker_comparison`); bundle inputs only.
    comparison: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# ------------------------------------------------------------------------------- Spiker+

#: Spiker+'s MNIST figures (its paper's FPGA implementation): logic cells, latency per
#: image and accuracy, the reference the synthesis report puts ours beside.
SPIKER_PLUS = {"logic_cells": 7612, "latency_us": 780.0, "accuracy": 0.9385}


def spiker_comparison(luts: int | None, fmax_mhz: float | None, cycles_per_image: float | None,
                      accuracy: float | None, lanes: int | None = None) -> dict:
    """Ours beside :data:`SPIKER_PLUS`: logic, latency (``cycles_per_image / fmax``), accuracy.

    ``cycles_per_image`` is measured (cosim's mean cycles per inference), ``accuracy``
    the bundle's integer-model test accuracy; a figure that is unknown stays ``None``
    and so does its verdict.
    """
    latency = (cycles_per_image / fmax_mhz) if cycles_per_image and fmax_mhz else None

    def below(ours, ref):
        return None if ours is None else ours < ref
    acc_ok = None if accuracy is None else accuracy >= SPIKER_PLUS["accuracy"]
    return {
        "reference": dict(SPIKER_PLUS), "lanes": lanes,
        "logic_cells": luts, "logic_below": below(luts, SPIKER_PLUS["logic_cells"]),
        "cycles_per_image": cycles_per_image, "fmax_mhz": fmax_mhz,
        "latency_us": None if latency is None else round(latency, 3),
        "latency_below": below(latency, SPIKER_PLUS["latency_us"]),
        "accuracy": accuracy, "accuracy_at_least": acc_ok,
    }


# ------------------------------------------------------------------------------- netlist

_ICE40_FF = re.compile(r"^SB_DFF")


def netlist_resources(cells: dict, family: str) -> dict:
    """Resource counts of a mapped yosys netlist (``stat`` cells by type).

    ``luts`` is a lower bound of the LUT4s placement needs (iCE40: ``SB_LUT4``; a logic
    cell holds one LUT4 and one FF, so either count alone must fit; ECP5: ``LUT4`` plus
    two per ``CCU2C`` carry cell).
    """
    n = lambda *names: sum(int(cells.get(x, 0)) for x in names)  # noqa: E731
    if family == "ice40":
        luts = n("SB_LUT4")
        ffs = sum(int(v) for k, v in cells.items() if _ICE40_FF.match(k))
        return {"lut4": luts, "ffs": ffs, "luts": luts, "bram": n("SB_RAM40_4K"),
                "spram": n("SB_SPRAM256KA"), "dsp": n("SB_MAC16"), "carry": n("SB_CARRY")}
    luts = n("LUT4") + 2 * n("CCU2C")
    return {"lut4": n("LUT4"), "ffs": n("TRELLIS_FF"), "luts": luts, "bram": n("DP16KD", "PDPW16KD"),
            "spram": 0, "dsp": n("MULT18X18D"), "lutram": n("TRELLIS_DPR16X4"), "carry": n("CCU2C")}


# nextpnr resource names -> the names the result and the messages use
_NEXTPNR_RESOURCE = {
    "ICESTORM_LC": "LUT4", "ICESTORM_RAM": "BRAM", "ICESTORM_SPRAM": "SPRAM", "ICESTORM_DSP": "DSP",
    "SB_IO": "IO", "TRELLIS_COMB": "LUT4", "TRELLIS_FF": "FF", "DP16KD": "BRAM", "MULT18X18D": "DSP",
    "TRELLIS_IO": "IO", "TRELLIS_RAMW": "LUT RAM", "ALU54B": "DSP ALU",
}
_RESULT_KEYS = {  # family -> result field -> nextpnr resource
    "ice40": {"luts": "ICESTORM_LC", "bram": "ICESTORM_RAM", "spram": "ICESTORM_SPRAM",
              "dsp": "ICESTORM_DSP", "io": "SB_IO"},
    "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "bram": "DP16KD", "dsp": "MULT18X18D",
             "io": "TRELLIS_IO"},
}


_MARKERS = re.compile(r"(_SB_|_TRELLIS_|_LUT4|_CCU2C|_MULT18|_DP16KD|_PDPW16KD|_ICESTORM|_DFFLC|_LC$|_LC_|"
                      r"\$glb|\$tr_io|\$CCU2|\$SB_IO|\$TRELLIS)")


def _strip_name(cell: str) -> str:
    """A readable RTL name for a nextpnr cell or net name (best effort): ``core.x_SB_DFF_Q_3`` -> ``x``."""
    name = cell.lstrip("\\")
    name = re.sub(r"^\$gbuf_", "", name)
    name = re.sub(r"^core\.", "", name)
    cut = _MARKERS.search(name, 1)
    if cut:
        name = name[:cut.start()]
    name = re.sub(r"\[\d+\]$", "", name)
    return name or cell


def critical_path_summary(path: dict) -> dict:
    """Start, end, delay split and the named signals of one nextpnr ``critical_paths`` entry."""
    steps = path.get("path", [])
    if not steps:
        return {}
    total = sum(s.get("delay", 0.0) for s in steps)
    logic = sum(s.get("delay", 0.0) for s in steps if s.get("type") in ("logic", "clk-to-q", "setup"))
    routing = sum(s.get("delay", 0.0) for s in steps if s.get("type") == "routing")
    start = steps[0]["from"]
    end = steps[-1]["to"]
    signals = []
    for s in steps:
        if s.get("type") == "routing" and s.get("net") and not s["net"].startswith("$nextpnr"):
            nm = _strip_name(s["net"])
            if not signals or signals[-1] != nm:
                signals.append(nm)
    through = []
    for s in steps:
        if s.get("type") == "logic":
            kind = re.search(r"(MULT18X18D|SB_MAC16|CCU2C|SB_CARRY|DP16KD|SB_RAM40_4K|SB_SPRAM256KA)",
                             s["from"].get("cell", ""))
            if kind and kind.group(1) not in through:
                through.append(kind.group(1))
    start_sig, end_sig = _strip_name(start.get("cell", "?")), _strip_name(end.get("cell", "?"))
    summary = (f"{start_sig} -> {end_sig}: {total:.2f} ns ({logic:.2f} logic, {routing:.2f} routing, "
               f"{sum(1 for s in steps if s.get('type') == 'logic')} logic levels)")
    if through:
        summary += f" through {', '.join(through)}"
    return {
        "from_clock": path.get("from"), "to_clock": path.get("to"),
        "start": f"{start.get('cell')}.{start.get('port')}", "end": f"{end.get('cell')}.{end.get('port')}",
        "start_signal": start_sig, "end_signal": end_sig,
        "delay_ns": round(total, 3), "logic_ns": round(logic, 3), "routing_ns": round(routing, 3),
        "logic_levels": sum(1 for s in steps if s.get("type") == "logic"),
        "signals": signals, "summary": summary,
    }


def parse_nextpnr_report(report: dict, family: str) -> dict:
    """Utilization, Fmax and the critical path of a nextpnr ``--report`` JSON."""
    util = {k: {"used": int(v["used"]), "available": int(v["available"])}
            for k, v in report.get("utilization", {}).items()}
    out = {"utilization": util}
    for key, res in _RESULT_KEYS[family].items():
        if res in util:
            out[key] = util[res]["used"]
    fmax = report.get("fmax", {})
    if fmax:
        clock = min(fmax, key=lambda c: fmax[c]["achieved"])
        out["fmax_mhz"] = float(fmax[clock]["achieved"])
        out["clock"] = clock
        out["constraint_mhz"] = float(fmax[clock]["constraint"])
        same = [p for p in report.get("critical_paths", [])
                if p.get("from") == p.get("to") and clock in str(p.get("from"))]
        if same:
            worst = max(same, key=lambda p: sum(s.get("delay", 0.0) for s in p.get("path", [])))
            out["critical_path"] = critical_path_summary(worst)
    return out


# ----------------------------------------------------------------------------- memories

_MAP_RE = re.compile(r"^mapping memory (\S+) via (\S+)", re.M)
_FF_RE = re.compile(r"^using FF mapping for memory (\S+)", re.M)


#: A memory of at least this many bits built from flip-flops is reported as a problem.
_FF_MEMORY_WARN_BITS = 1024


def _memory_kind(cell: str) -> str:
    if "SPRAM" in cell:
        return "SPRAM"
    if "RAM4K" in cell or "DP16KD" in cell or "PDPW16KD" in cell:
        return "BRAM"
    if "DPR16X4" in cell:
        return "LUTRAM"
    return cell


def _parse_memories(dump: str, log: str) -> list[dict]:
    """The memories before mapping (``dump t:$mem_v2``) and where each was mapped."""
    mems: dict[str, dict] = {}
    for block in re.split(r"\n\s*cell \$mem_v2 ", dump)[1:]:
        params = dict(re.findall(r"parameter \\(\w+) (\S+)", block))
        memid = params.get("MEMID", "").strip('"').replace("\\\\", "\\").lstrip("\\")
        if not memid:
            continue
        width, size = int(params.get("WIDTH", "0")), int(params.get("SIZE", "0"))
        mems[memid] = {"name": memid, "depth": size, "width": width, "bits": width * size,
                       "mapped_to": "?"}
    def key(full: str) -> str:
        name = full.split(".", 1)[1] if "." in full else full
        return name.lstrip("\\")
    for full, cell in _MAP_RE.findall(log):
        mems.setdefault(key(full), {"name": key(full), "depth": None, "width": None, "bits": None})
        mems[key(full)]["mapped_to"] = _memory_kind(cell)
    for full in _FF_RE.findall(log):
        mems.setdefault(key(full), {"name": key(full), "depth": None, "width": None, "bits": None})
        mems[key(full)]["mapped_to"] = "FF"
    return [m for m in mems.values() if not m["name"].startswith("$")]


# ------------------------------------------------------------------------------- the flow

def _fmt(n: int) -> str:
    return f"{n:,}"


_UTIL_ROW = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)


def _overflow_from_nextpnr(message: str, log: str) -> dict | None:
    """The resource a failed nextpnr run ran out of, from its error and utilisation table."""
    over = [{"resource": _NEXTPNR_RESOURCE.get(res, res), "cell_type": res, "needed": int(used),
             "available": int(avail)}
            for res, used, avail in _UTIL_ROW.findall(log) if int(used) > int(avail)]
    named = re.search(r"no BELs remaining to implement cell type '(\w+)'", message)
    if named:
        res = named.group(1)
        first = [o for o in over if o["cell_type"] == res] or [
            {"resource": _NEXTPNR_RESOURCE.get(res, res), "cell_type": res, "needed": None, "available": None}]
        over = first + [o for o in over if o["cell_type"] != res]
    if not over:
        return None
    return {**over[0], "stage": "nextpnr", "all": over}


def _early_overflow(res: dict, target: Target, io_bits: int) -> dict | None:
    """The first resource the netlist needs more of than ``target`` has, with all others in ``all``."""
    checks = [("LUT4", res["luts"], target.luts), ("FF", res["ffs"], target.ffs),
              ("BRAM", res["bram"], target.bram), ("SPRAM", res["spram"], target.spram),
              ("DSP", res["dsp"], target.dsp), ("IO", io_bits, target.ios)]
    over = [{"resource": name, "needed": needed, "available": available}
            for name, needed, available in checks if needed > available]
    if not over:
        return None
    return {**over[0], "stage": "yosys", "all": over}


def _overflow_message(ov: dict, target: Target) -> str:
    if ov.get("needed") is None:
        return f"design needs more {ov['resource']} than {target.name} has"
    msg = f"design needs {_fmt(ov['needed'])} {ov['resource']} but {target.name} has {_fmt(ov['available'])}"
    if ov["resource"] == "IO":
        msg += " pins (synthesize it wrapped)"
    more = [f"{_fmt(o['needed'])} {o['resource']} (has {_fmt(o['available'])})" for o in ov.get("all", [])[1:]]
    if more:
        msg += "; also " + ", ".join(more)
    return msg


def synthesize(verilog: str, top: str, target: "str | Target", out_dir: "str | Path",
               freq_mhz: float | None = None, *, wrap: bool = True, seed: int = 1,
               keep_memory_init: bool = False, progress: bool = True,
               timeout: float | None = None) -> SynthResult:
    """Synthesize Verilog module ``top`` for ``target``; artifacts go to ``out_dir``.

    ``freq_mhz`` is the clock constraint (default: the target's). ``wrap`` puts the
    core behind :class:`~quickspike.synth.wrapper.SerialWrapper`. Returns the
    :class:`SynthResult` also written to ``out_dir/synth.json``; raises
    :class:`~quickspike.errors.FitError` (after writing it, with ``fits`` false and the
    overflowing resource named) when the design does not fit, and
    :class:`~quickspike.errors.UserError` when a tool fails otherwise.
    """
    tgt = get_target(target)
    if not isinstance(verilog, str) or not verilog.strip():
        raise ValueError("verilog must be non-empty Verilog text")
    if freq_mhz is None:
        freq_mhz = tgt.default_mhz
    if isinstance(freq_mhz, bool) or not isinstance(freq_mhz, (int, float)) or not (
            math.isfinite(freq_mhz) and 0 < freq_mhz <= 1000):
        raise ValueError(f"freq_mhz = {freq_mhz!r} must be a clock in MHz in (0, 1000]")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (*_ARTIFACTS, "synth.json", "report.txt"):
        (out / stale).unlink(missing_ok=True)
    t_start = time.monotonic()
    result = SynthResult(target=tgt.name, family=tgt.family, part=tgt.part, top=top, wrapped=wrap,
                         freq_mhz=float(freq_mhz), out_dir=str(out),
                         core_sha256=hashlib.sha256(verilog.encode()).hexdigest())

    # 1. prepare and wrap --------------------------------------------------------------
    if not keep_memory_init:
        verilog, stripped = strip_zero_memory_init(verilog)
        result.memory_init_stripped = stripped
    (out / "core.v").write_text(verilog)
    sources = ["core.v"]
    try:
        ports = verilog_ports(verilog, top)
    except ValueError as e:
        raise UsageError(str(e)) from None
    synth_top = top
    io_bits = sum(p.width for p in ports)
    if wrap:
        t0 = time.monotonic()
        try:
            wrapper_text, wrapper = wrap_verilog(verilog, top)
        except ValueError as e:
            raise UsageError(f"cannot wrap {top!r}: {e}") from None
        (out / "wrapper.v").write_text(wrapper_text)
        sources.append("wrapper.v")
        synth_top = WRAPPER_TOP
        io_bits = wrapper.pins
        result.times["wrap"] = round(time.monotonic() - t0, 2)
        if progress:
            print(f"synth: wrap ({wrapper.in_bits} bits in, {wrapper.out_bits} bits out, "
                  f"{wrapper.pins} pins) {result.times['wrap']:.1f} s", flush=True)

    # 2. yosys -------------------------------------------------------------------------
    synth_cmd = f"{tgt.yosys_command} -top {synth_top}"
    script = [*(f"read_verilog {s}" for s in sources), f"hierarchy -check -top {synth_top}"]
    if tgt.family == "ecp5":
        script.append("rename -enumerate")   # yosys 0.70 synth_ecp5 can assert on Amaranth's names
    script.append(f"{synth_cmd} -run :map_ram")
    if tgt.family == "ecp5":
        script.append(f'setattr -set ram_style "distributed" t:$mem_v2 r:SIZE<={ECP5_LUTRAM_WORDS} %i '
                      f'r:WR_PORTS>=1 %i')
    script += [
        "tee -q -o memories.txt dump t:$mem_v2",
        f"{synth_cmd} -run map_ram:",
        "tee -q -o stat.json stat -json",
        "write_json netlist.json",
    ]
    (out / "synth.ys").write_text("\n".join(script) + "\n")
    try:
        run = run_tool("yosys", ["-q", "-l", "yosys.log", "-s", "synth.ys"], out, "yosys",
                       progress=progress, timeout=timeout)
    except ToolError as e:
        result.error = str(e)
        _write(result, out)
        raise
    result.times["yosys"] = round(run.seconds, 2)
    stat = json.loads((out / "stat.json").read_text())
    design = stat.get("design") or next(iter(stat["modules"].values()))
    cells = {k.lstrip("\\"): int(v) for k, v in design.get("num_cells_by_type", {}).items()}
    result.netlist_cells = dict(sorted(cells.items()))
    res = netlist_resources(cells, tgt.family)
    res["io"] = io_bits
    result.ffs = res["ffs"]
    result.sources["ffs"] = "yosys stat (flip-flop cells)"
    log_text = (out / "yosys.log").read_text(errors="replace")
    result.memories = _parse_memories((out / "memories.txt").read_text(errors="replace"), log_text)
    for mem in result.memories:
        if mem["mapped_to"] == "FF" and (mem["bits"] or 0) >= _FF_MEMORY_WARN_BITS:
            result.warnings.append(f"memory {mem['name']} ({mem['depth']}x{mem['width']}) is built from "
                                   f"flip-flops, not block RAM")
    ov = _early_overflow(res, tgt, io_bits)
    if ov:
        return _refuse(result, ov, tgt, out, t_start, res)
    if tgt.family == "ecp5":
        # a register right after a block RAM's read data becomes the RAM's output register
        result.bram_output_registers = fold_netlist_file(out / "netlist.json")

    # 3. nextpnr -----------------------------------------------------------------------
    common = ["--json", "netlist.json", "--report", "nextpnr_report.json", "--freq", f"{freq_mhz:g}",
              "--timing-allow-fail", "--seed", str(seed), "-l", "nextpnr.log", "-q"]
    if tgt.family == "ice40":
        np_tool, pack_tool = "nextpnr-ice40", "icepack"
        args = [tgt.device_arg, "--package", tgt.package, "--asc", "design.asc",
                "--pcf-allow-unconstrained", *common]
        pack_args, bitstream = ["design.asc", "design.bin"], "design.bin"
    else:
        np_tool, pack_tool = "nextpnr-ecp5", "ecppack"
        args = [tgt.device_arg, "--package", tgt.package, "--speed", str(tgt.speed),
                "--textcfg", "design.config", "--lpf-allow-unconstrained", *common]
        pack_args, bitstream = ["design.config", "design.bit"], "design.bit"
    try:
        run = run_tool(np_tool, args, out, "nextpnr", progress=progress, timeout=timeout)
    except ToolError as e:
        ov = _overflow_from_nextpnr(str(e), e.output)
        if ov:
            # the packed design's counts from nextpnr's utilisation table replace yosys' estimates
            util = {r: {"used": int(u), "available": int(a)} for r, u, a in _UTIL_ROW.findall(e.output)}
            result.utilization = util
            for key, cell in _RESULT_KEYS[tgt.family].items():
                if cell in util and key in res:
                    res[key] = util[cell]["used"]
            return _refuse(result, ov, tgt, out, t_start, res, detail=str(e))
        result.error = str(e)
        _write(result, out)
        raise
    result.times["nextpnr"] = round(run.seconds, 2)
    report = json.loads((out / "nextpnr_report.json").read_text())
    parsed = parse_nextpnr_report(report, tgt.family)
    result.utilization = parsed["utilization"]
    for key in ("luts", "ffs", "bram", "spram", "dsp", "io"):
        if key in parsed:
            setattr(result, key, parsed[key])
            result.sources[key] = f"nextpnr report utilization {_RESULT_KEYS[tgt.family][key]}"
    if tgt.family == "ecp5":
        result.spram = 0
    result.fmax_mhz = parsed.get("fmax_mhz")
    result.sources["fmax_mhz"] = f"nextpnr report fmax[{parsed.get('clock')!r}].achieved"
    result.timing_met = None if result.fmax_mhz is None else result.fmax_mhz >= freq_mhz
    result.critical_path = parsed.get("critical_path")
    result.fits = True

    # 4. pack --------------------------------------------------------------------------
    try:
        run = run_tool(pack_tool, pack_args, out, "pack", progress=progress, timeout=timeout)
    except ToolError as e:
        result.error = str(e)
        _write(result, out)
        raise
    result.times["pack"] = round(run.seconds, 2)
    bit = out / bitstream
    if not bit.is_file() or bit.stat().st_size == 0:
        result.error = f"pack: {pack_tool} wrote no bitstream"
        _write(result, out)
        raise UserError(result.error)
    result.bitstream = str(bit)
    result.times["total"] = round(time.monotonic() - t_start, 2)
    result.files = _files(out)
    _write(result, out)
    if progress:
        print(f"synth: {tgt.name}: {result.luts} LUT, {result.ffs} FF, {result.bram} BRAM, "
              f"{result.spram} SPRAM, {result.dsp} DSP, Fmax {result.fmax_mhz:.1f} MHz "
              f"-> {out / 'report.txt'}", flush=True)
    return result


_ARTIFACTS = ("core.v", "wrapper.v", "synth.ys", "yosys.log", "yosys.console.log", "stat.json",
              "memories.txt", "netlist.json", "nextpnr.log", "nextpnr.console.log", "nextpnr_report.json",
              "design.asc", "design.config", "pack.log", "design.bin", "design.bit")


def _files(out: Path) -> dict:
    return {n: str(out / n) for n in _ARTIFACTS if (out / n).exists()}


def _refuse(result: SynthResult, ov: dict, tgt: Target, out: Path, t_start: float, res: dict,
            detail: str | None = None) -> SynthResult:
    result.fits = False
    result.overflow = ov
    result.luts, result.bram = res["luts"], res["bram"]
    result.spram, result.dsp, result.io = res["spram"], res["dsp"], res["io"]
    src = ("yosys stat (before place and route)" if ov["stage"] == "yosys"
           else "nextpnr utilisation after packing (nextpnr.log)")
    result.sources.update({k: src for k in ("luts", "bram", "spram", "dsp")})
    result.sources["io"] = "top-level port bits" if ov["stage"] == "yosys" else src
    msg = _overflow_message(ov, tgt)
    result.error = msg if detail is None else f"{msg} ({detail})"
    result.times["total"] = round(time.monotonic() - t_start, 2)
    result.files = _files(out)
    _write(result, out)
    err = FitError(f"{msg}; see {out / 'report.txt'}")
    err.result = result
    raise err


def _write(result: SynthResult, out: Path) -> None:
    (out / "synth.json").write_text(result.to_json() + "\n")
    (out / "report.txt").write_text(text_report(result))


def text_report(r: SynthResult) -> str:
    """The human-readable ``report.txt`` of a :class:`SynthResult`."""
    tgt = get_target(r.target)
    lines = [f"quickspike synthesis report: {r.top} on {r.target} ({r.part})",
             f"clock constraint {r.freq_mhz:g} MHz; core {'inside the serial wrapper' if r.wrapped else 'bare'}", ""]
    if r.overflow:
        lines += ["DOES NOT FIT: " + (r.error or "?"), ""]
    elif r.error:
        lines += ["FAILED: " + r.error, ""]

    def row(name, used, avail):
        if used is None:
            return f"  {name:<22} {'-':>8}"
        pct = f"{100 * used / avail:5.1f} %" if avail else ""
        return f"  {name:<22} {used:>8,} / {avail:>7,}  {pct}"
    stage = (r.overflow or {}).get("stage")
    lut_name = "logic cells (LUT4+FF)" if r.family == "ice40" and stage != "yosys" else "LUT4"
    heading = "Resources" + ("" if r.fits else {"yosys": " (netlist, before place and route)",
                                                 "nextpnr": " (after packing, as nextpnr counted them)"}
                             .get(stage, " (not measured)"))
    lines += [heading,
              row(lut_name, r.luts, tgt.luts), row("flip-flops", r.ffs, tgt.ffs),
              row(f"block RAM ({tgt.bram_kbit} kbit)", r.bram, tgt.bram)]
    if r.family == "ice40":
        lines.append(row("SPRAM (256 kbit)", r.spram, tgt.spram))
    lines += [row("DSP", r.dsp, tgt.dsp), row("IO", r.io, tgt.ios), ""]
    if r.fmax_mhz is not None:
        verdict = "met" if r.timing_met else "NOT met"
        lines += [f"Fmax {r.fmax_mhz:.2f} MHz (constraint {r.freq_mhz:g} MHz: {verdict})"]
        cp = r.critical_path or {}
        if cp:
            lines += [f"critical path: {cp['summary']}",
                      f"  from {cp['start']}", f"  to   {cp['end']}",
                      "  through " + " -> ".join(cp["signals"][:12]) + (" ..." if len(cp["signals"]) > 12 else "")]
        lines.append("")
    if r.comparison:
        c, ref = r.comparison, r.comparison["reference"]

        def cmp(ok):
            return "?" if ok is None else ("yes" if ok else "NO")
        fig = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        lanes = f", {c['lanes']} lanes" if c.get("lanes") else ""
        lines += [f"Beside Spiker+ (MNIST){lanes}",
                  f"  {'':<22} {'ours':>10} {'Spiker+':>10}  better",
                  f"  {'logic cells / LUT4':<22} {fig(c['logic_cells'], ',d'):>10} {ref['logic_cells']:>10,}  "
                  f"{cmp(c['logic_below'])}",
                  f"  {'latency per image (us)':<22} {fig(c['latency_us'], ',.1f'):>10} {ref['latency_us']:>10,.1f}  "
                  f"{cmp(c['latency_below'])}",
                  f"  {'accuracy (%)':<22} {fig(None if c['accuracy'] is None else 100 * c['accuracy'], '.2f'):>10} "
                  f"{100 * ref['accuracy']:>10.2f}  {cmp(c['accuracy_at_least'])}",
                  "  latency = cycles per image (cosim, " + fig(c["cycles_per_image"], ",.1f")
                  + ") / Fmax (" + fig(c["fmax_mhz"], ".2f") + " MHz)", ""]
    if r.memories:
        lines.append("Memories")
        for m in r.memories:
            size = f"{m['depth']} x {m['width']}" if m.get("depth") else "?"
            lines.append(f"  {m['name']:<28} {size:>14}  -> {m['mapped_to']}")
        if r.bram_output_registers:
            n = len(r.bram_output_registers)
            bits = sum(f["bits"] for f in r.bram_output_registers)
            lines.append(f"  block RAM output registers: {bits:,} flip-flops after {n} read ports "
                         f"moved into the RAMs (REGMODE OUTREG)")
        lines.append("")
    if r.warnings:
        lines += ["Warnings", *(f"  {w}" for w in r.warnings), ""]
    if r.times:
        lines.append("Times: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.times.items()))
    if r.bitstream:
        lines.append(f"Bitstream: {r.bitstream}")
    return "\n".join(lines) + "\n"
