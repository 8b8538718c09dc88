"""The ragged store: round trips, empty sets, failures, shard merging, inspect."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from extract.__main__ import main as extract_main
from extract.inspect import main as inspect_main
from extract.store import RaggedStore, StoreBuilder, base_attrs, merge_stores, read_store, write_store


def build(ids, counts, dim=4, seed=0, fail=()):
    rng = np.random.default_rng(seed)
    b = StoreBuilder()
    for sid, n in zip(ids, counts):
        if sid in fail:
            b.fail(sid, f"cannot read {sid}.jpeg", samples={"text": ""})
            continue
        rows = {"features": rng.normal(size=(n, dim)).astype(np.float32),
                "boxes": rng.uniform(0, 100, size=(n, 4)).astype(np.float32),
                "words": np.array([f"w{sid}_{i}" for i in range(n)], dtype=object)}
        b.add(sid, rows, {"text": " ".join(rows["words"])})
    attrs = base_attrs("test", "none", dim, {"k": 1}, [("w.pth", "ab" * 32)])
    return b.build(attrs, {"features": ((dim,), np.float32), "boxes": ((4,), np.float32),
                           "words": ((), object)})


def test_round_trip_with_empty_sets_and_failures(tmp_path):
    ids = ["0000001", "0000002", "0000003", "0000004"]
    store = build(ids, [2, 0, 3, 1], fail={"0000004"})
    path = write_store(tmp_path / "s.h5", store)
    back = read_store(path)
    assert back.ids == ids
    assert back.offsets.tolist() == [0, 2, 2, 5, 5]
    np.testing.assert_array_equal(back.rows["features"], store.rows["features"])
    assert back.rows["words"].tolist() == store.rows["words"].tolist()
    assert back.samples["text"][1] == "" and back.samples["text"][0] == "w0000001_0 w0000001_1"
    assert back.failed == {"0000004": "cannot read 0000004.jpeg"}
    assert back.sample("0000002")["features"].shape == (0, 4)
    assert back.sample("0000004")["failed"].startswith("cannot read")
    assert back.attrs["format"] == "dmms-ragged" and back.attrs["dim"] == 4
    with h5py.File(path) as h5:  # the on-disk contract, read without our reader
        assert h5["offsets"].dtype == np.int64
        assert list(h5["ids"].asstr()[()]) == ids
        assert set(h5) >= {"ids", "offsets", "features", "boxes", "words", "text", "failed_ids", "failed_reasons"}


def test_all_empty_store_keeps_column_shapes(tmp_path):
    store = build(["a", "b"], [0, 0])
    back = read_store(write_store(tmp_path / "e.h5", store))
    assert back.rows["features"].shape == (0, 4) and back.offsets.tolist() == [0, 0, 0]


def test_merged_shards_equal_single_store(tmp_path):
    ids = [f"{i:07d}" for i in range(9)]
    counts = [1, 0, 3, 2, 0, 0, 1, 4, 2]
    whole = build(ids, counts, seed=3, fail={"0000005"})
    parts = []
    for k, (lo, hi) in enumerate([(0, 3), (3, 4), (4, 9)]):
        off = whole.offsets
        part = RaggedStore(ids[lo:hi], off[lo:hi + 1] - off[lo],
                           {n: c[off[lo]:off[hi]] for n, c in whole.rows.items()},
                           {n: c[lo:hi] for n, c in whole.samples.items()},
                           {i: r for i, r in whole.failed.items() if i in ids[lo:hi]}, dict(whole.attrs))
        parts.append(write_store(tmp_path / f"part{k}.h5", part))
    merged = read_store(merge_stores(parts, tmp_path / "merged.h5"))
    single = read_store(write_store(tmp_path / "single.h5", whole))
    assert merged.ids == single.ids
    np.testing.assert_array_equal(merged.offsets, single.offsets)
    for name in single.rows:
        assert np.array_equal(merged.rows[name], single.rows[name])
    assert merged.samples["text"].tolist() == single.samples["text"].tolist()
    assert merged.failed == single.failed


def test_merge_rejects_overlapping_or_mismatched_shards(tmp_path):
    a = write_store(tmp_path / "a.h5", build(["1", "2"], [1, 1]))
    with pytest.raises(ValueError, match="overlap"):
        merge_stores([a, a], tmp_path / "m.h5")
    other = build(["3"], [1], dim=5)
    b = write_store(tmp_path / "b.h5", other)
    with pytest.raises(ValueError, match="dim"):
        merge_stores([a, b], tmp_path / "m.h5")


def test_write_is_atomic_and_validates(tmp_path):
    bad = build(["1", "2"], [1, 2])
    bad.offsets = np.array([0, 2, 1])
    with pytest.raises(ValueError, match="offsets"):
        write_store(tmp_path / "bad.h5", bad)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_read_names_missing_or_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="run its extraction rule"):
        read_store(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = [1]
    with pytest.raises(ValueError, match="not a dmms-ragged store"):
        read_store(tmp_path / "other.h5")


def test_inspect_summary_and_sample(tmp_path, capsys):
    path = write_store(tmp_path / "s.h5", build(["0000001", "0000002"], [2, 0], fail={"0000002"}))
    inspect_main([str(path)])
    out = capsys.readouterr().out
    assert "samples            2  rows 2" in out and "failed             1" in out
    inspect_main([str(path), "0000001"])
    out = capsys.readouterr().out
    assert "sample 0000001: 2 rows" in out and "w0000001_1" in out


def test_cli_merge(tmp_path):
    a = write_store(tmp_path / "a.h5", build(["1"], [2]))
    b = write_store(tmp_path / "b.h5", build(["2"], [1], seed=1))
    assert extract_main(["merge", str(a), str(b), "--out", str(tmp_path / "m.h5")]) == 0
    assert read_store(tmp_path / "m.h5").offsets.tolist() == [0, 2, 3]
