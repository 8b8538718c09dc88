"""Training: options, splits, synthetic learning, importance ranking, the CLI run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from model.__main__ import main
from model.inputs import class_names, load_features, select_splits, target_matrix
from model.options import FeatureSpec, TrainOptions, parse_options
from model.train import train, warmup_cosine
from extract.store import base_attrs, write_store
from tests.builders import StoreBuilder, make_toy

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
FAST = ["epochs=30", "batch_size=32", "dim=16", "hidden=16", "warmup_epochs=2", "lr=0.01"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[Path, list[FeatureSpec]]:
    manifest, stores = make_toy(tmp_path_factory.mktemp("toy"))
    return manifest, [FeatureSpec(name, path) for name, path in stores.items()]


def test_options_typed_and_unknown_key() -> None:
    options = parse_options(["dim=8", "dropout=0.1", "hidden=256, 128", "fold=3", "amp=true",
                             "max_elements.faces=4", "classes=a|b"])
    assert options.dim == 8 and options.dropout == 0.1 and options.fold == 3 and options.amp is True
    assert options.hidden_sizes() == [256, 128] and options.max_elements_by == {"faces": 4}
    assert TrainOptions().hidden_sizes() == [128] and parse_options(["fold=none"]).fold is None
    with pytest.raises(ValueError, match="unknown option"):
        parse_options(["dimension=8"])
    with pytest.raises(ValueError, match="expected int"):
        parse_options(["epochs=ten"])
    with pytest.raises(ValueError, match="class_weights"):
        parse_options(["class_weights=inverse"])


def test_classes_and_targets() -> None:
    labels = pd.Series(["b|a", "b", "", "c|b"])
    assert class_names(labels) == ["b", "a", "c"]  # frequency, then name
    assert class_names(labels, "c|a") == ["c", "a"]
    assert target_matrix(labels, ["c", "a"]).tolist() == [[0, 1], [0, 0], [0, 0], [1, 0]]


def test_integer_fold_split_selection() -> None:
    split = pd.Series(["0", "1", "2", "3", "4", "0", "4", ""])
    chosen = select_splits(split, fold=4, dev_fraction=0)  # no dev set: train on every other fold
    assert chosen["test"].tolist() == [4, 6] and chosen["train"].tolist() == [0, 1, 2, 3, 5]
    assert chosen["dev"].tolist() == []
    with pytest.raises(ValueError, match="fold=K"):
        select_splits(split, fold=None)
    named = select_splits(pd.Series(["train", "dev", "test", "train"]), fold=None)
    assert named["train"].tolist() == [0, 3] and named["test"].tolist() == [2]
    with pytest.raises(ValueError):
        select_splits(pd.Series(["train", "validation"]), fold=None)


def test_warmup_then_cosine() -> None:
    factor = warmup_cosine(4, 12)
    values = [factor(s) for s in range(12)]
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[-1] == pytest.approx(0.0, abs=1e-12) and all(np.diff(values[3:]) <= 0)


def test_load_features_caps_and_aligns(toy) -> None:
    manifest, specs = toy
    ids = pd.read_csv(manifest, dtype=str, keep_default_na=False)["id"].tolist()
    tables = load_features(specs, ["missing"] + ids[:50], max_elements=2, seed=0)
    noise = tables[1]
    assert noise.counts[0] == 0 and noise.counts.max() <= 2
    assert tables[2].info.kind == "index" and tables[2].info.input_dim == 5
    assert tables[2].counts.max() == 3  # index features are not capped by default
    assert tables[0].values.dtype == torch.float16  # kept compact, cast per batch


def test_synthetic_signal_is_learned_and_most_important(toy, tmp_path) -> None:
    manifest, specs = toy
    metrics = train(manifest, specs, "max", 0, tmp_path / "max", options=parse_options(FAST), log=None)
    assert metrics["f1_micro"] > 0.8, metrics
    with h5py.File(tmp_path / "max" / "importance.h5", "r") as h5:
        importance = h5["importance"][()]
        assert json.loads(h5.attrs["modalities"]) == ["signal", "noise", "tags"]
    nonempty = importance.sum(1) > 0
    assert np.allclose(importance[nonempty].sum(1), 1.0, atol=1e-5)
    mean = importance[nonempty].mean(0)
    assert mean.argmax() == 0, mean


@pytest.mark.parametrize("pool", ["concat_mean", "concat_padded", "max_per_modality"])
def test_baselines_and_set_per_modality_train_with_absent_modalities(toy, tmp_path, pool) -> None:
    manifest, specs = toy
    metrics = train(manifest, specs, pool, 0, tmp_path / pool, options=parse_options(FAST), log=None)
    method = {"concat_mean": "concat mean", "concat_padded": "concat padded", "max_per_modality": "set per modality"}
    assert metrics["f1_micro"] > 0.8 and metrics["method"] == method[pool] and metrics["pool"] == pool
    with h5py.File(tmp_path / pool / "importance.h5", "r") as h5:  # written for every pool
        importance = h5["importance"][()]
        assert h5.attrs["pool"] == pool and importance.shape == (metrics["n_test"], 3)
    nonempty = importance.sum(1) > 0
    assert nonempty.any() and np.allclose(importance[nonempty].sum(1), 1.0, atol=1e-5)
    checkpoint = torch.load(tmp_path / pool / "model.pt", weights_only=False)
    if pool == "concat_padded":  # the cap per feature, from the training split, recorded in the run
        tables = load_features(specs, pd.read_csv(manifest, dtype=str)["id"].tolist(), 10, 0)
        train_rows = np.flatnonzero(pd.read_csv(manifest, dtype=str)["split"] == "train")
        most = [max(int(t.counts[train_rows].max()), 1) if t.info.kind == "dense" else 1 for t in tables]
        assert metrics["slots"] == checkpoint["slots"] == dict(zip(metrics["features"], most))
        assert most[1] > 1  # `noise` has several rows per sample: padded, not pooled
        assert checkpoint["state_dict"]["head.0.weight"].shape[1] == 16 * sum(most)
    else:
        assert "slots" not in metrics and "slots" not in checkpoint


def test_training_is_deterministic_on_cpu(toy, tmp_path) -> None:
    manifest, specs = toy
    short = parse_options(FAST + ["epochs=3"])
    for run in ("a", "b"):
        train(manifest, specs, "attention", 7, tmp_path / run, options=short, log=None)
    probs = [h5py.File(tmp_path / run / "predictions.h5", "r")["probabilities"][()] for run in ("a", "b")]
    assert np.array_equal(probs[0], probs[1])


def test_binary_folds_with_fine_classes(tmp_path) -> None:
    manifest, stores = make_toy(tmp_path / "ads", n=150, classes=1, folds=5)
    specs = [FeatureSpec(name, path) for name, path in stores.items()]
    options = parse_options(FAST + ["epochs=5", "fold=2"])  # dev_fraction=0.1 of the 4 other folds
    metrics = train(manifest, specs, "sum", 1, tmp_path / "run", options=options, log=None)
    assert metrics["task"] == "binary" and metrics["select_metric"] == "accuracy"
    assert (metrics["n_train"], metrics["n_dev"], metrics["n_test"]) == (108, 12, 30)
    last = train(manifest, specs, "sum", 1, tmp_path / "nodev", log=None,
                 options=parse_options(FAST + ["epochs=3", "fold=2", "dev_fraction=0", "threshold=0.5"]))
    assert (last["n_train"], last["n_dev"], last["best_epoch"]) == (120, 0, 3)  # no dev: last epoch
    assert {"accuracy", "auc", "accuracy_upper", "accuracy_lower"} <= set(metrics)
    with pytest.raises(ValueError, match="fold=K"):
        train(manifest, specs, "sum", 1, tmp_path / "bad", options=parse_options(["epochs=1"]), log=None)


def test_cli_train_writes_the_run_folder(toy, tmp_path) -> None:
    manifest, specs = toy
    out = tmp_path / "run"
    command = [sys.executable, "-m", "model", "train", "--manifest", str(manifest), "--pool", "max",
               "--seed", "3", "--out", str(out), "--set", "epochs=2", "--set", "dim=8",
               "--set", "class_weights=inv_sqrt"]
    for spec in specs:
        command += ["--feature", f"{spec.name}={spec.path}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "epoch 2/2" in done.stderr
    for name in ("metrics.json", "history.csv", "predictions.h5", "importance.h5", "model.pt"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seed"] == 3 and metrics["pool"] == "max" and metrics["n_test"] == 60
    assert metrics["features"] == ["signal", "noise", "tags"] and metrics["config"]["dim"] == 8
    assert len(pd.read_csv(out / "history.csv")) == 2
    with h5py.File(out / "predictions.h5", "r") as h5:
        assert h5["probabilities"].shape == (60, 2) and h5["targets"].shape == (60, 2)
        assert json.loads(h5.attrs["classes"]) == metrics["classes"]
    state = torch.load(out / "model.pt", weights_only=False)
    assert state["pool"] == "max" and "head.3.bias" in state["state_dict"]



def test_cli_trains_a_cells_runs_in_one_process_as_each_alone(toy, tmp_path) -> None:
    """`--run SEED[:FOLD]=DIR` per run: one process, the run folders of separate `--seed --out` runs;
    under lr=auto and threshold=dev (the defaults) each run searches its own lr and threshold."""
    manifest, specs = toy
    features = [a for spec in specs for a in ("--feature", f"{spec.name}={spec.path}")]
    common = ["train", "--manifest", str(manifest), *features, "--pool", "concat_padded", "--set", "epochs=3",
              "--set", "dim=8", "--set", "lr_candidates=1e-3,0.03"]
    assert main(common + ["--run", f"4={tmp_path / 'cell/seed4'}", "--run", f"2={tmp_path / 'cell/seed2'}"]) == 0
    for seed in (4, 2):
        assert main(common + ["--seed", str(seed), "--out", str(tmp_path / f"alone{seed}")]) == 0
        with h5py.File(tmp_path / f"cell/seed{seed}/predictions.h5") as a, \
                h5py.File(tmp_path / f"alone{seed}/predictions.h5") as b:
            assert np.array_equal(a["probabilities"][()], b["probabilities"][()])
        cell = json.loads((tmp_path / f"cell/seed{seed}/metrics.json").read_text())
        alone = json.loads((tmp_path / f"alone{seed}/metrics.json").read_text())
        assert cell["seed"] == seed and [t["lr"] for t in cell["lr_search"]] == [1e-3, 0.03]
        for key in ("lr_search", "lr", "threshold", "threshold_rule", "slots"):
            assert cell[key] == alone[key], key
    from model.__main__ import run_spec

    assert run_spec("1:3=runs/seed1-fold3") == (1, 3, "runs/seed1-fold3")  # fold K: --set fold=K for that run
    with pytest.raises(SystemExit):
        main(common + ["--run", "seven=x"])
    assert main(common + ["--seed", "1"]) == 2  # --seed without --out
    assert main(common + ["--run", f"1={tmp_path / 'x'}", "--out", str(tmp_path / "y")]) == 2


def test_cli_rejects_unknown_option(toy, tmp_path, capsys) -> None:
    manifest, specs = toy
    code = main(["train", "--manifest", str(manifest), "--feature", f"signal={specs[0].path}",
                 "--pool", "max", "--seed", "0", "--out", str(tmp_path / "x"), "--set", "nope=1"])
    assert code == 2 and "unknown option" in capsys.readouterr().err


def test_adamw_matches_torch_optim_step_by_step() -> None:
    from model.train import AdamW

    torch.manual_seed(0)
    ours, theirs = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    theirs.load_state_dict(ours.state_dict())
    mine = AdamW(ours.parameters(), lr=0.01, weight_decay=0.1)
    reference = torch.optim.AdamW(theirs.parameters(), lr=0.01, weight_decay=0.1, fused=True)
    for step in range(6):
        x = torch.randn(8, 5)
        for model, opt in ((ours, mine), (theirs, reference)):
            lr = 0.01 * (step + 1) / 6  # changed per step, as the schedule does
            if opt is mine:
                opt.lr = lr
            else:
                opt.param_groups[0]["lr"] = lr
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
        for a, b in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(a, b), step


def test_feature_device_host_equals_device(toy, tmp_path) -> None:
    manifest, specs = toy
    runs = {}
    for where in ("device", "host"):
        options = parse_options(FAST + ["epochs=4", f"feature_device={where}"])
        runs[where] = train(manifest, specs, "attention", 5, tmp_path / where, options=options, log=None)
    assert runs["host"]["feature_device"] == "host" and runs["device"]["feature_device"] == "device"
    keys = runs["device"]["metric_names"] + ["best_epoch", "dev"]
    assert {k: runs["host"][k] for k in keys} == {k: runs["device"][k] for k in keys}
    probs = [h5py.File(tmp_path / w / "predictions.h5", "r")["probabilities"][()] for w in ("device", "host")]
    assert np.array_equal(probs[0], probs[1])
    importance = [h5py.File(tmp_path / w / "importance.h5", "r")["importance"][()] for w in ("device", "host")]
    assert np.array_equal(importance[0], importance[1])
    with pytest.raises(ValueError, match="feature_device"):
        parse_options(["feature_device=gpu"])
    with pytest.raises(ValueError, match="dev_fraction"):
        parse_options(["dev_fraction=0.7"])


def test_run_records_training_stores(toy, tmp_path) -> None:
    manifest, specs = toy
    train(manifest, specs, "sum", 0, tmp_path / "run", options=parse_options(FAST + ["epochs=1"]), log=None)
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert state["stores"] == metrics["stores"]
    signal = state["stores"]["signal"]
    assert signal["path"] == str(specs[0].path) and signal["column"] is None
    assert (signal["extractor"], signal["backend"], signal["dim"]) == ("toy", "toy", 8)
    assert state["stores"]["tags"]["extractor"] == "toy-index"


def test_steps_reused_outside_train(toy) -> None:
    """load_run_data -> build_model -> fit -> evaluate_split without writing a run folder."""
    from model.networks import build_model
    from model.train import evaluate_split, fit, load_run_data

    manifest, specs = toy
    options = parse_options(FAST + ["epochs=3"])
    data = load_run_data(manifest, specs, options, 0, torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model("max", [t.info for t in data.tables], len(data.classes), options)
    fitted = fit(model, data, options, seed=0)
    assert [h["epoch"] for h in fitted.history] == [1, 2, 3] and 1 <= fitted.epoch <= 3
    model.load_state_dict(fitted.state)
    test = evaluate_split(model, data, data.splits["test"], options, fitted.threshold)
    assert test.probs.shape == (len(data.splits["test"]), 2)
    assert test.importance.shape == (len(data.splits["test"]), 3)
    assert set(test.metrics) == {"f1_micro", "f1_macro", "f1_samples", "f1_weighted", "map"}


def test_training_job_imports_six_model_modules_and_neither_sklearn_nor_torch_compiler(toy, tmp_path) -> None:
    """A training job reads six modules of model/ (docs/DESIGN.md, "Architecture"), past its command
    line: what it is given, what it reads, the networks, the loop, the metrics, the run folder; no
    reporting. Per-job overhead: sklearn.metrics (~1.2 s) and torch._dynamo (~1.5 s, pulled in by
    any torch.optim optimizer) stay out of it."""
    manifest, specs = toy
    code = ("import sys; from pathlib import Path; from model.__main__ import main; "
            f"code = main(['train', '--manifest', {str(manifest)!r}, '--pool', 'attention', '--seed', '0', "
            f"'--out', {str(tmp_path / 'run')!r}, '--set', 'epochs=2'] + "
            f"{[arg for s in specs for arg in ('--feature', f'{s.name}={s.path}')]!r}); "
            "print(code, 'sklearn' in sys.modules, 'torch._dynamo' in sys.modules, 'matplotlib' in sys.modules); "
            "print(*sorted(m for m in sys.modules if m.split('.')[0] in ('model', 'report') "
            "and m not in ('model', 'model.__main__')))")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    flags, modules = done.stdout.splitlines()
    assert flags.split() == ["0", "False", "False", "False"], (done.stdout, done.stderr[-2000:])
    assert modules.split() == ["model.inputs", "model.metrics", "model.networks", "model.options", "model.runfiles",
                               "model.train"]


def test_feature_device_auto_decides_from_free_device_memory(monkeypatch) -> None:
    from model.train import DEVICE_MARGIN, features_on_host

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not features_on_host("auto", cpu, 10**15)  # on the CPU host == device
    assert features_on_host("host", cpu, 1) and not features_on_host("device", cuda, 10**15)
    free = 10 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 8 * free))
    assert not features_on_host("auto", cuda, int(DEVICE_MARGIN * free) - 1)
    assert features_on_host("auto", cuda, int(DEVICE_MARGIN * free) + 1)
    with pytest.raises(ValueError, match="feature_device"):
        features_on_host("gpu", cpu, 1)


def test_feature_device_auto_budgets_by_the_jobs_share(monkeypatch) -> None:
    """8 jobs sharing a device may each take DEVICE_MARGIN of 1/8 of it, not of what is free."""
    from model.train import DEVICE_MARGIN, features_on_host

    cuda, total = torch.device("cuda"), 80 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (total, total))
    fits_alone = int(DEVICE_MARGIN * total / 4)  # a quarter of the device
    assert not features_on_host("auto", cuda, fits_alone, share=1)
    assert features_on_host("auto", cuda, fits_alone, share=8)
    assert not features_on_host("auto", cuda, int(DEVICE_MARGIN * total / 8) - 1, share=8)
    monkeypatch.setenv("DMMS_GPU_SHARE", "8")  # what gpuslots hands the job
    assert features_on_host("auto", cuda, fits_alone)
    monkeypatch.delenv("DMMS_GPU_SHARE")
    assert not features_on_host("auto", cuda, fits_alone)


def test_collapse_mean_feeds_each_samples_mean_row(toy, tmp_path) -> None:
    from model.inputs import collapse_rows
    from model.predict import load_for_run, load_trained

    values = np.arange(12, dtype=np.float16).reshape(6, 2)
    means, offsets = collapse_rows(values, np.array([0, 2, 2, 6]))
    assert offsets.tolist() == [0, 1, 1, 2] and means.dtype == np.float32  # an empty set stays empty
    np.testing.assert_allclose(means, [[1, 2], [7, 8]])

    manifest, specs = toy
    ids = pd.read_csv(manifest, dtype=str)["id"].tolist()
    options = parse_options(["collapse.noise=mean", "max_elements=2"])
    plain, collapsed = (load_features(specs[:2], ids, 2, 0, collapse=c) for c in ({}, options.collapse))
    full = load_features(specs[1:2], ids, 0, 0)[0]  # every noise row, uncapped
    assert collapsed[0].values.shape == plain[0].values.shape  # signal untouched
    counts = full.counts.numpy()
    assert collapsed[1].counts.tolist() == (counts > 0).astype(int).tolist()
    k = int(np.flatnonzero(counts > 2)[0])  # more rows than max_elements: all of them are averaged
    start, stop = int(full.offsets[k]), int(full.offsets[k + 1])
    row = int(collapsed[1].offsets[k])
    np.testing.assert_allclose(collapsed[1].values[row].numpy(), full.values[start:stop].float().mean(0).numpy(),
                               rtol=1e-3)

    run = tmp_path / "run"
    assert main(["train", "--manifest", str(manifest), *[f"--feature={s.name}={s.path}" for s in specs[:2]],
                 "--pool", "max", "--seed", "0", "--out", str(run), *[a for o in FAST for a in ("--set", o)],
                 "--set", "collapse.noise=mean"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config"]["collapse"] == {"noise": "mean"}
    elements = h5py.File(run / "importance.h5")["elements"][()]
    assert elements.max() <= 2  # signal (0-1 row) + the one mean row of noise
    trained = load_trained(run)
    tables = load_for_run(trained, specs[:2], ids)  # predict and robustness rebuild it collapsed too
    assert tables[1].counts.max() == 1
    with pytest.raises(ValueError, match="index feature"):
        load_features(specs[2:], ids, 0, 0, collapse={"tags": "mean"})
    with pytest.raises(ValueError, match="collapse.nope"):
        load_features(specs[:1], ids, 0, 0, collapse={"nope": "mean"})
    with pytest.raises(ValueError, match="collapse.noise=max"):
        parse_options(["collapse.noise=max"])


def test_a_training_job_counts_every_epoch_of_its_runs_and_lr_candidates(toy, tmp_path) -> None:
    """One progress counter per job: the progress view's ETA is the whole cell's (2 runs x 2 lr
    candidates x 3 epochs), not the current run's."""
    import io

    from core.progress import parse
    from model.train import train_runs

    manifest, specs = toy
    options = parse_options(["epochs=3", "dim=8", "lr_candidates=1e-3,0.03"])
    log = io.StringIO()
    train_runs(manifest, specs, "max", [(0, None, tmp_path / "seed0"), (1, None, tmp_path / "seed1")],
               options=options, log=log)
    lines = [parse(line) for line in log.getvalue().splitlines()]
    found = [line for line in lines if line is not None]
    assert {line.total for line in found} == {12} and {line.unit for line in found} == {"epochs"}
    assert found[-1].finished and found[-1].done == 12 and sum(line.finished for line in found) == 1


