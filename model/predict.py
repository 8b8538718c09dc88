"""Apply a trained run to new samples: `python -m model predict --run RUN_DIR --manifest M
--feature NAME=STORE.h5 ... --out PRED` writes PRED.csv and PRED.h5.

PRED.csv: `id`, `predicted` (`|`-joined classes at the run's threshold), `failed` (`|`-joined
features whose extraction failed for the sample: it was scored without them, as any sample missing
a modality; each such feature is also reported on stderr), one `p_<class>` column per class.
PRED.h5: ids, probabilities (N, C), classes, importance (N, M) per modality (the run's pool's
importance: share of dimensions won for max/min, of mass for sum/mean/attention, of the first
head layer's mass for per-modality and concat pools),
`winners` (N, M) the number of the D dimensions each modality wins (max/min pools only),
elements (N, M) set elements per modality, and the run's features and pool as attrs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import pandas as pd
import torch

from core.atomic import atomic_write
from core.manifest import read_manifest
from model.build import TrainedRun, load_trained
from model.inputs import load_features
from model.networks import infer
from model.options import FeatureSpec
from model.trained import check_ids, check_stores

STR = h5py.string_dtype("utf-8")


def load_for_run(run: TrainedRun, specs: Sequence[FeatureSpec], ids: Sequence[str],
                 device: torch.device | str = "cpu", failed: dict | None = None):
    """The run's feature tables for `ids`, in the run's modality order, checked against its
    training stores and its features' kinds and input dims; every id must be in every store.
    `failed`, when given, receives per feature the samples whose extraction failed (id -> reason)."""
    check_stores(run, specs)
    found = check_ids(specs, ids)
    if failed is not None:
        failed.update(found)
    by_name = {s.name: s for s in specs}
    ordered = [by_name[n] for n in run.names]
    options = run.options
    tables = load_features(ordered, ids, options.max_elements, run.seed, options.max_elements_by, device,
                          collapse=options.collapse)
    for table, info in zip(tables, run.features):
        if (table.info.kind, table.info.input_dim) != (info.kind, info.input_dim):
            raise ValueError(f"feature {info.name}: the store gives a {table.info.kind} feature of dim "
                             f"{table.info.input_dim}, the run was trained on {info.kind} dim {info.input_dim}")
    return tables


def predicted_labels(probs: np.ndarray, classes: Sequence[str], threshold: float) -> list[str]:
    """`|`-joined classes whose probability reaches `threshold`, per row."""
    flags = probs >= threshold  # (N, C)
    names = np.array(list(classes), dtype=object)
    return ["|".join(names[row]) for row in flags]


def failed_column(ids: Sequence[str], failed: dict[str, dict[str, str]], names: Sequence[str]) -> list[str]:
    """Per id, the `|`-joined features (in `names` order) whose extraction failed for it."""
    return ["|".join(n for n in names if sid in failed.get(n, {})) for sid in ids]


def write_predictions(out: str | Path, run: TrainedRun, ids: Sequence[str], probs: np.ndarray,
                      importance: np.ndarray | None, elements: np.ndarray,
                      failed: dict[str, dict[str, str]] | None = None) -> tuple[Path, Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    csv, h5_path = out.with_suffix(".csv"), out.with_suffix(".h5")
    columns = {"id": list(ids), "predicted": predicted_labels(probs, run.classes, run.options.threshold),
               "failed": failed_column(ids, failed or {}, run.names)}
    columns |= {f"p_{name}": probs[:, k] for k, name in enumerate(run.classes)}
    frame = pd.DataFrame(columns)  # at once: a column per insert fragments the frame (pandas warns past 100)
    with atomic_write(csv) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_write(h5_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("ids", data=np.array(list(ids), dtype=object), dtype=STR)
        h5.create_dataset("probabilities", data=probs.astype(np.float32))
        h5.create_dataset("classes", data=np.array(run.classes, dtype=object), dtype=STR)
        h5.create_dataset("elements", data=elements.astype(np.int64))
        if importance is not None:
            h5.create_dataset("importance", data=importance.astype(np.float32))
            if run.pool in ("max", "min"):  # shares of D dimensions -> counts of dimensions won
                winners = np.rint(importance * run.options.dim).astype(np.int64)
                h5.create_dataset("winners", data=winners)
        h5.attrs.update({"modalities": json.dumps(run.names), "pool": run.pool,
                         "threshold": run.options.threshold, "task": run.task,
                         "run": str(run.run_dir)})
    return csv, h5_path


def predict_new(run_dir: str | Path, manifest: str | Path, specs: Sequence[FeatureSpec],
                out: str | Path, device: str = "cpu", batch_size: int = 1024) -> tuple[Path, Path]:
    """Score every sample of `manifest` (labels and splits may be empty) with the run."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no GPU; use --device cpu")
    run = load_trained(run_dir, device)
    ids = read_manifest(manifest)["id"].tolist()
    if not ids:
        raise ValueError(f"manifest {manifest} has no samples")
    failed: dict[str, dict[str, str]] = {}
    tables = load_for_run(run, specs, ids, device, failed)
    for name, bad in failed.items():
        if bad:
            first = next(iter(bad.items()))
            print(f"note: feature {name}: extraction failed for {len(bad)} of {len(ids)} samples, scored "
                  f"without it (column `failed`), e.g. {first[0]!r}: {first[1]}", file=sys.stderr)
    probs, importance = infer(run.model, tables, batch_size=batch_size)
    elements = np.stack([t.counts.cpu().numpy() for t in tables], axis=1)  # (N, M)
    return write_predictions(out, run, ids, probs, importance, elements, failed)
