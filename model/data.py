"""Features of a run held in memory as CSR tensors, and packing a batch of samples into sets.

A `FeatureTable` is one feature aligned to manifest order: sample k owns rows
`offsets[k]:offsets[k+1]` of `values` (zero rows = modality absent). Dense features have
`values` (R, M) (kept in the store's dtype, cast to float32 per batch); index features have
`values` (R,) int64 vocabulary indices, and all indices of a sample form ONE set element.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from extract.store import RaggedStore, read_store


@dataclass(frozen=True)
class FeatureSpec:
    """`NAME=STORE.h5[:COLUMN]` from the command line; COLUMN picks a row column of the store
    (default `features`, or `labels` for an index store)."""

    name: str
    path: Path
    column: str | None = None

    @classmethod
    def parse(cls, text: str) -> "FeatureSpec":
        name, sep, rest = text.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise ValueError(f"--feature {text!r}: write NAME=STORE.h5 (or NAME=STORE.h5:COLUMN)")
        path, column = rest, None
        if ":" in rest and not rest.endswith(".h5"):
            path, _, column = rest.rpartition(":")
        return cls(name.strip(), Path(path), column or None)


@dataclass(frozen=True)
class FeatureInfo:
    """What a model needs to know about a feature."""

    name: str
    kind: str  # "dense" or "index"
    input_dim: int  # M_i for dense, |V| for index


@dataclass
class FeatureTable:
    info: FeatureInfo
    offsets: Tensor  # (N+1,) int64
    values: Tensor  # (R, M) dense or (R,) int64 index

    @property
    def counts(self) -> Tensor:
        return self.offsets[1:] - self.offsets[:-1]  # (N,)

    def to(self, device: torch.device | str) -> "FeatureTable":
        return FeatureTable(self.info, self.offsets.to(device), self.values.to(device))


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


# ---------------------------------------------------------------------------------------------
# loading


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


def _column(store: RaggedStore, spec: FeatureSpec) -> tuple[str, str]:
    """(column name, kind) of the feature in its store."""
    if spec.column is not None:
        if spec.column not in store.rows:
            raise ValueError(f"feature {spec.name}: store {spec.path} has no row column "
                             f"{spec.column!r} (it has {sorted(store.rows)})")
        column = spec.column
    elif "features" in store.rows:
        column = "features"
    elif "labels" in store.rows:
        column = "labels"
    else:
        raise ValueError(f"feature {spec.name}: store {spec.path} has neither `features` nor "
                         f"`labels` rows (it has {sorted(store.rows)}); name one as NAME=STORE.h5:COLUMN")
    kind = "index" if store.rows[column].dtype.kind in "iub" else "dense"
    return column, kind


def load_feature(spec: FeatureSpec, ids: Sequence[str], max_elements: int, seed: int,
                 cap_index: bool = False) -> FeatureTable:
    """Read one store and align it to `ids`, keeping at most `max_elements` rows per sample
    (0 = all), sub-sampled deterministically from `seed` and the feature name. Index features
    are capped only when `cap_index`."""
    store = read_store(spec.path)
    column, kind = _column(store, spec)
    data = store.rows[column]
    if kind == "index" and not cap_index:
        max_elements = 0
    rows, offsets = align_rows(store.ids, store.offsets, ids)
    if max_elements > 0:
        rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
        keep, offsets = cap_rows(offsets, max_elements, rng)
        rows = rows[keep]
    values = data[rows]
    if kind == "index":
        values = values.astype(np.int64).reshape(-1)
        vocab = store.attrs.get("vocab_size")
        vocab = int(vocab) if vocab is not None else int(data.max()) + 1 if len(data) else 1
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
        info = FeatureInfo(spec.name, "dense", int(data.shape[1]) if data.ndim == 2 else 1)
        tensor = torch.from_numpy(np.ascontiguousarray(values))
    return FeatureTable(info, torch.from_numpy(offsets), tensor)


def load_features(specs: Sequence[FeatureSpec], ids: Sequence[str], max_elements: int,
                  seed: int, per_feature: dict[str, int] | None = None,
                  device: torch.device | str = "cpu") -> list[FeatureTable]:
    """Every feature of a run, loaded once and moved to `device`. Index features are one element
    per sample whatever their length, so `max_elements` limits them only when `per_feature`
    names them."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"feature names must be unique, got {names}")
    per_feature = per_feature or {}
    unknown = sorted(set(per_feature) - set(names))
    if unknown:
        raise ValueError(f"max_elements.{unknown[0]} names no feature of this run ({names})")
    tables = []
    for spec in specs:
        limit = per_feature.get(spec.name, max_elements)
        table = load_feature(spec, ids, limit, seed, cap_index=spec.name in per_feature)
        tables.append(table.to(device))
    return tables


# ---------------------------------------------------------------------------------------------
# packing


def gather_rows(offsets: Tensor, index: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rows of the samples `index` (B,) in a CSR table.

    Returns `rows (E,)`, `segment (E,)` (batch position of each row), `counts (B,)` and
    `first (B,)` (where each sample's rows start in `rows`)."""
    starts = offsets[index]  # (B,)
    counts = offsets[index + 1] - starts  # (B,)
    first = torch.cumsum(counts, 0) - counts  # (B,) exclusive cumsum
    total = int(counts.sum())
    positions = torch.arange(len(index), device=offsets.device)
    segment = torch.repeat_interleave(positions, counts, output_size=total)  # (E,)
    rows = torch.repeat_interleave(starts - first, counts, output_size=total)
    rows = rows + torch.arange(total, device=offsets.device)  # (E,)
    return rows, segment, counts, first


def pack(tables: Sequence[FeatureTable], index: Tensor) -> Batch:
    """The batch of samples `index` (B,) int64 (on the tables' device)."""
    parts = []
    for table in tables:
        rows, segment, counts, first = gather_rows(table.offsets, index)
        if table.info.kind == "index":
            present = counts > 0  # (B,) one element (bag) per sample that has indices
            parts.append(Part(table.values[rows],  # (L,)
                              torch.arange(len(index), device=index.device)[present],  # (E_i,)
                              first[present]))  # (E_i,)
        else:
            parts.append(Part(table.values[rows].float(), segment))  # (E_i, M_i)
    return Batch(len(index), parts)