def test_lr_auto_trains_each_candidate_and_keeps_the_best_dev(toy, tmp_path) -> None:
    """lr=auto: one training per candidate from the same start; the best dev score is kept and
    recorded (metrics.json `lr`, `lr_search`; model.pt's config holds the lr that ran)."""
    manifest, specs = toy
    base = [o for o in FAST if not o.startswith("lr=")] + ["epochs=6", "threshold=0.5"]
    metrics = train(manifest, specs, "max", 0, tmp_path / "auto", log=None,
                    options=parse_options(base + ["lr=auto", "lr_candidates=0.03, 1e-4"]))
    search = metrics["lr_search"]
    assert [t["lr"] for t in search] == [1e-4, 0.03] and metrics["config"]["lr"] == "auto"
    best = max(search, key=lambda t: t["dev_metric"])
    assert best["lr"] == 0.03 and best["dev_metric"] > search[0]["dev_metric"]
    assert (metrics["lr"], metrics["dev_metric"], metrics["best_epoch"]) == (0.03, best["dev_metric"], best["best_epoch"])
    alone = train(manifest, specs, "max", 0, tmp_path / "alone", options=parse_options(base + ["lr=0.03"]), log=None)
    assert alone["f1_micro"] == metrics["f1_micro"] and alone["lr_search"] == [search[1]]  # same start, same batches
    assert torch.load(tmp_path / "auto" / "model.pt", weights_only=True)["config"]["lr"] == 0.03


