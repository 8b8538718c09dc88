# Shared helpers: config validation, wildcard constraints, named input/param functions.
import json
import math
import os
import shlex
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

validate(config, "../config/schema.yaml")

import gpuslots

# `device: auto`: cuda when a GPU is visible (counted without torch, as gpuslots does), else cpu.
# Resolved once here; rules read config["device"] as cpu or cuda.
config["device"] = gpuslots.resolve_device(config["device"])

DATASETS = config["datasets"]
# One run folder pattern: rule train's outputs are its files; run_file() formats it.
RUN_DIR = "results/{dataset}/runs/{combination}/{pool}/{run}"


def run_file(name, **fields):
    """RUN_DIR/name for the wildcard values `fields` (dataset, combination, pool, run)."""
    return os.path.join(RUN_DIR.format(**fields), name)


wildcard_constraints:
    dataset="|".join(DATASETS) or "NONE",
    feature=r"[A-Za-z0-9_]+",
    combination=r"[A-Za-z0-9_]+",
    pool=__import__("model.pools", fromlist=["wildcard"]).wildcard(),  # model/pools.py: the one list of pools
    run=r"seed\d+(-fold\d+)?",
    shard=r"\d+-of-\d+",


def quoted(args):
    return " ".join(shlex.quote(str(a)) for a in args)


def parse_run(run):
    """`seedS` or `seedS-foldK` (the `run` wildcard) -> (S, K or None). The one parser of it."""
    seed, _, fold = run.partition("-fold")
    return int(seed[len("seed") :]), (int(fold) if fold else None)


def dataset_config(wildcards):
    return DATASETS[wildcards.dataset]


# --- data ----------------------------------------------------------------------------------


def manifest_source(wildcards):
    """What the manifest is built from: MM-IMDb's split.json, the Ads annotation CSV or the
    user's table."""
    ds = dataset_config(wildcards)
    for fmt, key in (("ads", "annotations"), ("table", "table")):
        if ds["format"] == fmt:
            if key not in ds:
                raise ValueError(
                    f"dataset {wildcards.dataset!r}: format {fmt} needs `{key}:`"
                )
            return ds[key]
    if "root" not in ds:
        raise ValueError(f"dataset {wildcards.dataset!r}: format mmimdb needs `root:`")
    return f"{ds['root']}/split.json"


def manifest_args(wildcards, input):
    ds = dataset_config(wildcards)
    if ds["format"] == "ads":
        args = ["--format", "ads", "--annotations", input.source]
        args += ["--folds", ds["folds"] or 5, "--seed", ds["fold_seed"]]
        return quoted(args)
    if ds["format"] == "table":
        split = ds["split"]
        ratios = ",".join(str(r) for r in split.get("ratios", [0.6, 0.1, 0.3]))
        args = ["--format", "table", "--table", input.source, "--split-ratios", ratios]
        args += ["--sep", ds["sep"]] if ds["sep"] else []
        args += ["--strict-images"] if ds["strict_images"] else []
        return quoted(args + ["--split-seed", split.get("seed", 0)])
    args = ["--format", "mmimdb", "--root", ds["root"], "--plot", ds["plot"]]
    if ds["genres"]:
        args += ["--genres", ",".join(ds["genres"])]
    return quoted(args)


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
    runs = configured_runs(model_ds)
    if spec["model"] not in runs:
        raise ValueError(
            f"dataset {dataset!r}: predict.model {spec['model']!r} is not a run of the grid of "
            f"{model_ds!r} in {config_sources()}; configured runs: {', '.join(runs) or 'none'}"
        )
    return model_ds, combination, pool, run


def configured_runs(dataset):
    """DATASET/COMBINATION/POOL/RUN of every cell of a dataset's training grid."""
    return [
        f"{dataset}/{name}/{pool}/{run}"
        for name in experiments(dataset)["combinations"]
        for pool in combination_pools(dataset, name)
        for run in run_names(dataset)
    ]


def config_sources():
    """The config files this run loaded (the workflow's own first, then --configfile ones) and
    --config when given: what an error about a dataset's settings points the user at."""
    given = [str(p) for p in workflow.config_settings.configfiles]
    loaded = [str(p) for p in workflow.configfiles if str(p) not in given] + given
    files = []
    for path in loaded:
        shown = (
            path if os.path.relpath(path).startswith("..") else os.path.relpath(path)
        )
        if shown not in files:
            files.append(shown)
    if workflow.config_settings.config:
        files.append("--config")
    return ", ".join(files) or "no config file"


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


