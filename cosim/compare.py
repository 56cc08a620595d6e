"""The scoreboard: RTL results against the golden model, naming the first difference.

:class:`Expected` is what the golden model says about one sample, as plain Python
integers (so the scoreboard also runs inside the cocotb simulator process, which never
imports PyTorch); :func:`expected_from_golden` converts a
:class:`~quickspike.sw.golden.GoldenResult`. :func:`first_mismatch` compares one
:class:`~quickspike.hw.protocol.SampleResult` with it in a fixed order: every output
potential timestep by timestep, neuron by neuron, the number of timesteps run, the
compensated readout (IC-SNN networks) and the class. For an SSNN network the
per-boundary spike counts (``COUNT`` words, ``GoldenResult.stage_counts``) and split
weights (``SPLIT`` words, ``GoldenResult.splits``) come first, boundary by boundary. :class:`Scoreboard` collects the first mismatch of every sample.

Indices in messages are 0-based: ``sample 3, timestep 0, neuron 7`` is the fourth
sample's first timestep's eighth output neuron.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from quickspike.hw.protocol import SampleResult

__all__ = ["Expected", "Mismatch", "Scoreboard", "expected_from_golden", "first_mismatch", "compare_all"]


@dataclass(frozen=True)
class Expected:
    """The golden model's answer for one sample."""

    #: ``[T][n_out]`` output potentials after every timestep run.
    potentials: list[list[int]]
    predicted: int
    timesteps: int
    #: ``[n_out]`` compensated readout at the last timestep run, when the network has
    #: the IC-SNN coding compensation on (the RTL then sends ``READOUT`` words).
    readout: list[int] | None = None
    #: SSNN, per stage boundary: ``m[t]`` of the stage's last layer, and the split ``p[k]``.
    counts: list[list[int]] = field(default_factory=list)
    splits: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"potentials": self.potentials, "predicted": self.predicted, "timesteps": self.timesteps,
                "readout": self.readout, "counts": self.counts, "splits": self.splits}

    @classmethod
    def from_dict(cls, data: dict) -> "Expected":
        readout = data.get("readout")
        return cls([list(map(int, row)) for row in data["potentials"]], int(data["predicted"]),
                   int(data["timesteps"]), None if readout is None else list(map(int, readout)),
                   [list(map(int, r)) for r in data.get("counts", [])],
                   [list(map(int, r)) for r in data.get("splits", [])])


@dataclass(frozen=True)
class Mismatch:
    """The first difference between the RTL and the golden model for one sample."""

    sample: int
    #: ``timesteps``, ``potential``, ``readout``, ``class`` or ``missing`` (no result at all).
    what: str
    got: int | None
    expected: int | None
    timestep: int | None = None
    neuron: int | None = None
    #: SSNN: the stage boundary of a ``count`` or ``split`` mismatch.
    boundary: int | None = None

    def __str__(self) -> str:
        where = f"sample {self.sample}"
        if self.boundary is not None:
            where += f", boundary {self.boundary}"
        if self.timestep is not None:
            where += f", timestep {self.timestep}"
        if self.neuron is not None:
            where += f", neuron {self.neuron}"
        if self.what == "missing":
            return f"{where}: the RTL returned no result"
        label = {"potential": "output potential", "readout": "compensated readout", "class": "class",
                 "timesteps": "timesteps run", "count": "spike count", "split": "split weight",
                 "boundaries": "stage boundaries"}[self.what]
        return f"{where}: {label} RTL {self.got} != golden {self.expected}"

    def to_dict(self) -> dict:
        return {"sample": self.sample, "what": self.what, "timestep": self.timestep, "neuron": self.neuron,
                "boundary": self.boundary, "rtl": self.got, "golden": self.expected, "message": str(self)}


def expected_from_golden(golden, offset: int = 0, count: int | None = None, *,
                         readout: bool = False) -> list[Expected]:
    """Per-sample :class:`Expected` of a ``GoldenResult`` (samples ``offset ..``).

    ``readout``: the network has the coding compensation on, so the RTL also reports
    the compensated readout at the last timestep run (``golden.readout``).
    """
    stop = len(golden.predicted) if count is None else offset + count
    pots = golden.potentials[offset:stop].tolist()
    pred = golden.predicted[offset:stop].tolist()
    steps = golden.timesteps[offset:stop].tolist()
    reads = golden.readout[offset:stop].tolist() if readout else [None] * len(pred)
    counts = [c[offset:stop].tolist() for c in golden.stage_counts]
    splits = [p[offset:stop].tolist() for p in golden.splits]
    return [Expected([list(r) for r in p[:s]], int(c), int(s), None if rd is None else list(rd[s - 1]),
                     [cb[i] for cb in counts], [sb[i] for sb in splits])
            for i, (p, c, s, rd) in enumerate(zip(pots, pred, steps, reads))]


