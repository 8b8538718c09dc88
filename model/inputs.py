"""What a training run reads, in the order it reads it: the manifest's classes, targets and
train/dev/test rows; each feature's store as a CSR table aligned to the manifest (and the record
of what produced the store); batches of samples packed into sets.

A `FeatureTable` is one feature aligned to manifest order: sample k owns rows
`offsets[k]:offsets[k+1]` of `values` (zero rows = modality absent). Dense features have
`values` (R, M) (kept in the store's dtype, cast to float32 per batch); index features have
`values` (R,) int64 vocabulary indices, and all indices of a sample form ONE set element.

`offsets` always live on the CPU: a batch is planned there (row positions, set ids) without
waiting for the device. `values` live on the training device, or in host memory (pinned when the
device is a GPU) when they do not fit; then each batch's rows are gathered on the host and
copied asynchronously on a side stream, one batch ahead (`Batches`).
"""

from __future__ import annotations

import json
import math
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from extract.store import RaggedStore, read_attrs, read_store
from model.options import FeatureSpec

# ---------------------------------------------------------------------------------------------
# the manifest: classes, targets, splits

NAMED_SPLITS = ("train", "dev", "test")


def split_labels(labels: pd.Series) -> list[list[str]]:
    """`a|b` -> ["a", "b"]; empty -> []."""
    return [[name.strip() for name in value.split("|") if name.strip()] for value in labels]


def class_names(labels: pd.Series, fixed: str = "") -> list[str]:
    """`fixed` (`|`-joined) when given, else every name by descending frequency, then by name."""
    if fixed.strip():
        names = [n.strip() for n in fixed.split("|") if n.strip()]
        if len(set(names)) != len(names):
            raise ValueError(f"option classes={fixed!r} names a class twice")
        return names
    counts = Counter(name for names in split_labels(labels) for name in names)
    if not counts:
        raise ValueError("the manifest has no labels at all; fill its `labels` column "
                         "or fix the class list with --set classes=A|B")
    return sorted(counts, key=lambda name: (-counts[name], name))


def target_matrix(labels: pd.Series, classes: list[str]) -> np.ndarray:
    """(N, C) float32 multi-hot targets; names outside `classes` are ignored."""
    column = {name: j for j, name in enumerate(classes)}
    lists = split_labels(labels)
    rows = np.repeat(np.arange(len(lists)), [len(names) for names in lists])
    cols = np.array([column.get(name, -1) for names in lists for name in names], dtype=np.int64)
    targets = np.zeros((len(lists), len(classes)), dtype=np.float32)
    known = cols >= 0
    targets[rows[known], cols[known]] = 1.0
    return targets


def _as_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


DEV_SEED = 2003_01607  # with the fold number, seeds the dev carve (the paper's arXiv id)