def store_path(dataset, feature):
    return f"results/{dataset}/features/{feature}.h5"


def feature_stores(dataset):
    return [store_path(dataset, f) for f in dataset_features(dataset)]


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
    """Model arguments, the input store, and the feature name (recorded in the store's attrs)."""
    args = model_args(wildcards) + f" --feature {shlex.quote(wildcards.feature)}"
    if "store" in input.keys():
        args += f" --input {shlex.quote(input.store)}"
    return args


_SHARDS = {}


def shard_count(dataset, feature):
    """Shards of one store: `shards: N`, or `auto` (gpuslots/shards.py): in proportion to the
    extractor's per-item cost and the GPUs of this machine (2 each without local GPUs).
    """
    if config["shards"] != "auto":
        return int(config["shards"])
    if dataset not in _SHARDS:
        extractors = {n: f["extractor"] for n, f in dataset_features(dataset).items()}
        _SHARDS[dataset] = shard_counts(extractors, 0 if SLOTS is None else SLOTS.gpus)
    return _SHARDS[dataset][feature]


def shard_files(wildcards):
    """Every shard of one store, `K-of-N` (the `shard` wildcard)."""
    n = shard_count(wildcards.dataset, wildcards.feature)
    folder = f"results/{wildcards.dataset}/features/shards/{wildcards.feature}"
    return [f"{folder}/{k}-of-{n}.h5" for k in range(1, n + 1)]


def shard_spec(wildcards):
    return wildcards.shard.replace("-of-", "/")


# --- GPU slots -----------------------------------------------------------------------------
# With device cuda on one machine, `gpus` devices (default: those visible) are each shared by
# up to gpu_share[RULE] jobs of a rule. A job asks for SLOTS.need(RULE) of the resource
# `gpu_slots`, whose global limit (SLOTS.limit: the devices' units plus one device's worth for a
# waiting whole-device job) is set here, so `--cores N` alone fills the box; sharing jobs also ask
# for `gpu_shared` (limit: the devices' units), so they never take that spare (gpuslots/plan.py);
# its command runs under `python -m gpuslots run`, which binds it to one device.
# `gpus: 0` (the SLURM profile) turns slots off: the scheduler assigns devices from `gpu=1`.
# Extraction rules run before training (priority): the slowest stores are on the critical path.
from gpuslots.shards import chain_costs, shard_counts

SLOTS = gpuslots.plan(config["device"], config.get("gpus"), config["gpu_share"])
if SLOTS is not None and "gpu_slots" not in workflow.global_resources:
    workflow.register_resource("gpu_slots", SLOTS.limit)
if SLOTS is not None and "gpu_shared" not in workflow.global_resources:
    workflow.register_resource("gpu_shared", SLOTS.total)
logger.info(
    f"dmms: device {config['device']}"
    + (
        f", {SLOTS.gpus} GPU(s) shared through gpuslots ({gpuslots.lock_dir()})"
        if SLOTS
        else ""
    )
    + (
        ""
        if config["device"] == "cpu" or SLOTS
        else ", devices assigned by the scheduler (gpus: 0)"
    )
)
EXTRACT_PRIORITY = 10


def extract_priority(wildcards):
    """Extraction jobs before training (10 and up), and stores on the longest chain of per-item
    cost first (objects, which boxes reads: gpuslots/shards.py `chain_costs`)."""
    features = dataset_features(wildcards.dataset)
    chains = chain_costs({n: (f["extractor"], f["input"]) for n, f in features.items()})
    return EXTRACT_PRIORITY + round(chains[wildcards.feature])


def gpus(wildcards):
    """Resource `gpu`: one device per GPU job (the SLURM executor turns it into --gpus=1)."""
    return 1 if config["device"] == "cuda" else 0


def gpu_slots(rule):
    """Resource `gpu_slots` of a job of `rule`: its part of one device, 0 when slots are off."""
    return 0 if SLOTS is None else SLOTS.need(rule)


def gpu_shared(rule):
    """Resource `gpu_shared` of a job of `rule`: its units when it shares a device, else 0."""
    return 0 if SLOTS is None else SLOTS.shared(rule)


