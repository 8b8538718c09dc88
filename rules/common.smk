# Config validation, device resolution, wildcard constraints and the plan: the grid, features,
# targets and the rules' input/param functions live in pipeline/ (tested without Snakemake); job
# resources and the shard functions (GPU slots, shards, memory, runtime): rules/resources.smk.
import os

from snakemake.logging import logger
from snakemake.utils import validate

import gpuslots
from model.options import pool_wildcard
from pipeline.paths import (
    CELL_DIR,
    COMPARISONS,
    COMPOSED,
    DOWNLOADED,
    GALLERY,
    IMPORTANCE_FIGURE,
    MANIFEST,
    MATRICES,
    PREDICTIONS,
    ROBUSTNESS,
    SHARD,
    STORE,
    STORES,
    TABLE,
    WEIGHTS_READY,
)
from pipeline.interpreter import use_job_python
from pipeline.plan import Plan, check_renamed

# A renamed pool (`concat`) is named with what it is now, before the schema refuses it.
check_renamed(config)
# The schema fills every default: the plan reads config keys without fallbacks.
validate(config, "../config/schema.yaml")

# `device: auto`: cuda when a GPU is visible (counted without torch, as gpuslots does), else cpu.
# Resolved once here; rules read config["device"] as cpu or cuda.
# As configured: shard counts must not depend on the machine that parses the workflow.
DEVICE_SETTING = config["device"]
config["device"] = gpuslots.resolve_device(config["device"])


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


PLAN = Plan(config, config_sources())

# Jobs run `python -m ...` from PATH: under a venv's snakemake started without activating the venv,
# its Python goes first (pipeline/interpreter.py); conda/apptainer deployments bring their own.
if not workflow.deployment_settings.deployment_method:
    _why = use_job_python(os.environ)
    if _why:
        logger.warning(_why)


def extract_inputs(wildcards):
    """The shard's manifest, input store and weights record; the record only orders the jobs
    (ancient: a fetch that rewrites it re-extracts nothing; a change of the feature's options,
    weight options included, reaches the store through merge_shards' params)."""
    inputs = PLAN.extract_inputs(wildcards)
    if "weights" in inputs:  # extractors without weight files have none
        inputs["weights"] = ancient(inputs["weights"])
    return inputs


wildcard_constraints:
    dataset="|".join(config["datasets"]) or "NONE",
    feature=r"[A-Za-z0-9_]+",
    combination=r"[A-Za-z0-9_]+",
    pool=pool_wildcard(),  # model/options.py: the one list of pools
    shard=r"\d+-of-\d+",
    weights=r"[A-Za-z0-9_.-]+",
