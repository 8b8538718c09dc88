# Shared helpers: config validation, wildcard constraints, named input/param functions.
import json
import shlex
from pathlib import Path

from snakemake.utils import validate

validate(config, "../config/schema.yaml")

DATASETS = config["datasets"]


wildcard_constraints:
    dataset="|".join(DATASETS) or "NONE",
    feature=r"[A-Za-z0-9_]+",
    combination=r"[A-Za-z0-9_]+",
    pool="max|min|sum|mean|attention|concat",
    run=r"seed\d+(-fold\d+)?",


scattergather:
    extract=config["shards"],


def quoted(args):
    return " ".join(shlex.quote(str(a)) for a in args)


def dataset_config(wildcards):
    return DATASETS[wildcards.dataset]


# --- data ----------------------------------------------------------------------------------


def manifest_source(wildcards):
    """What the manifest is built from: MM-IMDb's split.json or the Ads annotation CSV."""
    ds = dataset_config(wildcards)
    if ds["format"] == "ads":
        if "annotations" not in ds:
            raise ValueError(
                f"dataset {wildcards.dataset!r}: format ads needs `annotations:`"
            )
        return ds["annotations"]
    if "root" not in ds:
        raise ValueError(f"dataset {wildcards.dataset!r}: format mmimdb needs `root:`")
    return f"{ds['root']}/split.json"


def manifest_args(wildcards, input):
    ds = dataset_config(wildcards)
    if ds["format"] == "ads":
        args = ["--format", "ads", "--annotations", input.source]
        args += ["--folds", ds["folds"] or 5, "--seed", ds["fold_seed"]]
        return quoted(args)
    args = ["--format", "mmimdb", "--root", ds["root"]]
    if ds["genres"]:
        args += ["--genres", ",".join(ds["genres"])]
    return quoted(args)


def compose_n(wildcards):
    return dataset_config(wildcards)["compose"]["n"]


def compose_seed(wildcards):
    return dataset_config(wildcards)["compose"]["seed"]


def download_args(wildcards):
    ds = dataset_config(wildcards)
    if "download" not in ds:
        raise ValueError(
            f"dataset {wildcards.dataset!r}: {ds.get('root')}/split.json does not exist and the config "
            "has no `download:` section; point `root:` at an unpacked MM-IMDb copy"
        )
    dl = ds["download"]
    args = ["--url", dl["url"]]
    if dl["size"]:
        args += ["--size", dl["size"]]
    if dl["sha256"]:
        args += ["--sha256", dl["sha256"]]
    return quoted(args)


# --- extraction ----------------------------------------------------------------------------


def feature_config(wildcards):
    features = dataset_config(wildcards)["features"]
    if wildcards.feature not in features:
        raise ValueError(
            f"dataset {wildcards.dataset!r} has no feature {wildcards.feature!r} in config/config.yaml; "
            f"configured: {', '.join(features) or 'none'}"
        )
    return features[wildcards.feature]


def store_path(dataset, feature):
    return f"results/{dataset}/features/{feature}.h5"


def feature_stores(dataset):
    return [store_path(dataset, f) for f in DATASETS[dataset]["features"]]


def extract_inputs(wildcards):
    inputs = {
        "manifest": f"results/{wildcards.dataset}/manifest.csv",
        "weights": f"resources/weights/ready/{wildcards.dataset}/{wildcards.feature}.json",
    }
    source = feature_config(wildcards)["input"]
    if source:
        inputs["store"] = store_path(wildcards.dataset, source)
    return inputs


def extractor_name(wildcards):
    return feature_config(wildcards)["extractor"]


def model_args(wildcards):
    """Backend and `--set` options of one feature (what determines its weights)."""
    feature = feature_config(wildcards)
    args = []
    if feature["backend"]:
        args += ["--backend", feature["backend"]]
    for key, value in sorted(feature["options"].items()):
        args += [
            "--set",
            f"{key}={json.dumps(value) if isinstance(value, bool) else value}",
        ]
    return quoted(args)