def test_threshold_dev_is_chosen_on_dev_and_scores_the_test_split(toy, tmp_path) -> None:
    from model.metrics import THRESHOLDS, multilabel_metrics
    from model.runfiles import read_predictions

    manifest, specs = toy
    metrics = train(manifest, specs, "max", 0, tmp_path / "dev", options=parse_options(FAST + ["epochs=4"]), log=None)
    threshold = metrics["threshold"]
    assert metrics["config"]["threshold"] == "dev" and metrics["threshold_rule"] == "dev"
    assert threshold in THRESHOLDS and threshold != 0.5  # 4 short epochs: probabilities still low
    history = pd.read_csv(tmp_path / "dev" / "history.csv")
    assert history.loc[metrics["best_epoch"] - 1, "dev_threshold"] == threshold
    _, probs, targets, _, _ = read_predictions(tmp_path / "dev")
    assert multilabel_metrics(targets, probs, threshold)["f1_micro"] == pytest.approx(metrics["f1_micro"])
    assert torch.load(tmp_path / "dev" / "model.pt", weights_only=True)["config"]["threshold"] == threshold
    fixed = train(manifest, specs, "max", 0, tmp_path / "fixed", log=None,
                  options=parse_options(FAST + ["epochs=4", "threshold=0.5"]))
    assert (fixed["threshold"], fixed["threshold_rule"]) == (0.5, "fixed")