def gpu_run(rule):
    """Shell prefix binding a job of `rule` to a device slot ("" when slots are off)."""
    return "" if SLOTS is None else SLOTS.prefix(rule)


# --- end of GPU slots ----------------------------------------------------------------------


# --- cluster resources ---------------------------------------------------------------------
# Memory (mem_mb) and runtime (minutes) of the jobs that need more than Snakemake's default
# (mem_mb = max(2 x input size, 1000)); the SLURM executor submits them as --mem and -t, and
# `--resources mem_mb=N` caps a local run with them. CPUs: the plugin asks for the rule's
# threads. A retry (profiles/slurm `retries`) gets attempt x both, so a job killed for memory or
# time comes back bigger. Where each number comes from: docs/DESIGN.md, "Cluster resources".

# Peak MB of one extraction shard with the paper's backends (the demo's are smaller).
EXTRACT_MB = {
    "image": 4000,
    "text": 3000,
    "faces": 4000,
    "objects": 4500,
    "boxes": 4500,
    "ocr": 3000,
    "index": 1000,
}
# Seconds per sample of one shard, (GPU, CPU one thread), with the paper's backends.
EXTRACT_SECONDS = {
    "image": (0.005, 2.0),
    "text": (0.012, 0.5),
    "faces": (0.02, 1.0),
    "objects": (0.072, 6.0),
    "boxes": (0.025, 15.0),
    "ocr": (0.3, 1.0),
    "index": (0.001, 0.001),
}
# Planned runtimes assume MM-IMDb's size before the manifest exists (dry runs).
MMIMDB_SAMPLES = 25959


def manifest_rows(path):
    """Rows of a manifest, or MMIMDB_SAMPLES while it does not exist yet."""
    if not os.path.exists(path):
        return MMIMDB_SAMPLES
    with open(path, "rb") as fh:
        return max(sum(1 for _ in fh) - 1, 0)


def extract_mem_mb(wildcards, input, attempt):
    """The extractor's peak plus the store it reads (ocr for ocr_text, objects for boxes)."""
    store = input.get("store")
    store_mb = os.path.getsize(store) / 2**20 if store and os.path.exists(store) else 0
    return attempt * int(EXTRACT_MB[extractor_name(wildcards)] + store_mb)


def extract_runtime(wildcards, input, attempt):
    """Loading (10 min) plus the shard's samples at the extractor's rate, doubled for slack."""
    gpu_s, cpu_s = EXTRACT_SECONDS[extractor_name(wildcards)]
    per_sample = gpu_s if config["device"] == "cuda" else cpu_s
    samples = manifest_rows(input.manifest) / shard_count(
        wildcards.dataset, wildcards.feature
    )
    return attempt * (10 + math.ceil(2 * per_sample * samples / 60))


def model_mem_mb(wildcards, input, attempt):
    """Jobs that load torch, a model and feature stores (training, predictions, robustness,
    gallery, importance matrices): 1500 MB plus the stores read into memory twice over (the
    store, then the batched float32 tensors)."""
    return attempt * int(1500 + 2 * input.size_mb)


def train_runtime(wildcards, input, attempt):
    """40 epochs of MM-IMDb's grid cell take ~15 min on one CPU thread, ~1 min on a GPU."""
    return attempt * (30 if config["device"] == "cuda" else 120)


# --- end of cluster resources --------------------------------------------------------------


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
        RUN_DIR.format(dataset=dataset, combination=name, pool=pool, run=run)
        for name in experiments(dataset)["combinations"]
        for pool in combination_pools(dataset, name)
        for run in run_names(dataset)
    ]


def run_metrics(wildcards):
    return [os.path.join(d, "metrics.json") for d in run_dirs(wildcards.dataset)]


