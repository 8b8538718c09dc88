# Job resources: GPU slots, store shards, and the memory and runtime a cluster submits.
import math
import os

from snakemake.logging import logger

from extract.catalog import entry as catalog_entry
from pipeline.shards import chain_costs, cost_device, shard_counts

# --- GPU slots -----------------------------------------------------------------------------
# With device cuda on one machine, `gpus` devices (default: those visible) are each shared by
# up to gpu_share[RULE] jobs of a rule. A job asks for SLOTS.need(RULE) of the resource
# `gpu_slots`, whose global limit (SLOTS.limit: the devices' units plus one device's worth for a
# waiting whole-device job) is set here, so `--cores N` alone fills the box; sharing jobs also ask
# for `gpu_shared` (limit: the devices' units), so they never take that spare
# (gpuslots/resources.py); its command runs under `python -m gpuslots run`, which binds it to one
# device.
# `gpus: 0` (the SLURM profile) turns slots off: the scheduler assigns devices from `gpu=1`.
# Extraction rules run before training (priority): the slowest stores are on the critical path.
SLOTS = gpuslots.slot_resources(
    config["device"], config.get("gpus"), config["gpu_share"]
)
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
    cost first (objects, which boxes reads: pipeline/shards.py `chain_costs`)."""
    return feature_priority(wildcards.dataset, wildcards.feature)


def feature_priority(dataset, feature):
    features = PLAN.dataset_features(dataset)
    chains = chain_costs({n: (f["extractor"], f["input"]) for n, f in features.items()})
    return EXTRACT_PRIORITY + round(chains[feature])


def fetch_priority(wildcards):
    """A weights record: the highest priority of the features that wait for it."""
    return max(feature_priority(ds, f) for ds, f in PLAN.weights_users(wildcards))


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
    """Params function: the shell prefix binding a job of `rule` to a device slot ("" when
    slots are off), naming the job by its first output to jobs waiting for its GPU."""

    def prefix(wildcards, output):
        return "" if SLOTS is None else SLOTS.prefix(rule, job=output[0])

    return prefix


# --- shards --------------------------------------------------------------------------------
_SHARDS = {}


def shard_count(dataset, feature):
    """Shards of one store: `shards: N`, or `auto` (pipeline/shards.py): in proportion to the
    per-item cost on this run's device and the GPUs of this machine (without local GPUs: the
    costliest store in 2, the others in proportion).
    """
    if config["shards"] != "auto":
        return int(config["shards"])
    if dataset not in _SHARDS:
        features = {
            n: (f["extractor"], f["backend"])
            for n, f in PLAN.dataset_features(dataset).items()
        }
        device = cost_device(DEVICE_SETTING, config["device"], config.get("gpus"))
        _SHARDS[dataset] = shard_counts(
            features, device, 0 if SLOTS is None else SLOTS.gpus
        )
    return _SHARDS[dataset][feature]


def shard_files(wildcards):
    """Every shard of one store, `K-of-N` (the `shard` wildcard)."""
    n = shard_count(wildcards.dataset, wildcards.feature)
    return [
        SHARD.format(
            dataset=wildcards.dataset, feature=wildcards.feature, shard=f"{k}-of-{n}"
        )
        for k in range(1, n + 1)
    ]


def shard_spec(wildcards):
    return wildcards.shard.replace("-of-", "/")


# --- cluster resources ---------------------------------------------------------------------
# Memory (mem_mb) and runtime (minutes) of the jobs that need more than Snakemake's default
# (mem_mb = max(2 x input size, 1000)); the SLURM executor submits them as --mem and -t, and
# `--resources mem_mb=N` caps a local run with them. CPUs: the plugin asks for the rule's
# threads. A retry (profiles/slurm `retries`) gets attempt x both, so a job killed for memory or
# time comes back bigger. The numbers are for the paper's backends; `make test-slurm` compares
# the requests with sacct's MaxRSS (bench/results/slurm_small_cpu.json: shards 1.0-1.1 GB of
# 3,000-4,000 MB asked, training 0.8 GB of 1,504).

# An extraction shard's peak MB and seconds per sample: extract/catalog.py (`peak_mb`, `seconds`,
# with where each comes from). Planned runtimes assume MM-IMDb's size before the manifest exists
# (dry runs). On a CPU cluster raise `shards` until a shard fits the partition's time limit: the
# runtime follows samples / shards.
MMIMDB_SAMPLES = 25959


def manifest_rows(path):
    """Rows of a manifest, or MMIMDB_SAMPLES while it does not exist yet."""
    if not os.path.exists(path):
        return MMIMDB_SAMPLES
    with open(path, "rb") as fh:
        return max(sum(1 for _ in fh) - 1, 0)


def size_mb(paths):
    """MB of the files that exist among `paths`. Not Snakemake's `input.size_mb`: evaluated while
    `--report` builds its DAG it leaves a coroutine never awaited (a RuntimeWarning per job).
    """
    return sum(os.path.getsize(p) for p in paths if p and os.path.exists(p)) / 2**20


def extract_mem_mb(wildcards, input, attempt):
    """The extractor's peak plus the store it reads (ocr for ocr_text, objects for boxes)."""
    store_mb = size_mb([input.get("store")])
    return attempt * int(
        catalog_entry(PLAN.extractor_name(wildcards)).peak_mb + store_mb
    )


def extract_runtime(wildcards, input, attempt):
    """Loading (10 min) plus the shard's samples at the backend's rate on this run's device,
    doubled for slack."""
    feature = PLAN.feature_config(wildcards)
    per_sample = catalog_entry(feature["extractor"]).seconds(
        config["device"], feature["backend"]
    )
    samples = manifest_rows(input.manifest) / shard_count(
        wildcards.dataset, wildcards.feature
    )
    return attempt * (10 + math.ceil(2 * per_sample * samples / 60))


def model_mem_mb(wildcards, input, attempt):
    """Jobs that load torch, a model and the feature stores in their input (training,
    predictions): 1500 MB plus the stores read into memory twice over (the store, then the
    batched float32 tensors). The demo's peaked at 1.1-1.3 GB, over Snakemake's default 1,000
    MB; at 1M samples training peaked at 5.1 GB for 3.55 GB of features (BENCHMARKS.md,
    "Training")."""
    return attempt * int(1500 + 2 * size_mb(input))


def report_mem_mb(wildcards, input, attempt):
    """Report jobs that rebuild runs from their folders (robustness, gallery, importance
    matrices): as `model_mem_mb`, with the stores the runs read (the dataset's grid stores; the
    run folders in the input weigh nothing)."""
    stores = set(PLAN.grid_stores(wildcards))
    stores |= {p for p in input if str(p).endswith(".h5")}
    return attempt * int(1500 + 2 * size_mb(sorted(stores)))


def run_minutes(trainings, attempt):
    """Minutes: 10 to start, plus per training 30 on the CPU (40 epochs of one MM-IMDb run take
    ~15 min on one CPU thread: ~21 s an epoch, BENCHMARKS.md "Training") or 5 on a GPU
    (~1 min)."""
    return attempt * (10 + trainings * (5 if config["device"] == "cuda" else 30))


def train_runtime(wildcards, input, attempt):
    """A training job trains its cell's runs (seeds, folds) one after another, each once per lr
    candidate under `lr: auto`."""
    runs = len(PLAN.run_names(wildcards.dataset))
    return run_minutes(runs * PLAN.lr_trainings(wildcards.dataset), attempt)


def predict_runtime(wildcards, input, attempt):
    """A predict job scores with one run."""
    return run_minutes(1, attempt)
