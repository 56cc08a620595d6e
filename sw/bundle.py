"""Bundles: the versioned, validated file every stage after training starts from.

A bundle is a zip archive (``.qsb`` by convention) holding

* ``manifest.json``: ``format`` (``"quickspike-bundle"``), ``version``, the integer
  spec, the layer graph, the default timesteps, free-form ``meta`` (algorithm,
  dataset, accuracies) and, for every weight array, its file name, shape and SHA-256;
  Later fields (``input_coding``, ``stages``) default to a direct-coded, one-stage
  network when absent, so older version-1 bundles still load;
* ``weights/<i>.npy``: the int weights of layer ``i`` (no pickles).

Loading checks everything: a truncated or corrupted archive, a wrong format or
version, a checksum or shape mismatch and an out-of-range value each give a
one-line :class:`BundleError`. Saving writes a temporary file and renames it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from quickspike.errors import BundleError, MissingBundleError, SpecError
from quickspike.sw.files import atomic_write_bytes
from quickspike.sw.network import IntNetwork
from quickspike.sw.spec import CompensationSpec, ExitSpec, IntSpec, LayerSpec, StageSpec

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "save_bundle", "load_bundle"]

BUNDLE_FORMAT = "quickspike-bundle"
BUNDLE_VERSION = 1


def save_bundle(net: IntNetwork, path: Path | str) -> Path:
    """Validate ``net`` and write it to ``path`` atomically."""
    net.validate()
    entries = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, w in enumerate(net.weights):
            arr = np.ascontiguousarray(w, dtype=_storage_dtype(net.spec))
            npy = io.BytesIO()
            np.save(npy, arr, allow_pickle=False)
            name = f"weights/{i}.npy"
            zf.writestr(name, npy.getvalue())
            entries.append({"file": name, "shape": list(arr.shape), "sha256": hashlib.sha256(arr.tobytes()).hexdigest()})
        manifest = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "spec": net.spec.to_dict(),
            "layers": [layer.to_dict() for layer in net.layers],
            "timesteps": net.timesteps,
            "weights": entries,
            "meta": net.meta,
            "exit": net.exit.to_dict(),
            "compensation": net.compensation.to_dict(),
            "input_coding": net.input_coding,
            "stages": net.stages.to_dict(),
        }
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return atomic_write_bytes(path, buf.getvalue())


def load_bundle(path: Path | str) -> IntNetwork:
    """Read and validate a bundle; any defect raises a one-line :class:`BundleError`."""
    path = Path(path)
    if not path.exists():
        raise MissingBundleError(f"bundle {path} does not exist")
    if not path.is_file():
        raise MissingBundleError(f"bundle {path} is not a file")
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = _read_manifest(zf, path)
            spec = IntSpec.from_dict(manifest.get("spec"))
            exit_rule = ExitSpec.from_dict(manifest.get("exit", {}))
            compensation = CompensationSpec.from_dict(manifest.get("compensation", {}))
            stages = StageSpec.from_dict(manifest.get("stages", {}))
            layers = tuple(LayerSpec.from_dict(d) for d in _list(manifest, "layers", path))
            entries = _list(manifest, "weights", path)
            if len(entries) != len(layers):
                raise BundleError(f"bundle {path}: {len(entries)} weight arrays for {len(layers)} layers")
            weights = tuple(_read_weights(zf, e, path) for e in entries)
    except zipfile.BadZipFile:
        raise BundleError(f"bundle {path} is truncated or not a quickspike bundle (not a valid zip archive)") from None
    except (zipfile.LargeZipFile, EOFError, OSError, zlib.error, RuntimeError) as e:
        raise BundleError(f"bundle {path} is truncated or corrupted ({type(e).__name__})") from None
    except SpecError as e:
        raise BundleError(f"bundle {path}: {e}") from None
    meta = manifest.get("meta", {})
    if not isinstance(meta, dict):
        raise BundleError(f"bundle {path}: 'meta' must be a JSON object")
    try:
        return IntNetwork(spec, layers, weights, timesteps=manifest.get("timesteps"), meta=meta,
                          exit=exit_rule, compensation=compensation,
                          input_coding=manifest.get("input_coding", "direct"), stages=stages).validate()
    except SpecError as e:
        raise BundleError(f"bundle {path}: {e}") from None


def _storage_dtype(spec: IntSpec) -> np.dtype:
    return np.dtype(np.int8 if spec.weight_bits <= 8 else np.int16)


def _read_manifest(zf: zipfile.ZipFile, path: Path) -> dict:
    try:
        raw = zf.read("manifest.json")
    except KeyError:
        raise BundleError(f"bundle {path} has no manifest.json: not a quickspike bundle") from None
    except zipfile.BadZipFile:
        raise BundleError(f"bundle {path}: manifest.json is corrupted (CRC mismatch)") from None
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BundleError(f"bundle {path}: manifest.json is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"bundle {path} is not a quickspike bundle (format is not {BUNDLE_FORMAT!r})")
    version = manifest.get("version")
    if version != BUNDLE_VERSION:
        raise BundleError(f"bundle {path} has format version {version!r}; this quickspike reads version {BUNDLE_VERSION}")
    return manifest


def _list(manifest: dict, key: str, path: Path) -> list:
    value = manifest.get(key)
    if not isinstance(value, list):
        raise BundleError(f"bundle {path}: manifest field {key!r} must be a list")
    return value


def _read_weights(zf: zipfile.ZipFile, entry: dict, path: Path) -> np.ndarray:
    if not isinstance(entry, dict) or not {"file", "shape", "sha256"} <= set(entry) or not isinstance(entry["file"], str):
        raise BundleError(f"bundle {path}: a weights entry lacks file, shape or sha256")
    name = entry["file"]
    try:
        raw = zf.read(name)
    except KeyError:
        raise BundleError(f"bundle {path} is missing {name}") from None
    except zipfile.BadZipFile:
        raise BundleError(f"bundle {path}: {name} is corrupted (CRC mismatch)") from None
    try:
        arr = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, EOFError, OSError):
        raise BundleError(f"bundle {path}: {name} is not a valid weight array") from None
    if arr.dtype.kind not in "iu":
        raise BundleError(f"bundle {path}: {name} holds {arr.dtype}, not integers")
    if list(arr.shape) != entry["shape"]:
        raise BundleError(f"bundle {path}: {name} has shape {list(arr.shape)}, the manifest says {entry['shape']}")
    if hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != entry["sha256"]:
        raise BundleError(f"bundle {path}: {name} does not match its checksum (corrupted)")
    return arr.astype(np.int64)
