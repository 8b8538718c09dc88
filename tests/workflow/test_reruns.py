"""What a config change reruns: Snakemake's own dry run (its rerun triggers: params, inputs,
mtimes) over the shared run's finished folder, with one setting changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.plan import Plan
from tests.workflow.snakemake_run import ROOT, job_counts, snakemake
from tests.workflow.test_profiles import plan_resources

CONFIG = ROOT / "tests/config/test.yaml"


@pytest.fixture(scope="module")
def work(shared_run) -> Path:
    return shared_run[0]


def plan_after(work: Path, tmp_path: Path, change) -> tuple[dict[str, int], str]:
    """{rule: jobs} of a dry run of the demo with `change` applied to its section, and its output."""
    config = yaml.safe_load(CONFIG.read_text())
    change(config["datasets"]["demo"])
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    run = snakemake(work, "-n", "--cores", "2", configfile=changed, replace=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return job_counts(run.stdout), run.stdout


def test_a_label_change_reruns_only_what_shows_labels(work, tmp_path) -> None:
    """Not training, not the robustness scoring (49 s on the demo): tables, figures, gallery and
    the robustness table, which label features."""
    counts, out = plan_after(work, tmp_path, lambda demo: demo["experiments"]["labels"].update(faces="Faces(i)"))
    assert set(counts) == {"table", "comparisons", "robustness", "importance_figure", "importance_matrices",
                           "gallery", "all", "total"}, counts
    assert "python -m report robustness --scored" in out  # labelling only, from the scores on disk


def test_report_jobs_ask_memory_for_the_stores_their_runs_read(work, tmp_path) -> None:
    """Robustness, matrices and gallery rebuild runs from run folders (which weigh nothing) and
    load the runs' stores: their `mem_mb` counts the dataset's grid stores twice over."""
    _, out = plan_after(work, tmp_path, lambda demo: demo["experiments"]["labels"].update(faces="Faces(i)"))
    config = yaml.safe_load(CONFIG.read_text())["datasets"]["demo"]
    used = {f for combo in config["experiments"]["combinations"].values() for f in combo["features"]}
    used |= {config["features"][f]["input"] for f in used if "input" in config["features"][f]}
    stores_mb = sum((work / f"results/demo/features/{f}.h5").stat().st_size for f in used) / 2**20
    memory = {rule: int(res["mem_mb"]) for rule, res in plan_resources(out) if "mem_mb" in res}
    assert stores_mb > 0.5 and memory["importance_matrices"] == int(1500 + 2 * stores_mb), (memory, stores_mb)
    assert memory["gallery"] >= memory["importance_matrices"]


def test_an_extractor_option_reextracts_without_fetching_weights(work, tmp_path) -> None:
    """faces `min_face_size` changes the faces store (and what trains on it), not which weight
    files it needs."""
    counts, _ = plan_after(work, tmp_path, lambda demo: demo["features"]["faces"]["options"].update(min_face_size=30))
    assert counts["extract_shard"] == 1 and counts["merge_shards"] == 1 and counts["train"] > 0
    assert "fetch_weights" not in counts, counts


def test_weights_are_fetched_once_per_extractor_backend_and_weight_options(work, shared_run) -> None:
    """One record per distinct (extractor, backend, weight options) over every dataset of the
    shared run: the demo's three MiniLM features share one, and so do `mine`, and `new`, the
    predict dataset, which is extracted with mine's settings and has no record of its own."""
    config = yaml.safe_load((work.parent / "shared.yaml").read_text())
    features = [f for name, ds in config["datasets"].items() if name != "new" for f in ds["features"].values()
                if f["extractor"] != "index"]  # no weight files, no fetch (extract/catalog.py)
    keys = {Plan.weights_key({"backend": None, "options": {}, **f}) for f in features}
    records = {p.stem for p in (work / "resources/weights/ready").glob("*.json")}
    assert records == keys and len(keys) < len(features)
    assert {p.stem for p in (work / "logs/weights").glob("*.log")} == keys
    text = json.loads((work / "resources/weights/ready/text-minilm.json").read_text())
    assert text["extractor"] == "text" and text["weights"][0]["file"] == "model.safetensors"
    assert not list((work / "logs/new").glob("weights*"))
