"""The paper's workflows: MM-IMDb planned on SLURM, jobs through a cluster executor, Ads end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.workflow.snakemake_run import ROOT, job_counts, snakemake


def fake_mmimdb(root: Path, n: int = 12) -> Path:
    """A tiny tree in MM-IMDb's real layout: dataset/<id>.json|.jpeg and split.json."""
    (root / "dataset").mkdir(parents=True)
    ids = [f"{k + 1:07d}" for k in range(n)]
    for k, sid in enumerate(ids):
        meta = {"title": f"Movie {k}", "plot": [f"A story number {k}."], "genres": ["Drama", "Comedy"][: 1 + k % 2]}
        (root / "dataset" / f"{sid}.json").write_text(json.dumps(meta))
        Image.new("RGB", (32, 48), (k * 20, 40, 90)).save(root / "dataset" / f"{sid}.jpeg")
    (root / "split.json").write_text(json.dumps({"train": ids[:8], "dev": ids[8:10], "test": ids[10:]}))
    return root


def test_imdb_plan_on_slurm_profile(tmp_path):
    """`snakemake -n results/imdb_table.csv` with the SLURM profile plans every extraction shard
    and one training job per grid cell (the rows of the paper's Table 3 plus concat baselines),
    each training the cell's three seeds."""
    root = fake_mmimdb(tmp_path / "mmimdb")
    override = tmp_path / "imdb.yaml"
    override.write_text(yaml.safe_dump({"shards": 4, "datasets": {"imdb": {"root": str(root)}}}))
    plan = snakemake(tmp_path / "work", "-n", "--profile", str(ROOT / "profiles/slurm"),
                     "results/imdb_table.csv", configfile=override, timeout=600)
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    counts = job_counts(plan.stdout)
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())["datasets"]["imdb"]
    n_features = len(config["features"])
    assert counts["extract_shard"] == 4 * n_features  # every shard of every store
    # one weights fetch per distinct extractor/backend/options: text and ocr_text share roberta-base's
    distinct = {(f["extractor"], f.get("backend"), str(sorted(f.get("options", {}).items())))
                for f in config["features"].values()}
    assert counts["merge_shards"] == n_features and counts["fetch_weights"] == len(distinct) == n_features - 1
    # Table 3: 5 single-pool rows + 5 combinations x (max, min, sum) = 20 rows of ours,
    # plus concat mean and concat padded for the 8 multi-feature combinations: 36 cells, one job
    # each training its 3 seeds.
    assert counts["train"] == 36 and plan.stdout.count(" --run 2=results/imdb/runs/") == 36
    assert counts["table"] == 1 and "download_mmimdb" not in counts
    assert "gpu=1" in plan.stdout  # the profile asks for CUDA, so GPU rules request a GPU


def test_jobs_through_cluster_generic_executor(tmp_path):
    """A few real jobs submitted through the generic cluster executor, run locally."""
    submit = tmp_path / "submit.sh"
    submit.write_text("#!/usr/bin/env bash\n# run the job script in the background, print a job id\n"
                      "nohup bash \"$1\" > \"$1.out\" 2>&1 &\necho $!\n")
    submit.chmod(0o755)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"demo": {"compose": {"n": 12, "seed": 3}}}}))
    run = snakemake(tmp_path / "work", "--executor", "cluster-generic", "--cluster-generic-submit-cmd",
                    str(submit), "--jobs", "2", "--latency-wait", "10", "results/demo/manifest.csv",
                    configfile=config, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    manifest = pd.read_csv(tmp_path / "work/results/demo/manifest.csv", dtype=str)
    assert len(manifest) == 12
    assert "compose_demo" in run.stdout + run.stderr and "manifest" in run.stdout + run.stderr


@pytest.fixture(scope="module")
def ads_run(shared_run):
    """The Ads fixture, with real photos as ads (shared_run.py `ads_config`), built in the shared run."""
    work, _, config = shared_run
    return work, config


def test_ads_end_to_end_beside_paper(ads_run):
    work, _ = ads_run
    table = pd.read_csv(work / "results/ads_table.csv")
    ours = table[table["source"] == "dmms"]
    paper = table[table["source"] == "paper"]
    assert len(paper) == 18  # Table 2 as published, prior work included
    assert set(zip(ours["Method"], ours["Pool"])) == {("set", "max"), ("concat padded", "-")}
    single = ours[ours["Features"].str.fullmatch(r"WSL\(i\)")]
    assert len(single) == 1 and single["paper_accuracy"].iloc[0] == pytest.approx(57.726)
    assert single["accuracy"].between(0, 100).all()  # percent, as the paper prints them
    runs = list((work / "results/ads/runs").rglob("metrics.json"))
    assert len(runs) == 3 * 5  # 3 cells x 5 folds x 1 seed
    folds = {json.loads(p.read_text())["fold"] for p in runs}
    assert folds == {0, 1, 2, 3, 4}


def test_report_builds(ads_run):
    work, config = ads_run
    report = snakemake(work, "--report", "report.html", "results/ads_table.csv", configfile=config,
                       replace=True, timeout=600)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    html = (work / "report.html").read_text(errors="replace")
    assert "ads_table.csv" in html and "Results on" in html
