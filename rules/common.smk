# Shared helpers: config validation, path patterns, wildcard constraints, named input/param
# functions. Job resources (GPU slots, shards, memory, runtime): rules/resources.smk.
import json
import math
import os
import shlex
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

import gpuslots
from gpuslots.shards import chain_costs, shard_counts
from model.pools import wildcard as pool_wildcard

# The schema fills every default: helpers read config keys without fallbacks.
validate(config, "../config/schema.yaml")

# `device: auto`: cuda when a GPU is visible (counted without torch, as gpuslots does), else cpu.
# Resolved once here; rules read config["device"] as cpu or cuda.
config["device"] = gpuslots.resolve_device(config["device"])

DATASETS = config["datasets"]
# Path patterns, each written once: rules name them as outputs, helpers format them.
MANIFEST = "results/{dataset}/manifest.csv"
STORE = "results/{dataset}/features/{feature}.h5"
SHARD = "results/{dataset}/features/shards/{feature}/{shard}.h5"
WEIGHTS_READY = "resources/weights/ready/{dataset}/{feature}.json"
RUN_DIR = "results/{dataset}/runs/{combination}/{pool}/{run}"
TABLE = "results/{dataset}_table"  # .csv and .md
COMPARISONS = "results/{dataset}_comparisons"  # .csv and .md
ROBUSTNESS = "results/{dataset}_robustness"  # .csv, .md, .png, _removal.h5, _views.csv
IMPORTANCE_FIGURE = "results/{dataset}/figures/importance_{combination}.png"
MATRICES = "results/{dataset}/figures/matrices"
GALLERY = "results/{dataset}/gallery"
PREDICTIONS = "results/{dataset}/predictions"  # .csv and .h5


def run_file(name, **fields):
    """RUN_DIR/name for the wildcard values `fields` (dataset, combination, pool, run)."""
    return os.path.join(RUN_DIR.format(**fields), name)


wildcard_constraints:
    dataset="|".join(DATASETS) or "NONE",
    feature=r"[A-Za-z0-9_]+",
    combination=r"[A-Za-z0-9_]+",
    pool=pool_wildcard(),  # model/pools.py: the one list of pools
    run=r"seed\d+(-fold\d+)?",
    shard=r"\d+-of-\d+",


def quoted(args):
    return " ".join(shlex.quote(str(a)) for a in args)


def parse_run(run):
    """`seedS` or `seedS-foldK` (the `run` wildcard) -> (S, K or None). The one parser of it."""
    seed, _, fold = run.partition("-fold")
    return int(seed[len("seed") :]), (int(fold) if fold else None)


def config_sources():
    """The config files this run loaded (the workflow's own first, then --configfile ones) and
    --config when given: what an error about a dataset's settings points the user at."""
    given = [str(p) for p in workflow.config_settings.configfiles]
    loaded = [str(p) for p in workflow.configfiles if str(p) not in given] + given
    files = []
    for path in loaded:
        rel = os.path.relpath(path)
        shown = path if rel.startswith("..") else rel
        if shown not in files:
            files.append(shown)
    if workflow.config_settings.config:
        files.append("--config")
    return ", ".join(files) or "no config file"


# --- data ----------------------------------------------------------------------------------


def manifest_source(wildcards):
    """What the manifest is built from: MM-IMDb's split.json, the Ads annotation CSV or the
    user's table."""
    ds = DATASETS[wildcards.dataset]
    key = {"ads": "annotations", "table": "table", "mmimdb": "root"}[ds["format"]]
    if key not in ds:
        raise ValueError(
            f"dataset {wildcards.dataset!r}: format {ds['format']} needs `{key}:`"
        )
    return f"{ds['root']}/split.json" if key == "root" else ds[key]


