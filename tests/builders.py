"""Builders used only by tests: a store from per-sample outputs (`StoreBuilder`), a small synthetic
multi-modal dataset (`make_toy`), the batch of some samples (`pack`), COCO category ids of
contiguous class indices (`coco_from_contiguous`).

In `make_toy`'s dataset only the `signal` feature (one row, sometimes absent) carries the labels: class c is present when
latent coordinate c is positive. `noise` (dense, 0-3 rows) and `tags` (index, 1-3 indices) are
unrelated to the labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from extract.coco import COCO_IDS, NUM_CLASSES
from extract.store import RaggedStore, base_attrs, write_store
from model.inputs import Batch, FeatureTable, materialise, plan_batch


class StoreBuilder:
    """Collects per-sample outputs in manifest order, then builds one in-memory store (`build`;
    `write_store` writes it)."""

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


def make_toy(root: str | Path, n: int = 360, classes: int = 2, missing: float = 0.1, seed: int = 0,
             folds: int = 0, signal_dim: int = 8, noise_dim: int = 6, vocab: int = 5) -> tuple[Path, dict[str, Path]]:
    """Write `manifest.csv` and three stores under `root`; returns (manifest, {name: store}).

    Splits are train/dev/test (2/3, 1/6, 1/6), or integer folds 0..folds-1 when `folds` > 0.
    With `classes == 1` the task is binary and a `fine` column names each sample's sign pattern.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, max(classes, 2)))  # (N, C)
    ids = [f"{k:05d}" for k in range(n)]
    names = [f"c{c}" for c in range(classes)]
    labels = ["|".join(names[c] for c in range(classes) if latent[k, c] > 0) for k in range(n)]
    if folds:
        split = [str(k % folds) for k in range(n)]
    else:
        split = ["train" if k % 6 < 4 else "dev" if k % 6 == 4 else "test" for k in range(n)]
    frame = pd.DataFrame({"id": ids, "split": split, "image": "", "text": "", "labels": labels})
    if classes == 1:
        frame["fine"] = np.where(latent[:, 1] > 0, "upper", "lower")
    root.mkdir(parents=True, exist_ok=True)
    manifest = root / "manifest.csv"
    frame.to_csv(manifest, index=False)

    signal, noise, tags = StoreBuilder(), StoreBuilder(), StoreBuilder()
    for k, sample in enumerate(ids):
        if rng.random() < missing:
            signal.add(sample)
        else:
            row = np.concatenate([latent[k, :classes], 0.3 * rng.normal(size=signal_dim - classes)])
            signal.add(sample, {"features": row[None].astype(np.float16)})
        noise.add(sample, {"features": rng.normal(size=(rng.integers(0, 4), noise_dim)).astype(np.float16)})
        tags.add(sample, {"labels": rng.integers(0, vocab, size=rng.integers(1, 4))})
    stores = {"signal": root / "signal.h5", "noise": root / "noise.h5", "tags": root / "tags.h5"}
    write_store(stores["signal"], signal.build(base_attrs("toy", "toy", signal_dim, {}),
                                               {"features": ((signal_dim,), np.float16)}))
    write_store(stores["noise"], noise.build(base_attrs("toy", "toy", noise_dim, {}),
                                             {"features": ((noise_dim,), np.float16)}))
    attrs = base_attrs("toy-index", "toy", vocab, {})
    attrs["vocab_size"] = vocab
    write_store(stores["tags"], tags.build(attrs, {"labels": ((), np.int64)}))
    return manifest, stores


def pack(tables: Sequence[FeatureTable], index: Tensor | np.ndarray,
         device: torch.device | str | None = None) -> Batch:
    """The batch of samples `index` (B,) int64 on `device` (default: where `index` is)."""
    if device is None:
        device = index.device if isinstance(index, Tensor) else torch.device("cpu")
    host_index = index.cpu().numpy() if isinstance(index, Tensor) else np.asarray(index)
    device = torch.device(device)
    host = any(t.values.device != device for t in tables)
    _, batch = materialise(tables, plan_batch(tables, host_index.astype(np.int64)), device, host)
    return batch


def coco_from_contiguous(index: np.ndarray) -> np.ndarray:
    """0..79 -> COCO category ids; raises on indices outside 0..79."""
    index = np.asarray(index, dtype=np.int64)
    if index.size and (index.min() < 0 or index.max() >= NUM_CLASSES):
        raise ValueError(f"contiguous COCO class indices must lie in 0..{NUM_CLASSES - 1}")
    return COCO_IDS[index]
