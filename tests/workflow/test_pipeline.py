"""The real Snakemake DAG, end to end, on the tiny config in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.manifest import read_manifest
from extract.store import read_store
from tests.workflow.snakemake_run import ROOT
from tests.workflow.snakemake_run import snakemake as run_snakemake

CONFIG = ROOT / "tests/config/test.yaml"


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, "--cores", "2", *args, configfile=CONFIG, replace=True)


@pytest.fixture(scope="module")
def pipeline(shared_run):
    """The demo of tests/config/test.yaml, built in the shared run (shared_run.py)."""
    workdir, done, _ = shared_run
    return workdir, done


def test_end_to_end_stores(pipeline):
    workdir, _ = pipeline
    manifest = read_manifest(workdir / "results/demo/manifest.csv")
    assert len(manifest) == 40
    # shards: auto without GPUs: the costliest store (ocr) in 2 shards, the cheaper ones in 1
    for feature, dim, shards in (("image", 1280, 1), ("text", 384, 1), ("ocr_text", 384, 1)):
        store = read_store(workdir / f"results/demo/features/{feature}.h5")
        assert store.ids == manifest["id"].tolist()
        assert store.attrs["dim"] == dim and store.attrs["shards"] == shards
        assert store.rows["features"].shape[1] == dim
    ocr = read_store(workdir / "results/demo/features/ocr.h5")
    assert ocr.ids == manifest["id"].tolist() and ocr.attrs["shards"] == 2  # merged back in manifest order
    image = read_store(workdir / "results/demo/features/image.h5")
    has_image = (manifest["image"] != "").to_numpy()
    assert (image.counts[has_image] == 1).all() and (image.counts[~has_image] == 0).all()
    assert not (workdir / "results/demo/features/shards").exists() or not any(
        (workdir / "results/demo/features/shards").rglob("*.h5"))  # temp shards removed
    assert (workdir / "logs/demo/extract/image/merge.log").exists()
    for feature in ("image", "text", "faces", "ocr", "ocr_text"):  # none runs the paper's model
        assert read_store(workdir / f"results/demo/features/{feature}.h5").attrs["substitute"], feature
    ocr_text = read_store(workdir / "results/demo/features/ocr_text.h5").attrs["substitute"]
    assert "minilm" in ocr_text and "its input ocr: ocr backend easyocr-en (EasyOCR" in ocr_text


def test_end_to_end_table_and_figures(pipeline):
    import pandas as pd

    workdir, _ = pipeline
    table = pd.read_csv(workdir / "results/demo_table.csv")
    cells = set(zip(table["Method"], table["Modalities"], table["Pool"]))
    every = "image+text+faces+ocr_text"
    assert cells == {("set", "image", "max"), ("set", every, "max"), ("set per modality", every, "attention"),
                     ("concat mean", every, "mean"), ("concat padded", every, "-"),
                     ("set", "image+text+faces:mean+ocr_text", "max")}
    assert (table["seeds"] == 3).all() and table["f1_micro"].between(0, 1).all()
    assert "±" in (workdir / "results/demo_table.md").read_text()
    assert (workdir / "results/demo/figures/importance_all.png").stat().st_size > 1000
    assert (workdir / "results/demo/figures/matrices/overview.png").stat().st_size > 1000
    for store in ("faces", "ocr", "ocr_text"):
        assert read_store(workdir / f"results/demo/features/{store}.h5").ids == read_store(
            workdir / "results/demo/features/image.h5").ids
    for seed in (0, 1, 2):  # one training job per cell wrote every seed's run folder
        run = workdir / f"results/demo/runs/all/concat_padded/seed{seed}"
        for name in ("metrics.json", "history.csv", "predictions.h5", "importance.h5", "model.pt"):
            assert (run / name).exists(), name
    slots = json.loads((run / "metrics.json").read_text())["slots"]  # the padding caps, from train
    assert slots["image"] == slots["text"] == 1 and slots["faces"] >= 1 and slots["ocr_text"] == 1
    log = (workdir / "logs/demo/train/all/concat_padded.log").read_text()
    assert [line.split(":")[0] for line in log.splitlines() if line.startswith("run ")] == [
        f"run results/demo/runs/all/concat_padded/seed{s}" for s in (0, 1, 2)]


def test_end_to_end_comparisons_and_two_views(pipeline):
    import pandas as pd

    workdir, _ = pipeline
    frame = pd.read_csv(workdir / "results/demo_comparisons.csv")
    assert list(frame.columns) == ["row", "baseline", "metric", "delta", "ci_low", "ci_high", "p_value",
                                   "ci_over", "seeds", "samples"]
    assert ((frame["ci_low"] <= frame["delta"]) & (frame["delta"] <= frame["ci_high"])).all()
    assert set(frame["metric"]) == {"f1_micro", "f1_macro"} and (frame["seeds"] == 3).all()
    assert (frame["ci_over"] == "seeds+samples").all()
    kinds = frame["baseline"].str.split(":").str[0]
    assert {"best single", "concat mean", "concat padded", "collapsed"} <= set(kinds)
    per_modality = frame[frame["row"].str.endswith("(attention per modality)")]
    assert set(per_modality["baseline"].str.split(":").str[0]) == {"best single", "concat mean", "concat padded"}
    collapsed = frame[kinds == "collapsed"]
    assert set(collapsed["row"]) == {"MobileNetV2(i), MiniLM(t), Face(i), MiniLM(ocr) (max)"}
    assert "CI excludes 0" in (workdir / "results/demo_comparisons.md").read_text()
    views = pd.read_csv(workdir / "results/demo_robustness_views.csv")
    assert {"importance", "removal_share", "removal_prob", "removal_loss"} <= set(views.columns)
    assert "removal share" in (workdir / "results/demo/gallery/index.html").read_text()


def test_training_option_change_reruns_training_only(pipeline, tmp_path):
    """Changing a training option plans training and tables again, never extraction."""
    import yaml

    workdir, _ = pipeline
    config = yaml.safe_load(CONFIG.read_text())
    config["datasets"]["demo"]["experiments"]["train"]["epochs"] = 5
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    from tests.workflow.snakemake_run import job_counts

    plan = run_snakemake(workdir, "-n", "--cores", "2", configfile=changed, replace=True)
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = job_counts(plan.stdout)
    assert counts.get("train") == 6 and "table" in counts  # one job per cell
    assert not {"extract_shard", "merge_shards", "manifest", "compose_demo"} & set(counts)


def test_rerun_is_a_no_op(pipeline):
    workdir, _ = pipeline
    again = snakemake(workdir, "-n")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def test_lint_is_clean():
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    lint = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Lints for" not in lint.stdout + lint.stderr
    fmt = subprocess.run([str(Path(sys.executable).parent / "snakefmt"), "--check", "Snakefile", "rules"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