def combination_features(wildcards):
    combos = experiments(wildcards.dataset)["combinations"]
    if wildcards.combination not in combos:
        raise ValueError(
            f"dataset {wildcards.dataset!r} has no combination {wildcards.combination!r} in {config_sources()}"
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


def table_command(wildcards):
    """`table`, or `paper-table` with the paper's rows beside ours where the paper has a table."""
    paper = dataset_config(wildcards)["paper"]
    return f"paper-table --paper {paper}" if paper else "table"


def max_pool_runs(wildcards):
    """Every max-pooling run of a multi-feature combination (the importance matrices' rows)."""
    ds = wildcards.dataset
    return [
        run_file("metrics.json", dataset=ds, combination=name, pool="max", run=run)
        for name, combo in experiments(ds)["combinations"].items()
        if "max" in combination_pools(ds, name)
        for run in run_names(ds)
    ]


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
        run_file(
            "metrics.json",
            dataset=wildcards.dataset,
            combination=wildcards.combination,
            pool="max",
            run=run,
        )
        for run in run_names(wildcards.dataset)
    ]


def run_dir_of(paths):
    return quoted(str(Path(p).parent) for p in paths)


def table_runs(wildcards, input):
    return run_dir_of(input.runs)


def figure_runs(wildcards, input):
    return run_dir_of(input)


def multi_feature_combinations(dataset):
    return [
        name
        for name, combo in experiments(dataset)["combinations"].items()
        if len(combo["features"]) > 1
    ]


def collapsed_combinations(dataset):
    """Combinations trained on collapsed sets (`collapse:`): the comparisons table pairs them."""
    return [
        name
        for name, combo in experiments(dataset)["combinations"].items()
        if combo.get("collapse")
    ]


def robustness_runs(wildcards):
    """metrics.json of every run of every multi-feature combination, each of its pools."""
    ds = wildcards.dataset
    return [
        run_file("metrics.json", dataset=ds, combination=name, pool=pool, run=run)
        for name in multi_feature_combinations(ds)
        for pool in combination_pools(ds, name)
        for run in run_names(ds)
    ]


def gallery_inputs(wildcards):
    """The manifest, the drawn stores (faces, objects, ocr), every max-pool run and the
    robustness job's removal effects."""
    ds = wildcards.dataset
    inputs = {
        "manifest": f"results/{ds}/manifest.csv",
        "runs": max_pool_runs(wildcards),
        "removal": f"results/{ds}_robustness_removal.h5",
    }
    features = dataset_features(ds)
    inputs["stores"] = [
        store_path(ds, name)
        for name, feature in features.items()
        if feature["extractor"] in ("faces", "objects", "ocr")
    ]
    return inputs


def gallery_stores(wildcards, input):
    return quoted(a for path in input.stores for a in ("--store", path))


def predict_inputs(wildcards):
    model_ds, combination, pool, run = predict_model(wildcards.dataset)
    inputs = {
        "manifest": f"results/{wildcards.dataset}/manifest.csv",
        "model": run_file(
            "model.pt", dataset=model_ds, combination=combination, pool=pool, run=run
        ),
    }
    for name in experiments(model_ds)["combinations"][combination]["features"]:
        inputs[name] = store_path(wildcards.dataset, name)
    return inputs


def predict_args(wildcards, input):
    model_ds, combination, *_ = predict_model(wildcards.dataset)
    names = experiments(model_ds)["combinations"][combination]["features"]
    args = ["--run", str(Path(input.model).parent)]
    return quoted(args + [a for n in names for a in ("--feature", f"{n}={input[n]}")])


def dataset_outputs(dataset):
    if predict_model(dataset) is not None:
        return [f"results/{dataset}/predictions.csv"]
    outputs = list(feature_stores(dataset))
    if experiments(dataset)["combinations"]:
        outputs += [f"results/{dataset}_table.csv", f"results/{dataset}_table.md"]
        outputs += importance_figures(dataset)
        outputs.append(f"results/{dataset}/figures/matrices/overview.png")
    if multi_feature_combinations(dataset) or collapsed_combinations(dataset):
        outputs += [
            f"results/{dataset}_comparisons.csv",
            f"results/{dataset}_comparisons.md",
        ]
    if multi_feature_combinations(dataset):
        outputs.append(f"results/{dataset}_robustness.csv")
        outputs.append(f"results/{dataset}/gallery/index.html")
    return outputs


def default_targets(wildcards):
    unknown = [name for name in config["targets"] if name not in DATASETS]
    if unknown:
        raise ValueError(
            f"targets {unknown} name no dataset in {config_sources()}; "
            f"configured: {', '.join(DATASETS) or 'none'}"
        )
    return [path for name in config["targets"] for path in dataset_outputs(name)]
