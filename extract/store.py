"""The ragged feature store: the only module that writes feature HDF5 files.

Layout (CSR, see DESIGN.md "Feature store"):
    ids       (N,)    utf-8 strings, manifest order
    offsets   (N+1,)  int64, offsets[0] = 0, monotone; sample k owns rows offsets[k]:offsets[k+1]
    rows/...  row-aligned columns, offsets[-1] rows each (features, boxes, scores, labels, words)
    samples/... sample-aligned columns, N entries each (e.g. OCR `text`)
    failed_ids, failed_reasons   samples whose input could not be processed (zero rows)
    attrs     format, version, extractor, backend, weights, dim, created, config, ...

Row and sample columns live at the file's top level, named as in DESIGN.md; the attrs
`row_columns` and `sample_columns` list which is which.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import h5py
import numpy as np

FORMAT = "dmms-ragged"
VERSION = 1
STR = h5py.string_dtype("utf-8")


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


class StoreBuilder:
    """Collects per-sample outputs in manifest order, then writes one store."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.counts: list[int] = []
        self.row_parts: dict[str, list[np.ndarray]] = {}
        self.sample_values: dict[str, list[Any]] = {}
        self.failed: dict[str, str] = {}

    def add(self, sample_id: str, rows: dict[str, np.ndarray] | None = None,
            samples: dict[str, Any] | None = None) -> None:
        rows = rows or {}
        n = {len(v) for v in rows.values()}
        if len(n) > 1:
            raise ValueError(f"sample {sample_id}: row columns disagree on length {sorted(n)}")
        count = n.pop() if n else 0
        for name, value in rows.items():
            self.row_parts.setdefault(name, []).append(np.asarray(value))
        for name, value in (samples or {}).items():
            self.sample_values.setdefault(name, [None] * len(self.ids)).append(value)
        self.ids.append(sample_id)
        self.counts.append(count)
        for values in self.sample_values.values():
            if len(values) < len(self.ids):
                values.append(None)

    def fail(self, sample_id: str, reason: str, samples: dict[str, Any] | None = None) -> None:
        """Record a sample whose input could not be processed: zero rows, reason kept."""
        self.add(sample_id, None, samples)
        self.failed[sample_id] = reason

    def build(self, attrs: dict[str, Any], empty_rows: dict[str, tuple[tuple[int, ...], Any]]) -> RaggedStore:
        """`empty_rows` gives (trailing shape, dtype) per row column, used when no sample had rows."""
        offsets = np.zeros(len(self.ids) + 1, dtype=np.int64)
        np.cumsum(self.counts, out=offsets[1:])
        rows: dict[str, np.ndarray] = {}
        for name, (shape, dtype) in empty_rows.items():
            parts = [p for p in self.row_parts.get(name, []) if len(p)]
            rows[name] = (np.concatenate(parts).astype(dtype, copy=False) if parts
                          else np.zeros((0, *shape), dtype=dtype))
        samples = {}
        for name, values in self.sample_values.items():
            samples[name] = np.array(["" if v is None else v for v in values], dtype=object)
        return RaggedStore(list(self.ids), offsets, rows, samples, dict(self.failed), attrs)


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


def _dataset(h5: h5py.File, name: str, data: np.ndarray, compression: str | None) -> None:
    if data.dtype == object or data.dtype.kind in "US":
        h5.create_dataset(name, data=np.asarray(data, dtype=object).astype(str).astype(object)
                          if len(data) else np.zeros(data.shape, dtype=object), dtype=STR)
    else:
        kwargs = {"compression": compression} if compression and data.size else {}
        h5.create_dataset(name, data=data, **kwargs)


