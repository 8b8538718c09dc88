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
from model.inputs import FeatureInfo
from model.networks import FusionModel, build_model
from model.options import TrainOptions


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
