"""A user's own dataset (`format: table`: a CSV of images and text, no split column) through the
real Snakemake DAG to its table, then a trained run's predictions on an unlabeled second table."""

from __future__ import annotations

import pandas as pd
import pytest

from core.manifest import read_manifest


@pytest.fixture(scope="module")
def workflow(shared_run):
    """`mine` and `new` (shared_run.py `own_datasets`), built in the shared run."""
    return shared_run[0]


def test_table_dataset_gets_a_stratified_split_and_its_table(workflow) -> None:
    manifest = read_manifest(workflow / "results/mine/manifest.csv")
    assert len(manifest) == 48 and set(manifest["split"]) == {"train", "dev", "test"}
    assert manifest.loc[manifest["id"] == "s005", "image"].item() == ""  # missing file: no image ...
    assert manifest.loc[manifest["id"] == "s005", "text"].item() != ""  # ... the text is kept
    table = pd.read_csv(workflow / "results/mine_table.csv")
    assert set(table["Method"]) == {"set", "concat mean", "concat padded"} and table["f1_micro"].between(0, 1).all()
    assert (workflow / "results/mine_robustness.csv").exists()
    assert (workflow / "results/mine/gallery/index.html").exists()


def test_unlabeled_table_gets_predictions(workflow) -> None:
    pred = pd.read_csv(workflow / "results/new/predictions.csv", dtype={"id": str}, keep_default_na=False)
    ids = read_manifest(workflow / "results/new/manifest.csv")["id"].tolist()
    assert pred["id"].tolist() == ids and len(ids) == 12
    probs = pred[[c for c in pred.columns if c.startswith("p_")]].to_numpy()
    assert probs.shape[1] == 5 and ((probs >= 0) & (probs <= 1)).all()
    # the predict dataset was extracted with the model dataset's settings, nothing else
    stores = sorted(p.name for p in (workflow / "results/new/features").glob("*.h5"))
    assert stores == ["image.h5", "text.h5"]
