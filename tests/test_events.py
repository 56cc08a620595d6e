"""Event data: the .npz format round trip and its refusals, binning by hand, the saccade
converter, the built-in event sets and :func:`network_input`."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from quickspike.errors import DataError, UsageError
from quickspike.sw.events import (EventSet, SaccadeParams, bin_events, converted, network_input,
                                  read_event_file, read_recording, saccade_events, write_event_file)


def _set(events, offsets, labels, sensor=(4, 5)) -> EventSet:
    from quickspike.sw.events import _event_set

    return _event_set(np.array(events, dtype=np.int64).reshape(-1, 4), offsets, labels, sensor)


TRAIN = _set([[0, 0, 1, 10], [4, 3, 0, 20], [2, 1, 1, 30],   # sample 0
              [1, 2, 0, 5]],                                  # sample 1
             [0, 3, 4], [1, 0])
TEST = _set([[3, 3, 1, 100], [3, 3, 1, 100]], [0, 0, 2], [2, 1])  # an empty sample, then two events


def test_round_trip(tmp_path):
    path = write_event_file(tmp_path / "ev.npz", TRAIN, TEST)
    train, test = read_event_file(path)
    for a, b in ((train, TRAIN), (test, TEST)):
        assert np.array_equal(a.events, b.events) and np.array_equal(a.offsets, b.offsets)
        assert np.array_equal(a.labels, b.labels) and a.sensor == b.sensor == (4, 5)
    assert not train.events.flags.writeable
    assert np.array_equal(test.sample(1), TEST.events[0:2]) and len(test.sample(0)) == 0


def test_load_dataset_reads_an_event_file(tmp_path):
    from quickspike.sw.data import load_dataset

    path = write_event_file(tmp_path / "ev.npz", TRAIN, TEST)
    ds = load_dataset(path)
    assert ds.is_events and ds.shape == (2, 4, 5) and ds.num_classes == 3
    assert ds.x_train.shape == (2, 2, 4, 5) and ds.x_test[1, 1, 3, 3] == 2  # event counts per polarity
    assert np.array_equal(ds.y_test, [2, 1])
    assert ds.frames("test", 3).shape == (2, 3, 2, 4, 5)


def _write(tmp_path, **arrays):
    base = {"events": np.array([[0, 0, 1, 5], [1, 1, 0, 6]]), "offsets": np.array([0, 1, 2]),
            "labels": np.array([0, 1]), "sensor_size": np.array([2, 2]), "split": np.array([0, 1])}
    base.update(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


BAD = [
    ({"events": None}, "missing arrays events"),
    ({"events": np.array([[0, 0, 1]])}, "must be an (N, 4) array"),
    ({"events": np.array([[0, 0, 1, 5.0], [1, 1, 0, 6]])}, "[events]: must be integers"),
    ({"events": np.array([[2, 0, 1, 5], [1, 1, 0, 6]])}, "x 2 is outside the sensor width 2"),
    ({"events": np.array([[0, -1, 1, 5], [1, 1, 0, 6]])}, "y -1 is outside the sensor height 2"),
    ({"events": np.array([[0, 0, 2, 5], [1, 1, 0, 6]])}, "polarity 2 is not 0 or 1"),
    ({"events": np.array([[0, 0, 1, -5], [1, 1, 0, 6]])}, "negative time -5"),
    ({"offsets": np.array([0, 2])}, "[offsets]: must have 3 entries"),
    ({"offsets": np.array([1, 1, 2])}, "[offsets]: must start at 0 and end at 2"),
    ({"offsets": np.array([0, 1, 3])}, "[offsets]: must start at 0 and end at 2"),
    ({"offsets": np.array([0, 2, 1])}, "end at 2"),
    ({"offsets": np.array([0, 3, 2]), "events": np.array([[0, 0, 1, 5], [1, 1, 0, 6]])}, "[offsets]: must not decrease"),
    ({"labels": np.array([[0, 1]])}, "[labels]: must be one-dimensional"),
    ({"labels": np.array([0, -1])}, "[labels]: negative label -1"),
    ({"sensor_size": np.array([2])}, "[sensor_size]: must be two positive integers"),
    ({"sensor_size": np.array([0, 2])}, "[sensor_size]: must be two positive integers"),
    ({"split": np.array([0, 2])}, "[split]: must hold 0 (train) or 1 (test), found 2"),
    ({"split": np.array([0])}, "[split]: must have one entry per sample"),
    ({"split": np.array([1, 1])}, "[split]: no training samples"),
    ({"split": np.array([0, 0])}, "[split]: no test samples"),
]


@pytest.mark.parametrize("arrays, expected", BAD, ids=[e for _, e in BAD])
def test_bad_event_files(tmp_path, arrays, expected):
    path = _write(tmp_path, **arrays)
    with pytest.raises(DataError) as e:
        read_event_file(path)
    msg = str(e.value)
    assert expected in msg and str(path) in msg and "\n" not in msg


def test_not_a_zip_and_missing(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a .npz"):
        read_event_file(bad)
    with pytest.raises(DataError, match="no such file"):
        read_event_file(tmp_path / "nope.npz")
    broken = tmp_path / "broken.npz"
    with zipfile.ZipFile(broken, "w") as zf:
        for key in ("events", "offsets", "labels", "sensor_size", "split"):
            zf.writestr(f"{key}.npy", b"garbage")
    with pytest.raises(DataError, match="cannot read .npz"):
        read_event_file(broken)


def test_recording_npy(tmp_path):
    path = tmp_path / "rec.npy"
    np.save(path, np.array([[1, 2, 0, 7]], dtype=np.int16))
    assert read_recording(path).tolist() == [[1, 2, 0, 7]]
    with pytest.raises(DataError, match="outside the sensor width 1"):
        read_recording(path, sensor=(4, 1))
    np.save(path, np.zeros((3, 3), dtype=np.int32))
    with pytest.raises(DataError, match=r"\(N, 4\)"):
        read_recording(path)
    from quickspike.sw.data import load_dataset

    with pytest.raises(DataError, match="one event recording"):
        load_dataset(path)


def test_binning_by_hand():
    # sample 0: t = 10, 20, 30 over 3 bins -> span 21, bins (t-10)*3//21 = 0, 1, 2
    f = TRAIN.frames(3)
    assert f.shape == (2, 3, 2, 4, 5) and f.dtype == np.uint8
    expected = np.zeros((3, 2, 4, 5), np.uint8)
    expected[0, 1, 0, 0] = 1   # x=0 y=0 ON at t=10
    expected[1, 0, 3, 4] = 1   # x=4 y=3 OFF at t=20
    expected[2, 1, 1, 2] = 1   # x=2 y=1 ON at t=30
    assert np.array_equal(f[0], expected)
    # 2 bins: span 21 -> (t-10)*2//21 = 0, 0, 1
    f2 = TRAIN.frames(2)
    assert f2[0, 0].sum() == 2 and f2[0, 1, 1, 1, 2] == 1
    # a single event: bin 0; two events at the same pixel and time: still a binary 1
    assert f[1, 0, 0, 2, 1] == 1 and f[1, 1:].sum() == 0
    ft = TEST.frames(4)
    assert ft[0].sum() == 0 and ft[1, 0, 1, 3, 3] == 1 and ft[1].sum() == 1
    assert np.array_equal(bin_events(TRAIN.sample(0), None, 3, (4, 5))[0], expected)
    with pytest.raises(UsageError):
        bin_events(TRAIN.events, TRAIN.offsets, 0, (4, 5))
    # limit and subset
    assert TRAIN.frames(3, limit=1).shape[0] == 1
    sub = TRAIN.subset([1, 0])
    assert np.array_equal(sub.frames(3)[1], f[0]) and np.array_equal(sub.labels, [0, 1])


def _stripes() -> np.ndarray:
    img = np.zeros((2, 12, 12), np.uint8)
    img[0, 3:9, 5:7] = 255   # a vertical bar
    img[1, 6, 2:10] = 200    # a horizontal line
    return img


def test_converter_is_deterministic_and_sane():
    img = _stripes()
    ev, off = saccade_events(img)
    ev2, off2 = saccade_events(img)
    assert np.array_equal(ev, ev2) and np.array_equal(off, off2)
    # per-sample noise: converting one image alone (with its index) gives the same events
    ev_b, off_b = saccade_events(img[1:], first_index=1)
    assert np.array_equal(ev_b, ev[off[1]:off[2]])
    assert not np.array_equal(saccade_events(img, SaccadeParams(seed=1))[0], ev)
    assert len(off) == 3 and off[0] == 0 and off[-1] == len(ev) and np.all(np.diff(off) > 0)
    bar = ev[off[0]:off[1]]
    # events only where the image has edges: near the bar, never far from it
    assert bar[:, 0].min() >= 3 and bar[:, 0].max() <= 10 and bar[:, 1].min() >= 2
    # ON and OFF balance over the closed triangle
    on = bar[:, 2].mean()
    assert 0.35 < on < 0.65
    # times inside the three saccades, sorted per sample
    assert bar[:, 3].min() >= 0 and bar[:, 3].max() < 3 * 10 * 10_000
    assert np.all(np.diff(bar[:, 3]) >= 0)
    # a blank image makes no events
    assert len(saccade_events(np.zeros((1, 8, 8), np.uint8))[0]) == 0


def test_converted_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSPIKE_CACHE", str(tmp_path))
    img = _stripes()
    a = converted(img, np.array([0, 1]))
    files = list((tmp_path / "events").iterdir())
    assert len(files) == 1 and not [f for f in files if f.name.endswith(".tmp")]
    import quickspike.sw.events as events

    monkeypatch.setattr(events, "saccade_events", lambda *a, **k: (_ for _ in ()).throw(AssertionError("not cached")))
    b = converted(img, np.array([0, 1]))
    assert np.array_equal(a.events, b.events) and np.array_equal(a.offsets, b.offsets)


def test_builtin_event_set_and_network_input():
    from quickspike.sw.data import load_dataset
    from quickspike.sw.network import IntNetwork
    from quickspike.sw.spec import IntSpec, LayerSpec, NeuronSpec

    ds = load_dataset("digits-events")
    src = load_dataset("digits")
    assert ds.shape == (2, 8, 8) and np.array_equal(ds.y_test, src.y_test) and np.array_equal(ds.y_train, src.y_train)
    assert len(ds.events_train) == len(src.x_train)
    layers = (LayerSpec("dense", (2, 8, 8), (4,), NeuronSpec(threshold=5)),
              LayerSpec("dense", (4,), (10,), NeuronSpec(spiking=False)))
    weights = (np.ones((4, 128), np.int64), np.ones((10, 4), np.int64))
    net = IntNetwork(IntSpec(), layers, weights, timesteps=3, input_coding="events").validate()
    x = network_input(net, ds, "test", limit=7)
    assert x.shape == (7, 3, 2, 8, 8) and x.dtype == np.uint8 and x.max() == 1
    assert np.array_equal(x, ds.frames("test", 3, 7))
    assert network_input(net, "digits-events", "train").shape[0] == len(ds.y_train)
    direct = IntNetwork(IntSpec(), (LayerSpec("dense", (1, 8, 8), (10,), NeuronSpec(spiking=False)),),
                        (np.ones((10, 64), np.int64),), timesteps=2)
    assert np.array_equal(network_input(direct, src, limit=5), src.x_test[:5])
    with pytest.raises(UsageError, match="has images only"):
        network_input(net, src)
    with pytest.raises(UsageError, match="split must be"):
        network_input(net, ds, "val")
