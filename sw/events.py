"""Event-camera data: the file format, binning into spike frames, and simulated saccades.

**Events.** One event is ``(x, y, polarity, t)``: the pixel column ``x`` (``0 <= x <
W``), row ``y`` (``0 <= y < H``), ``polarity`` 1 (ON: the log intensity rose by a
contrast step) or 0 (OFF: it fell), and the time ``t`` in microseconds (``t >= 0``;
only differences within a sample matter). A recording is an integer array ``(N, 4)``
of such rows; frame channel ``c`` is polarity ``c`` (channel 0 = OFF, 1 = ON).

**The data-set file** (``--dataset path/to/file.npz``) is a ``.npz`` (zip, no pickles)
with the arrays

===============  ==========  ============================================================
``events``       ``(N, 4)``  every sample's events, concatenated; any integer dtype
``offsets``      ``(S+1,)``  sample ``i`` is ``events[offsets[i]:offsets[i+1]]``:
                             ``offsets[0] == 0``, non-decreasing, ``offsets[-1] == N``
                             (a sample may be empty)
``labels``       ``(S,)``    class of each sample, integers ``>= 0``
``sensor_size``  ``(2,)``    ``(H, W)`` of the sensor, positive integers (at most 4096)
``split``        ``(S,)``    0: the sample is in the training split, 1: in the test split
===============  ==========  ============================================================

Events need not be sorted. :func:`write_event_file` writes it, :func:`read_event_file`
reads it back (a round trip keeps every array); every defect (not a zip, a missing
array, a wrong shape or dtype, bad offsets, a coordinate outside the sensor, a
polarity other than 0/1, a negative time, a split value other than 0/1, an empty
split) raises :class:`~quickspike.errors.DataError` with a one-line message naming the
file and the array. A ``.npy`` file holds one recording, an ``(N, 4)`` integer array
(:func:`read_recording`); it carries no label, so it is an input, not a data set.

**Binning** (:func:`bin_events`): a sample becomes ``T`` binary frames ``(T, 2, H, W)``
(uint8 0/1). The sample's time span runs from its first event ``t0 = min t`` to its
last ``t1 = max t``; event ``t`` falls in bin ``(t - t0) · T // (t1 - t0 + 1)`` (integer
arithmetic: ``T`` equal slices of the span, the last event in bin ``T - 1``). A pixel
is 1 in frame ``b``, channel ``p`` if it had at least one event of polarity ``p`` in
bin ``b``; a sample without events gives all-zero frames. The same frames feed the
training and the golden model (``IntNetwork.input_coding == "events"``), through
:func:`network_input` for a bundle.

**Simulated saccades** (:func:`saccade_events`, the N-MNIST recipe in software: the
N-MNIST sensor was moved in front of a static MNIST digit along a triangle, three
saccades of 100 ms). The sensor is ``H × W`` like the image. The image moves by
``(dx, dy)`` along the triangle ``(0, 0) -> (A/2, A) -> (A, 0) -> (0, 0)`` (pixels,
``A = amplitude``), each edge one saccade of ``steps`` equal moves of ``step_us``
microseconds. At each position the image is resampled with bilinear interpolation
(zero outside), the intensity is ``I = pixel / 255`` and the log intensity
``L = ln(I + eps)``. Every pixel keeps a reference level (``L`` at time 0) and its own
contrast threshold ``C_p = C · (1 + sigma · n_p)`` (``n_p`` standard normal, clipped to
``C_p >= C / 2``: the pixel-to-pixel mismatch of a real sensor). Whenever ``L`` moves
``k`` whole thresholds away from the reference the pixel emits ``k`` events (ON up,
OFF down) and the reference follows by ``k · C_p``; event ``j`` is stamped at the time
the linearly interpolated ``L`` crosses its level within the move (floored to whole
microseconds). Events are sorted by time, then row, column and polarity. Noise
(``n_p``) is drawn from ``numpy.random.default_rng([seed, index])`` for the sample's
``index``, so the result is deterministic and does not depend on batching. Motion
makes events only where the image has spatial contrast: on the strokes' edges, ON
on the edge the digit moves towards and OFF on the one it leaves; the triangle
closes, so over the three saccades ON and OFF events nearly balance. The defaults
(:class:`SaccadeParams`: ``A = 2``, 3 × 10 moves of 10 ms, ``eps = 0.1``, ``C = 0.4``,
``sigma = 0.05``) give about 1,650 events per mnist5k digit, half of them ON.

**Cache.** :func:`converted` keeps the converted events of an image set on disk under
``$QUICKSPIKE_CACHE/events`` or ``build/events-cache`` in the checkout, keyed by a
SHA-256 of the images, the labels, the converter's parameters and its version, and
written atomically: the second load reads the file (about a second for mnist5k).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from quickspike.errors import DataError, UsageError

__all__ = [
    "EventSet", "SaccadeParams", "EVENT_KEYS", "CONVERTER_VERSION",
    "bin_events", "read_event_file", "write_event_file", "read_recording", "saccade_events",
    "converted", "cache_root", "network_input",
]

EVENT_KEYS = ("events", "offsets", "labels", "sensor_size", "split")
#: Bump when the converter's output changes (it is part of the cache key).
CONVERTER_VERSION = 1
CACHE_ENV = "QUICKSPIKE_CACHE"


@dataclass(frozen=True, eq=False)
class EventSet:
    """Labelled event samples on one sensor: ``events`` (N, 4) int32 (x, y, polarity, t),
    ``offsets`` (S+1,) int64, ``labels`` (S,) int64, ``sensor`` (H, W). Read-only arrays."""

    events: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    sensor: tuple[int, int]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(2, H, W)``: one frame of two polarities."""
        return (2, *self.sensor)

    def sample(self, i: int) -> np.ndarray:
        """The ``(n, 4)`` events of sample ``i``."""
        return self.events[self.offsets[i]:self.offsets[i + 1]]

    def subset(self, indices) -> "EventSet":
        """The samples ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        lengths = np.diff(self.offsets)[idx]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if len(idx):
            starts = self.offsets[idx]
            rows = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        else:
            rows = np.zeros(0, dtype=np.int64)
        return _event_set(self.events[rows], offsets, self.labels[idx], self.sensor)

    def frames(self, steps: int, limit: int | None = None) -> np.ndarray:
        """Binary frames ``(S, steps, 2, H, W)`` uint8 of the first ``limit`` samples."""
        n = len(self) if limit is None else min(limit, len(self))
        end = int(self.offsets[n])
        return bin_events(self.events[:end], self.offsets[:n + 1], steps, self.sensor)

    def counts(self) -> np.ndarray:
        """Event counts per pixel and polarity ``(S, 2, H, W)``, saturated at 255 (uint8)."""
        h, w = self.sensor
        S = len(self)
        sample = np.repeat(np.arange(S), np.diff(self.offsets))
        e = self.events
        flat = ((sample * 2 + e[:, 2]) * h + e[:, 1]) * w + e[:, 0]
        c = np.bincount(flat, minlength=S * 2 * h * w)
        return np.minimum(c, 255).astype(np.uint8).reshape(S, 2, h, w)


def _event_set(events, offsets, labels, sensor) -> EventSet:
    arrays = [np.ascontiguousarray(events, dtype=np.int32), np.ascontiguousarray(offsets, dtype=np.int64),
              np.ascontiguousarray(labels, dtype=np.int64)]
    for a in arrays:
        a.setflags(write=False)
    return EventSet(*arrays, (int(sensor[0]), int(sensor[1])))


def bin_events(events: np.ndarray, offsets: np.ndarray, steps: int, sensor: tuple[int, int]) -> np.ndarray:
    """Binary frames ``(S, steps, 2, H, W)`` uint8 of the samples ``offsets`` cuts ``events`` into
    (see the module docstring). ``offsets`` may also be ``None`` for a single recording."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise UsageError(f"the number of frames must be a positive integer, not {steps!r}")
    events = np.asarray(events)
    if offsets is None:
        offsets = np.array([0, len(events)])
    offsets = np.asarray(offsets, dtype=np.int64)
    h, w = sensor
    S = len(offsets) - 1
    frames = np.zeros((S, steps, 2, h, w), dtype=np.uint8)
    lengths = np.diff(offsets)
    if offsets[-1] == 0:
        return frames
    ev = events[offsets[0]:offsets[-1]].astype(np.int64)
    sample = np.repeat(np.arange(S), lengths)
    t = ev[:, 3]
    nonempty = lengths > 0
    starts = offsets[:-1][nonempty] - offsets[0]
    t0 = np.zeros(S, dtype=np.int64)
    t1 = np.zeros(S, dtype=np.int64)
    t0[nonempty] = np.minimum.reduceat(t, starts)
    t1[nonempty] = np.maximum.reduceat(t, starts)
    span = (t1 - t0 + 1)[sample]
    b = (t - t0[sample]) * steps // span
    frames[sample, b, ev[:, 2], ev[:, 1], ev[:, 0]] = 1
    return frames


