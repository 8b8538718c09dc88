"""The ragged feature store: the only module that writes feature HDF5 files.

Layout (CSR, see docs/DESIGN.md "Feature store"):
    ids       (N,)    utf-8 strings, manifest order
    offsets   (N+1,)  int64, offsets[0] = 0, monotone; sample k owns rows offsets[k]:offsets[k+1]
    row columns      offsets[-1] rows each (features, boxes, scores, labels, words)
    sample columns   N entries each (e.g. OCR `text`)
    failed_ids, failed_reasons   samples whose input could not be processed (zero rows)
    attrs     format, version, extractor, backend, weights, dim, created, config, ...

Row and sample columns live at the file's top level, named as in docs/DESIGN.md; the attrs
`row_columns` and `sample_columns` list which is which. A file lacking the format attr or one of
`REQUIRED`'s datasets, a truncated file or one that is not HDF5 is refused with the path and the
fix (`StoreError`, a ValueError).

Writing streams: `StoreWriter` appends samples to resizable, chunked datasets of a temporary file
(renamed when complete, `core.atomic`; temporaries of writers that died, e.g. by `kill -9`, are
deleted when the same path is written again), so an extraction shard holds a few batches in memory
whatever its size, and `merge_stores` copies shards block by block.
"""

from __future__ import annotations

import glob
import json
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import h5py
import numpy as np

from core.atomic import atomic_write
from core.progress import Progress, alive

FORMAT = "dmms-ragged"
VERSION = 1
STR = h5py.string_dtype("utf-8")
CHUNK_BYTES = 1 << 20  # target size of one HDF5 chunk of a row column
FLUSH_BYTES = 8 << 20  # a writer's buffered rows are written out past this size ...
FLUSH_SAMPLES = 4096  # ... or past this many samples
COPY_BYTES = 16 << 20  # rows copied at a time when merging
REQUIRED = ("ids", "offsets", "failed_ids", "failed_reasons")  # datasets every store has
ColumnSpec = dict[str, tuple[tuple[int, ...], Any]]  # row column -> (trailing shape, dtype)


class StoreError(ValueError):
    """A file that is not a complete feature store; the message names the path and the fix."""


INCOMPLETE = "incomplete store: delete it and rerun its rule"


@dataclass
class RaggedStore:
    """One store held in memory."""

    ids: list[str]
    offsets: np.ndarray  # (N+1,) int64
    rows: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (R, ...) arrays
    samples: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N,) arrays
    failed: dict[str, str] = field(default_factory=dict)  # id -> reason
    attrs: dict[str, Any] = field(default_factory=dict)
    _positions: dict[str, int] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def index(self, sample_id: str) -> int:
        if self._positions is None or len(self._positions) != len(self.ids):
            self._positions = {sid: k for k, sid in enumerate(self.ids)}
        try:
            return self._positions[sample_id]
        except KeyError:
            raise KeyError(f"sample {sample_id!r} is not in this store") from None

    def sample(self, sample_id: str) -> dict[str, Any]:
        """All columns of one sample: its rows and its sample values."""
        k = self.index(sample_id)
        lo, hi = int(self.offsets[k]), int(self.offsets[k + 1])
        out: dict[str, Any] = {name: col[lo:hi] for name, col in self.rows.items()}
        out.update({name: col[k] for name, col in self.samples.items()})
        if sample_id in self.failed:
            out["failed"] = self.failed[sample_id]
        return out


