"""model/options.py (the one list of pools), model/networks.py (builder, inference), model/predict.py (loading) and
model.pt through model/runfiles.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from core.cli import parser
from model import runfiles
from model.__main__ import COMMANDS
from model.inputs import FeatureInfo
from model.networks import build_model, infer
from model.options import ALL_POOLS, BASELINES, GRID_POOLS, TrainOptions, pool_wildcard
from model.predict import load_trained
from model.train import deterministic, train
from tests.builders import make_toy

ROOT = Path(__file__).resolve().parents[2]
FAST = TrainOptions(dim=8, hidden="8", epochs=2, batch_size=32, warmup_epochs=1)


def test_schema_pool_enums_are_the_model_pools() -> None:
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    grid = schema["$defs"]["experiments"]["properties"]
    combination = grid["combinations"]["additionalProperties"]["properties"]
    assert combination["pools"]["items"]["enum"] == list(GRID_POOLS)
    assert grid["pools"]["items"]["enum"] == list(GRID_POOLS)
    listed = next(kind for kind in combination["baseline"]["anyOf"] if kind["type"] == "array")
    assert listed["items"]["enum"] == list(BASELINES)


def test_rules_cli_and_builder_take_every_pool_and_only_those() -> None:
    line = next(l for l in (ROOT / "rules" / "common.smk").read_text().splitlines()
                if l.strip().startswith("pool="))
    assert line.strip().startswith("pool=pool_wildcard()")
    assert "from model.options import pool_wildcard" in (ROOT / "rules" / "common.smk").read_text()
    assert all(re.fullmatch(pool_wildcard(), p) for p in ALL_POOLS)
    assert not re.fullmatch(pool_wildcard(), "median")
    for pool in ALL_POOLS:
        args = parser("python -m model", "", COMMANDS).parse_args(["train", "--manifest", "m", "--feature", "a=b.h5", "--pool", pool,
                                     "--seed", "0", "--out", "o"])
        assert args.pool == pool
    with pytest.raises(SystemExit):
        parser("python -m model", "", COMMANDS).parse_args(["train", "--manifest", "m", "--feature", "a=b.h5", "--pool", "median",
                              "--seed", "0", "--out", "o"])
    features = [FeatureInfo("a", "dense", 4)]
    for pool in ALL_POOLS:
        build_model(pool, features, 2, FAST, slots=[1])
    with pytest.raises(ValueError, match="choose one of max, min, sum, mean, attention, max_per_modality"):
        build_model("median", features, 2, FAST)


def test_the_old_concat_pool_is_refused_with_its_new_names(capsys) -> None:
    """`concat` was the mean-per-modality baseline; it is refused, naming concat_mean and concat_padded,
    on the command line, in the builder and when a table reads an old run."""
    from report.runs import run_key

    with pytest.raises(SystemExit):
        parser("python -m model", "", COMMANDS).parse_args(["train", "--manifest", "m", "--feature", "a=b.h5", "--pool", "concat",
                              "--seed", "0", "--out", "o"])
    assert "concat_mean" in capsys.readouterr().err
    for call in (lambda: build_model("concat", [FeatureInfo("a", "dense", 4)], 2, FAST),
                 lambda: run_key({"pool": "concat", "method": "concat", "features": ["a"]}, {})):
        with pytest.raises(ValueError, match="renamed: `concat_mean` is that model.*`concat_padded`"):
            call()


def test_pools_import_without_torch() -> None:
    code = "import sys, model.options; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("build")
    manifest, stores = make_toy(root, n=120)
    from model.options import FeatureSpec

    specs = [FeatureSpec(name, path, None) for name, path in stores.items()]
    train(manifest, specs, "max", 1, root / "run", options=FAST, log=None)
    return root / "run", manifest, stores


def test_model_pt_round_trips_through_runfiles(run) -> None:
    run_dir, _, _ = run
    checkpoint = runfiles.read_model(run_dir)
    assert set(runfiles.MODEL_KEYS) <= set(checkpoint)
    trained = load_trained(run_dir)
    assert trained.pool == "max" and trained.seed == 1 and set(trained.stores) == {"signal", "noise", "tags"}


def test_a_checkpoint_without_stores_is_refused(run, tmp_path) -> None:
    """No reader for runs that predate recorded stores: they never shipped."""
    run_dir, _, _ = run
    checkpoint = runfiles.read_model(run_dir)
    del checkpoint["stores"]
    torch.save(checkpoint, tmp_path / runfiles.MODEL)
    with pytest.raises(ValueError, match="lacks stores.*retrain"):
        load_trained(tmp_path)
    with pytest.raises(ValueError, match="needs stores"):
        runfiles.write_model(tmp_path, checkpoint)


def test_infer_scores_every_sample_by_default(run) -> None:
    from model.predict import load_for_run
    from model.options import FeatureSpec

    run_dir, manifest, stores = run
    trained = load_trained(run_dir)
    ids = [line.split(",")[0] for line in manifest.read_text().splitlines()[1:]]
    tables = load_for_run(trained, [FeatureSpec(n, p, None) for n, p in stores.items()], ids)
    probs, importance = infer(trained.model, tables)
    some, _ = infer(trained.model, tables, [3, 5], batch_size=1)
    assert probs.shape == (len(ids), len(trained.classes)) and importance.shape == (len(ids), 3)
    assert torch.allclose(torch.from_numpy(some), torch.from_numpy(probs[[3, 5]]), atol=1e-6)


def test_deterministic_takes_only_the_seed() -> None:
    """It used to take a `cpu` flag that it ignored."""
    with deterministic(7):
        first = torch.rand(3)
    with deterministic(7):
        assert torch.equal(torch.rand(3), first)
    with pytest.raises(TypeError):
        deterministic(7, cpu=True)