def test_lr_auto_and_threshold_dev_refuse_a_run_without_dev(tmp_path, capsys) -> None:
    manifest, stores = make_toy(tmp_path / "ads", n=150, classes=1, folds=5)
    specs = [f"--feature={name}={path}" for name, path in stores.items()]
    args = ["train", "--manifest", str(manifest), *specs, "--pool", "max", "--seed", "0", "--out",
            str(tmp_path / "run"), "--set", "epochs=1", "--set", "fold=2", "--set", "dev_fraction=0"]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: lr=auto and threshold=dev: chosen on the dev split") and "\n" not in error
    assert main(args + ["--set", "threshold=0.5"]) == 2 and "error: lr=auto: chosen" in capsys.readouterr().err
    assert main(args + ["--set", "threshold=0.5", "--set", "lr=0.01"]) == 0


def test_lr_and_threshold_options() -> None:
    assert (TrainOptions().lr, TrainOptions().threshold) == ("auto", "dev")
    assert parse_options(["lr_candidates=1e-2, 3e-4,1e-2"]).lr_values() == [3e-4, 1e-2]
    assert parse_options(["lr=0.01", "threshold=0.3"]).lr_values() == [0.01]
    assert parse_options(["lr=AUTO"]).lr == "auto"
    for bad, match in (("lr=fast", "lr='fast': use auto"), ("lr=0", "lr=0.0: use a positive"),
                       ("threshold=1", "threshold=1.0: use a probability"), ("lr_candidates=a", "lr_candidates")):
        with pytest.raises(ValueError, match=match):
            parse_options([bad])


