"""``quickspike cosim``: a bundle's test samples through the generated RTL, checked bit-exact.

:func:`run_cosim` loads the bundle and the first ``samples`` inputs of the data set's
test split (:func:`quickspike.sw.events.network_input`: pixels for a ``direct``
network, binary frames for an ``events`` one), runs the golden model (recording
spikes, for the performance lower bound) and the RTL under the chosen engine
(:mod:`.engines`), compares every sample's per-timestep output potentials, class and
timesteps and, for an SSNN network, every stage boundary's spike counts and split
weights (:mod:`.compare`) and returns a
:class:`CosimReport`: the JSON figures, the printable table and the first mismatch of
every failing sample. On a mismatch the first failing sample is run again under cocotb
with an FST waveform (VCD where the host cannot write FST).

Figures: ``cycles_per_inference`` is the mean of the RTL's ``CYCLES`` words (START
accepted to the CYCLES word), ``lower_bound_cycles`` the mean of
:func:`quickspike.hw.perf.lower_bound_cycles` for the same spikes;
for an SSNN network ``transformer_cycles`` is the transformers' fixed cost per sample,
which the bound leaves out (:func:`quickspike.hw.perf.transformer_cycles`);
``samples_per_second`` counts the wall time of driving the samples' words and
collecting their results in the simulation (the one-time weight load, the build and
the simulator start-up are reported separately as ``load_seconds`` and
``total_seconds``).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quickspike.errors import FitError, UsageError, UserError
from quickspike.hw.config import HwConfig
from quickspike.hw.fit import check_fits
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import ExitSpec

__all__ = ["HW_OVERRIDES", "CosimOptions", "CosimReport", "hwconfig_for", "run_cosim", "cosim_table"]

#: HwConfig fields a user may set explicitly (``generate`` and ``cosim`` options).
HW_OVERRIDES = ("weight_words", "neuron_words", "event_words", "max_layers", "max_inputs", "max_outputs",
                "max_map", "max_timesteps", "max_stages", "max_stage_steps")

_MESSAGE_LIMIT = 10


def hwconfig_for(net: IntNetwork, lanes: int = 8, timesteps: int | None = None, **overrides) -> HwConfig:
    """The configuration :meth:`HwConfig.from_network` sizes for ``net``, with explicit overrides.

    Raises :class:`FitError` naming the limit when ``net`` does not fit (explicit depths
    too small, or a network beyond what the generator supports) and
    :class:`UsageError` for an impossible parameter (e.g. 100 lanes).
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - set(HW_OVERRIDES))
    if unknown:
        raise UsageError(f"unknown hardware parameter {unknown[0]!r}")
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= 64:
        raise UsageError(f"--lanes {lanes} is out of range [1, 64]")
    for name, value in overrides.items():
        try:
            HwConfig(spec=net.spec, **{name: value})
        except (TypeError, ValueError) as e:
            raise UsageError(f"--{name.replace('_', '-')}: {e}") from None
    try:
        hwcfg = HwConfig.from_network(net, lanes, **overrides)
    except (TypeError, ValueError) as e:
        # the sized configuration itself is beyond the generator's limits
        raise FitError(f"the network does not fit any generated design: {e}") from None
    check_fits(net, hwcfg, timesteps=timesteps)
    return hwcfg


@dataclass(frozen=True)
class CosimOptions:
    bundle: Path
    dataset: str = "mnist5k"
    samples: int = 100
    engine: str = "cocotb"
    lanes: int = 8
    timesteps: int | None = None
    #: Explicit HwConfig depths (see :data:`HW_OVERRIDES`); the rest is sized to fit.
    hw: dict = field(default_factory=dict)
    #: Where a mismatch's waveform goes (default: ``build/cosim``).
    waves_dir: Path | None = None
    progress: bool = True
    #: Run the bundle at fixed T, ignoring its early-exit rule (same Verilog).
    no_exit: bool = False


@dataclass
class CosimReport:
    figures: dict
    mismatches: list = field(default_factory=list)
    waves: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def mismatch_lines(self, limit: int = _MESSAGE_LIMIT) -> list[str]:
        lines = [str(m) for m in self.mismatches[:limit]]
        if len(self.mismatches) > limit:
            lines.append(f"... and {len(self.mismatches) - limit} more")
        lines.append(f"{len(self.mismatches)} of {self.figures['samples']} samples mismatch the golden model")
        return lines