def write_store(path: str | Path, store: RaggedStore, compression: str | None = None) -> Path:
    """Write atomically: a temporary file in the same folder, renamed when complete."""
    _check(store)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("ids", data=np.array(store.ids, dtype=object), dtype=STR)
            h5.create_dataset("offsets", data=store.offsets.astype(np.int64))
            for name, col in store.rows.items():
                _dataset(h5, name, col, compression)
            for name, col in store.samples.items():
                _dataset(h5, name, col, compression)
            failed = sorted(store.failed.items(), key=lambda kv: store.index(kv[0]))
            h5.create_dataset("failed_ids", data=np.array([k for k, _ in failed], dtype=object), dtype=STR)
            h5.create_dataset("failed_reasons", data=np.array([v for _, v in failed], dtype=object), dtype=STR)
            attrs = dict(store.attrs)
            attrs.setdefault("format", FORMAT)
            attrs.setdefault("version", VERSION)
            attrs["row_columns"] = json.dumps(sorted(store.rows))
            attrs["sample_columns"] = json.dumps(sorted(store.samples))
            for key, value in attrs.items():
                h5.attrs[key] = value
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _strings(ds: h5py.Dataset) -> np.ndarray:
    return ds.asstr()[()] if len(ds) else np.zeros(0, dtype=object)


def read_store(path: str | Path, columns: Sequence[str] | None = None) -> RaggedStore:
    """Read a whole store (or only the named row/sample columns) into memory."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"feature store {path} does not exist; run its extraction rule first")
    with h5py.File(path, "r") as h5:
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h5.attrs.items()}
        if attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} store (format={attrs.get('format')!r})")
        row_names = json.loads(attrs.get("row_columns", "[]"))
        sample_names = json.loads(attrs.get("sample_columns", "[]"))
        wanted = set(columns) if columns is not None else None

        def load(name: str) -> np.ndarray:
            ds = h5[name]
            return _strings(ds) if h5py.check_string_dtype(ds.dtype) else ds[()]

        rows = {n: load(n) for n in row_names if wanted is None or n in wanted}
        samples = {n: load(n) for n in sample_names if wanted is None or n in wanted}
        failed = dict(zip(_strings(h5["failed_ids"]), _strings(h5["failed_reasons"])))
        return RaggedStore(list(_strings(h5["ids"])), h5["offsets"][()], rows, samples, failed, attrs)


def merge_stores(paths: Sequence[str | Path], out: str | Path, compression: str | None = None) -> Path:
    """Concatenate shards in the given order: rows appended, offsets shifted."""
    if not paths:
        raise ValueError("merge needs at least one shard")
    shards = [read_store(p) for p in paths]
    first = shards[0]
    for p, s in zip(paths, shards):
        if set(s.rows) != set(first.rows) or set(s.samples) != set(first.samples):
            raise ValueError(f"shard {p} has other columns than {paths[0]}")
        index_store = "vocab_size" in first.attrs  # its dim is the vocabulary seen by each shard
        for key in ("extractor", "backend") + (() if index_store else ("dim",)):
            if s.attrs.get(key) != first.attrs.get(key):
                raise ValueError(f"shard {p} differs from {paths[0]} in {key}")
    ids = [i for s in shards for i in s.ids]
    if len(set(ids)) != len(ids):
        raise ValueError("shards overlap: some ids appear in more than one shard")
    offsets = [np.zeros(1, dtype=np.int64)]
    base = 0
    for s in shards:
        offsets.append(s.offsets[1:] + base)
        base += int(s.offsets[-1])
    rows = {n: np.concatenate([s.rows[n] for s in shards]) for n in first.rows}
    samples = {n: np.concatenate([s.samples[n] for s in shards]) for n in first.samples}
    failed = {k: v for s in shards for k, v in s.failed.items()}
    attrs = dict(first.attrs)
    attrs["shards"] = len(shards)
    if "vocab_size" in attrs:  # index stores: the vocabulary covers every shard's indices
        attrs["vocab_size"] = max(int(s.attrs["vocab_size"]) for s in shards)
        attrs["dim"] = max(int(s.attrs["dim"]) for s in shards)
    merged = RaggedStore(ids, np.concatenate(offsets), rows, samples, failed, attrs)
    return write_store(out, merged, compression)