# ------------------------------------------------------------------------------- file I/O


def write_event_file(path: Path | str, train: EventSet, test: EventSet) -> Path:
    """Write ``train`` and ``test`` (same sensor) as one event ``.npz`` (atomically)."""
    from quickspike.sw.files import atomic_write_bytes

    if train.sensor != test.sensor:
        raise UsageError(f"train and test sensors differ: {train.sensor} vs {test.sensor}")
    events = np.concatenate([train.events, test.events])
    offsets = np.concatenate([train.offsets, test.offsets[1:] + train.offsets[-1]])
    labels = np.concatenate([train.labels, test.labels])
    split = np.concatenate([np.zeros(len(train), np.uint8), np.ones(len(test), np.uint8)])
    buf = io.BytesIO()
    np.savez_compressed(buf, events=events, offsets=offsets, labels=labels,
                        sensor_size=np.array(train.sensor, dtype=np.int64), split=split)
    return atomic_write_bytes(path, buf.getvalue())


def read_event_file(path: Path | str) -> tuple[EventSet, EventSet]:
    """The ``(train, test)`` samples of an event ``.npz``; :class:`DataError` on any defect."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    from quickspike.sw.data import read_npz_arrays

    a = read_npz_arrays(path, EVENT_KEYS)
    for k in EVENT_KEYS:
        if not isinstance(a[k], np.ndarray):
            raise DataError(f"{path}[{k}]: cannot read .npz: not a .npy array")
        if a[k].dtype.kind not in "iu":
            raise DataError(f"{path}[{k}]: must be integers, found {a[k].dtype}")
    ev, off, lab, sensor, split = (a[k] for k in EVENT_KEYS)
    if sensor.shape != (2,) or int(sensor.min()) < 1:
        raise DataError(f"{path}[sensor_size]: must be two positive integers (H, W), found {sensor.tolist()}")
    h, w = (int(v) for v in sensor)
    if max(h, w) > 4096:
        raise DataError(f"{path}[sensor_size]: {h}x{w} is larger than 4096x4096")
    _check_events(ev, (h, w), f"{path}[events]")
    if lab.ndim != 1:
        raise DataError(f"{path}[labels]: must be one-dimensional, found shape {lab.shape}")
    if lab.size and int(lab.min()) < 0:
        raise DataError(f"{path}[labels]: negative label {int(lab.min())}")
    S = len(lab)
    if off.shape != (S + 1,):
        raise DataError(f"{path}[offsets]: must have {S + 1} entries (one more than the labels), found shape {off.shape}")
    off = off.astype(np.int64)
    if off[0] != 0 or off[-1] != len(ev):
        raise DataError(f"{path}[offsets]: must start at 0 and end at {len(ev)} (the events), "
                        f"found {int(off[0])} .. {int(off[-1])}")
    if np.any(np.diff(off) < 0):
        raise DataError(f"{path}[offsets]: must not decrease")
    if split.shape != (S,):
        raise DataError(f"{path}[split]: must have one entry per sample ({S}), found shape {split.shape}")
    if S and (int(split.min()) < 0 or int(split.max()) > 1):
        raise DataError(f"{path}[split]: must hold 0 (train) or 1 (test), found {int(split.max()) if int(split.max()) > 1 else int(split.min())}")
    whole = _event_set(ev, off, lab, (h, w))
    train_idx, test_idx = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    if not len(train_idx):
        raise DataError(f"{path}[split]: no training samples")
    if not len(test_idx):
        raise DataError(f"{path}[split]: no test samples")
    return whole.subset(train_idx), whole.subset(test_idx)


def read_recording(path: Path | str, sensor: tuple[int, int] | None = None) -> np.ndarray:
    """One recording from a ``.npy``: an ``(N, 4)`` integer array (checked against ``sensor``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        ev = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: cannot read .npy: {' '.join(str(error).split())}") from None
    if not isinstance(ev, np.ndarray):
        raise DataError(f"{path}: not a .npy array")
    if ev.dtype.kind not in "iu":
        raise DataError(f"{path}: events must be integers, found {ev.dtype}")
    _check_events(ev, sensor, str(path))
    return ev.astype(np.int64)


def _check_events(ev: np.ndarray, sensor: tuple[int, int] | None, where: str) -> None:
    if ev.ndim != 2 or ev.shape[1] != 4:
        raise DataError(f"{where}: must be an (N, 4) array of x, y, polarity, t; found shape {ev.shape}")
    if not len(ev):
        return
    lo, hi = ev.min(axis=0), ev.max(axis=0)
    if sensor is not None:
        h, w = sensor
        if lo[0] < 0 or hi[0] >= w:
            raise DataError(f"{where}: x {int(lo[0]) if lo[0] < 0 else int(hi[0])} is outside the sensor width {w}")
        if lo[1] < 0 or hi[1] >= h:
            raise DataError(f"{where}: y {int(lo[1]) if lo[1] < 0 else int(hi[1])} is outside the sensor height {h}")
    elif lo[0] < 0 or lo[1] < 0:
        raise DataError(f"{where}: negative pixel coordinate")
    if lo[2] < 0 or hi[2] > 1:
        raise DataError(f"{where}: polarity {int(lo[2]) if lo[2] < 0 else int(hi[2])} is not 0 or 1")
    if lo[3] < 0:
        raise DataError(f"{where}: negative time {int(lo[3])}")


# ------------------------------------------------------------------------------- saccades


@dataclass(frozen=True)
class SaccadeParams:
    """The simulated-saccade converter's parameters (see the module docstring)."""

    #: Triangle size A in pixels.
    amplitude: float = 2.0
    #: Moves per saccade and their duration (3 × 10 × 10 ms = 300 ms, like N-MNIST).
    steps: int = 10
    step_us: int = 10_000
    #: Log-intensity offset and the contrast threshold C with its mismatch sigma.
    eps: float = 0.1
    threshold: float = 0.4
    sigma: float = 0.05
    seed: int = 0


def _shifted(images: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``images`` (B, H, W) float, moved by (dx, dy) pixels: out[y, x] = in[y - dy, x - dx] (bilinear, zero outside)."""
    B, h, w = images.shape
    pad = int(np.ceil(max(abs(dx), abs(dy)))) + 1
    p = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    sy, sx = np.arange(h) - dy + pad, np.arange(w) - dx + pad
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    fy, fx = (sy - y0)[:, None], (sx - x0)[None, :]
    a = p[:, y0][:, :, x0]
    b = p[:, y0][:, :, x0 + 1]
    c = p[:, y0 + 1][:, :, x0]
    d = p[:, y0 + 1][:, :, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _path(params: SaccadeParams) -> list[tuple[float, float]]:
    A = params.amplitude
    corners = [(0.0, 0.0), (A / 2, A), (A, 0.0), (0.0, 0.0)]
    pts = [corners[0]]
    for (x0, y0), (x1, y1) in zip(corners, corners[1:]):
        for k in range(1, params.steps + 1):
            f = k / params.steps
            pts.append((x0 + (x1 - x0) * f, y0 + (y1 - y0) * f))
    return pts


def saccade_events(images: np.ndarray, params: SaccadeParams = SaccadeParams(),
                   first_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Events of uint8 images ``(B, H, W)`` (or ``(B, 1, H, W)``): ``(events (N, 4) int32, offsets (B+1,))``.

    Sample ``i`` draws its noise with index ``first_index + i`` (see the module docstring).
    """
    images = np.asarray(images)
    if images.ndim == 4:
        if images.shape[1] != 1:
            raise UsageError(f"the saccade converter takes grayscale images, not {images.shape[1]} channels")
        images = images[:, 0]
    if images.ndim != 3:
        raise UsageError(f"images must be (B, H, W), found shape {images.shape}")
    B, h, w = images.shape
    I = images.astype(np.float64) / 255.0
    C = np.empty((B, h, w))
    for i in range(B):
        n = np.random.default_rng([params.seed, first_index + i]).standard_normal((h, w))
        C[i] = np.maximum(params.threshold * (1 + params.sigma * n), params.threshold / 2)
    pts = _path(params)
    L_prev = np.log(_shifted(I, *pts[0]) + params.eps)
    ref = L_prev.copy()
    chunks = []  # (b, y, x, p, t)
    for k in range(1, len(pts)):
        L = np.log(_shifted(I, *pts[k]) + params.eps)
        diff = L - ref
        n = np.floor(np.abs(diff) / C).astype(np.int64)
        b, y, x = np.nonzero(n)
        if len(b):
            cnt = n[b, y, x]
            sign = np.sign(diff[b, y, x])
            rb, ry, rx = (np.repeat(v, cnt) for v in (b, y, x))
            j = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt) + 1  # 1..cnt
            sgn = np.repeat(sign, cnt)
            level = ref[rb, ry, rx] + sgn * j * C[rb, ry, rx]
            lo, hi = L_prev[rb, ry, rx], L[rb, ry, rx]
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.where(hi != lo, (level - lo) / (hi - lo), 1.0)
            frac = np.clip(frac, 0.0, 1.0 - 1e-9)
            t = np.floor(((k - 1) + frac) * params.step_us).astype(np.int64)
            chunks.append(np.stack([rb, ry, rx, (sgn > 0).astype(np.int64), t], axis=1))
            ref[b, y, x] += sign * cnt * C[b, y, x]
        L_prev = L
    allev = np.concatenate(chunks) if chunks else np.zeros((0, 5), dtype=np.int64)
    order = np.lexsort((allev[:, 3], allev[:, 2], allev[:, 1], allev[:, 4], allev[:, 0]))
    allev = allev[order]
    counts = np.bincount(allev[:, 0], minlength=B)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    events = allev[:, [2, 1, 3, 4]].astype(np.int32)  # x, y, polarity, t
    return events, offsets


def cache_root() -> Path:
    """``$QUICKSPIKE_CACHE/events``, else ``build/events-cache`` in the checkout (or ``~/.cache``)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve() / "events"
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "build" / "events-cache"
    return Path.home() / ".cache" / "quickspike" / "events"


def converted(images: np.ndarray, labels: np.ndarray, params: SaccadeParams = SaccadeParams(),
              batch: int = 500) -> EventSet:
    """The saccade events of ``images`` (uint8 ``(B, [1,] H, W)``), cached on disk (see the docstring)."""
    from quickspike.sw.files import atomic_write_bytes

    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    h, w = images.shape[-2:]
    if max(h, w) > 256:
        raise UsageError(f"the saccade converter takes images up to 256x256, not {h}x{w}")
    key = hashlib.sha256()
    key.update(json.dumps({"version": CONVERTER_VERSION, "params": asdict(params),
                           "shape": list(images.shape)}, sort_keys=True).encode())
    key.update(images.tobytes())
    key.update(labels.tobytes())
    path = cache_root() / f"saccades-{key.hexdigest()[:24]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                events = np.empty((len(npz["t"]), 4), np.int32)
                events[:, :3] = npz["xyp"]
                events[:, 3] = npz["t"]
                offsets = npz["offsets"]
            if len(offsets) == len(images) + 1 and offsets[-1] == len(events):
                return _event_set(events, offsets, labels, (h, w))
        except Exception:  # a damaged cache file: convert again
            pass
    parts, offs, base = [], [np.zeros(1, np.int64)], 0
    for i in range(0, len(images), batch):
        ev, off = saccade_events(images[i:i + batch], params, first_index=i)
        parts.append(ev)
        offs.append(off[1:] + base)
        base += int(off[-1])
    events = np.concatenate(parts) if parts else np.zeros((0, 4), np.int32)
    offsets = np.concatenate(offs)
    buf = io.BytesIO()
    # compact: x, y, polarity as bytes (a sensor of at most 256 x 256 here), t as int32
    np.savez(buf, xyp=events[:, :3].astype(np.uint8), t=events[:, 3], offsets=offsets)
    atomic_write_bytes(path, buf.getvalue())
    return _event_set(events, offsets, labels, (h, w))


# ------------------------------------------------------------------------------- network input


def network_input(net, dataset, split: str = "test", limit: int | None = None) -> np.ndarray:
    """What :func:`~quickspike.sw.golden.run_golden` takes for ``net`` on a data set's split.

    ``direct`` network: uint8 pixels ``(B, C, H, W)``. ``events`` network: binary frames
    ``(B, net.input_steps, C, H, W)`` (uint8 0/1), the split's events binned to exactly
    ``net.input_steps`` frames. ``dataset``: a :class:`~quickspike.sw.data.Dataset` or a
    name/path for :func:`~quickspike.sw.data.load_dataset`; ``limit``: the first samples only.
    """
    from quickspike.sw.data import load_dataset

    if not hasattr(dataset, "x_test"):
        dataset = load_dataset(dataset)
    if split not in ("train", "test"):
        raise UsageError(f"split must be 'train' or 'test', not {split!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0):
        raise UsageError(f"limit must be a non-negative integer, not {limit!r}")
    expected = tuple(net.input_shape)
    if net.input_coding == "direct":
        x = dataset.x_train if split == "train" else dataset.x_test
        x = x if limit is None else x[:limit]
        if int(np.prod(x.shape[1:])) != int(np.prod(expected)):
            raise UsageError(f"data set {dataset.name} has images {tuple(x.shape[1:])}, the network expects {expected}")
        return np.asarray(x)
    ev = dataset.events_train if split == "train" else dataset.events_test
    if ev is None:
        raise UsageError(f"the network takes events but data set {dataset.name} has images only "
                         "(use an event data set, e.g. mnist5k-events)")
    if tuple(ev.shape) != expected:
        raise UsageError(f"data set {dataset.name} has event frames {tuple(ev.shape)}, the network expects {expected}")
    return ev.frames(net.input_steps, limit)
