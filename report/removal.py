"""OUT_removal.h5, the robustness job's per-sample removal effects (report/robustness.py writes it;
the importance figure and the gallery read it beside the importance). Torch-free."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from core.atomic import atomic_write


@dataclass
class Removal:
    """Per test sample (N) and modality (M) of one run: what removing the modality changes."""

    run: str
    ids: list[str]
    modalities: list[str]  # feature names, run order
    prob: np.ndarray  # (N, M) mean |p(without m) - p(intact)| over classes
    loss: np.ndarray  # (N, M) loss(without m) - loss(intact), BCE averaged over classes

    @property
    def share(self) -> np.ndarray:
        """(N, M) `prob` as a share of the sample's total over modalities (0 where all are 0)."""
        total = self.prob.sum(1, keepdims=True)
        return np.divide(self.prob, total, out=np.zeros_like(self.prob), where=total > 0)

    def mean_share(self) -> np.ndarray:
        """(M,) mean `share` over the samples whose probabilities change at all (as the
        importance is averaged over samples with a non-empty set)."""
        moved = self.prob.sum(1) > 0
        return self.share[moved].mean(0) if moved.any() else np.zeros(self.prob.shape[1], np.float32)


def removal_path(out: str | Path) -> Path:
    """OUT_removal.h5 beside the robustness table OUT.csv."""
    out = Path(out)
    return out.with_name(out.stem + "_removal.h5")


def write_removal(path: Path, removal: Sequence[Removal]) -> Path:
    """One group per run (`runs/K`): ids, modalities, prob (N, M), loss (N, M); attr `run`."""
    strings = h5py.string_dtype("utf-8")
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as h5:
        for k, item in enumerate(removal):
            group = h5.create_group(f"runs/{k}")
            group.attrs["run"] = os.path.normpath(item.run)
            group.attrs["modalities"] = json.dumps(item.modalities)
            group.create_dataset("ids", data=np.array(item.ids, dtype=object), dtype=strings)
            group.create_dataset("prob", data=item.prob)
            group.create_dataset("loss", data=item.loss)
    return path


def read_removal(path: str | Path) -> dict[str, Removal]:
    """Run folder (normalised path) -> its Removal, from OUT_removal.h5."""
    out = {}
    with h5py.File(path, "r") as h5:
        for group in h5.get("runs", {}).values():
            run = str(group.attrs["run"])
            ids = list(group["ids"].asstr()[()]) if len(group["ids"]) else []
            out[run] = Removal(run, ids, json.loads(group.attrs["modalities"]), group["prob"][()], group["loss"][()])
    return out
