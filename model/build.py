"""A model from its pool and features, a trained run loaded back from its folder, and inference.

Training (model/train.py) builds here; `predict` of new samples and the missing-modality robustness
evaluation load a run here (`load_trained`: `model.pt` read through model/runfiles.py, the model
rebuilt by `build_model`) and score with `infer`, so a run is built and scored one way only.
`model.pt` holds the state dict, the training options, the pool, the features (name, kind,
input dim) in modality order, the classes, the task, the seed and `stores`: per feature the
training store's path, column, extractor, backend, dim and model (docs/DESIGN.md, "Run folder");
a `concat_padded` run also its `slots` (blocks per feature, from its training split).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from model import runfiles
from model.baseline import ModalityModel, PaddedModel
from model.inputs import Batches, FeatureInfo, FeatureTable
from model.options import CONCAT_MEAN, CONCAT_PADDED, PER_MODALITY, TrainOptions, check_pool
from model.sets import FusionModel, SetModel


def build_model(pool: str, features: Sequence[FeatureInfo], num_classes: int,
                options: TrainOptions, slots: Sequence[int] | None = None) -> FusionModel:
    """The model of `pool` (model/options.py); `slots` (one per feature): `concat_padded`'s blocks."""
    kwargs = dict(dim=options.dim, hidden=options.hidden_sizes(), dropout=options.dropout,
                  encoders=options.encoders)
    if check_pool(pool) == CONCAT_PADDED:
        if slots is None:
            raise ValueError("concat_padded needs its slots per feature (from the training split)")
        return PaddedModel(features, num_classes, slots, **kwargs)
    if pool == CONCAT_MEAN:
        return ModalityModel(features, num_classes, pool="mean", **kwargs)
    if pool.endswith(PER_MODALITY):
        return ModalityModel(features, num_classes, pool=pool.removesuffix(PER_MODALITY), **kwargs)
    return SetModel(features, num_classes, pool=pool, **kwargs)


@dataclass
class TrainedRun:
    run_dir: Path
    model: FusionModel
    options: TrainOptions
    pool: str
    features: list[FeatureInfo]  # modality order
    classes: list[str]
    task: str
    seed: int
    stores: dict[str, dict[str, Any]]  # feature -> training store's path, column, extractor, ...

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]


def options_from(config: dict[str, Any]) -> TrainOptions:
    """TrainOptions from a checkpoint's `config`; keys this version does not know are an error
    (they would change what the model computes)."""
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"the run was trained with options this dmms does not know ({', '.join(unknown)}); "
                         "use the dmms version that trained it")
    return TrainOptions(**config)


def load_trained(run_dir: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
    """Rebuild the run's model (eval mode, on `device`) from `RUN_DIR/model.pt`."""
    run_dir = Path(run_dir)
    checkpoint = runfiles.read_model(run_dir)
    options = options_from(checkpoint["config"])
    features = [FeatureInfo(**f) for f in checkpoint["features"]]
    slots = checkpoint.get("slots")  # concat_padded only: {feature: blocks}
    slots = [slots[f.name] for f in features] if slots else None
    model = build_model(checkpoint["pool"], features, len(checkpoint["classes"]), options, slots)
    model.load_state_dict(checkpoint["state_dict"])
    model.to(device).eval()
    return TrainedRun(run_dir, model, options, checkpoint["pool"], features, list(checkpoint["classes"]),
                      checkpoint["task"], int(checkpoint["seed"]),
                      {k: dict(v) for k, v in checkpoint["stores"].items()})


@torch.no_grad()
def infer(model: FusionModel, tables: Sequence[FeatureTable], positions: Tensor | np.ndarray | None = None,
          batch_size: int = 1024,
          autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
          ) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities (n, C) and importance (n, M) (None for a model that gives none) for the
    samples `positions` of `tables` (None: all of them).

    Results stay on the device until the end: one transfer (and one sync) per call."""
    model.eval()
    device = next(model.parameters()).device
    host = any(t.values.device != device for t in tables)
    if positions is None:
        positions = np.arange(len(tables[0].counts))
    positions = positions.cpu().numpy() if isinstance(positions, Tensor) else np.asarray(positions)
    probs, importance = [], []
    for _, batch in Batches(tables, positions.astype(np.int64), batch_size, device, host):
        with autocast():
            logits, imp = model(batch, with_importance=True)
        probs.append(torch.sigmoid(logits.float()))
        if imp is not None:
            importance.append(imp.float())
    num_classes = model.head[-1].out_features
    prob = torch.cat(probs).cpu().numpy() if probs else np.zeros((0, num_classes), np.float32)
    imp = torch.cat(importance).cpu().numpy() if importance else None
    if imp is None:
        imp = np.zeros((0, model.num_modalities), np.float32)
    return prob, imp