class _Progress:
    """``cosim cocotb: 120/500 samples (4.1/s)`` on stderr: every 10 % or ``period`` seconds."""

    def __init__(self, label: str, enabled: bool, period: float = 15.0):
        self.label, self.enabled, self.period = label, enabled, period
        self.first: tuple[float, int] | None = None   # the rate excludes build and start-up
        self.last = time.perf_counter()
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.enabled or done <= self.done:
            return
        if self.first is None:
            self.first = (now, done)
        if done < total and done - self.done < total / 10 and now - self.last < self.period:
            return
        self.last, self.done = now, done
        t0, d0 = self.first
        rate = f" ({(done - d0) / (now - t0):.1f}/s)" if now > t0 and done > d0 else ""
        print(f"{self.label}: {done}/{total} samples{rate}", file=sys.stderr, flush=True)


def run_cosim(opts: CosimOptions, log: Callable[[str], None] | None = None) -> CosimReport:
    """Run the comparison described by ``opts``; see the module docstring."""
    from quickspike.cosim import engines
    from quickspike.cosim.compare import compare_all, expected_from_golden
    from quickspike.hw.perf import lower_bound_cycles, transformer_cycles
    from quickspike.sw.bundle import load_bundle
    from quickspike.sw.data import load_dataset
    from quickspike.sw.evaluate import check_compatible
    from quickspike.sw.golden import run_golden

    t_start = time.perf_counter()
    if opts.engine not in engines.ENGINES:
        raise UsageError(f"unknown engine {opts.engine!r}; expected one of {', '.join(engines.ENGINES)}")
    net = load_bundle(opts.bundle)
    if opts.no_exit:
        net = dataclasses.replace(net, exit=ExitSpec())
    data = load_dataset(opts.dataset)
    events = net.input_coding == "events"
    if not events:
        check_compatible(net, data)
    elif data.num_classes > net.num_classes:
        raise UsageError(f"data set {data.name} has {data.num_classes} classes, the bundle only {net.num_classes}")
    n_test = len(data.x_test)
    if opts.samples > n_test:
        raise UsageError(f"--samples {opts.samples} exceeds the {n_test} test samples of {data.name}")
    if opts.timesteps is not None and (net.staged or events) and opts.timesteps != net.timesteps:
        raise UsageError(f"--timesteps {opts.timesteps}: an {'SSNN' if net.staged else 'event-input'} "
                         f"network runs its own {list(net.stages.steps) if net.staged else net.timesteps} timesteps")
    T = net.timesteps if opts.timesteps is None else opts.timesteps
    hwcfg = hwconfig_for(net, opts.lanes, T, **opts.hw)
    x = _inputs(net, data, opts.samples)
    labels = np.asarray(data.y_test[:opts.samples])
    T_run = None if net.staged else T

    golden = run_golden(net, x, T_run, record_spikes=True)
    expected = expected_from_golden(golden, readout=net.compensation.enabled)
    progress = _Progress(f"cosim {opts.engine}", opts.progress)
    try:
        run = engines.run_samples(net, x, hwcfg, opts.engine, timesteps=T_run, progress=progress)
    except TimeoutError as e:
        raise UserError(f"the RTL hangs: {e} (a hardware bug; rerun with --engine cocotb for a log)") from None
    except RuntimeError as e:
        raise UserError(str(e).splitlines()[0]) from None
    board = compare_all(run.results, expected)

    spikes = golden.spikes
    bounds = [lower_bound_cycles(net, tuple(s[i] for s in spikes), x[i], hwcfg.lanes, T_run)
              for i in range(len(x))]
    pred = np.array([r.predicted for r in run.results])
    cycles = np.array([r.cycles for r in run.results], dtype=np.float64)
    n = len(x)
    mean_cycles = float(cycles.mean()) if n else 0.0
    mean_bound = float(np.mean(bounds)) if n else 0.0
    figures = {
        "bundle": str(opts.bundle),
        "dataset": data.name,
        "engine": opts.engine,
        "lanes": hwcfg.lanes,
        "timesteps": T,
        "input_coding": net.input_coding,
        "stages": list(net.stages.steps) if net.staged else None,
        "average_steps": net.average_steps if net.staged else None,
        "transformer_cycles": transformer_cycles(net) if net.staged else None,
        "samples": n,
        "mismatches": len(board.mismatches),
        "accuracy_rtl": float((pred == labels).mean()) if n else 0.0,
        "accuracy_golden": float((golden.predicted.numpy() == labels).mean()) if n else 0.0,
        "avg_timesteps": float(np.mean([r.timesteps for r in run.results])) if n else 0.0,
        "cycles_per_inference": round(mean_cycles, 2),
        "lower_bound_cycles": round(mean_bound, 2),
        "cycles_over_lower_bound": round(mean_cycles / mean_bound, 4) if mean_bound else None,
        "samples_per_second": round(run.samples_per_second, 2),
        "sim_seconds": round(run.sim_seconds, 3),
        "load_seconds": round(run.load_seconds, 3),
        "total_seconds": None,
        "build_cache_hit": run.build_hit,
        "hwcfg": hwcfg.to_dict(),
        "first_mismatches": [m.to_dict() for m in board.mismatches[:100]],
        "waves": None,
    }
    report = CosimReport(figures, list(board.mismatches))
    if board.mismatches:
        report.waves = _record_waves(net, x, hwcfg, T_run, board.mismatches[0].sample,
                                     opts.waves_dir or Path("build/cosim"))
        figures["waves"] = str(report.waves) if report.waves else None
    figures["total_seconds"] = round(time.perf_counter() - t_start, 3)
    return report


