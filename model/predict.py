"""A trained run applied to samples: loaded back from its folder (`load_trained`), the stores
given checked against its training stores (`check_stores`, `check_ids`), their features loaded
as in training (`load_for_run`) and scored (`infer`, model/networks.py). Predict and the
missing-modality robustness (report/robustness.py) load and score a run this way only.

`model.pt` holds the state dict, the training options, the pool, the features (name, kind,
input dim) in modality order, the classes, the task, the seed and `stores`: per feature the
training store's path, column and attrs (model/inputs.py `store_attrs`: extractor, backend, dim,
feature, input, model, precision, config; docs/DESIGN.md, "Run folder");
a `concat_padded` run also its `slots` (blocks per feature, from its training split).

`python -m model predict --run RUN_DIR --manifest M --feature NAME=STORE.h5 ... --out PRED`
(`predict_new`) writes PRED.csv and PRED.h5 (`write_pred_files`):
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

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np
import pandas as pd
import torch

from core.atomic import atomic_write
from core.manifest import read_manifest
from extract.store import read_store
from model import runfiles
from model.inputs import CHECKED_ATTRS, FeatureInfo, load_features, store_attrs
from model.networks import FusionModel, build_model, infer
from model.options import FeatureSpec, TrainOptions

STR = h5py.string_dtype("utf-8")


# ---------------------------------------------------------------------------------------------
# a trained run, loaded back


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


# ---------------------------------------------------------------------------------------------
# stores checked against it: the same features with the same attrs, every sample present


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


# ---------------------------------------------------------------------------------------------
# scoring new samples


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


def write_pred_files(out: str | Path, run: TrainedRun, ids: Sequence[str], probs: np.ndarray,
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
    return write_pred_files(out, run, ids, probs, importance, elements, failed)
