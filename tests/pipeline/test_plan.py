"""pipeline/plan.py with plain dicts as config (defaults filled by the real schema, as
rules/common.smk does): the grid, each dataset's outputs, the `predict:` and `paper_strict` checks
and the rules' arguments, without a Snakemake run."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake.utils import validate

from pipeline.paths import parse_run, run_name
from pipeline.plan import ModelRun, Plan, check_renamed

ROOT = Path(__file__).resolve().parents[2]
SOURCES = "config/config.yaml, mine.yaml"


def make_plan(datasets: dict, targets: list[str] | None = None) -> Plan:
    config = {"datasets": copy.deepcopy(datasets)}
    if targets is not None:
        config["targets"] = targets
    validate(config, str(ROOT / "config/schema.yaml"))
    return Plan(config, SOURCES)


def table_dataset(**extra) -> dict:
    features = {"img": {"extractor": "image", "backend": "mobilenet_v2"},
                "txt": {"extractor": "text", "backend": "minilm"},
                "ocr": {"extractor": "ocr"},
                "ocr_txt": {"extractor": "text", "backend": "minilm", "input": "ocr"}}
    experiments = {"seeds": [0, 1], "pools": ["max", "sum"],
                   "combinations": {"i": {"features": ["img"]},
                                    "i_t": {"features": ["img", "txt"], "pools": ["max"]},
                                    "t": {"features": ["txt"], "baseline": True}}}
    return {"format": "table", "table": "mine.csv", "features": features, "experiments": experiments,
            **extra}


class Files(dict):
    """A rule's `input` as Snakemake passes it: names as attributes and as keys."""
    __getattr__ = dict.__getitem__


def wc(**fields) -> SimpleNamespace:
    return SimpleNamespace(**fields)


def test_grid_is_in_table_order_with_the_concat_baselines_of_multi_feature_combinations() -> None:
    plan = make_plan({"mine": table_dataset()})
    cells = [("i", "max"), ("i", "sum"), ("i_t", "max"), ("i_t", "concat_mean"), ("i_t", "concat_padded"),
             ("t", "max"), ("t", "sum"), ("t", "concat_mean"), ("t", "concat_padded")]
    assert plan.grid("mine") == [(c, p, f"seed{s}") for c, p in cells for s in (0, 1)]
    assert plan.grid("mine", ["i_t"], "max") == [("i_t", "max", "seed0"), ("i_t", "max", "seed1")]
    assert plan.grid_cells("mine", pool="concat_mean") == ["results/mine/runs/i_t/concat_mean",
                                                           "results/mine/runs/t/concat_mean"]
    assert plan.grid_cells("mine", ["i"]) == ["results/mine/runs/i/max", "results/mine/runs/i/sum"]
    no_baseline = table_dataset()
    no_baseline["experiments"]["combinations"]["i_t"]["baseline"] = False
    assert make_plan({"mine": no_baseline}).combination_pools("mine", "i_t") == ["max"]
    assert plan.multi_feature_combinations("mine") == ["i_t"]


def test_combinations_ask_for_per_modality_pools_and_a_list_of_baselines() -> None:
    ds = table_dataset()
    ds["experiments"]["combinations"]["i_t"] |= {"pools": ["max", "attention_per_modality"],
                                                 "baseline": ["concat_padded"]}
    plan = make_plan({"mine": ds})
    assert plan.combination_pools("mine", "i_t") == ["max", "attention_per_modality", "concat_padded"]
    ds["experiments"]["combinations"]["t"]["pools"] = ["max_per_modality"]  # one feature: nothing to keep apart
    with pytest.raises(ValueError, match="'t' has one feature: max_per_modality would pool it exactly as max"):
        make_plan({"mine": ds}).combination_pools("mine", "t")


@pytest.mark.parametrize("where", ["pools", "combination pools", "baseline"])
def test_the_old_concat_pool_is_refused_naming_the_new_ones(where) -> None:
    ds = table_dataset()
    if where == "pools":
        ds["experiments"]["pools"] = ["max", "concat"]
    else:
        ds["experiments"]["combinations"]["i_t"]["pools" if where != "baseline" else "baseline"] = ["concat"]
    with pytest.raises(ValueError, match=r"datasets\.mine\.experiments\..*renamed: `concat_mean` is that model.*"
                                         r"concat_padded.*baseline: \[concat_mean, concat_padded\]"):
        check_renamed({"datasets": {"mine": ds}})
    check_renamed({"datasets": {"mine": table_dataset()}})  # nothing renamed: no error


