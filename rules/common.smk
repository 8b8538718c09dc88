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
    return [store for name in config["targets"] for store in feature_stores(name)]


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