def _inputs(net: IntNetwork, data, samples: int) -> np.ndarray:
    """The first ``samples`` test inputs as the network takes them (pixels or event frames)."""
    try:
        from quickspike.sw.events import network_input
    except ImportError:
        if net.input_coding == "events":
            raise UsageError("an event-input bundle needs quickspike.sw.events, which this installation lacks") \
                from None
        return np.asarray(data.x_test[:samples]).reshape(samples, *net.input_shape)
    x = np.asarray(network_input(net, data, split="test", limit=samples))
    if net.input_coding == "events":
        return x.reshape(samples, net.input_steps, *net.input_shape)
    return x.reshape(samples, *net.input_shape)


def _record_waves(net, x, hwcfg, T, sample: int, folder: Path) -> Path | None:
    """Run ``sample`` alone under cocotb with a waveform; return the file's final path."""
    from quickspike.cosim import engines

    folder = Path(folder)
    work = folder / f"sample{sample}-sim"
    if work.exists():
        shutil.rmtree(work)
    try:
        run = engines.run_samples(net, x[sample:sample + 1], hwcfg, "cocotb", timesteps=T, waves=True,
                                  test_dir=work)
    except (RuntimeError, TimeoutError) as e:
        print(f"cosim: could not record a waveform of sample {sample}: {str(e).splitlines()[0]}",
              file=sys.stderr)
        return None
    if run.waves is None or not Path(run.waves).is_file():
        return None
    dest = folder / f"sample{sample}{Path(run.waves).suffix}"
    shutil.copyfile(run.waves, dest)
    return dest


def cosim_table(figures: dict) -> str:
    """The short table ``quickspike cosim`` prints."""
    from quickspike.sw.report import table

    f = figures
    ratio = f["cycles_over_lower_bound"]
    rows = [
        ["samples", f["samples"]],
        ["mismatches", f["mismatches"]],
        ["accuracy (RTL / golden)", f"{f['accuracy_rtl']:.4f} / {f['accuracy_golden']:.4f}"],
        ["avg timesteps", f"{f['avg_timesteps']:.2f}"],
        *([["SSNN average timestep", f"{f['average_steps']:.2f}"]] if f.get("average_steps") else []),
        ["cycles / inference", f"{f['cycles_per_inference']:.1f}"],
        ["lower bound (cycles)", f"{f['lower_bound_cycles']:.1f}" + (f"  (ratio {ratio:.3f})" if ratio else "")],
        *([["transformer (cycles)", f"{f['transformer_cycles']}"]] if f.get("transformer_cycles") else []),
        ["samples / s (simulation)", f"{f['samples_per_second']:.1f}"],
    ]
    steps = f"stages {f['stages']}" if f.get("stages") else f"T={f['timesteps']}"
    coding = ", event input" if f.get("input_coding") == "events" else ""
    head = (f"{f['dataset']}: {f['samples']} test samples, {f['engine']} engine, {f['lanes']} lanes, "
            f"{steps}{coding}")
    return head + "\n" + table(["figure", "value"], rows)