def extract_args(wildcards, input):
    args = model_args(wildcards)
    if "store" in input.keys():
        args += f" --input {shlex.quote(input.store)}"
    return args


def shard_spec(wildcards):
    return wildcards.scatteritem.replace("-of-", "/")


def device():
    return config["device"]


def gpus(wildcards):
    return 1 if config["device"] == "cuda" else 0


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


def run_dirs(dataset):
    return [
        f"results/{dataset}/runs/{name}/{pool}/{run}"
        for name in experiments(dataset)["combinations"]
        for pool in combination_pools(dataset, name)
        for run in run_names(dataset)
    ]


def run_metrics(wildcards):
    return [f"{d}/metrics.json" for d in run_dirs(wildcards.dataset)]


def combination_features(wildcards):
    combos = experiments(wildcards.dataset)["combinations"]
    if wildcards.combination not in combos:
        raise ValueError(
            f"dataset {wildcards.dataset!r} has no combination {wildcards.combination!r} in config/config.yaml"
        )
    return combos[wildcards.combination]["features"]


def train_inputs(wildcards):
    inputs = {"manifest": f"results/{wildcards.dataset}/manifest.csv"}
    for name in combination_features(wildcards):
        inputs[name] = store_path(wildcards.dataset, name)
    return inputs


def feature_args(wildcards, input):
    names = combination_features(wildcards)
    return quoted(a for n in names for a in ("--feature", f"{n}={input[n]}"))


def run_seed(wildcards):
    return int(wildcards.run.split("-")[0][len("seed") :])


def train_args(wildcards):
    options = dict(experiments(wildcards.dataset)["train"])
    if "-fold" in wildcards.run:
        options["fold"] = int(wildcards.run.split("-fold")[1])
    return quoted(a for k, v in sorted(options.items()) for a in ("--set", f"{k}={v}"))


def table_command(wildcards):
    """`table`, or `paper-table` with the paper's rows beside ours where the paper has a table."""
    paper = dataset_config(wildcards)["paper"]
    return f"paper-table --paper {paper}" if paper else "table"


def max_pool_runs(wildcards):
    """Every max-pooling run of a multi-feature combination (the importance matrices' rows)."""
    ds = wildcards.dataset
    return [
        f"results/{ds}/runs/{name}/max/{run}/metrics.json"
        for name, combo in experiments(ds)["combinations"].items()
        if "max" in combination_pools(ds, name)
        for run in run_names(ds)
    ]


def matrices_samples(wildcards):
    return experiments(wildcards.dataset)["importance_samples"]


def label_args(wildcards):
    labels = experiments(wildcards.dataset)["labels"]
    return quoted(a for k, v in sorted(labels.items()) for a in ("--label", f"{k}={v}"))


def importance_figures(dataset):
    """One bar chart per combination trained with max pooling and several features."""
    exp = experiments(dataset)
    return [
        f"results/{dataset}/figures/importance_{name}.png"
        for name, combo in exp["combinations"].items()
        if len(combo["features"]) > 1 and "max" in combination_pools(dataset, name)
    ]


def importance_runs(wildcards):
    return [
        f"results/{wildcards.dataset}/runs/{wildcards.combination}/max/{run}/metrics.json"
        for run in run_names(wildcards.dataset)
    ]


def run_dir_of(paths):
    return quoted(str(Path(p).parent) for p in paths)


def table_runs(wildcards, input):
    return run_dir_of(input.runs)


def figure_runs(wildcards, input):
    return run_dir_of(input)


def dataset_outputs(dataset):
    outputs = list(feature_stores(dataset))
    if experiments(dataset)["combinations"]:
        outputs += [f"results/{dataset}_table.csv", f"results/{dataset}_table.md"]
        outputs += importance_figures(dataset)
        outputs.append(f"results/{dataset}/figures/matrices/overview.png")
    return outputs


def default_targets(wildcards):
    return [path for name in config["targets"] for path in dataset_outputs(name)]
