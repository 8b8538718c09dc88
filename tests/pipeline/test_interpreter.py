"""The Python the jobs run: a venv's snakemake started without activating the venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.interpreter import job_path

ROOT = Path(__file__).resolve().parents[2]


def fake_python(folder: Path) -> Path:
    """A `python` on PATH that finds none of the packages (as a bare system Python)."""
    folder.mkdir(parents=True, exist_ok=True)
    python = folder / "python"
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    return python


def test_the_python_running_snakemake_goes_first_when_the_one_on_path_lacks_the_packages(tmp_path) -> None:
    bare = fake_python(tmp_path / "bin")
    path, why = job_path({"PATH": f"{bare.parent}:/usr/bin"})
    assert path == os.pathsep.join([os.path.dirname(sys.executable), f"{bare.parent}:/usr/bin"])
    assert str(bare) in why and "source .venv/bin/activate" in why
    assert job_path({"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin"}) == (None, "")


def test_neither_python_able_to_run_jobs_names_the_fix(tmp_path) -> None:
    bare, other = fake_python(tmp_path / "bin"), fake_python(tmp_path / "snakemake-env")
    with pytest.raises(RuntimeError, match="make venv.*source .venv/bin/activate"):
        job_path({"PATH": str(bare.parent)}, executable=str(other))


def test_a_job_runs_under_the_venvs_python_without_activation(tmp_path) -> None:
    """`.venv/bin/snakemake` with a PATH whose `python` is bare: the manifest job still runs."""
    bare = fake_python(tmp_path / "bin")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "table.csv").write_text("id,text,labels\na,one,x\nb,two,y\nc,three,x\n")
    config = {"datasets": {"mine": {"format": "table", "table": str(tmp_path / "mine" / "table.csv"),
                                    "split": {"ratios": [0.34, 0.33, 0.33], "seed": 0},
                                    "features": {"text": {"extractor": "text", "backend": "minilm"}},
                                    "experiments": {"combinations": {"t": {"features": ["text"]}}}}}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PATH=f"{bare.parent}:/usr/bin:/bin", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                           str(tmp_path / "work"), "--cores", "1", "results/mine/manifest.csv",
                           "--configfile", str(tmp_path / "mine.yaml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert f"`python` on PATH ({bare})" in output
    assert (tmp_path / "work" / "results" / "mine" / "manifest.csv").exists()