def test_cross_validated_datasets_run_every_fold_of_every_seed() -> None:
    plan = make_plan({"mine": table_dataset(folds=3)})
    assert plan.run_names("mine") == ["seed0-fold0", "seed0-fold1", "seed0-fold2",
                                      "seed1-fold0", "seed1-fold1", "seed1-fold2"]
    assert [parse_run(r) for r in plan.run_names("mine")[:2]] == [(0, 0), (0, 1)]
    assert parse_run(run_name(12)) == (12, None) and run_name(3, 4) == "seed3-fold4"


def test_schema_takes_lr_auto_and_threshold_dev_and_refuses_bad_values() -> None:
    from snakemake.exceptions import WorkflowError

    # trainings per run (the rules' runtime): one per candidate rate unless lr is pinned
    for train, trainings in (({"lr": "auto", "threshold": "dev"}, 5), ({"lr": 0.001, "threshold": 0.5}, 1),
                             ({"lr": "3e-4"}, 1), ({"threshold": ".4", "lr_candidates": "1e-3,1e-2"}, 2)):
        ds = table_dataset()
        ds["experiments"]["train"] = train
        plan = make_plan({"mine": ds})
        args = plan.train_args(wc(dataset="mine", combination="i", pool="max"))
        assert all(f"--set {k}={v}" in args for k, v in train.items())
        assert plan.lr_trainings("mine") == trainings
    for bad in ({"lr": "fast"}, {"lr": 0}, {"threshold": 1.5}, {"threshold": "best"}):
        ds = table_dataset()
        ds["experiments"]["train"] = bad
        with pytest.raises(WorkflowError):
            make_plan({"mine": ds})


def test_one_training_job_per_cell_carries_every_run_encoders_and_collapsed_features() -> None:
    ds = table_dataset(folds=2)
    ds["experiments"]["train"] = {"lr": 0.01, "epochs": 3}
    ds["experiments"]["combinations"]["i_t"] |= {"encoders": {"txt": "cnn"}, "collapse": {"img": "mean"}}
    plan = make_plan({"mine": ds})
    args = plan.train_args(wc(dataset="mine", combination="i_t", pool="max"))
    assert args == "--set collapse.img=mean --set encoder.txt=cnn --set epochs=3 --set lr=0.01"
    assert plan.train_args(wc(dataset="mine", combination="i", pool="sum")) == "--set epochs=3 --set lr=0.01"
    cell = "results/mine/runs/i_t/concat_padded"
    assert plan.train_runs(wc(dataset="mine", combination="i_t", pool="concat_padded")) == (
        f"--run 0:0={cell}/seed0-fold0 --run 0:1={cell}/seed0-fold1 --run 1:0={cell}/seed1-fold0 "
        f"--run 1:1={cell}/seed1-fold1")
    plain = make_plan({"mine": table_dataset()})
    assert plain.train_runs(wc(dataset="mine", combination="i", pool="max")) == (
        "--run 0=results/mine/runs/i/max/seed0 --run 1=results/mine/runs/i/max/seed1")
    inputs = plan.train_inputs(wc(dataset="mine", combination="i_t"))
    assert inputs == {"manifest": "results/mine/manifest.csv", "img": "results/mine/features/img.h5",
                      "txt": "results/mine/features/txt.h5"}
    assert plan.train_features(wc(dataset="mine", combination="i_t"), Files(inputs)) == \
        "--feature img=results/mine/features/img.h5 --feature txt=results/mine/features/txt.h5"
    with pytest.raises(ValueError, match=r"dataset 'mine' has no combination 'nope' in config/config.yaml, mine.yaml"):
        plan.train_inputs(wc(dataset="mine", combination="nope"))


@pytest.mark.parametrize("model", ["mine/i_t/sum/seed0", "mine/i/max/seed9", "mine/i/max/seed0-fold1",
                                   "mine/nope/max/seed0"])
def test_a_predict_model_outside_the_grid_is_refused_with_the_configured_runs(model) -> None:
    datasets = {"mine": table_dataset(), "new": {"format": "table", "table": "new.csv",
                                                 "predict": {"model": model}}}
    with pytest.raises(ValueError) as refused:
        make_plan(datasets).predict_model("new")
    assert str(refused.value) == (
        f"dataset 'new': predict.model {model!r} is not a run of the grid of 'mine' in "
        f"{SOURCES}; configured runs: " + ", ".join("mine/" + "/".join(c) for c in make_plan(datasets).grid("mine")))


