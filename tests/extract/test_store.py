"""The ragged store: round trips, empty sets, failures, shard merging, inspect."""

from __future__ import annotations

import tracemalloc

import h5py
import numpy as np
import pytest

from extract.__main__ import main as extract_main
from extract.inspect import main as inspect_main
import extract.store as store_module
from extract.store import (RaggedStore, StoreWriter, base_attrs, merge_stores, read_attrs, read_sample, read_store,
                           write_store)
from tests.builders import StoreBuilder


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


def test_store_without_failure_datasets_is_refused(tmp_path):
    """Every writer records failures; a file without failed_ids/_reasons was not written by
    store.py (no such store ever shipped), so readers and merging refuse it with the fix."""
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("ids", data=np.array(["a", "b"], dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("offsets", data=np.array([0, 1, 3], np.int64))
        h5.create_dataset("features", data=np.arange(12, dtype=np.float16).reshape(3, 4))
        h5.attrs.update({"format": "dmms-ragged", "version": 1, "extractor": "image", "backend": "b",
                         "dim": 4, "row_columns": '["features"]', "sample_columns": "[]"})
    for read in (read_store, read_attrs, lambda p: merge_stores([p], tmp_path / "m.h5")):
        with pytest.raises(ValueError, match=r"old\.h5 lacks datasets \['failed_ids', 'failed_reasons'\].*rerun"):
            read(path)
    assert not (tmp_path / "m.h5").exists()


def test_writer_counts_each_sample_once_across_flushes(tmp_path, monkeypatch):
    """`add`/`fail` count when buffering, `append` when writing; a flush in between counts nothing."""
    monkeypatch.setattr(store_module, "FLUSH_SAMPLES", 2)  # add() flushes every second sample
    spec = {"features": ((4,), np.float16)}
    with StoreWriter(tmp_path / "w.h5", spec) as writer:
        writer.add("1", {"features": np.ones((2, 4))})
        writer.add("2", {"features": np.ones((1, 4))})  # flushed here
        writer.fail("3", "unreadable")
        assert (writer.samples, writer.rows, writer.failures) == (3, 3, 1)
        writer.append(["4", "5"], np.array([1, 0]), {"features": np.ones((1, 4))})  # flushes "3" first
        assert (writer.samples, writer.rows, writer.failures) == (5, 4, 1)
        writer.flush()
        assert (writer.samples, writer.rows, writer.failures) == (5, 4, 1)
        path = writer.finish({"extractor": "image", "backend": "b", "dim": 4})
    back = read_store(path)
    assert back.ids == ["1", "2", "3", "4", "5"] and back.counts.tolist() == [2, 1, 0, 1, 0]
    assert back.failed == {"3": "unreadable"}


def test_read_only_some_columns(tmp_path):
    path = write_store(tmp_path / "s.h5", build(["1", "2"], [2, 1]))
    only = read_store(path, columns=["boxes"])
    assert set(only.rows) == {"boxes"} and only.samples == {} and only.offsets.tolist() == [0, 2, 3]
    assert read_store(path, columns=[]).rows == {}


@pytest.fixture
def small_blocks(monkeypatch):
    """Flush and copy every few samples / KB, so that a small test crosses many block borders."""
    monkeypatch.setattr(store_module, "FLUSH_SAMPLES", 7)
    monkeypatch.setattr(store_module, "FLUSH_BYTES", 1000)
    monkeypatch.setattr(store_module, "COPY_BYTES", 500)


def test_streamed_writer_equals_store_written_at_once(tmp_path, small_blocks):
    ids = [f"{i:05d}" for i in range(60)]
    counts = [i % 4 for i in range(60)]
    whole = build(ids, counts, seed=5, fail={"00013", "00040"})
    spec = {n: (c.shape[1:], c.dtype) for n, c in whole.rows.items()}
    writer = StoreWriter(tmp_path / "streamed.h5", spec)
    for k, sid in enumerate(ids):
        if sid in whole.failed:
            writer.fail(sid, whole.failed[sid], samples={"text": ""})
            continue
        lo, hi = whole.offsets[k], whole.offsets[k + 1]
        extra = {"late": "L"} if k == 50 else {}  # a sample column first seen after some flushes
        writer.add(sid, {n: c[lo:hi] for n, c in whole.rows.items()}, {"text": whole.samples["text"][k], **extra})
    writer.finish(whole.attrs)
    streamed = read_store(tmp_path / "streamed.h5")
    assert streamed.ids == ids and streamed.failed == whole.failed
    np.testing.assert_array_equal(streamed.offsets, whole.offsets)
    for name, col in whole.rows.items():
        assert np.array_equal(streamed.rows[name], col), name
    assert streamed.samples["text"].tolist() == whole.samples["text"].tolist()
    assert streamed.samples["late"].tolist() == [""] * 50 + ["L"] + [""] * 9
    with h5py.File(tmp_path / "streamed.h5") as h5:
        assert h5["features"].chunks is not None and h5["features"].maxshape == (None, 4)


def test_merge_copies_in_blocks(tmp_path, small_blocks):
    ids = [f"{i:05d}" for i in range(40)]
    whole = build(ids, [(i * 7) % 5 for i in range(40)], seed=2, fail={"00003", "00031"})
    parts = []
    for k, (lo, hi) in enumerate([(0, 17), (17, 18), (18, 40)]):
        off = whole.offsets
        part = RaggedStore(ids[lo:hi], off[lo:hi + 1] - off[lo],
                           {n: c[off[lo]:off[hi]] for n, c in whole.rows.items()},
                           {n: c[lo:hi] for n, c in whole.samples.items()},
                           {i: r for i, r in whole.failed.items() if i in ids[lo:hi]}, dict(whole.attrs))
        parts.append(write_store(tmp_path / f"p{k}.h5", part))
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        if self.name == "/features":
            reads.append(key)
        return original(self, key)

    h5py.Dataset.__getitem__ = spy
    try:
        merge_stores(parts, tmp_path / "m.h5")
    finally:
        h5py.Dataset.__getitem__ = original
    # block by block (COPY_BYTES / 40 bytes a row = 12 rows), never a shard at once
    assert len(reads) >= 6 and all(k.stop - k.start <= 12 for k in reads), reads
    merged = read_store(tmp_path / "m.h5")
    assert merged.ids == ids and merged.failed == whole.failed and merged.attrs["shards"] == 3
    np.testing.assert_array_equal(merged.offsets, whole.offsets)
    for name, col in whole.rows.items():
        assert np.array_equal(merged.rows[name], col), name


def test_merge_memory_is_a_fraction_of_the_store(tmp_path, monkeypatch):
    """Peak allocations while merging 4 x 6 MB shards, 1 MB at a time, stay under 25% of the
    store (reading the shards whole, as merging did before, peaks above 100%)."""
    monkeypatch.setattr(store_module, "COPY_BYTES", 1 << 20)
    n, dim = 6000, 512
    rng = np.random.default_rng(0)
    paths = []
    for k in range(4):
        feats = rng.standard_normal((n, dim)).astype(np.float16)
        store = RaggedStore([f"{k}-{i}" for i in range(n)], np.arange(n + 1), {"features": feats},
                            attrs=base_attrs("image", "b", dim, {}))
        paths.append(write_store(tmp_path / f"s{k}.h5", store))
    size = 4 * n * dim * 2
    tracemalloc.start()
    try:
        merge_stores(paths, tmp_path / "m.h5")
        peak = tracemalloc.get_traced_memory()[1]
        print(f"merge peak {peak / size:.1%} of the store")
    finally:
        tracemalloc.stop()
    assert peak < 0.25 * size, f"merge peaked at {peak / size:.0%} of the store's size"
    assert read_store(tmp_path / "m.h5").rows["features"].shape == (4 * n, dim)


def test_merge_rejects_other_dtypes(tmp_path):
    a = write_store(tmp_path / "a.h5", build(["1"], [1]))
    other = build(["2"], [1])
    other.rows["features"] = other.rows["features"].astype(np.float16)
    b = write_store(tmp_path / "b.h5", other)
    with pytest.raises(ValueError, match="re-extract"):
        merge_stores([a, b], tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_writer_leaves_nothing_on_error(tmp_path):
    spec = {"features": ((2,), np.float32)}
    with pytest.raises(ValueError, match="not declared"):
        with StoreWriter(tmp_path / "s.h5", spec) as w:
            w.add("a", {"features": np.ones((1, 2)), "extra": np.ones(1)})
    with pytest.raises(ValueError, match="disagree"):
        with StoreWriter(tmp_path / "s.h5", spec) as w:
            w.add("a", {"features": np.ones((1, 2))})
            w.add("b", {"features": np.ones((2, 2)), "boxes": np.ones((1, 4))})
    with pytest.raises(RuntimeError, match="without finish"):
        with StoreWriter(tmp_path / "s.h5", spec) as w:
            w.add("a", {"features": np.ones((1, 2))})
    assert list(tmp_path.iterdir()) == []


def test_read_sample_reads_one_sample(tmp_path):
    path = write_store(tmp_path / "s.h5", build(["a", "b", "c"], [2, 0, 3], fail={"b"}))
    whole = read_store(path)
    for sid in ("a", "b", "c"):
        one, ref = read_sample(path, sid), whole.sample(sid)
        assert set(one) == set(ref)
        for name, value in ref.items():
            assert np.array_equal(np.asarray(one[name]), np.asarray(value)), (sid, name)
    assert read_sample(path, "b")["failed"].startswith("cannot read")
    with pytest.raises(KeyError, match="not in"):
        read_sample(path, "zzz")


def test_empty_shard_merges(tmp_path):
    """More shards than samples leaves a shard with no samples (and no sample columns)."""
    spec = {"features": ((4,), np.float32), "boxes": ((4,), np.float32), "words": ((), object)}
    empty = StoreWriter(tmp_path / "empty.h5", spec)
    empty.finish(base_attrs("test", "none", 4, {}))
    full = write_store(tmp_path / "full.h5", build(["1", "2"], [2, 1], fail={"2"}))
    merged = read_store(merge_stores([tmp_path / "empty.h5", full, tmp_path / "empty.h5"], tmp_path / "m.h5"))
    assert merged.ids == ["1", "2"] and merged.offsets.tolist() == [0, 2, 2]
    assert merged.samples["text"].tolist() == ["w1_0 w1_1", ""] and merged.failed == {"2": "cannot read 2.jpeg"}


def test_merge_rejects_shards_of_another_feature_or_input(tmp_path):
    first, second = build(["1"], [1]), build(["2"], [1])
    first.attrs.update(feature="text", input="manifest")
    second.attrs.update(feature="ocr_text", input="ocr")
    a, b = write_store(tmp_path / "a.h5", first), write_store(tmp_path / "b.h5", second)
    with pytest.raises(ValueError, match="differs from .* in feature"):
        merge_stores([a, b], tmp_path / "m.h5")


def test_rewriting_a_store_removes_the_temporary_of_a_killed_writer(tmp_path):
    """`kill -9` during extraction leaves `.NAME.h5.PID.tmp`; the shard's rerun deletes it, and
    keeps the temporary of a writer that is still running."""
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "1-of-2.h5"
    code = ("import sys, time, numpy as np\n"
            "from extract.store import StoreWriter\n"
            f"w = StoreWriter({str(path)!r}, {{'features': ((2,), np.float32)}})\n"
            "w.add('a', {'features': np.ones((3, 2), np.float32)}); w.flush()\n"
            "print('ready', flush=True); time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    stale = tmp_path / f".{path.name}.{writer.pid}.tmp"
    assert stale.exists() and not path.exists()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = tmp_path / f".{path.name}.{alive.pid}.tmp"
        running.write_bytes(b"partial")
        write_store(path, build(["1", "2"], [1, 2]))
        assert not stale.exists() and running.exists()
        assert read_store(path).ids == ["1", "2"]
    finally:
        alive.kill()
        alive.wait()