def base_attrs(extractor: str, backend: str, dim: int, config: dict[str, Any],
               weights: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """The attrs every store carries; `weights` is (file name, sha256) pairs."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "extractor": extractor,
        "backend": backend,
        "dim": int(dim),
        "weights": json.dumps([{"file": f, "sha256": s} for f, s in weights]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": json.dumps(config, sort_keys=True, default=str),
    }


def _check(store: RaggedStore) -> None:
    off = store.offsets
    if off.shape != (len(store.ids) + 1,) or off[0] != 0 or np.any(np.diff(off) < 0):
        raise ValueError("offsets must have N+1 entries, start at 0 and never decrease")
    for name, col in store.rows.items():
        if len(col) != off[-1]:
            raise ValueError(f"row column {name!r} has {len(col)} rows, offsets say {off[-1]}")
    for name, col in store.samples.items():
        if len(col) != len(store.ids):
            raise ValueError(f"sample column {name!r} has {len(col)} entries for {len(store.ids)} ids")


def _is_string(dtype: Any) -> bool:
    dtype = np.dtype(dtype)
    return dtype == object or dtype.kind in "US" or h5py.check_string_dtype(dtype) is not None


def _strings_of(values: Any) -> np.ndarray:
    """Any sequence of str / bytes / None as an object array of str (what h5py writes as utf-8)."""
    arr = np.asarray(values, dtype=object).reshape(-1)
    if arr.size and isinstance(arr[0], bytes):
        return np.array([v.decode("utf-8") for v in arr], dtype=object)
    return np.array(["" if v is None else str(v) for v in arr], dtype=object)


def _append(ds: h5py.Dataset, values: np.ndarray) -> None:
    n = ds.shape[0]
    ds.resize(n + len(values), axis=0)
    ds[n:] = values


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete `.NAME.PID.tmp` files left beside `path` by writers that died (`kill -9`, a node
    lost): the ones whose process no longer exists. Called when a store (or shard) is written
    again, so a rerun shard does not leave its predecessor's partial file behind."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


class StoreWriter:
    """Writes one store by appending samples as they come; memory holds only the samples buffered
    since the last flush (at most ~`FLUSH_BYTES` of rows or `FLUSH_SAMPLES` samples).

        writer = StoreWriter(path, {"features": ((dim,), np.float16)})
        writer.add(sample_id, {"features": (n, dim) array}, {"text": "..."})
        writer.fail(sample_id, "reason")
        writer.finish(attrs)  # renames the temporary file to `path`; `abort()` discards it

    Also a context manager: leaving the block by an exception aborts.
    """

    def __init__(self, path: str | Path, row_columns: ColumnSpec, compression: str | None = None) -> None:
        self.path = Path(path)
        self.columns = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in row_columns.items()}
        self.compression = compression
        self.samples = 0  # written and buffered
        self.rows = 0
        self.failures = 0
        self.finished = False
        self._stack = ExitStack()
        remove_stale_temporaries(self.path)
        tmp = self._stack.enter_context(atomic_write(self.path))
        # a chunk cache of a few chunks per column, so appends never re-read a chunk from disk
        self.h5 = h5py.File(tmp, "w", rdcc_nbytes=4 * CHUNK_BYTES * max(1, len(self.columns)))
        self.h5.create_dataset("ids", shape=(0,), maxshape=(None,), dtype=STR, chunks=(FLUSH_SAMPLES,))
        self.h5.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(FLUSH_SAMPLES,))
        for name in ("failed_ids", "failed_reasons"):
            self.h5.create_dataset(name, shape=(0,), maxshape=(None,), dtype=STR, chunks=(256,))
        for name, (shape, dtype) in self.columns.items():
            self._create(name, shape, dtype)
        self.sample_names: list[str] = []
        self._clear()

    def _create(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        if name in self.h5:
            raise ValueError(f"column name {name!r} is used twice (or is a reserved name: ids, offsets, failed_*)")
        string = _is_string(dtype)
        row_bytes = max(1, int(np.prod(shape, dtype=np.int64)) * (16 if string else dtype.itemsize))
        chunk = (max(1, min(CHUNK_BYTES // row_bytes, 1 << 16)), *shape)
        self.h5.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), chunks=chunk,
                               dtype=STR if string else dtype, compression=self.compression)

    def _clear(self) -> None:
        self._ids: list[str] = []
        self._counts: list[int] = []
        self._rows: dict[str, list[np.ndarray]] = {name: [] for name in self.columns}
        self._samples: dict[str, list[Any]] = {name: [] for name in self.sample_names}
        self._failed: list[tuple[str, str]] = []
        self._bytes = 0

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, kind, err, tb) -> None:
        if kind is not None or self.h5:
            self.abort()
        if kind is None and not self.finished:
            raise RuntimeError(f"StoreWriter for {self.path} left without finish(attrs); nothing was written")

    # --- per sample -----------------------------------------------------------------------
    def add(self, sample_id: str, rows: Mapping[str, np.ndarray] | None = None,
            samples: Mapping[str, Any] | None = None) -> None:
        """One sample: row columns of equal length (missing ones only when it has no rows)."""
        rows = {k: np.asarray(v) for k, v in (rows or {}).items()}
        lengths = {len(v) for v in rows.values()}
        if len(lengths) > 1:
            raise ValueError(f"sample {sample_id}: row columns disagree on length {sorted(lengths)}")
        count = lengths.pop() if lengths else 0
        unknown = set(rows) - set(self.columns)
        if unknown:
            raise ValueError(f"sample {sample_id}: row columns {sorted(unknown)} are not declared; "
                             f"add them to the extractor's row_columns()")
        if count:
            missing = set(self.columns) - set(rows)
            if missing:
                raise ValueError(f"sample {sample_id} has {count} rows but no row columns {sorted(missing)}")
            for name, value in rows.items():
                self._rows[name].append(value)
                self._bytes += value.nbytes
        for name in samples or {}:
            if name not in self._samples:
                self._samples[name] = [""] * len(self._ids)  # earlier buffered samples: empty
        for name, values in self._samples.items():
            values.append((samples or {}).get(name, ""))
        self._ids.append(str(sample_id))
        self._counts.append(count)
        self.samples += 1
        self.rows += count
        if self._bytes >= FLUSH_BYTES or len(self._ids) >= FLUSH_SAMPLES:
            self.flush()

    def fail(self, sample_id: str, reason: str, samples: Mapping[str, Any] | None = None) -> None:
        """A sample whose input could not be processed: zero rows, reason kept."""
        self.add(sample_id, None, samples)
        self._failed.append((str(sample_id), str(reason)))
        self.failures += 1

    def flush(self) -> None:
        """Write the buffered samples (`add` and `fail` counted them already)."""
        if not self._ids:
            return
        rows = {name: np.concatenate(parts) if parts else None for name, parts in self._rows.items()}
        samples = {name: _strings_of(values) for name, values in self._samples.items()}
        failed = tuple(zip(*self._failed)) if self._failed else ((), ())
        ids, counts = self._ids, np.asarray(self._counts, np.int64)
        self._clear()
        self._write(ids, counts, rows, samples, failed)

    # --- blocks of samples ------------------------------------------------------------------
    def append(self, ids: Sequence[str] | np.ndarray, counts: np.ndarray, rows: Mapping[str, np.ndarray | None],
               samples: Mapping[str, np.ndarray] | None = None,
               failed: tuple[Sequence[str], Sequence[str]] = ((), ())) -> None:
        """Write a block at once: `counts` (n,) rows per sample, `rows` name -> (sum(counts), ...)
        (None when the block has no rows), `samples` name -> (n,), `failed` (ids, reasons)."""
        self.flush()
        counts = np.asarray(counts, np.int64)
        self._write(ids, counts, rows, samples, failed)
        self.samples += len(counts)
        self.rows += int(counts.sum())
        self.failures += len(failed[0])

    def _write(self, ids: Sequence[str] | np.ndarray, counts: np.ndarray, rows: Mapping[str, np.ndarray | None],
               samples: Mapping[str, np.ndarray] | None, failed: tuple[Sequence[str], Sequence[str]]) -> None:
        """Append a block to the file's datasets; the callers keep the counts."""
        total = int(counts.sum())
        h5 = self.h5
        for name, (shape, dtype) in self.columns.items():
            value = rows.get(name)
            if value is None:
                if total:
                    raise ValueError(f"a block of {total} rows lacks row column {name!r}")
                continue
            if len(value) != total or tuple(value.shape[1:]) != shape:
                raise ValueError(f"row column {name!r}: got shape {value.shape}, expected ({total}, *{shape})")
            _append(h5[name], _strings_of(value).reshape(value.shape) if _is_string(dtype)
                    else np.asarray(value).astype(dtype, copy=False))
        n_before = h5["ids"].shape[0]
        for name, value in (samples or {}).items():
            if name not in self.sample_names:  # a new sample column: empty for earlier samples
                self.sample_names.append(name)
                h5.create_dataset(name, data=np.full(n_before, "", dtype=object), maxshape=(None,),
                                  dtype=STR, chunks=(FLUSH_SAMPLES,), compression=self.compression)
            if len(value) != len(counts):
                raise ValueError(f"sample column {name!r} has {len(value)} entries for {len(counts)} ids")
            _append(h5[name], _strings_of(value))
        for name in self.sample_names:
            if name not in (samples or {}):
                _append(h5[name], np.full(len(counts), "", dtype=object))
        _append(h5["ids"], _strings_of(ids))
        last = int(h5["offsets"][n_before])
        _append(h5["offsets"], last + np.cumsum(counts))
        _append(h5["failed_ids"], _strings_of(failed[0]))
        _append(h5["failed_reasons"], _strings_of(failed[1]))

    # --- the end ----------------------------------------------------------------------------
    def finish(self, attrs: Mapping[str, Any]) -> Path:
        """Write what is buffered and the attrs, then rename the file into place."""
        self.flush()
        attrs = dict(attrs)
        attrs.setdefault("format", FORMAT)
        attrs.setdefault("version", VERSION)
        attrs["row_columns"] = json.dumps(sorted(self.columns))
        attrs["sample_columns"] = json.dumps(sorted(self.sample_names))
        for key, value in attrs.items():
            self.h5.attrs[key] = value
        self.h5.close()
        self.h5 = None
        self._stack.close()  # fsync and rename
        self.finished = True
        return self.path

    def abort(self) -> None:
        """Discard the temporary file."""
        if self.h5:
            self.h5.close()
            self.h5 = None
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


def write_store(path: str | Path, store: RaggedStore, compression: str | None = None) -> Path:
    """Write a store held in memory (atomically, as every store)."""
    _check(store)
    spec = {name: (col.shape[1:], col.dtype) for name, col in store.rows.items()}
    with StoreWriter(path, spec, compression) as writer:
        position = {sid: k for k, sid in enumerate(store.ids)}
        failed = sorted(store.failed.items(), key=lambda kv: position[kv[0]])
        writer.append(store.ids, store.counts, store.rows, store.samples,
                      ([k for k, _ in failed], [v for _, v in failed]))
        return writer.finish(store.attrs)


def _strings(ds: h5py.Dataset) -> np.ndarray:
    return ds.asstr()[()] if len(ds) else np.zeros(0, dtype=object)


def _open(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"feature store {path} does not exist; run its extraction rule first")
    if path.is_dir():
        raise StoreError(f"{path} is a folder; give a store file (results/DATASET/features/FEATURE.h5)")
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:  # h5py's "truncated file: eof = ...", "file signature not found", ...
        text = str(err)
        if "truncated" in text:
            raise StoreError(f"{path}: {INCOMPLETE} (the file ends early: {text.split('(')[-1].rstrip(')')})") from None
        if "signature not found" in text:
            raise StoreError(f"{path} is not an HDF5 file, so not a feature store: give a {FORMAT} store "
                             "(results/DATASET/features/FEATURE.h5, written by python -m extract)") from None
        raise StoreError(f"{path} cannot be opened as a feature store ({text}); if it is one, {INCOMPLETE}") from None
    if h5.attrs.get("format") != FORMAT:
        found = h5.attrs.get("format")
        partial = found is None and "ids" in h5 and "offsets" in h5  # a writer that died before its attrs
        h5.close()
        if partial:
            raise StoreError(f"{path}: {INCOMPLETE} (its writer stopped before writing the attrs)")
        raise StoreError(f"{path} is not a {FORMAT} store (format={found!r}): give a store written by "
                         "python -m extract (results/DATASET/features/FEATURE.h5)")
    missing = [name for name in REQUIRED if name not in h5]
    if missing:
        h5.close()
        raise StoreError(f"{path} lacks datasets {missing} that every {FORMAT} store has; it was not "
                         "written by extract/store.py or was changed since: delete it and rerun its extraction rule")
    return h5


def _attrs(h5: h5py.File) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h5.attrs.items()}