def test_a_predict_model_of_no_trained_dataset_is_refused() -> None:
    datasets = {"mine": table_dataset(), "new": {"format": "table", "table": "new.csv", "predict": {}}}
    for model in ("other/i/max/seed0", "new/i/max/seed0"):
        datasets["new"]["predict"]["model"] = model
        with pytest.raises(ValueError) as refused:
            make_plan(datasets).predict_model("new")
        assert str(refused.value) == (f"dataset 'new': predict.model {model!r} names no trained dataset "
                                      f"{model.split('/')[0]!r} in {SOURCES}; configured: mine")


def test_a_predict_dataset_extracts_the_model_combinations_features_and_their_inputs() -> None:
    ds = table_dataset()
    ds["experiments"]["combinations"]["o"] = {"features": ["ocr_txt", "img"]}
    datasets = {"mine": ds, "new": {"format": "table", "table": "new.csv",
                                    "predict": {"model": "mine/o/concat_padded/seed1"}}}
    plan = make_plan(datasets)
    model = plan.predict_model("new")  # a record with named fields, not a tuple to index
    assert model == ModelRun(dataset="mine", combination="o", pool="concat_padded", run="seed1")
    assert (model.dataset, model.combination, model.pool, model.run) == ("mine", "o", "concat_padded", "seed1")
    assert list(plan.dataset_features("new")) == ["ocr_txt", "img", "ocr"]
    assert plan.dataset_features("new")["ocr_txt"] == plan.dataset_features("mine")["ocr_txt"]
    assert plan.dataset_outputs("new") == ["results/new/predictions.csv"]
    # extracted with mine's settings, so with mine's weights records: no fetch of its own
    for name in ("ocr_txt", "img", "ocr"):
        assert plan.extract_inputs(wc(dataset="new", feature=name))["weights"] == \
            plan.extract_inputs(wc(dataset="mine", feature=name))["weights"]
    inputs = plan.predict_inputs(wc(dataset="new"))
    assert inputs == {"manifest": "results/new/manifest.csv", "model": "results/mine/runs/o/concat_padded",
                      "ocr_txt": "results/new/features/ocr_txt.h5", "img": "results/new/features/img.h5"}
    assert plan.predict_args(wc(dataset="new"), Files(inputs)) == (
        "--run results/mine/runs/o/concat_padded/seed1 --feature ocr_txt=results/new/features/ocr_txt.h5 "
        "--feature img=results/new/features/img.h5")
    assert plan.predict_model("mine") is None


def test_dataset_outputs_of_the_demo_and_of_single_feature_datasets() -> None:
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    plan = make_plan(config["datasets"], ["demo"])
    outputs = plan.default_targets()
    assert outputs[:5] == [f"results/demo/features/{f}.h5" for f in ("image", "text", "faces", "ocr", "ocr_words")]
    assert outputs[5:] == [
        "results/demo_table.csv", "results/demo_table.md", "results/demo_table.html", "results/demo_stores.html",
        "results/demo/figures/importance_all.png", "results/demo/figures/importance_all_mean.png",
        "results/demo/figures/matrices/overview.png",
        "results/demo_comparisons.csv", "results/demo_comparisons.md", "results/demo_comparisons.html",
        "results/demo_robustness.csv", "results/demo_robustness.html", "results/demo_robustness_views.csv",
        "results/demo/gallery/index.html", "results/demo/gallery/standalone.html"]
    assert len(plan.grid("demo")) == 55 and len(plan.grid_cells("demo")) == 11  # as config/config.yaml says
    assert len(plan.run_names("demo")) >= 5  # every row compared with a concat baseline: 5 seeds at least
    assert plan.combination_pools("demo", "all") == ["max", "max_per_modality", "concat_mean", "concat_padded"]
    assert len(plan.grid("imdb")) == 36 * 3  # Table 3's 20 rows of ours + 2 x 8 concat baselines, 3 seeds
    assert plan.run_names("ads") == [f"seed{s}-fold{k}" for s in (0, 1, 2) for k in range(5)]
    single = table_dataset()
    single["experiments"]["combinations"] = {"i": {"features": ["img"]}}
    plan = make_plan({"one": single})
    stores = [f"results/one/features/{f}.h5" for f in ("img", "txt", "ocr", "ocr_txt")]
    assert plan.dataset_outputs("one") == stores + [
        "results/one_table.csv", "results/one_table.md", "results/one_table.html", "results/one_stores.html",
        "results/one/figures/matrices/overview.png"]
    # the provenance table lists the stores the grid trains on (and what they read), no others
    assert plan.grid_stores(wc(dataset="one")) == ["results/one/features/img.h5"]
    assert plan.store_args(wc(), Files(stores=stores[:2])) == (
        "--store img=results/one/features/img.h5 --store txt=results/one/features/txt.h5")
    single["experiments"]["combinations"]["i_mean"] = {"features": ["img"], "collapse": {"img": "mean"}}
    assert make_plan({"one": single}).dataset_outputs("one")[-3:] == [
        "results/one_comparisons.csv", "results/one_comparisons.md", "results/one_comparisons.html"]
    single["experiments"]["combinations"] = {}
    assert make_plan({"one": single}).dataset_outputs("one") == stores
    # no max pool anywhere: no matrices or gallery (they show max-pool runs), the rest as before
    single["experiments"] |= {"pools": ["sum"], "combinations": {"it": {"features": ["img", "txt"]}}}
    outputs = make_plan({"one": single}).dataset_outputs("one")
    assert not [o for o in outputs if "matrices" in o or "gallery" in o]
    assert "results/one_robustness.csv" in outputs and "results/one_comparisons.csv" in outputs


