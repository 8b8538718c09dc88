"""A user's own dataset (`format: table`: a CSV of images and text, no split column) through the
real Snakemake DAG to its table, then a trained run's predictions on an unlabeled second table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from data.manifest import read_manifest
from tests.workflow.snakemake_run import snakemake

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "coins", "camera")
TEXT = {"astronaut": "a woman in a space suit", "chelsea": "a cat on a sofa",
        "coffee": "a cup of coffee", "rocket": "a rocket before launch",
        "coins": "old coins on a table", "camera": "a man with a camera"}
LABELS = {"astronaut": "space|people", "chelsea": "animal", "coffee": "food",
          "rocket": "space", "coins": "money", "camera": "people"}


def write_table(folder: Path, n: int, labelled: bool, seed: int) -> Path:
    """`n` rows over scikit-image's photos (jittered crops), image paths relative to the table."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    rows = []
    for k in range(n):
        name = PHOTOS[k % len(PHOTOS)]
        photo = np.asarray(getattr(skdata, name)())
        if photo.ndim == 2:
            photo = np.stack([photo] * 3, axis=-1)
        h, w = photo.shape[:2]
        top, left = rng.integers(0, h // 5), rng.integers(0, w // 5)
        Image.fromarray(photo[top:top + h * 4 // 5, left:left + w * 4 // 5]).resize((96, 96)).save(
            folder / "images" / f"{k}.jpg")
        rows.append({"id": f"s{k:03d}", "image": f"images/{k}.jpg",
                     "text": "" if k % 7 == 3 else TEXT[name],
                     "labels": LABELS[name] if labelled else ""})
    rows[5]["image"] = "images/does-not-exist.jpg"  # a missing file keeps the row's text
    table = folder / "table.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return table


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    train_table = write_table(root / "mine", 48, labelled=True, seed=0)
    new_table = write_table(root / "new", 12, labelled=False, seed=1)
    features = {"image": {"extractor": "image", "backend": "mobilenet_v2", "options": {"batch_size": 8}},
                "text": {"extractor": "text", "backend": "minilm"}}
    config = {
        "shards": 1, "targets": ["mine", "new"],
        "datasets": {
            "mine": {"format": "table", "table": str(train_table), "split": {"ratios": [0.6, 0.2, 0.2], "seed": 0},
                     "features": features,
                     "experiments": {"seeds": [0], "pools": ["max"],
                                     "train": {"dim": 16, "hidden": "16", "epochs": 8, "batch_size": 8, "lr": 0.01},
                                     "importance_samples": 1,
                                     "combinations": {"image_text": {"features": ["image", "text"], "pools": ["max"]}}}},
            "new": {"format": "table", "table": str(new_table), "predict": {"model": "mine/image_text/max/seed0"}},
        },
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    work = root / "work"
    done = snakemake(work, "--cores", "2", configfile=path, replace=True)
    assert done.returncode == 0, done.stderr[-5000:]
    return work


def test_table_dataset_gets_a_stratified_split_and_its_table(workflow) -> None:
    manifest = read_manifest(workflow / "results/mine/manifest.csv")
    assert len(manifest) == 48 and set(manifest["split"]) == {"train", "dev", "test"}
    assert manifest.loc[manifest["id"] == "s005", "image"].item() == ""  # missing file: no image ...
    assert manifest.loc[manifest["id"] == "s005", "text"].item() != ""  # ... the text is kept
    table = pd.read_csv(workflow / "results/mine_table.csv")
    assert set(table["Pool"]) == {"max", "concat"} and table["f1_micro"].between(0, 1).all()
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
