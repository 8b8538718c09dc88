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
    seed=r"\d+",


scattergather:
    extract=config["shards"],


def dataset_config(wildcards):
    return DATASETS[wildcards.dataset]


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


def default_targets(wildcards):
    return [path for name in config["targets"] for path in dataset_outputs(name)]


def dataset_root(wildcards):
    return dataset_config(wildcards)["root"]


def split_file(wildcards):
    return f"{dataset_root(wildcards)}/split.json"


def compose_n(wildcards):
    return dataset_config(wildcards)["compose"]["n"]


def compose_seed(wildcards):
    return dataset_config(wildcards)["compose"]["seed"]


def genres_arg(wildcards):
    genres = dataset_config(wildcards)["genres"]
    return f"--genres {shlex.quote(','.join(genres))}" if genres else ""


def extract_inputs(wildcards):
    inputs = {"manifest": f"results/{wildcards.dataset}/manifest.csv"}
    source = feature_config(wildcards)["input"]
    if source:
        inputs["store"] = store_path(wildcards.dataset, source)
    return inputs


def extractor_name(wildcards):
    return feature_config(wildcards)["extractor"]


def extract_args(wildcards, input):
    """Backend, input store and `--set` options of one feature, as command-line arguments."""
    feature = feature_config(wildcards)
    args = []
    if feature["backend"]:
        args += ["--backend", feature["backend"]]
    if "store" in input.keys():
        args += ["--input", input.store]
    for key, value in sorted(feature["options"].items()):
        args += [
            "--set",
            f"{key}={json.dumps(value) if isinstance(value, bool) else value}",
        ]
    return " ".join(shlex.quote(str(a)) for a in args)


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


def run_dirs(dataset):
    exp = experiments(dataset)
    return [
        f"results/{dataset}/runs/{name}/{pool}/seed{seed}"
        for name in exp["combinations"]
        for pool in combination_pools(dataset, name)
        for seed in exp["seeds"]
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
    return " ".join(f"--feature {shlex.quote(f'{n}={input[n]}')}" for n in names)


def train_args(wildcards):
    options = experiments(wildcards.dataset)["train"]
    return " ".join(
        f"--set {shlex.quote(f'{k}={v}')}" for k, v in sorted(options.items())
    )


def label_args(wildcards):
    labels = experiments(wildcards.dataset)["labels"]
    return " ".join(
        f"--label {shlex.quote(f'{k}={v}')}" for k, v in sorted(labels.items())
    )


def importance_figures(dataset):
    """One bar chart per combination trained with max pooling and several features."""
    exp = experiments(dataset)
    return [
        f"results/{dataset}/figures/importance_{name}.png"
        for name, combo in exp["combinations"].items()
        if len(combo["features"]) > 1 and "max" in combination_pools(dataset, name)
    ]


def importance_runs(wildcards):
    seeds = experiments(wildcards.dataset)["seeds"]
    return [
        f"results/{wildcards.dataset}/runs/{wildcards.combination}/max/seed{s}/metrics.json"
        for s in seeds
    ]


def run_dir_of(paths):
    return " ".join(str(Path(p).parent) for p in paths)


def table_runs(wildcards, input):
    return run_dir_of(input.runs)


def figure_runs(wildcards, input):
    return run_dir_of(input)


def dataset_outputs(dataset):
    outputs = list(feature_stores(dataset))
    if experiments(dataset)["combinations"]:
        outputs += [f"results/{dataset}_table.csv", f"results/{dataset}_table.md"]
        outputs += importance_figures(dataset)
    return outputs
