"""A `predict:` dataset's `model` must name a run of the model dataset's grid; messages about a
dataset's settings name the config files that were loaded (dry runs of the real Snakefile)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from tests.workflow.snakemake_run import ROOT, snakemake


def write_config(root, model: str, **extra) -> object:
    table = root / "table.csv"
    pd.DataFrame({"id": ["a", "b", "c", "d"], "image": "", "text": ["x y", "y z", "z x", "x"],
                  "labels": ["p", "q", "p|q", "q"]}).to_csv(table, index=False)
    features = {"text": {"extractor": "text", "backend": "minilm"}}
    config = {"targets": ["new"], "datasets": {
        "mine": {"format": "table", "table": str(table), "features": features,
                 "experiments": {"seeds": [0], "pools": ["max"],
                                 "combinations": {"words": {"features": ["text"]}}}},
        "new": {"format": "table", "table": str(table), "predict": {"model": model}, **extra}}}
    path = root / "mine.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("model", ["mine/words/max/seed9", "mine/words/min/seed0", "mine/words/max/seed0-fold1",
                                   "other/words/max/seed0", "new/words/max/seed0"])
def test_predict_model_outside_the_grid_is_refused_when_the_dag_is_built(tmp_path, model) -> None:
    path = write_config(tmp_path, model)
    plan = snakemake(tmp_path / "work", "-n", "results/new/predictions.csv", configfile=path, timeout=300)
    assert plan.returncode != 0
    assert "Job stats" not in plan.stdout  # refused before any job was planned
    err = plan.stdout + plan.stderr
    assert f"predict.model {model!r}" in err and str(path) in err  # the user's file, not only ours
    assert f"{ROOT / 'config/config.yaml'}, {path}" in err and ", --config" not in err
    if model.startswith("mine/words/") and model.count("/") == 3:
        assert "configured runs: mine/words/max/seed0" in err


def test_predict_model_in_the_grid_plans_its_training_and_predictions(tmp_path) -> None:
    path = write_config(tmp_path, "mine/words/max/seed0")
    plan = snakemake(tmp_path / "work", "-n", "results/new/predictions.csv", configfile=path, timeout=300)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "--run results/mine/runs/words/max/seed0 " in plan.stdout and "rule predict" in plan.stdout
    assert "output: results/mine/runs/words/max\n" in plan.stdout  # the cell's training job


def test_unknown_target_names_the_loaded_config_files(tmp_path) -> None:
    path = write_config(tmp_path, "mine/words/max/seed0")
    plan = snakemake(tmp_path / "work", "-n", "--config", "targets=[mine, nosuch]", configfile=path, timeout=300)
    assert plan.returncode != 0
    err = plan.stdout + plan.stderr
    assert "targets ['nosuch'] name no dataset in" in err and str(path) in err and "--config" in err