def test_a_feature_with_no_element_anywhere_is_refused_for_training(toy, tmp_path) -> None:
    """Every sample failed in extraction (a store built while the images were missing): training
    says so, with a failure's reason, instead of training on nothing (or, collapsed, a reshape
    error); predictions still load it (a new dataset may lack a modality)."""
    manifest, specs = toy
    ids = pd.read_csv(manifest, dtype=str, keep_default_na=False)["id"].tolist()
    builder = StoreBuilder()
    for sample_id in ids:
        builder.fail(sample_id, "image file x.jpg does not exist")
    empty = tmp_path / "empty.h5"
    write_store(empty, builder.build(base_attrs("toy", "toy", 4, {}), {"features": ((4,), np.float32)}))
    spec = FeatureSpec("gone", str(empty))
    for collapse in ({}, {"gone": "mean"}):
        with pytest.raises(ValueError, match=rf"^feature gone: store {empty} has no element in any of the run's "
                                             rf"{len(ids)} samples \({len(ids)} of {len(ids)} samples failed in "
                                             r"extraction, e.g. 'image file x.jpg does not exist'; fix that"):
            load_features([spec], ids, 0, 0, collapse=collapse, require_elements=True)
        table = load_features([spec], ids, 0, 0, collapse=collapse)[0]
        assert table.values.shape == (0, 4) and int(table.offsets[-1]) == 0


def test_concat_padded_caps_come_from_the_training_split_alone(toy, tmp_path) -> None:
    """A feature whose test samples hold more rows (6) than any training sample (at most 2): the
    recorded cap is 2, so the extra test rows are dropped, not given slots the model never trained."""
    manifest, specs = toy
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    builder = StoreBuilder()
    rng = np.random.default_rng(0)
    for sample_id, split in zip(frame["id"], frame["split"]):
        rows = 6 if split == "test" else int(rng.integers(0, 3))
        builder.add(sample_id, {"features": rng.normal(size=(rows, 4)).astype(np.float32)})
    wide = tmp_path / "wide.h5"
    write_store(wide, builder.build(base_attrs("toy", "toy", 4, {}), {"features": ((4,), np.float32)}))
    metrics = train(manifest, [specs[0], FeatureSpec("wide", str(wide))], "concat_padded", 0, tmp_path / "run",
                    options=parse_options(FAST + ["epochs=2"]), log=None)
    assert metrics["slots"] == {specs[0].name: 1, "wide": 2}
