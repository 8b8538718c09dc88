"""Builders used only by tests: a small synthetic multi-modal dataset (`make_toy`), the batch of
some samples (`pack`), COCO category ids of contiguous class indices (`coco_from_contiguous`).

In `make_toy`'s dataset only the `signal` feature (one row, sometimes absent) carries the labels: class c is present when
latent coordinate c is positive. `noise` (dense, 0-3 rows) and `tags` (index, 1-3 indices) are
unrelated to the labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from extract.coco import COCO_IDS, NUM_CLASSES
from extract.store import StoreBuilder, base_attrs, write_store
from model.inputs import Batch, FeatureTable, materialise, plan_batch


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