def carve_dev(rows: np.ndarray, strata: np.ndarray, fraction: float,
              rng: np.random.Generator, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split row positions `rows` into (train, dev): dev is floor(fraction * len(rows)) rows,
    stratified on `strata` (N,) (largest remainders get the leftover places; ties at random).

    Each manifest row gets a random key drawn in the row order `order` (N,) (ids sorted, so the
    carve does not depend on the manifest's row order); each stratum gives its lowest keys.
    """
    size = math.floor(fraction * len(rows) + 1e-9)
    keys = np.empty(len(strata))
    keys[order] = rng.random(len(strata))
    names, stratum = np.unique(strata[rows].astype(str), return_inverse=True)
    share = fraction * np.bincount(stratum, minlength=len(names))  # (S,) wanted dev rows
    quota = np.floor(share + 1e-9).astype(np.int64)
    leftover = size - int(quota.sum())
    if leftover > 0:
        by_remainder = np.lexsort((rng.random(len(names)), -(share - quota)))
        quota[by_remainder[:leftover]] += 1
    ranked = rows[np.lexsort((keys[rows], stratum))]  # by stratum, then key
    ranked_stratum = np.sort(stratum, kind="stable")
    first = np.searchsorted(ranked_stratum, np.arange(len(names)))
    rank = np.arange(len(ranked)) - first[ranked_stratum]  # position within its stratum
    dev = np.sort(ranked[rank < quota[ranked_stratum]])
    return np.setdiff1d(rows, dev), dev


def select_splits(split: pd.Series, fold: int | None, source: str = "manifest",
                  dev_fraction: float = 0.1, strata: pd.Series | None = None,
                  ids: pd.Series | None = None) -> dict[str, np.ndarray]:
    """Row positions of train/dev/test.

    Named splits (`train`/`dev`/`test`) are used as they are; without any `dev` row (a table with
    train and test only), dev is carved from train as below, seeded by DEV_SEED alone. Integer folds (cross-validation)
    need `fold`: test = that fold; train = every other fold, less a dev set of
    floor(`dev_fraction` x those rows) carved from them, stratified on `strata` (the Ads fine
    class; None: not stratified) and seeded by the fold alone (every seed and pool of a fold gets
    the same dev set), over rows ordered by `ids` when given. `dev_fraction=0`: no dev set (the
    trainer then keeps the last epoch); its range, [0, 0.5], is checked once, by
    `TrainOptions.validate`. Rows with an empty split are left out.
    """
    values = split.astype(str).str.strip().to_numpy()
    used = values != ""
    distinct = sorted(set(values[used]))
    ints = [_as_int(v) for v in distinct]
    if distinct and all(i is not None for i in ints):
        folds = sorted(set(ints))
        if fold is None:
            raise ValueError(f"{source} uses cross-validation folds {folds}; "
                             "choose the test fold with --set fold=K (in the workflow: set "
                             f"`folds: {len(folds)}` in the dataset's section)")
        if fold not in folds:
            raise ValueError(f"fold={fold} is not one of the folds {folds} in {source}")
        if len(folds) < 2:
            raise ValueError(f"{source} has {len(folds)} fold; cross-validation needs at least 2")
        number = np.array([_as_int(v) if v else -1 for v in values])
        rest = np.flatnonzero(used & (number != fold))
        train, dev = _carve(rest, fold, dev_fraction, strata, ids, len(values))
        return {"train": train, "dev": dev, "test": np.flatnonzero(number == fold)}
    unknown = [v for v in distinct if v not in NAMED_SPLITS]
    if unknown:
        raise ValueError(f"{source} has split value(s) {unknown[:5]}; use train/dev/test "
                         "or integer fold numbers")
    if fold is not None:
        raise ValueError(f"{source} has named train/dev/test splits; drop the fold={fold} option")
    chosen = {name: np.flatnonzero(values == name) for name in NAMED_SPLITS}
    if not len(chosen["dev"]):
        chosen["train"], chosen["dev"] = _carve(chosen["train"], None, dev_fraction, strata, ids, len(values))
    return chosen


def _carve(rows: np.ndarray, fold: int | None, dev_fraction: float, strata: pd.Series | None,
           ids: pd.Series | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`carve_dev` of `rows`, seeded by DEV_SEED and the fold (none: named splits)."""
    labels = np.zeros(n, dtype=np.int64) if strata is None else strata.astype(str).to_numpy()
    order = np.arange(n) if ids is None else np.argsort(ids.astype(str).to_numpy(), kind="stable")
    rng = np.random.default_rng([DEV_SEED] if fold is None else [DEV_SEED, fold % 2**32])
    return carve_dev(rows, labels, dev_fraction, rng, order)


# ---------------------------------------------------------------------------------------------
# the stores: one CSR table per feature, aligned to the manifest


@dataclass(frozen=True)
class FeatureInfo:
    """What a model needs to know about a feature."""

    name: str
    kind: str  # "dense" or "index"
    input_dim: int  # M_i for dense, |V| for index


@dataclass
class FeatureTable:
    info: FeatureInfo
    offsets: Tensor  # (N+1,) int64, on the CPU
    values: Tensor  # (R, M) dense or (R,) int64 index; on the device or in host memory

    def __post_init__(self) -> None:
        self.offsets = self.offsets.cpu()

    @property
    def counts(self) -> Tensor:
        return self.offsets[1:] - self.offsets[:-1]  # (N,)

    def to(self, device: torch.device | str) -> "FeatureTable":
        """Values moved to `device`; offsets stay on the CPU."""
        return FeatureTable(self.info, self.offsets, self.values.to(device))

    def pinned(self) -> "FeatureTable":
        """Values in page-locked host memory (for asynchronous copies to a GPU)."""
        return FeatureTable(self.info, self.offsets, self.values.pin_memory())


def align_rows(store_ids: Sequence[str], store_offsets: np.ndarray,
               wanted_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the store for `wanted_ids` in their order: `(rows (R',), offsets (N+1,))`.

    Ids missing from the store get zero rows."""
    index = pd.Index(list(store_ids))
    if not index.is_unique:
        raise ValueError("the store lists some id more than once")
    pos = index.get_indexer(list(wanted_ids))  # (N,), -1 = missing
    present = pos >= 0
    store_counts = np.diff(store_offsets)
    counts = np.where(present, store_counts[np.maximum(pos, 0)], 0).astype(np.int64)  # (N,)
    starts = np.where(present, store_offsets[np.maximum(pos, 0)], 0).astype(np.int64)  # (N,)
    offsets = np.zeros(len(pos) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    rows = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1], dtype=np.int64)
    return rows, offsets


def cap_rows(offsets: np.ndarray, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most `limit` rows per sample, a random subset (original order kept) when more.

    Returns `(keep (R',) row positions, new offsets (N+1,))`."""
    counts = np.diff(offsets)
    total = int(offsets[-1])
    if limit <= 0 or total == 0 or counts.max() <= limit:
        return np.arange(total, dtype=np.int64), offsets
    owner = np.repeat(np.arange(len(counts)), counts)  # (R,)
    order = np.lexsort((rng.random(total), owner))  # grouped by sample, shuffled inside
    rank = np.arange(total) - offsets[owner]  # rank of order[i] inside its (same) sample
    keep = np.sort(order[rank < limit])
    new = np.zeros_like(offsets)
    np.cumsum(np.minimum(counts, limit), out=new[1:])
    return keep.astype(np.int64), new


def collapse_rows(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's rows replaced by their mean: `(means (N', M) float32, offsets (N+1,))`, one
    row per sample that has rows (N' of them), none for an empty one (still absent)."""
    counts = np.diff(offsets)  # (N,)
    present = counts > 0
    if not present.any():
        return np.zeros((0, *values.shape[1:]), np.float32), np.zeros_like(offsets)
    sums = np.add.reduceat(values.astype(np.float32), offsets[:-1][present], axis=0)  # (N', M)
    new = np.zeros_like(offsets)
    np.cumsum(present, out=new[1:])
    return sums / counts[present].astype(np.float32).reshape(-1, *([1] * (values.ndim - 1))), new


def _column(store: RaggedStore, spec: FeatureSpec) -> tuple[str, str]:
    """(column name, kind) of the feature in its store (read with only the wanted columns)."""
    if spec.column is not None:
        if spec.column not in store.rows:
            present = json.loads(store.attrs.get("row_columns", "[]"))
            raise ValueError(f"feature {spec.name}: store {spec.path} has no row column "
                             f"{spec.column!r} (it has {sorted(present)})")
        column = spec.column
    elif "features" in store.rows:
        column = "features"
    elif "labels" in store.rows:
        column = "labels"
    else:
        present = json.loads(store.attrs.get("row_columns", "[]"))
        raise ValueError(f"feature {spec.name}: store {spec.path} has neither `features` nor "
                         f"`labels` rows (it has {sorted(present)}); name one as NAME=STORE.h5:COLUMN")
    kind = "index" if store.rows[column].dtype.kind in "iub" else "dense"
    return column, kind


def empty_feature(spec: FeatureSpec, store: RaggedStore, samples: int) -> str:
    """Why a feature with no element in any of a run's samples cannot be trained on."""
    why = (f"{len(store.failed)} of {len(store.ids)} samples failed in extraction, e.g. "
           f"{next(iter(store.failed.values()))!r}; fix that and rerun its extraction"
           if store.failed else "the extractor found nothing in them; drop the feature")
    return f"feature {spec.name}: store {spec.path} has no element in any of the run's {samples} samples ({why})"


def load_feature(spec: FeatureSpec, ids: Sequence[str], max_elements: int, seed: int,
                 cap_index: bool = False, collapse: str = "", require_elements: bool = False) -> FeatureTable:
    """Read one store and align it to `ids`, keeping at most `max_elements` rows per sample
    (0 = all), sub-sampled deterministically from `seed` and the feature name. Index features
    are capped only when `cap_index`. `collapse="mean"`: each sample's set (all its rows, no cap)
    becomes its mean row, the "no set" ablation (dense features only). `require_elements`
    (training): refuse a feature none of whose samples has an element (`empty_feature`)."""
    store = read_store(spec.path, columns=[spec.column] if spec.column else ["features", "labels"])
    column, kind = _column(store, spec)
    data = store.rows[column]
    if kind == "index" and not cap_index:
        max_elements = 0
    rows, offsets = align_rows(store.ids, store.offsets, ids)
    if require_elements and not len(rows):
        raise ValueError(empty_feature(spec, store, len(ids)))
    if collapse and kind == "index":
        raise ValueError(f"collapse.{spec.name}={collapse}: {spec.path} is an index feature (one element "
                         "per sample already); collapse applies to dense features")
    if collapse:
        values, offsets = collapse_rows(np.asarray(data)[rows], offsets)
        info = FeatureInfo(spec.name, "dense", int(data.shape[1]) if data.ndim == 2 else 1)
        return FeatureTable(info, torch.from_numpy(offsets), torch.from_numpy(values.reshape(len(values), info.input_dim)))
    if max_elements > 0:
        rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
        keep, offsets = cap_rows(offsets, max_elements, rng)
        rows = rows[keep]
    identity = len(rows) == len(data) and (len(rows) == 0 or (rows[0] == 0 and np.all(np.diff(rows) == 1)))
    values = np.asarray(data) if identity else np.asarray(data)[rows]  # no copy in store order
    width = int(data.shape[1]) if data.ndim == 2 else 1
    vocab = store.attrs.get("vocab_size")
    if kind == "index" and vocab is None:
        vocab = int(np.max(data)) + 1 if len(data) else 1
    del store, data  # the aligned copy (if any) is all that stays
    if kind == "index":
        values = values.astype(np.int64).reshape(-1)
        vocab = int(vocab)
        if len(values) and (values.min() < 0 or values.max() >= vocab):
            raise ValueError(f"feature {spec.name}: store {spec.path} has indices outside "
                             f"[0, vocab_size={vocab}); fix the store's vocab_size attr")
        info = FeatureInfo(spec.name, "index", vocab)
        tensor = torch.from_numpy(np.ascontiguousarray(values))
    else:
        if values.ndim == 1:
            values = values.reshape(-1, 1)
        if values.dtype not in (np.float16, np.float32):
            values = values.astype(np.float32)
        info = FeatureInfo(spec.name, "dense", width)
        tensor = torch.from_numpy(np.ascontiguousarray(values))
    return FeatureTable(info, torch.from_numpy(offsets), tensor)


def load_features(specs: Sequence[FeatureSpec], ids: Sequence[str], max_elements: int,
                  seed: int, per_feature: dict[str, int] | None = None,
                  device: torch.device | str = "cpu", pin: bool = False,
                  collapse: dict[str, str] | None = None, require_elements: bool = False) -> list[FeatureTable]:
    """Every feature of a run, loaded once (only the column it uses) and moved to `device`, or
    kept in pinned host memory when `pin` (give device="cpu" then). Index features are one
    element per sample whatever their length, so `max_elements` limits them only when
    `per_feature` names them. `collapse` {name: "mean"}: those features as one mean row each.
    `require_elements`: see `load_feature`."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"feature names must be unique, got {names}")
    per_feature = per_feature or {}
    collapse = collapse or {}
    for key, given in (("max_elements", per_feature), ("collapse", collapse)):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ValueError(f"{key}.{unknown[0]} names no feature of this run ({names})")
    tables = []
    for spec in specs:
        limit = per_feature.get(spec.name, max_elements)
        table = load_feature(spec, ids, limit, seed, cap_index=spec.name in per_feature,
                             collapse=collapse.get(spec.name, ""), require_elements=require_elements)
        tables.append(table.pinned() if pin else table.to(device))
    return tables


def table_bytes(tables: Sequence[FeatureTable]) -> int:
    """Bytes of all tables' values (what `feature_device=device` puts on the device)."""
    return sum(t.values.numel() * t.values.element_size() for t in tables)


# Store attrs that must agree between the training store and a store a run is applied to:
# what made it, and what it was built from (`feature`, `input`: stores written since they are
# recorded; a key missing on either side is not compared).
CHECKED_ATTRS = ("extractor", "backend", "dim", "feature", "input")


def store_attrs(path: str | Path) -> dict[str, Any]:
    """The attrs of a feature store that identify what produced it: CHECKED_ATTRS, the model, its
    precision and extractor options (`config`, JSON), which tables compare (reads attrs only)."""
    attrs = read_attrs(path)
    return {key: attrs[key] for key in (*CHECKED_ATTRS, "model", "precision", "config") if key in attrs}


# ---------------------------------------------------------------------------------------------
# batches: samples packed into sets


@dataclass
class Part:
    """One feature's elements in a batch."""

    values: Tensor  # dense (E_i, M_i) float32; index (L,) int64 indices of all bags
    segment: Tensor  # (E_i,) int64 position in the batch of each element's sample
    bags: Tensor | None = None  # index only: (E_i,) start of each element's bag in `values`


@dataclass
class Batch:
    size: int  # B, number of samples (sets)
    parts: list[Part]  # one per feature, in model order


def gather_rows(offsets: Tensor | np.ndarray, index: Tensor | np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the samples `index` (B,) in a CSR table, planned on the host (no device sync).

    Returns int64 arrays `rows (E,)`, `segment (E,)` (batch position of each row), `counts (B,)`
    and `first (B,)` (where each sample's rows start in `rows`)."""
    offsets = offsets.numpy() if isinstance(offsets, Tensor) else np.asarray(offsets)
    index = index.cpu().numpy() if isinstance(index, Tensor) else np.asarray(index)
    starts = offsets[index]  # (B,)
    counts = offsets[index + 1] - starts  # (B,)
    first = np.cumsum(counts) - counts  # (B,) exclusive cumsum
    segment = np.repeat(np.arange(len(index), dtype=np.int64), counts)  # (E,)
    rows = np.repeat(starts - first, counts) + np.arange(len(segment), dtype=np.int64)  # (E,)
    return rows, segment, counts, first


@dataclass
class BatchPlan:
    """Host-side index arrays of one batch, before any value is gathered."""

    index: np.ndarray  # (B,) sample positions
    rows: list[np.ndarray]  # per feature: rows of `values` to gather
    segment: list[np.ndarray]  # per feature: (E_i,) batch position of each element
    bags: list[np.ndarray | None]  # index features: (E_i,) start of each bag in the gathered rows


def plan_batch(tables: Sequence[FeatureTable], index: np.ndarray) -> BatchPlan:
    rows, segments, bags = [], [], []
    for table in tables:
        took, segment, counts, first = gather_rows(table.offsets, index)
        rows.append(took)
        if table.info.kind == "index":
            present = np.flatnonzero(counts > 0)  # one element (bag) per sample with indices
            segments.append(present)
            bags.append(first[present])
        else:
            segments.append(segment)
            bags.append(None)
    return BatchPlan(index, rows, segments, bags)


def _to_device(arrays: list[np.ndarray], device: torch.device) -> list[Tensor]:
    """int64 host arrays as device tensors with ONE copy (from pinned memory, non_blocking)."""
    sizes = [len(a) for a in arrays]
    flat = torch.from_numpy(np.concatenate(arrays) if arrays else np.zeros(0, np.int64))
    if device.type == "cuda":
        flat = flat.pin_memory().to(device, non_blocking=True)
    elif device.type != "cpu":
        flat = flat.to(device)
    return list(torch.split(flat, sizes))


def _host_gather(values: Tensor, rows: np.ndarray, device: torch.device) -> Tensor:
    """Rows of host-resident `values` gathered on the host (into pinned memory for CUDA) and
    copied to `device` with non_blocking."""
    index = torch.from_numpy(rows)
    if device.type != "cuda":
        return values.index_select(0, index).to(device)
    out = torch.empty((len(rows), *values.shape[1:]), dtype=values.dtype, pin_memory=True)
    torch.index_select(values, 0, index, out=out)
    return out.to(device, non_blocking=True)


def materialise(tables: Sequence[FeatureTable], plan: BatchPlan, device: torch.device, host: bool = False,
                stream=None) -> tuple[Tensor, Batch]:
    """`(index (B,) on device, Batch)` for a planned batch. Device-resident values are gathered
    on the device; with `host`, every table's rows are gathered on the host and copied. On CUDA,
    all of it is queued on `stream` (None: the current stream)."""
    if device.type == "cuda":
        with torch.cuda.stream(stream):
            return _materialise(tables, plan, device, host)
    return _materialise(tables, plan, device, host)


def _materialise(tables: Sequence[FeatureTable], plan: BatchPlan, device: torch.device,
                 host: bool) -> tuple[Tensor, Batch]:
    bags = [b for b in plan.bags if b is not None]
    moved = _to_device([plan.index, *plan.segment, *bags, *([] if host else plan.rows)], device)
    index, segments = moved[0], moved[1:1 + len(tables)]
    bag_iter = iter(moved[1 + len(tables):1 + len(tables) + len(bags)])
    row_iter = iter(moved[1 + len(tables) + len(bags):])
    parts = []
    for table, rows, segment, bag in zip(tables, plan.rows, segments, plan.bags):
        if host:
            values = _host_gather(table.values, rows, device)
        else:
            values = table.values.index_select(0, next(row_iter))
        if table.info.kind == "index":
            parts.append(Part(values, segment, next(bag_iter)))  # (L,), (E_i,), (E_i,)
        else:
            parts.append(Part(values.float(), segment))  # (E_i, M_i)
    return index, Batch(len(plan.index), parts)


class Batches:
    """The batches of `positions` (host int64, already in the wanted order), each planned and
    gathered one step ahead: batch k+1 is prepared (host gather and asynchronous copy on a side
    stream for host-resident values) while the device computes step k.

    Yields `(index (B,) on device, Batch)`."""

    def __init__(self, tables: Sequence[FeatureTable], positions: np.ndarray, batch_size: int,
                 device: torch.device, host: bool = False) -> None:
        self.tables, self.positions, self.batch_size, self.device = tables, positions, batch_size, device
        self.host = host  # values live in host memory: gather there, copy per batch
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def __len__(self) -> int:
        return -(-len(self.positions) // self.batch_size)

    def _prepare(self, k: int) -> tuple[tuple[Tensor, Batch], object]:
        chunk = self.positions[k * self.batch_size:(k + 1) * self.batch_size]
        ready = materialise(self.tables, plan_batch(self.tables, chunk), self.device, self.host, self.stream)
        event = None
        if self.stream is not None:
            event = torch.cuda.Event()
            event.record(self.stream)
        return ready, event

    def __iter__(self) -> Iterator[tuple[Tensor, Batch]]:
        if not len(self):
            return
        upcoming = self._prepare(0)
        for k in range(len(self)):
            (index, batch), event = upcoming
            if event is not None:
                main = torch.cuda.current_stream(self.device)
                main.wait_event(event)
                for tensor in [index] + [t for p in batch.parts for t in (p.values, p.segment, p.bags)
                                         if t is not None]:
                    tensor.record_stream(main)  # freed only after the main stream used it
            yield index, batch
            if k + 1 < len(self):
                upcoming = self._prepare(k + 1)  # overlaps the step just launched
