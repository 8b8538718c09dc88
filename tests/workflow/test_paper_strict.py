"""`paper_strict: true` refuses a paper dataset whose features would run substitutes, before any
job runs, with a message that names what is missing and how to install it."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import yaml

from tests.workflow.snakemake_run import job_counts, snakemake
from tests.workflow.test_workflows import fake_mmimdb


@pytest.mark.skipif(importlib.util.find_spec("detectron2") is not None,
                    reason="detectron2 is installed here, so objects would run the paper's detector")
def test_paper_strict_refuses_substitutes_before_any_job(tmp_path):
    root = fake_mmimdb(tmp_path / "mmimdb")
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump({"datasets": {"imdb": {"root": str(root), "paper_strict": True}}}))
    # random weights where the project looks for the paper's (DMMS_WEIGHTS, this test's own folder)
    weights = Path(os.environ["DMMS_WEIGHTS"])
    (weights / "roberta-base").mkdir(parents=True)
    (weights / "ig_resnext101_32x16-c6f796b0.pth").write_bytes(b"random weights")
    (weights / "roberta-base" / "config.json").write_text("{}")
    (weights / "roberta-base" / "model.safetensors").write_bytes(b"random weights")
    plan = snakemake(tmp_path / "work", "-n", "--cores", "1", "results/imdb_table.csv",
                     configfile=strict, timeout=600)
    out = plan.stdout + plan.stderr
    assert plan.returncode != 0
    assert "paper_strict" in out and "detectron2" in out, out[-3000:]
    assert "weights ig_resnext101_32x16-c6f796b0.pth have sha256 " in out, out[-3000:]
    assert "not Hugging Face's roberta-base's 5bde1d28afb363d0" in out, out[-3000:]
    assert not (tmp_path / "work/results").exists()  # nothing ran

    # the same dataset without paper_strict plans its jobs (substitutes recorded in the stores)
    loose = tmp_path / "loose.yaml"
    loose.write_text(yaml.safe_dump({"datasets": {"imdb": {"root": str(root)}}}))
    plan = snakemake(tmp_path / "work2", "-n", "--cores", "1", "results/imdb_table.csv",
                     configfile=loose, timeout=600)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert job_counts(plan.stdout)["train"] > 0