def manifest_args(wildcards, input):
    ds = DATASETS[wildcards.dataset]
    if ds["format"] == "ads":
        # folds: 0 leaves the manifest's own default (5 folds)
        folds = ["--folds", ds["folds"]] if ds["folds"] else []
        args = ["--format", "ads", "--annotations", input.source]
        return quoted(args + folds + ["--seed", ds["fold_seed"]])
    if ds["format"] == "table":
        ratios = ",".join(str(r) for r in ds["split"]["ratios"])
        args = ["--format", "table", "--table", input.source, "--split-ratios", ratios]
        args += ["--sep", ds["sep"]] if ds["sep"] else []
        args += ["--strict-images"] if ds["strict_images"] else []
        return quoted(args + ["--split-seed", ds["split"]["seed"]])
    args = ["--format", "mmimdb", "--root", ds["root"], "--plot", ds["plot"]]
    args += ["--genres", ",".join(ds["genres"])] if ds["genres"] else []
    return quoted(args)


def download_args(wildcards):
    ds = DATASETS[wildcards.dataset]
    if "download" not in ds:
        raise ValueError(
            f"dataset {wildcards.dataset!r}: {ds.get('root')}/split.json does not exist and the config "
            "has no `download:` section; point `root:` at an unpacked MM-IMDb copy"
        )
    dl = ds["download"]
    args = ["--url", dl["url"]]
    args += ["--size", dl["size"]] if dl["size"] else []
    args += ["--sha256", dl["sha256"]] if dl["sha256"] else []
    return quoted(args)


# --- training grid -------------------------------------------------------------------------


def experiments(dataset):
    return DATASETS[dataset]["experiments"]


def combination_pools(dataset, name):
    """The pools of one combination; `concat` (the late-fusion baseline) for multi-feature ones."""
    exp = experiments(dataset)
    combo = exp["combinations"][name]
    pools = list(combo.get("pools") or exp["pools"])
    if combo.get("baseline", len(combo["features"]) > 1):
        pools.append("concat")
    return pools


def run_names(dataset):
    """seedS, or seedS-foldK for every fold of a cross-validated dataset."""
    seeds = experiments(dataset)["seeds"]
    folds = DATASETS[dataset]["folds"]
    if not folds:
        return [f"seed{s}" for s in seeds]
    return [f"seed{s}-fold{k}" for s in seeds for k in range(folds)]


def grid(dataset, combinations=None, pool=None):
    """(combination, pool, run) of every cell of a dataset's training grid, in table order;
    `combinations` and `pool` narrow it."""
    if combinations is None:
        combinations = experiments(dataset)["combinations"]
    return [
        (name, p, run)
        for name in combinations
        for p in combination_pools(dataset, name)
        if pool in (None, p)
        for run in run_names(dataset)
    ]


def grid_metrics(dataset, combinations=None, pool=None):
    """metrics.json of the runs of grid(dataset, combinations, pool): a report job's inputs."""
    return [
        run_file("metrics.json", dataset=dataset, combination=c, pool=p, run=r)
        for c, p, r in grid(dataset, combinations, pool)
    ]


def combinations_where(dataset, test):
    return [n for n, c in experiments(dataset)["combinations"].items() if test(c)]


def multi_feature_combinations(dataset):
    return combinations_where(dataset, lambda combo: len(combo["features"]) > 1)


def combination_features(wildcards):
    combos = experiments(wildcards.dataset)["combinations"]
    if wildcards.combination not in combos:
        raise ValueError(
            f"dataset {wildcards.dataset!r} has no combination {wildcards.combination!r} in {config_sources()}"
        )
    return combos[wildcards.combination]["features"]


# --- extraction ----------------------------------------------------------------------------


def predict_model(dataset):
    """(model dataset, combination, pool, run) of a `predict:` dataset, else None. The run must
    be a cell of the model dataset's grid (one the workflow trains), so a typo is refused while
    the DAG is built instead of training a run nobody configured."""
    spec = DATASETS[dataset].get("predict")
    if not spec:
        return None
    # four parts: the schema checks the form
    model_ds, combination, pool, run = spec["model"].split("/")
    if model_ds not in DATASETS or DATASETS[model_ds].get("predict"):
        trained = [d for d in DATASETS if not DATASETS[d].get("predict")]
        raise ValueError(
            f"dataset {dataset!r}: predict.model {spec['model']!r} names no trained dataset "
            f"{model_ds!r} in {config_sources()}; configured: {', '.join(trained) or 'none'}"
        )
    runs = ["/".join((model_ds,) + cell) for cell in grid(model_ds)]
    if spec["model"] not in runs:
        raise ValueError(
            f"dataset {dataset!r}: predict.model {spec['model']!r} is not a run of the grid of "
            f"{model_ds!r} in {config_sources()}; configured runs: {', '.join(runs) or 'none'}"
        )
    return model_ds, combination, pool, run


