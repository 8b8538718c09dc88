"""`python -m extract.inspect`, run as a user runs it: every attr, "random weights", and one-line
errors with the fix (exit 1, no traceback) for missing, truncated, foreign and cut-short cases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from extract.inspect import WIDTH
from extract.store import base_attrs, write_store
from tests.builders import StoreBuilder

ROOT = Path(__file__).resolve().parents[2]
SUBSTITUTE = ("image backend timm (a timm model named by option model; the store's model attr names it) instead "
              "of the paper's ResNeXt-101 32x16d WSL (pretrained on 940 million public images and ImageNet-1k), "
              "second-to-last layer, 2048-d; random weights (pretrained: false): the features carry no learned "
              "meaning")


def inspect(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "extract.inspect", *args], cwd=cwd, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)


@pytest.fixture
def store(tmp_path) -> Path:
    """A timm store built with random weights, as `python -m extract image --backend timm --set
    pretrained=false` writes it (its attrs as extract/run.py sets them)."""
    b = StoreBuilder()
    for k in range(12):
        b.add(f"{k:07d}", {"features": np.ones((k % 3, 4), np.float16)})
    b.fail("0000099", "cannot identify image file 'x.jpg'")
    config = {"batch_size": 32, "cuda_batch_size": 0, "dtype": "float16", "full": False, "model": "resnet18",
              "precision": "auto", "pretrained": "false"}
    attrs = base_attrs("image", "timm", 4, config, [])
    attrs.update({"feature": "image", "input": "manifest", "model": "timm resnet18 (random weights)",
                  "substitute": SUBSTITUTE, "precision": "fp32", "device": "cpu", "batch_size": 32,
                  "preprocess": json.dumps({"input_size": [3, 224, 224], "interpolation": "bicubic",
                                            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                            "crop_pct": 0.875, "crop_mode": "center"})})
    return write_store(tmp_path / "image.h5", b.build(attrs, {"features": ((4,), np.float16)}))


def test_summary_prints_every_attr_folded_and_says_random_weights(store, tmp_path):
    done = inspect(str(store), cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    out = done.stdout
    lines = out.splitlines()
    assert lines[1] == "  RANDOM WEIGHTS: built with pretrained: false; its features carry no learned meaning"
    for key in ("format", "version", "extractor", "backend", "feature", "input", "model", "substitute", "weights",
                "dim", "config", "preprocess", "precision", "device", "batch_size", "created", "row_columns"):
        assert any(line.startswith(f"  {key} ") for line in lines), key
    assert all(len(line) <= WIDTH for line in lines[1:])  # long JSON and text folded
    flat = " ".join(out.split())
    assert SUBSTITUTE in flat and '"crop_mode": "center"' in flat and '"pretrained": "false"' in flat
    assert "samples            13  rows 12" in out and "failed             1" in out


def test_store_with_pretrained_weights_says_nothing_of_random_weights(tmp_path):
    b = StoreBuilder()
    b.add("a", {"features": np.ones((1, 4), np.float16)})
    attrs = base_attrs("image", "mobilenet_v2", 4, {"batch_size": 32}, [("mobilenet_v2-b0353104.pth", "b0" * 32)])
    path = write_store(tmp_path / "s.h5", b.build(attrs, {"features": ((4,), np.float16)}))
    out = inspect(str(path), cwd=tmp_path).stdout
    assert "RANDOM" not in out and f"  weights            mobilenet_v2-b0353104.pth\n" in out
    assert f"                     sha256 {'b0' * 32}\n" in out


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("python -m extract.inspect: ")
    return done.stderr


def test_truncated_store_is_incomplete_with_the_fix(store, tmp_path):
    data = store.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])  # a copy that stopped half way (disk full, killed rsync)
    message = one_line_error(inspect(str(cut), cwd=tmp_path))
    assert f"{cut.name}: incomplete store: delete it and rerun its rule" in message


def test_store_whose_writer_died_is_incomplete(tmp_path):
    """The temporary file of a writer killed before `finish`: datasets but no attrs."""
    with h5py.File(tmp_path / ".image.h5.123.tmp", "w") as h5:
        h5["ids"] = np.array([b"a"])
        h5["offsets"] = np.array([0, 1])
    message = one_line_error(inspect(".image.h5.123.tmp", cwd=tmp_path))
    assert "incomplete store: delete it and rerun its rule" in message


def test_missing_id_names_the_nearest_ids(store, tmp_path):
    message = one_line_error(inspect(str(store), "7", cwd=tmp_path))  # an id without its zero padding
    assert "sample '7' is not in" in message and "13 samples; nearest ids: 0000007" in message
    assert inspect(str(store), "0000007", cwd=tmp_path).stdout.startswith(f"{store} sample 0000007: 1 rows")


@pytest.mark.parametrize("name, make, expected", [
    ("nope.h5", None, "feature store nope.h5 does not exist; run its extraction rule first"),
    ("other.h5", "hdf5", "other.h5 is not a dmms-ragged store (format=None): give a store written by python -m extract"),
    ("table.h5", "csv", "table.h5 is not an HDF5 file, so not a feature store"),
    ("folder", "dir", "folder is a folder; give a store file"),
])
def test_missing_foreign_and_non_hdf5_files(tmp_path, name, make, expected):
    path = tmp_path / name
    if make == "hdf5":
        with h5py.File(path, "w") as h5:
            h5["x"] = [1]
    elif make == "csv":
        path.write_text("id,text\n1,hello\n")
    elif make == "dir":
        path.mkdir()
    assert expected in one_line_error(inspect(name, cwd=tmp_path))


def test_output_cut_short_by_its_reader_ends_quietly(store, tmp_path):
    """`... | head`: the reader is gone before the summary is written; no BrokenPipeError."""
    child = subprocess.Popen([sys.executable, "-m", "extract.inspect", str(store)], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"PYTHONPATH": str(ROOT)})
    child.stdout.close()  # as head does once it has its lines
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 1 and err == ""
