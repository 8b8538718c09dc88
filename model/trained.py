"""A trained run loaded back from its folder: the model rebuilt from `model.pt`, ready to score.

`predict` (new samples) and the missing-modality robustness evaluation both start here, so a run
is rebuilt one way only. `model.pt` holds the state dict, the training options, the pool, the
features (name, kind, input dim) in modality order, the classes, the task and, for runs trained
since stores were recorded, `stores`: per feature the training store's extractor, backend, dim and
model (docs/DESIGN.md, "Run folder").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from extract.store import read_attrs, read_store
from model import runfiles
from model.data import FeatureInfo, FeatureSpec
from model.options import TrainOptions
from model.sets import FusionModel

# Store attrs that must agree between the training store and a store a run is applied to:
# what made it, and what it was built from (`feature`, `input`: stores written since they are
# recorded; a key missing on either side is not compared).
CHECKED_ATTRS = ("extractor", "backend", "dim", "feature", "input")


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


def _training_stores(run_dir: Path, checkpoint: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The checkpoint's `stores`; for older runs, the attrs of the stores metrics.json names
    (when they still exist)."""
    if checkpoint.get("stores"):
        return {k: dict(v) for k, v in checkpoint["stores"].items()}
    stores: dict[str, dict[str, Any]] = {}
    metrics_path = run_dir / runfiles.METRICS
    if not metrics_path.exists():
        return stores
    for name, text in runfiles.read_metrics(run_dir).get("feature_stores", {}).items():
        spec = FeatureSpec.parse(f"{name}={text}")
        stores[name] = {"path": str(spec.path), "column": spec.column}
        if spec.path.exists():
            stores[name].update(store_attrs(spec.path))
    return stores


def store_attrs(path: str | Path) -> dict[str, Any]:
    """The attrs of a feature store that identify what produced it (reads attrs only)."""
    attrs = read_attrs(path)
    return {key: attrs[key] for key in (*CHECKED_ATTRS, "model") if key in attrs}


def load_trained(run_dir: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
    """Rebuild the run's model (eval mode, on `device`) from `RUN_DIR/model.pt`."""
    from model.train import build_model  # train imports this module's neighbours; keep it lazy

    run_dir = Path(run_dir)
    path = run_dir / runfiles.MODEL
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; train the run first (python -m model train)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    options = options_from(checkpoint["config"])
    features = [FeatureInfo(**f) for f in checkpoint["features"]]
    model = build_model(checkpoint["pool"], features, len(checkpoint["classes"]), options)
    model.load_state_dict(checkpoint["state_dict"])
    model.to(device).eval()
    return TrainedRun(run_dir, model, options, checkpoint["pool"], features, list(checkpoint["classes"]),
                      checkpoint["task"], int(checkpoint.get("seed", 0)),
                      _training_stores(run_dir, checkpoint))


def check_ids(specs: Sequence[FeatureSpec], ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Refuse stores that do not hold every id of `ids`. A store lists each sample of the manifest
    it was extracted from (zero rows when the modality is absent), so an id it lacks means the
    store was extracted from another manifest: its samples would be scored with empty sets.
    Returns, per feature, the samples of `ids` whose extraction failed (id -> reason)."""
    wanted = pd.Index(list(ids))
    problems = []
    failed: dict[str, dict[str, str]] = {}
    for spec in specs:
        store = read_store(spec.path, columns=[])
        failed[spec.name] = {sid: reason for sid, reason in store.failed.items() if sid in wanted}
        absent = wanted[~wanted.isin(store.ids)]
        if len(absent):
            shown = ", ".join(repr(a) for a in absent[:3]) + (", ..." if len(absent) > 3 else "")
            problems.append(f"{spec.name}: {len(absent)} of the manifest's {len(wanted)} ids are not in "
                            f"{spec.path} ({shown})")
    if problems:
        raise ValueError("the stores do not hold the manifest's samples; extract each feature from this "
                         "manifest (python -m extract EXTRACTOR --manifest M ...):\n  " + "\n  ".join(problems))
    return failed


def check_stores(run: TrainedRun, specs: Sequence[FeatureSpec]) -> None:
    """Refuse stores that do not match the run's features: a missing or extra feature, or a store
    whose extractor, backend, dim, feature or input differs from the training store's."""
    given = [s.name for s in specs]
    missing = [n for n in run.names if n not in given]
    extra = [n for n in given if n not in run.names]
    if missing or extra:
        raise ValueError(f"run {run.run_dir} uses features {run.names}; "
                         + (f"missing --feature for {missing}" if missing else "")
                         + ("; " if missing and extra else "")
                         + (f"it has no feature {extra}" if extra else ""))
    problems = []
    for spec in specs:
        if not spec.path.exists():
            raise FileNotFoundError(f"feature {spec.name}: store {spec.path} does not exist")
        trained = run.stores.get(spec.name, {})
        new = store_attrs(spec.path)
        for key in CHECKED_ATTRS:
            if key in trained and key in new and str(trained[key]) != str(new[key]):
                problems.append(f"{spec.name}: {key} {new[key]!r} in {spec.path}, but the run was trained "
                                f"on {key} {trained[key]!r} ({trained.get('path', 'training store')})")
    if problems:
        raise ValueError("the stores do not match the run's training stores; extract them with the model "
                         "dataset's extractor settings:\n  " + "\n  ".join(problems))