def first_mismatch(sample: int, got: SampleResult | None, exp: Expected) -> Mismatch | None:
    """The first difference between ``got`` and ``exp``, or ``None`` when bit-exact.

    Only the golden model's ``exp.timesteps`` rows of potentials are compared (an
    adaptive run stops early); the RTL must report exactly that many. Then the
    compensated readout (when either side has one) and the class.
    """
    if got is None:
        return Mismatch(sample, "missing", None, None)
    if len(got.counts) != len(exp.counts) or len(got.splits) != len(exp.splits):
        return Mismatch(sample, "boundaries", len(got.counts), len(exp.counts))
    for b in range(len(exp.counts)):
        for what, have, want in (("count", got.counts[b], exp.counts[b]), ("split", got.splits[b], exp.splits[b])):
            for t in range(max(len(have), len(want))):
                a = have[t] if t < len(have) else None
                w = want[t] if t < len(want) else None
                if a != w:
                    return Mismatch(sample, what, a, w, timestep=t, boundary=b)
    rows = len(got.potentials)
    for t in range(min(rows, exp.timesteps)):
        want, have = exp.potentials[t], got.potentials[t]
        for n, (a, b) in enumerate(zip(have, want)):
            if a != b:
                return Mismatch(sample, "potential", a, b, timestep=t, neuron=n)
        if len(have) != len(want):
            n = min(len(have), len(want))
            return Mismatch(sample, "potential", have[n] if n < len(have) else None,
                            want[n] if n < len(want) else None, timestep=t, neuron=n)
    if got.timesteps != exp.timesteps:
        return Mismatch(sample, "timesteps", got.timesteps, exp.timesteps)
    if rows != exp.timesteps:
        # the STEPS word agrees but the potentials stream has the wrong length
        return Mismatch(sample, "timesteps", rows, exp.timesteps, timestep=min(rows, exp.timesteps))
    if exp.readout is not None or got.readout is not None:
        want, have = exp.readout or [], got.readout or []
        last = exp.timesteps - 1
        for n in range(max(len(want), len(have))):
            a = have[n] if n < len(have) else None
            b = want[n] if n < len(want) else None
            if a != b:
                return Mismatch(sample, "readout", a, b, timestep=last, neuron=n)
    if got.predicted != exp.predicted:
        return Mismatch(sample, "class", got.predicted, exp.predicted)
    return None


@dataclass
class Scoreboard:
    """Collects the first mismatch of every sample checked.

    ``offset`` is added to the sample numbers in messages (for a run that starts part
    way into a data set).
    """

    expected: list[Expected]
    offset: int = 0
    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    def check(self, index: int, got: SampleResult | None) -> Mismatch | None:
        """Compare the result of sample ``index`` (0-based in ``expected``)."""
        self.checked += 1
        bad = first_mismatch(index + self.offset, got, self.expected[index])
        if bad is not None:
            self.mismatches.append(bad)
        return bad

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self, limit: int = 10) -> str:
        """One line per first mismatch (at most ``limit``), then the count."""
        lines = [str(m) for m in self.mismatches[:limit]]
        if len(self.mismatches) > limit:
            lines.append(f"... and {len(self.mismatches) - limit} more")
        lines.append(f"{len(self.mismatches)} of {self.checked} samples mismatch")
        return "\n".join(lines)


def compare_all(results: list[SampleResult], expected: list[Expected], offset: int = 0) -> Scoreboard:
    """Check ``results`` (one per sample, in order) against ``expected``; missing results count."""
    board = Scoreboard(expected, offset)
    for i in range(len(expected)):
        board.check(i, results[i] if i < len(results) else None)
    if len(results) > len(expected):
        raise ValueError(f"{len(results)} RTL results for {len(expected)} samples")
    return board
