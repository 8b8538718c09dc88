"""Files of a run folder: metrics.json, history.csv, predictions.h5, importance.h5, model.pt.

Training writes them (model/train.py `write_run`); the reports (report/) read them, and
model/predict.py reads `model.pt`. Every file is written whole through `atomic_write`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np
import pandas as pd

from core.atomic import atomic_write

STR = h5py.string_dtype("utf-8")
MODEL_KEYS = ("state_dict", "config", "pool", "features", "classes", "task", "seed", "stores")
METRICS, HISTORY, PREDICTIONS, IMPORTANCE, MODEL = (
    "metrics.json", "history.csv", "predictions.h5", "importance.h5", "model.pt")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> Path:
    path = Path(run_dir) / METRICS
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(_clean(metrics), indent=2) + "\n")
    return path


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; train the run first (python -m model train)")
    return json.loads(path.read_text())


def run_threshold(metrics: dict[str, Any]) -> float:
    """The decision threshold a run scored at: metrics.json `threshold` (the value used, chosen on
    dev under `threshold: dev`), else (runs written before it was recorded) `config.threshold`."""
    value = metrics.get("threshold", (metrics.get("config") or {}).get("threshold", 0.5))
    return float(value)


def write_history(run_dir: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path = Path(run_dir) / HISTORY
    with atomic_write(path) as tmp:
        pd.DataFrame(list(rows)).to_csv(tmp, index=False)
    return path


def _strings(h5: h5py.File, name: str, values: Sequence[str]) -> None:
    h5.create_dataset(name, data=np.array([str(v) for v in values], dtype=object), dtype=STR)


def write_predictions(run_dir: Path, ids: Sequence[str], probs: np.ndarray, targets: np.ndarray,
                      classes: Sequence[str], task: str) -> Path:
    """ids (N,), probabilities (N, C) float32, targets (N, C) uint8, classes (C,)."""
    path = Path(run_dir) / PREDICTIONS
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as h5:
        _strings(h5, "ids", ids)
        h5.create_dataset("probabilities", data=np.asarray(probs, dtype=np.float32))
        h5.create_dataset("targets", data=np.asarray(targets).astype(np.uint8))
        _strings(h5, "classes", classes)
        h5.attrs["classes"] = json.dumps(list(classes))
        h5.attrs["task"] = task
    return path


def write_importance(run_dir: Path, ids: Sequence[str], importance: np.ndarray,
                     elements: np.ndarray, modalities: Sequence[str], pool: str) -> Path:
    """ids (N,), importance (N, M) float32 (rows sum to 1, zeros for empty sets), elements (N,)."""
    path = Path(run_dir) / IMPORTANCE
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as h5:
        _strings(h5, "ids", ids)
        h5.create_dataset("importance", data=np.asarray(importance, dtype=np.float32))
        h5.create_dataset("elements", data=np.asarray(elements, dtype=np.int64))
        _strings(h5, "modalities", modalities)
        h5.attrs["modalities"] = json.dumps(list(modalities))
        h5.attrs["pool"] = pool
    return path


def read_importance(run_dir: str | Path) -> tuple[list[str], np.ndarray, list[str]]:
    """(ids, importance (N, M), modality names), or FileNotFoundError when the run has none."""
    path = Path(run_dir) / IMPORTANCE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; train the run first (python -m model train)")
    with h5py.File(path, "r") as h5:
        ids = list(h5["ids"].asstr()[()]) if len(h5["ids"]) else []
        return ids, h5["importance"][()], json.loads(h5.attrs["modalities"])


def read_predictions(run_dir: str | Path) -> tuple[list[str], np.ndarray, np.ndarray, list[str], str]:
    """(ids, probabilities (N, C), targets (N, C), classes, task) of a run."""
    path = Path(run_dir) / PREDICTIONS
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; train the run first (python -m model train)")
    with h5py.File(path, "r") as h5:
        ids = list(h5["ids"].asstr()[()]) if len(h5["ids"]) else []
        classes = list(h5["classes"].asstr()[()]) if len(h5["classes"]) else []
        return ids, h5["probabilities"][()], h5["targets"][()], classes, str(h5.attrs.get("task", ""))


def write_model(run_dir: Path, checkpoint: dict[str, Any]) -> Path:
    """`model.pt`: a dict with MODEL_KEYS (docs/DESIGN.md, "Run folder")."""
    import torch  # here, not at the top: the report's readers need no torch

    missing = [k for k in MODEL_KEYS if k not in checkpoint]
    if missing:
        raise ValueError(f"model.pt needs {', '.join(missing)}")
    path = Path(run_dir) / MODEL
    with atomic_write(path) as tmp:
        torch.save(checkpoint, tmp)
    return path


def read_model(run_dir: str | Path) -> dict[str, Any]:
    """The checkpoint of `model.pt` (tensors on the CPU), refused when it lacks one of MODEL_KEYS."""
    import torch

    path = Path(run_dir) / MODEL
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; train the run first (python -m model train)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    missing = [k for k in MODEL_KEYS if k not in checkpoint]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: it was not written by this dmms; retrain the run")
    return checkpoint
