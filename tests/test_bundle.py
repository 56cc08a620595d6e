"""Tests for quickspike.sw.bundle: exact round trips and a one-line BundleError for every defect.

Broken bundles are crafted by rewriting a good bundle's zip entries with
:mod:`zipfile` (read everything, modify, write a new archive).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from quickspike.cli import main
from quickspike.errors import BundleError, SpecError, UsageError, UserError
from quickspike.sw.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, load_bundle, save_bundle
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import IntSpec, LayerSpec, NeuronSpec

QUICKSPIKE = Path(sys.executable).with_name("quickspike")

META = {"algo": "snn", "dataset": "digits", "float_accuracy": 0.875, "note": "ünïcode",
        "nested": {"list": [1, 2, 3], "none": None}}


def make_net(spec: IntSpec | None = None, seed: int = 0) -> IntNetwork:
    """conv (1,8,8)->(2,8,8) pool 2 -> dense 32->5 -> dense 5->3 (non-spiking), random in-range weights."""
    spec = spec or IntSpec()
    lo, hi = spec.weight_range
    rng = np.random.default_rng(seed)
    layers = (
        LayerSpec("conv", (1, 8, 8), (2, 8, 8), NeuronSpec(threshold=255 * 50, leak_shift=2), pool=2),
        LayerSpec("dense", (2, 4, 4), (5,), NeuronSpec(threshold=64, v_init=-3, leak_shift=1, reset="zero")),
        LayerSpec("dense", (5,), (3,), NeuronSpec(threshold=1, spiking=False)),
    )
    weights = tuple(rng.integers(lo, hi + 1, size=layer.weight_shape, dtype=np.int64) for layer in layers)
    return IntNetwork(spec, layers, weights, timesteps=3, meta=dict(META)).validate()


@pytest.fixture
def net() -> IntNetwork:
    return make_net()


@pytest.fixture
def good(tmp_path, net) -> Path:
    return save_bundle(net, tmp_path / "good.qsb")


# --------------------------------------------------------------------------- helpers


def read_entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_entries(path: Path, entries: dict[str, bytes | str], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def manifest_of(entries: dict[str, bytes]) -> dict:
    return json.loads(entries["manifest.json"])


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def rewrite(good: Path, out: Path, *, manifest=None, arrays: dict[int, np.ndarray] | None = None,
            fix_checksums: bool = True, drop: tuple[str, ...] = ()) -> Path:
    """A copy of bundle ``good`` with ``manifest(m)`` applied and weight arrays replaced.

    With ``fix_checksums`` the manifest's shape and sha256 follow the new arrays, so only
    the defect under test remains.
    """
    entries = read_entries(good)
    m = manifest_of(entries)
    for i, arr in (arrays or {}).items():
        entries[f"weights/{i}.npy"] = npy(arr)
        if fix_checksums:
            m["weights"][i]["shape"] = list(arr.shape)
            m["weights"][i]["sha256"] = sha(arr)
    if manifest is not None:
        manifest(m)
    entries["manifest.json"] = json.dumps(m).encode()
    for name in drop:
        entries.pop(name)
    return write_entries(out, entries)


def bundle_error(path: Path | str) -> str:
    """Load ``path``, expecting a BundleError; return its (one-line) message."""
    with pytest.raises(BundleError) as e:
        load_bundle(path)
    message = str(e.value)
    assert message and "\n" not in message, f"not one line: {message!r}"
    assert e.value.__cause__ is None or isinstance(e.value.__cause__, UserError)
    assert e.value.__context__ is None or e.value.__suppress_context__, "the message should not chain to a low-level exception"
    return message


def assert_same(a: IntNetwork, b: IntNetwork) -> None:
    assert a.spec == b.spec
    assert a.layers == b.layers
    assert a.timesteps == b.timesteps
    assert a.meta == b.meta
    assert len(a.weights) == len(b.weights)
    for wa, wb in zip(a.weights, b.weights):
        assert wa.shape == wb.shape
        assert wb.dtype == np.int64
        np.testing.assert_array_equal(wa, wb)


# --------------------------------------------------------------------------- round trip


def test_round_trip_is_exact(tmp_path, net):
    path = save_bundle(net, tmp_path / "net.qsb")
    assert path == tmp_path / "net.qsb"
    back = load_bundle(path)
    assert_same(net, back)
    # and a second generation is byte-for-byte the same content
    assert_same(back, load_bundle(save_bundle(back, tmp_path / "again.qsb")))
    assert read_entries(path).keys() == {"manifest.json", "weights/0.npy", "weights/1.npy", "weights/2.npy"}
    m = manifest_of(read_entries(path))
    assert m["format"] == BUNDLE_FORMAT == "quickspike-bundle"
    assert m["version"] == BUNDLE_VERSION == 1
    assert m["timesteps"] == 3
    assert [e["shape"] for e in m["weights"]] == [[2, 1, 3, 3], [5, 32], [3, 5]]


@pytest.mark.parametrize("spec", [
    IntSpec(weight_bits=2, input_bits=1, membrane_bits=16, acc_bits=16),
    IntSpec(weight_bits=12, input_bits=4, membrane_bits=24, acc_bits=32),  # stored as int16
    IntSpec(weight_bits=16, input_bits=8, membrane_bits=32, acc_bits=48),
])
def test_round_trip_other_widths(tmp_path, spec):
    net = make_net(spec, seed=3)
    assert_same(net, load_bundle(save_bundle(net, tmp_path / "w.qsb")))


def test_round_trip_range_end_weights(tmp_path):
    net = make_net()
    weights = [w.copy() for w in net.weights]
    weights[1][0, :] = -128
    weights[1][1, :] = 127
    net = IntNetwork(net.spec, net.layers, tuple(weights), timesteps=1, meta={})
    assert_same(net, load_bundle(save_bundle(net, tmp_path / "ends.qsb")))


def test_save_overwrites_atomically_and_leaves_no_temp(tmp_path, net):
    path = tmp_path / "sub" / "net.qsb"  # parent folders are created
    save_bundle(make_net(seed=1), path)
    save_bundle(net, path)
    assert_same(net, load_bundle(path))
    assert sorted(os.listdir(path.parent)) == ["net.qsb"]


def test_save_refuses_an_invalid_network_and_writes_nothing(tmp_path, net):
    weights = [w.copy() for w in net.weights]
    weights[2][0, 0] = 200
    bad = IntNetwork(net.spec, net.layers, tuple(weights), timesteps=3)
    with pytest.raises(SpecError, match="weight 200 does not fit 8 bits"):
        save_bundle(bad, tmp_path / "bad.qsb")
    assert os.listdir(tmp_path) == []


def test_bundle_error_exit_code():
    assert issubclass(BundleError, UserError)
    assert not issubclass(BundleError, UsageError)
    assert BundleError.exit_code == 1


# --------------------------------------------------------------------------- file-level defects


def test_nonexistent_path(tmp_path):
    path = tmp_path / "nope.qsb"
    assert bundle_error(path) == f"bundle {path} does not exist"


def test_directory(tmp_path):
    assert bundle_error(tmp_path) == f"bundle {tmp_path} is not a file"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.qsb"
    path.write_bytes(b"")
    assert "truncated or not a quickspike bundle" in bundle_error(path)


def test_truncated_in_half(tmp_path, good):
    data = good.read_bytes()
    path = tmp_path / "half.qsb"
    path.write_bytes(data[: len(data) // 2])
    assert bundle_error(path) == f"bundle {path} is truncated or not a quickspike bundle (not a valid zip archive)"


def test_truncated_anywhere(tmp_path, good):
    data = good.read_bytes()
    path = tmp_path / "cut.qsb"
    for n in list(range(0, len(data), max(1, len(data) // 40))) + [len(data) - 1]:
        path.write_bytes(data[:n])
        assert "truncated" in bundle_error(path), n


def test_random_bytes(tmp_path):
    path = tmp_path / "random.qsb"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "not a quickspike bundle" in bundle_error(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.qsb"
    path.write_text("this is not a bundle\n")
    assert "not a valid zip archive" in bundle_error(path)


def test_zip_without_manifest(tmp_path, good):
    path = rewrite(good, tmp_path / "nomanifest.qsb", drop=("manifest.json",))
    assert bundle_error(path) == f"bundle {path} has no manifest.json: not a quickspike bundle"


def test_other_zip(tmp_path):
    path = write_entries(tmp_path / "other.zip", {"hello.txt": "hi"})
    assert "has no manifest.json" in bundle_error(path)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe\x00", b'{"format": "quickspike-bundle",'])
def test_manifest_bad_json(tmp_path, good, raw):
    entries = read_entries(good)
    entries["manifest.json"] = raw
    path = write_entries(tmp_path / "badjson.qsb", entries)
    assert bundle_error(path) == f"bundle {path}: manifest.json is not valid JSON"


@pytest.mark.parametrize("fmt", ["quickspike-model", "", None, 1])
def test_wrong_format_name(tmp_path, good, fmt):
    path = rewrite(good, tmp_path / "fmt.qsb", manifest=lambda m: m.update(format=fmt))
    assert bundle_error(path) == f"bundle {path} is not a quickspike bundle (format is not 'quickspike-bundle')"


def test_manifest_not_an_object(tmp_path, good):
    entries = read_entries(good)
    entries["manifest.json"] = b"[1, 2, 3]"
    path = write_entries(tmp_path / "list.qsb", entries)
    assert "is not a quickspike bundle" in bundle_error(path)


@pytest.mark.parametrize("version", [99, 0, 2, "1", None])
def test_wrong_version(tmp_path, good, version):
    path = rewrite(good, tmp_path / "v.qsb", manifest=lambda m: m.update(version=version))
    assert bundle_error(path) == \
        f"bundle {path} has format version {version!r}; this quickspike reads version 1"


def test_missing_version(tmp_path, good):
    path = rewrite(good, tmp_path / "nov.qsb", manifest=lambda m: m.pop("version"))
    assert "has format version None" in bundle_error(path)


# --------------------------------------------------------------------------- corrupted weights


def test_flipped_byte_inside_weight_array_crc(tmp_path, good):
    """A flipped byte in a stored (uncompressed) entry: the zip CRC catches it."""
    entries = read_entries(good)
    stored = write_entries(tmp_path / "stored.qsb", entries, compression=zipfile.ZIP_STORED)
    load_bundle(stored)  # stored entries are fine
    data = bytearray(stored.read_bytes())
    arr_bytes = entries["weights/1.npy"]
    start = bytes(data).index(arr_bytes)
    data[start + len(arr_bytes) - 5] ^= 0x01  # inside the array data, after the .npy header
    path = tmp_path / "flipped.qsb"
    path.write_bytes(bytes(data))
    assert bundle_error(path) == f"bundle {path}: weights/1.npy is corrupted (CRC mismatch)"


def test_flipped_byte_in_compressed_entry(tmp_path, good):
    """Damage inside deflated data: zlib errors or a CRC mismatch, never a traceback."""
    data = good.read_bytes()
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("weights/1.npy")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    path = tmp_path / "deflate.qsb"
    messages = set()
    for off in range(start, start + info.compress_size - 1):
        b = bytearray(data)
        b[off] ^= 0xFF
        path.write_bytes(bytes(b))
        messages.add(bundle_error(path))
    assert any("weights/1.npy is corrupted (CRC mismatch)" in m for m in messages)
    assert all("corrupted" in m for m in messages), messages


def test_every_flipped_byte_is_caught_or_harmless(tmp_path, good, net):
    """Flip each byte of the file: load_bundle either refuses with a one-line BundleError
    or (a byte the format ignores, like a timestamp) returns exactly the saved network."""
    data = good.read_bytes()
    path = tmp_path / "fuzz.qsb"
    refused = 0
    for off, mask in [(off, mask) for mask in (0x55, 0x01) for off in range(len(data))]:
        b = bytearray(data)
        b[off] ^= mask
        path.write_bytes(bytes(b))
        try:
            back = load_bundle(path)
        except BundleError as e:
            assert str(e) and "\n" not in str(e)
            refused += 1
        else:
            assert_same(net, back)
    assert refused > len(data)


def _patch_central_directory(data: bytes, field_offset: int, value: int) -> bytes:
    """Set a 2-byte field of the first central-directory header (weights/0.npy)."""
    at = data.index(b"PK\x01\x02") + field_offset
    return data[:at] + value.to_bytes(2, "little") + data[at + 2:]


@pytest.mark.parametrize("field_offset, value", [
    (10, 99),  # compression method 99: not supported by zipfile (NotImplementedError)
    (8, 0x0001),  # "encrypted" flag: zipfile wants a password (RuntimeError)
    (8, 0x0040),  # strong encryption flag (NotImplementedError)
    (6, 99),  # "version needed to extract" 9.9 (NotImplementedError)
])
def test_unsupported_zip_features(tmp_path, good, field_offset, value):
    path = tmp_path / "feature.qsb"
    path.write_bytes(_patch_central_directory(good.read_bytes(), field_offset, value))
    assert bundle_error(path).startswith(f"bundle {path} is truncated or corrupted (")


def test_checksum_mismatch(tmp_path, good, net):
    """Zip CRCs consistent (the archive was rewritten), but the array differs from its sha256."""
    changed = net.weights[1].copy()
    changed[0, 0] = changed[0, 0] + 1 if changed[0, 0] < 127 else 126
    path = rewrite(good, tmp_path / "sha.qsb", arrays={1: changed.astype(np.int8)}, fix_checksums=False)
    assert bundle_error(path) == f"bundle {path}: weights/1.npy does not match its checksum (corrupted)"


def test_weights_shape_mismatch_vs_manifest(tmp_path, good):
    path = rewrite(good, tmp_path / "shape.qsb", arrays={1: np.zeros((4, 32), dtype=np.int8)}, fix_checksums=False)
    assert bundle_error(path) == f"bundle {path}: weights/1.npy has shape [4, 32], the manifest says [5, 32]"


def test_manifest_shape_not_a_list(tmp_path, good):
    path = rewrite(good, tmp_path / "shape5.qsb", manifest=lambda m: m["weights"][0].update(shape=5))
    assert bundle_error(path) == f"bundle {path}: weights/0.npy has shape [2, 1, 3, 3], the manifest says 5"


def test_weights_shape_consistent_with_manifest_but_not_layer(tmp_path, good):
    arr = np.zeros((5, 31), dtype=np.int8)
    path = rewrite(good, tmp_path / "layershape.qsb", arrays={1: arr})
    assert bundle_error(path) == f"bundle {path}: layer 1: weights have shape (5, 31), expected (5, 32)"


@pytest.mark.parametrize("value", [200, 128, -129])
def test_weight_value_out_of_range(tmp_path, good, net, value):
    """Checksum and shape consistent, but a value that does not fit 8-bit weights."""
    arr = net.weights[2].astype(np.int16)
    arr[1, 2] = value
    path = rewrite(good, tmp_path / "range.qsb", arrays={2: arr})
    assert bundle_error(path) == f"bundle {path}: layer 2: weight {value} does not fit 8 bits [-128, 127]"


def test_float_weight_array(tmp_path, good, net):
    path = rewrite(good, tmp_path / "float.qsb", arrays={0: net.weights[0].astype(np.float32)})
    assert bundle_error(path) == f"bundle {path}: weights/0.npy holds float32, not integers"


def test_pickled_object_array_is_refused(tmp_path, good):
    entries = read_entries(good)
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    entries["weights/0.npy"] = buf.getvalue()
    path = write_entries(tmp_path / "pickle.qsb", entries)
    assert bundle_error(path) == f"bundle {path}: weights/0.npy is not a valid weight array"


def test_garbage_weight_entry(tmp_path, good):
    entries = read_entries(good)
    entries["weights/0.npy"] = b"not an npy file"
    path = write_entries(tmp_path / "garbage.qsb", entries)
    assert bundle_error(path) == f"bundle {path}: weights/0.npy is not a valid weight array"


def test_missing_weight_entry(tmp_path, good):
    path = rewrite(good, tmp_path / "missing.qsb", drop=("weights/2.npy",))
    assert bundle_error(path) == f"bundle {path} is missing weights/2.npy"


@pytest.mark.parametrize("entry", [[1, 2], {"file": "weights/0.npy"}, {"file": ["x"], "shape": [1], "sha256": ""},
                                   {"file": 3, "shape": [1], "sha256": ""}])
def test_malformed_weights_entry(tmp_path, good, entry):
    path = rewrite(good, tmp_path / "entry.qsb", manifest=lambda m: m["weights"].__setitem__(0, entry))
    assert bundle_error(path) == f"bundle {path}: a weights entry lacks file, shape or sha256"


def test_weight_entry_count_mismatch(tmp_path, good):
    path = rewrite(good, tmp_path / "count.qsb", manifest=lambda m: m["weights"].pop())
    assert bundle_error(path) == f"bundle {path}: 2 weight arrays for 3 layers"


# --------------------------------------------------------------------------- inconsistent manifests


def test_shape_inconsistent_layer_graph(tmp_path, good):
    path = rewrite(good, tmp_path / "graph.qsb", manifest=lambda m: m["layers"][2].update(in_shape=[6]))
    assert bundle_error(path) == f"bundle {path}: layer 2 takes 6 inputs but the layer before gives 5"


def test_shape_inconsistent_after_pooling(tmp_path, good, net):
    """Layer 1 claims the unpooled 2x8x8 map; its weights (and checksum) agree with that claim."""
    arr = np.zeros((5, 128), dtype=np.int8)

    def edit(m):
        m["layers"][1]["in_shape"] = [2, 8, 8]

    path = rewrite(good, tmp_path / "pool.qsb", manifest=edit, arrays={1: arr})
    assert bundle_error(path) == f"bundle {path}: layer 1 takes 128 inputs but the layer before gives 32"


@pytest.mark.parametrize("edit, expected", [
    (lambda m: m["layers"][2]["neuron"].update(spiking=True), "layer 2: the output layer must be non-spiking"),
    (lambda m: m["layers"][0]["neuron"].update(threshold=0), "layer 0.neuron.threshold = 0 is out of range"),
    (lambda m: m["layers"][0]["neuron"].update(v_init=1 << 30), "layer 0.neuron.v_init = 1073741824 is out of range"),
    (lambda m: m["layers"][1]["neuron"].update(reset="hard"), "layer 1.neuron.reset = 'hard'; expected one of"),
    (lambda m: m["layers"][0].update(kernel=5), "layer 0.kernel = 5: only 3x3 kernels are supported"),
    (lambda m: m["layers"][0].update(pool=16), "layer 0.pool = 16 is out of range [1, 4]"),
    (lambda m: m["layers"][1].update(pool=2), "layer 1.pool = 2: only convolutions pool"),
    (lambda m: m["layers"][1].update(kind="lstm"), "layer 1.kind = 'lstm'; expected one of dense, conv"),
    (lambda m: m["layers"][1].update(in_shape=5), "layer shapes must be lists of integers"),
    (lambda m: m["layers"][1].pop("out_shape"), "layer is missing field 'out_shape'"),
    (lambda m: m["layers"][1].update(stride=2), "LayerSpec has unknown field 'stride'"),
    (lambda m: m["layers"].__setitem__(1, "dense"), "a layer must be a JSON object, not str"),
    (lambda m: m.update(layers={}), "manifest field 'layers' must be a list"),
    (lambda m: m.update(weights=None), "manifest field 'weights' must be a list"),
    (lambda m: m["spec"].update(weight_bits=40), "IntSpec.weight_bits = 40 is out of range [2, 16]"),
    (lambda m: m["spec"].update(acc_bits=8), "IntSpec.acc_bits = 8 is out of range [24, 48]"),
    (lambda m: m["spec"].update(guard_bits=2), "IntSpec has unknown field 'guard_bits'"),
    (lambda m: m.pop("spec"), "IntSpec must be a JSON object, not NoneType"),
    (lambda m: m.update(timesteps=0), "timesteps = 0 must be an integer in [1, 1024]"),
    (lambda m: m.update(timesteps="4"), "timesteps = '4' must be an integer in [1, 1024]"),
    (lambda m: m.pop("timesteps"), "timesteps = None must be an integer in [1, 1024]"),
    (lambda m: m.update(meta=[1]), "'meta' must be a JSON object"),
])
def test_inconsistent_manifest(tmp_path, good, edit, expected):
    path = rewrite(good, tmp_path / "m.qsb", manifest=edit)
    message = bundle_error(path)
    assert message.startswith(f"bundle {path}: ")
    assert expected in message


def test_narrower_weight_bits_in_manifest_refuses_the_stored_values(tmp_path, good, net):
    """A manifest claiming 4-bit weights for 8-bit data: the values are out of range."""
    path = rewrite(good, tmp_path / "w4.qsb", manifest=lambda m: m["spec"].update(weight_bits=4))
    message = bundle_error(path)
    assert message.startswith(f"bundle {path}: layer 0: weight ") and "does not fit 4 bits [-8, 7]" in message


def test_accumulator_overflow_in_manifest(tmp_path, good):
    """Narrowing the accumulator in the manifest makes the stored weights overflow it."""
    def edit(m):
        m["spec"].update(membrane_bits=16, acc_bits=16)
        m["layers"][0]["neuron"]["threshold"] = 100

    path = rewrite(good, tmp_path / "acc.qsb", manifest=edit)
    message = bundle_error(path)
    assert message.startswith(f"bundle {path}: layer 0: the largest possible input current ")
    assert "overflows the 16-bit accumulator (max 32767)" in message


def test_missing_meta_is_an_empty_dict(tmp_path, good):
    path = rewrite(good, tmp_path / "nometa.qsb", manifest=lambda m: m.pop("meta"))
    assert load_bundle(path).meta == {}


# --------------------------------------------------------------------------- through the CLI


def _broken_bundles(tmp_path: Path, good: Path, net: IntNetwork) -> dict[str, Path]:
    data = good.read_bytes()
    (tmp_path / "half.qsb").write_bytes(data[: len(data) // 2])
    (tmp_path / "random.qsb").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "empty.qsb").write_bytes(b"")
    arr = net.weights[2].astype(np.int16)
    arr[0, 0] = 200
    return {
        "half": tmp_path / "half.qsb",
        "random": tmp_path / "random.qsb",
        "empty": tmp_path / "empty.qsb",
        "version": rewrite(good, tmp_path / "v99.qsb", manifest=lambda m: m.update(version=99)),
        "nomanifest": rewrite(good, tmp_path / "nomanifest.qsb", drop=("manifest.json",)),
        "checksum": rewrite(good, tmp_path / "sha.qsb", arrays={1: np.zeros((5, 32), np.int8)}, fix_checksums=False),
        "range": rewrite(good, tmp_path / "range.qsb", arrays={2: arr}),
        "graph": rewrite(good, tmp_path / "graph.qsb", manifest=lambda m: m["layers"][2].update(in_shape=[6])),
    }


EXPECTED_CLI = {
    "half": "is truncated or not a quickspike bundle",
    "random": "is truncated or not a quickspike bundle",
    "empty": "is truncated or not a quickspike bundle",
    "version": "has format version 99; this quickspike reads version 1",
    "nomanifest": "has no manifest.json",
    "checksum": "weights/1.npy does not match its checksum",
    "range": "layer 2: weight 200 does not fit 8 bits",
    "graph": "layer 2 takes 6 inputs but the layer before gives 5",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_CLI))
def test_cli_eval_broken_bundle_is_one_line(tmp_path, good, net, capsys, kind):
    path = _broken_bundles(tmp_path, good, net)[kind]
    capsys.readouterr()
    out_json = tmp_path / "result.json"
    code = main(["eval", str(path), "--dataset", "digits", "--json", str(out_json)])
    out, err = capsys.readouterr()
    assert code == BundleError.exit_code == 1
    assert out == ""
    assert err.startswith("quickspike: error: bundle ") and err.endswith("\n") and err.count("\n") == 1
    assert EXPECTED_CLI[kind] in err
    assert str(path) in err
    assert "Traceback" not in err
    assert not out_json.exists()


def test_cli_eval_missing_bundle(tmp_path, capsys):
    code = main(["eval", str(tmp_path / "nope.qsb"), "--dataset", "digits"])
    out, err = capsys.readouterr()
    assert code in (1, 2)
    assert out == ""
    assert err == f"quickspike: error: bundle {tmp_path / 'nope.qsb'} does not exist\n"


@pytest.mark.skipif(not QUICKSPIKE.exists(), reason="the quickspike console script is not installed")
def test_cli_subprocess_no_traceback(tmp_path, good):
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("weights/0.npy")
    data[info.header_offset + 30 + len(info.filename) + len(info.extra)] ^= 0xFF  # zlib-level damage
    broken = tmp_path / "broken.qsb"
    broken.write_bytes(bytes(data))
    truncated = tmp_path / "truncated.qsb"
    truncated.write_bytes(good.read_bytes()[:100])
    script = ("import sys; from quickspike.cli import main\n"
              "for p in sys.argv[1:]:\n"
              "    print(main(['eval', p, '--dataset', 'digits']), flush=True)\n")
    # the console script itself, once
    proc = subprocess.run([str(QUICKSPIKE), "eval", str(truncated), "--dataset", "digits"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("quickspike: error: bundle ")
    assert "Traceback" not in proc.stderr
    # a deflate-level corruption in a fresh interpreter (no pytest exception handling)
    proc = subprocess.run([sys.executable, "-c", script, str(broken)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1\n"
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("quickspike: error: bundle ")
    assert "corrupted" in proc.stderr
