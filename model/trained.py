"""Stores checked against a trained run before it scores them: the training store's identifying
attrs (`store_attrs`, recorded in `model.pt` and metrics.json), the same features with the same
attrs (`check_stores`), every sample of the manifest present (`check_ids`).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from extract.store import read_store
from model.build import TrainedRun
from model.inputs import CHECKED_ATTRS, store_attrs
from model.options import FeatureSpec


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