def test_unknown_targets_are_refused_naming_the_config_files() -> None:
    with pytest.raises(ValueError, match=r"^targets \['nosuch'\] name no dataset in config/config.yaml, "
                                         r"mine.yaml; configured: mine$"):
        make_plan({"mine": table_dataset()}, ["mine", "nosuch"]).default_targets()


def test_manifest_and_download_arguments_per_format() -> None:
    plan = make_plan({
        "mine": table_dataset(sep=";", strict_images=True, split={"ratios": [0.8, 0.1, 0.1], "seed": 3}),
        "ads": {"format": "ads", "annotations": "a.csv", "folds": 5, "fold_seed": 2},
        "ads0": {"format": "ads", "annotations": "a.csv"},
        "imdb": {"format": "mmimdb", "root": "r", "genres": ["Drama", "Comedy"],
                 "download": {"url": "http://x/m.tar.gz", "sha256": "ab"}},
        "local": {"format": "mmimdb", "root": "data/mm"},
        "broken": {"format": "ads"},
        "new": {"format": "table", "table": "new.csv", "allow_missing_images": True,
                "predict": {"model": "mine/i/max/seed0"}}})
    source = {name: plan.manifest_source(wc(dataset=name)) for name in ("mine", "ads", "imdb", "new")}
    assert source == {"mine": "mine.csv", "ads": "a.csv", "imdb": "r/split.json", "new": "new.csv"}
    args = {name: plan.manifest_args(wc(dataset=name), Files(source=source.get(name, "a.csv")))
            for name in ("mine", "ads", "ads0", "imdb", "new")}
    assert args == {
        "mine": "--format table --table mine.csv --split-ratios 0.8,0.1,0.1 --sep ';' --strict-images --split-seed 3",
        # a dataset to predict on: no split, no class warnings
        "new": "--format table --table new.csv --split-ratios 0.6,0.1,0.3 --allow-missing-images --split-seed 0 "
               "--predict",
        "ads": "--format ads --annotations a.csv --folds 5 --seed 2",
        "ads0": "--format ads --annotations a.csv --seed 0",
        "imdb": "--format mmimdb --root r --plot all --genres Drama,Comedy"}
    # folds: 0 on Ads: the manifest's 5 folds, and runs planned for each of them (one test fold each)
    # (and, with no `seeds:`, three seeds: the comparisons can resample them)
    assert plan.run_names("ads0") == plan.run_names("ads") == [f"seed{s}-fold{k}" for s in (0, 1, 2) for k in range(5)]
    assert plan.run_names("mine") == ["seed0", "seed1"]  # a table: its own split, no folds
    assert plan.download_args(wc(dataset="imdb")) == "--url http://x/m.tar.gz --sha256 ab"
    with pytest.raises(ValueError, match=r"dataset 'local': data/mm/split.json does not exist and the config "
                                         r"has no `download:` section"):
        plan.download_args(wc(dataset="local"))
    with pytest.raises(ValueError, match=r"^dataset 'broken': format ads needs `annotations:`$"):
        plan.manifest_source(wc(dataset="broken"))