def dataset_features(dataset):
    """Feature name -> extraction settings. A `predict:` dataset is extracted with the model
    dataset's settings, for the features of the model's combination (and the ones they read).
    """
    model = predict_model(dataset)
    if model is None:
        return DATASETS[dataset]["features"]
    source = DATASETS[model[0]]["features"]
    wanted = list(experiments(model[0])["combinations"][model[1]]["features"])
    for name in wanted:  # inputs of inputs (ocr for ocr_text)
        if source[name]["input"] and source[name]["input"] not in wanted:
            wanted.append(source[name]["input"])
    return {name: source[name] for name in wanted}


_STRICT_CHECKED = set()


def check_paper_strict(dataset):
    """`paper_strict: true`: refuse, before any job runs, a dataset whose features would run a
    model or weights other than the paper's (extract/substitutes.py says why and how to fix).
    """
    if dataset in _STRICT_CHECKED or not DATASETS[dataset]["paper_strict"]:
        return
    from extract.substitutes import strict_problems

    problems = strict_problems(dataset_features(dataset))
    if problems:
        raise ValueError(
            f"dataset {dataset!r} has paper_strict: true, but it would not run the paper's models:\n  "
            + "\n  ".join(problems)
        )
    _STRICT_CHECKED.add(dataset)


def feature_config(wildcards):
    features = dataset_features(wildcards.dataset)
    if wildcards.feature not in features:
        raise ValueError(
            f"dataset {wildcards.dataset!r} has no feature {wildcards.feature!r} in {config_sources()}; "
            f"configured: {', '.join(features) or 'none'}"
        )
    check_paper_strict(wildcards.dataset)
    return features[wildcards.feature]


def stores(dataset, names):
    """{feature: its store} of one dataset."""
    return {name: STORE.format(dataset=dataset, feature=name) for name in names}


def extract_inputs(wildcards):
    ds, feature = wildcards.dataset, wildcards.feature
    inputs = {
        "manifest": MANIFEST.format(dataset=ds),
        "weights": WEIGHTS_READY.format(dataset=ds, feature=feature),
    }
    source = feature_config(wildcards)["input"]
    if source:
        inputs["store"] = STORE.format(dataset=ds, feature=source)
    return inputs


def extractor_name(wildcards):
    return feature_config(wildcards)["extractor"]


def model_args(wildcards):
    """Backend and `--set` options of one feature (what determines its weights)."""
    feature = feature_config(wildcards)
    args = ["--backend", feature["backend"]] if feature["backend"] else []
    for key, value in sorted(feature["options"].items()):
        text = json.dumps(value) if isinstance(value, bool) else value
        args += ["--set", f"{key}={text}"]
    return quoted(args)


def extract_args(wildcards, input):
    """Model arguments, the input store, and the feature name (recorded in the store's attrs)."""
    args = model_args(wildcards) + f" --feature {shlex.quote(wildcards.feature)}"
    if "store" in input.keys():
        args += f" --input {shlex.quote(input.store)}"
    return args


# --- training and prediction ---------------------------------------------------------------


def train_inputs(wildcards):
    ds = wildcards.dataset
    inputs = {"manifest": MANIFEST.format(dataset=ds)}
    return inputs | stores(ds, combination_features(wildcards))


def feature_args(names, input):
    return quoted(a for n in names for a in ("--feature", f"{n}={input[n]}"))


def train_features(wildcards, input):
    return feature_args(combination_features(wildcards), input)


def run_seed(wildcards):
    return parse_run(wildcards.run)[0]


