"""The real Snakemake DAG, end to end, on the tiny config in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from data.manifest import read_manifest
from extract.store import read_store

ROOT = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(ROOT / "tests/config/test.yaml"), "--cores", "2", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    done = snakemake(workdir)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir, done


def test_end_to_end_stores(pipeline):
    workdir, _ = pipeline
    manifest = read_manifest(workdir / "results/demo/manifest.csv")
    assert len(manifest) == 40
    for feature, dim in (("image", 1280), ("text", 384)):
        store = read_store(workdir / f"results/demo/features/{feature}.h5")
        assert store.ids == manifest["id"].tolist()  # shards merged back in manifest order
        assert store.attrs["dim"] == dim and store.attrs["shards"] == 2
        assert store.rows["features"].shape[1] == dim
    image = read_store(workdir / "results/demo/features/image.h5")
    has_image = (manifest["image"] != "").to_numpy()
    assert (image.counts[has_image] == 1).all() and (image.counts[~has_image] == 0).all()
    assert not (workdir / "results/demo/features/shards").exists() or not any(
        (workdir / "results/demo/features/shards").rglob("*.h5"))  # temp shards removed
    assert (workdir / "logs/demo/extract/image/merge.log").exists()


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