def test_extraction_arguments_and_the_paper_strict_refusal() -> None:
    ds = table_dataset()
    ds["features"]["txt"]["options"] = {"per_word": True, "batch_size": 8}
    plan = make_plan({"mine": ds})
    w = wc(dataset="mine", feature="ocr_txt")
    inputs = plan.extract_inputs(w)
    assert inputs == {"manifest": "results/mine/manifest.csv", "weights": "resources/weights/ready/text-minilm.json",
                      "store": "results/mine/features/ocr.h5"}
    assert plan.extract_args(w, Files(inputs)) == \
        "--backend minilm --feature ocr_txt --input results/mine/features/ocr.h5"
    assert plan.model_args(wc(dataset="mine", feature="txt")) == "--backend minilm --set batch_size=8 --set per_word=true"
    assert plan.extractor_name(wc(dataset="mine", feature="ocr")) == "ocr"
    # one weights record per extractor, backend and weight options, named by them: txt (per_word,
    # batch_size) and ocr_txt share it, and fetching it gets none of the other options
    assert plan.extract_inputs(wc(dataset="mine", feature="txt"))["weights"] == inputs["weights"]
    assert plan.weights_args(wc(weights="text-minilm")) == "text --backend minilm"
    assert plan.weights_users(wc(weights="text-minilm")) == [("mine", "txt"), ("mine", "ocr_txt")]
    assert plan.extract_inputs(wc(dataset="mine", feature="ocr"))["weights"] == "resources/weights/ready/ocr-default.json"
    faces = {"extractor": "faces", "backend": "backbone", "options": {"backbone": "mobilenet_v2", "min_face_size": 40}}
    other = dict(faces, options={"backbone": "mobilenet_v2", "min_face_size": 20})
    assert Plan.weights_key(faces) == Plan.weights_key(other) != Plan.weights_key(
        dict(faces, options={"backbone": "resnext101_32x16d_wsl"}))
    assert Plan.weights_key(faces).startswith("faces-backbone-")
    # an extractor without weight files waits for no record
    ds["features"]["tags"] = {"extractor": "index", "options": {"column": "tags"}}
    assert make_plan({"mine": ds}).extract_inputs(wc(dataset="mine", feature="tags")) == {
        "manifest": "results/mine/manifest.csv"}
    with pytest.raises(ValueError, match="no feature in config/config.yaml, mine.yaml has weights record 'image-x'"):
        plan.weights_args(wc(weights="image-x"))
    with pytest.raises(ValueError, match=r"dataset 'mine' has no feature 'nope' in config/config.yaml, mine.yaml; "
                                         r"configured: img, txt, ocr, ocr_txt"):
        plan.extract_inputs(wc(dataset="mine", feature="nope"))
    strict = make_plan({"mine": table_dataset(paper_strict=True)})
    with pytest.raises(ValueError, match=r"(?s)^dataset 'mine' has paper_strict: true, but it would not "
                                         r"run the paper's models:\n  img: image backend mobilenet_v2 .*\n  txt: "):
        strict.extractor_name(wc(dataset="mine", feature="txt"))
    # a weights record that a strict dataset shares with another: fetching it for the other one
    # runs no check of the strict dataset's (its own jobs still refuse)
    shared = make_plan({"strict": table_dataset(paper_strict=True), "mine": table_dataset()})
    assert shared.weights_users(wc(weights="text-minilm"))[0] == ("strict", "txt")
    assert shared.weights_args(wc(weights="text-minilm")) == "text --backend minilm"


def test_report_arguments() -> None:
    ds = table_dataset(paper="imdb")
    ds["experiments"]["labels"] = {"txt": "RoBERTa(t)", "img": "WSL(i)"}
    plan = make_plan({"mine": ds, "other": table_dataset()})
    assert plan.label_args(wc(dataset="mine")) == "--label 'img=WSL(i)' --label 'txt=RoBERTa(t)'"
    assert plan.table_command(wc(dataset="mine")) == "paper-table --paper imdb"
    assert plan.table_command(wc(dataset="other")) == "table"
    cells = plan.grid_cells("mine", ["i_t"])
    assert plan.run_folders(wc(dataset="mine"), Files(runs=cells)) == " ".join(
        f"results/mine/runs/i_t/{pool}/seed{s}" for pool in ("max", "concat_mean", "concat_padded") for s in (0, 1))
    gallery = plan.gallery_inputs(wc(dataset="mine"))
    assert gallery == {"manifest": "results/mine/manifest.csv",
                       "runs": ["results/mine/runs/i/max", "results/mine/runs/i_t/max", "results/mine/runs/t/max"],
                       "removal": "results/mine_robustness_removal.h5", "stores": ["results/mine/features/ocr.h5"]}
    assert plan.gallery_stores(wc(), Files(gallery)) == "--store results/mine/features/ocr.h5"