def _failed(h5: h5py.File) -> dict[str, str]:
    return dict(zip(_strings(h5["failed_ids"]), _strings(h5["failed_reasons"])))


def read_store(path: str | Path, columns: Sequence[str] | None = None) -> RaggedStore:
    """Read a whole store (or only the named row/sample columns) into memory."""
    with _open(path) as h5:
        attrs = _attrs(h5)
        row_names = json.loads(attrs.get("row_columns", "[]"))
        sample_names = json.loads(attrs.get("sample_columns", "[]"))
        wanted = set(columns) if columns is not None else None

        def load(name: str) -> np.ndarray:
            ds = h5[name]
            return _strings(ds) if h5py.check_string_dtype(ds.dtype) else ds[()]

        rows = {n: load(n) for n in row_names if wanted is None or n in wanted}
        samples = {n: load(n) for n in sample_names if wanted is None or n in wanted}
        return RaggedStore(list(_strings(h5["ids"])), h5["offsets"][()], rows, samples, _failed(h5), attrs)


def _blocks(offsets: np.ndarray, row_bytes: int) -> Iterator[tuple[int, int]]:
    """Sample ranges [a, b) holding about `COPY_BYTES` of rows and at most 16 x `FLUSH_SAMPLES`
    samples, each at least one sample."""
    n = len(offsets) - 1
    per_block = max(1, COPY_BYTES // max(1, row_bytes))
    a = 0
    while a < n:
        b = int(np.searchsorted(offsets, offsets[a] + per_block, side="right")) - 1
        b = min(n, a + 16 * FLUSH_SAMPLES, max(b, a + 1))
        yield a, b
        a = b


def _check_shards(paths: Sequence[str | Path]) -> tuple[dict[str, Any], ColumnSpec, list[str], int]:
    """The merged store's attrs, row column specs, sample column names and sample count; errors on
    shards that cannot be merged (other columns, extractor, backend or dim; overlapping ids)."""
    first_attrs: dict[str, Any] = {}
    spec: ColumnSpec = {}
    sample_names: list[str] = []
    ids: list[np.ndarray] = []
    vocab, dims = [], []
    for k, p in enumerate(paths):
        with _open(p) as h5:
            attrs = _attrs(h5)
            rows = json.loads(attrs.get("row_columns", "[]"))
            samples = json.loads(attrs.get("sample_columns", "[]"))
            this = {n: (h5[n].shape[1:], h5[n].dtype) for n in rows}
            if k == 0:
                first_attrs, spec = attrs, this
            elif set(this) != set(spec):
                raise ValueError(f"shard {p} has other row columns than {paths[0]}: "
                                 f"{sorted(this)} vs {sorted(spec)}; were they extracted with the same extractor?")
            # a sample column no sample of a shard had (e.g. an empty shard) is '' there
            sample_names += [n for n in samples if n not in sample_names]
            index_store = "vocab_size" in first_attrs  # its dim is the vocabulary seen by each shard
            for key in ("extractor", "backend", "feature", "input") + (() if index_store else ("dim",)):
                if attrs.get(key) != first_attrs.get(key):
                    raise ValueError(f"shard {p} differs from {paths[0]} in {key}")
            for name, (shape, dtype) in this.items():
                if shape != spec[name][0] or (dtype != spec[name][1] and not
                                              (_is_string(dtype) and _is_string(spec[name][1]))):
                    raise ValueError(f"shard {p}: row column {name!r} is {dtype} {shape}, "
                                     f"{paths[0]} has {spec[name][1]} {spec[name][0]}; re-extract one of them")
            ids.append(np.asarray(h5["ids"][()], dtype=bytes))  # compact: N x longest id bytes
            vocab.append(int(attrs.get("vocab_size", 0)))
            dims.append(int(attrs.get("dim", 0)))
    every = np.concatenate(ids)
    if len(np.unique(every)) != len(every):
        raise ValueError("shards overlap: some ids appear in more than one shard")
    attrs = dict(first_attrs)
    attrs["shards"] = len(paths)
    if "vocab_size" in attrs:  # index stores: the vocabulary covers every shard's indices
        attrs["vocab_size"], attrs["dim"] = max(vocab), max(dims)
    return attrs, spec, sample_names, len(every)


def merge_stores(paths: Sequence[str | Path], out: str | Path, compression: str | None = None,
                 progress: bool = False) -> Path:
    """Concatenate shards in the given order (rows appended, offsets shifted), copying about
    `COPY_BYTES` of rows at a time: memory stays small whatever the shards' size. `progress`:
    progress lines on stderr (`core.progress`), counted in samples."""
    if not paths:
        raise ValueError("merge needs at least one shard")
    attrs, spec, sample_names, total = _check_shards(paths)
    with ExitStack() as stack:
        counter = stack.enter_context(Progress(f"merge {len(paths)} shards", total)) if progress else None
        writer = stack.enter_context(StoreWriter(out, spec, compression))
        for p in paths:
            with _open(p) as h5:
                offsets = h5["offsets"][()]
                row_bytes = sum(h5[n].dtype.itemsize * int(np.prod(h5[n].shape[1:])) for n in spec)
                for a, b in _blocks(offsets, row_bytes):
                    lo, hi = int(offsets[a]), int(offsets[b])
                    rows = {n: h5[n][lo:hi] for n in spec}
                    samples = {n: h5[n][a:b] for n in sample_names if n in h5}
                    writer.append(h5["ids"][a:b], np.diff(offsets[a:b + 1]), rows, samples)
                    if counter is not None:
                        counter.update(b - a)
                failed = _failed(h5)
                writer.append([], np.zeros(0, np.int64), {}, {}, (list(failed), list(failed.values())))
        return writer.finish(attrs)


def read_attrs(path: str | Path) -> dict[str, Any]:
    """A store's attrs alone."""
    with _open(path) as h5:
        return _attrs(h5)


def column_info(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Row and sample column name -> (dtype, shape), read without loading the data."""
    with _open(path) as h5:
        names = json.loads(h5.attrs.get("row_columns", "[]")) + json.loads(h5.attrs.get("sample_columns", "[]"))
        return {n: ("str" if h5py.check_string_dtype(h5[n].dtype) else str(h5[n].dtype), tuple(h5[n].shape))
                for n in names}


def read_sample(path: str | Path, sample_id: str) -> dict[str, Any]:
    """One sample's rows and sample values (and `failed` when it failed), reading only those."""
    with _open(path) as h5:
        ids = np.asarray(h5["ids"][()], dtype=bytes)
        where = np.flatnonzero(ids == str(sample_id).encode("utf-8"))
        if not len(where):
            raise KeyError(f"sample {sample_id!r} is not in {path}")
        k = int(where[0])
        lo, hi = (int(v) for v in h5["offsets"][k:k + 2])
        out: dict[str, Any] = {}
        for name in json.loads(h5.attrs.get("row_columns", "[]")):
            ds = h5[name]
            out[name] = ds.asstr()[lo:hi] if h5py.check_string_dtype(ds.dtype) else ds[lo:hi]
        for name in json.loads(h5.attrs.get("sample_columns", "[]")):
            out[name] = h5[name].asstr()[k]
        failed = _failed(h5)
        if str(sample_id) in failed:
            out["failed"] = failed[str(sample_id)]
        return out