def train_args(wildcards):
    """`--set KEY=VALUE` of the dataset's train options, the run's fold and the combination's
    encoders and collapsed features."""
    options = dict(experiments(wildcards.dataset)["train"])
    fold = parse_run(wildcards.run)[1]
    if fold is not None:
        options["fold"] = fold
    combo = experiments(wildcards.dataset)["combinations"][wildcards.combination]
    for name, kind in combo.get("encoders", {}).items():
        options[f"encoder.{name}"] = kind
    for name, how in combo.get("collapse", {}).items():
        options[f"collapse.{name}"] = how
    return quoted(a for k, v in sorted(options.items()) for a in ("--set", f"{k}={v}"))


def predict_features(wildcards):
    model_ds, combination, *_ = predict_model(wildcards.dataset)
    return experiments(model_ds)["combinations"][combination]["features"]


def predict_inputs(wildcards):
    model_ds, combination, pool, run = predict_model(wildcards.dataset)
    fields = dict(dataset=model_ds, combination=combination, pool=pool, run=run)
    inputs = {
        "manifest": MANIFEST.format(dataset=wildcards.dataset),
        "model": run_file("model.pt", **fields),
    }
    return inputs | stores(wildcards.dataset, predict_features(wildcards))


def predict_args(wildcards, input):
    run = quoted(["--run", str(Path(input.model).parent)])
    return f"{run} {feature_args(predict_features(wildcards), input)}"


# --- report --------------------------------------------------------------------------------


def run_folders(wildcards, input):
    """`--runs` of a report job: the folder of each of its metrics.json inputs."""
    return quoted(str(Path(p).parent) for p in input.runs)


def label_args(wildcards):
    labels = experiments(wildcards.dataset)["labels"]
    return quoted(a for k, v in sorted(labels.items()) for a in ("--label", f"{k}={v}"))


def table_command(wildcards):
    """`table`, or `paper-table` with the paper's rows beside ours where the paper has a table."""
    paper = DATASETS[wildcards.dataset]["paper"]
    return f"paper-table --paper {paper}" if paper else "table"


def gallery_inputs(wildcards):
    """The manifest, the drawn stores (faces, objects, ocr), every max-pool run and the
    robustness job's removal effects."""
    ds = wildcards.dataset
    drawn = [
        name
        for name, feature in dataset_features(ds).items()
        if feature["extractor"] in ("faces", "objects", "ocr")
    ]
    return {
        "manifest": MANIFEST.format(dataset=ds),
        "runs": grid_metrics(ds, pool="max"),
        "removal": f"{ROBUSTNESS.format(dataset=ds)}_removal.h5",
        "stores": list(stores(ds, drawn).values()),
    }


def gallery_stores(wildcards, input):
    return quoted(a for path in input.stores for a in ("--store", path))


def dataset_outputs(dataset):
    if predict_model(dataset) is not None:
        return [f"{PREDICTIONS.format(dataset=dataset)}.csv"]
    outputs = list(stores(dataset, dataset_features(dataset)).values())
    multi = multi_feature_combinations(dataset)
    if experiments(dataset)["combinations"]:
        table = TABLE.format(dataset=dataset)
        outputs += [f"{table}.csv", f"{table}.md"]
        outputs += [
            IMPORTANCE_FIGURE.format(dataset=dataset, combination=name)
            for name in multi
            if "max" in combination_pools(dataset, name)
        ]
        outputs.append(f"{MATRICES.format(dataset=dataset)}/overview.png")
    if multi or combinations_where(dataset, lambda combo: combo.get("collapse")):
        comparisons = COMPARISONS.format(dataset=dataset)
        outputs += [f"{comparisons}.csv", f"{comparisons}.md"]
    if multi:
        outputs.append(f"{ROBUSTNESS.format(dataset=dataset)}.csv")
        outputs.append(f"{GALLERY.format(dataset=dataset)}/index.html")
    return outputs


def default_targets(wildcards):
    unknown = [name for name in config["targets"] if name not in DATASETS]
    if unknown:
        raise ValueError(
            f"targets {unknown} name no dataset in {config_sources()}; "
            f"configured: {', '.join(DATASETS) or 'none'}"
        )
    return [path for name in config["targets"] for path in dataset_outputs(name)]
