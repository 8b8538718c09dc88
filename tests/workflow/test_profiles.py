"""The two profiles together: profiles/default is loaded as the workflow profile under
`--profile profiles/slurm` too, so it must not override the SLURM profile's keys, and the
SLURM plan must carry the profile's partition, account and runtimes as shipped."""

from __future__ import annotations

import math
import re

import yaml

from extract.catalog import entry
from pipeline.shards import shard_counts
from tests.workflow.snakemake_run import ROOT, snakemake

SLURM = ROOT / "profiles/slurm/config.yaml"
PLANNED_SAMPLES = 25959  # rules/resources.smk MMIMDB_SAMPLES: a dry run has no manifest yet


def plan_resources(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, {resource: value}) of every job of a printed plan; an extraction shard's `feature`
    and `shard` wildcards are added as `_feature`, `_shard`."""
    jobs, rule, wildcards = [], None, {}
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule, wildcards = line.split()[1].rstrip(":"), {}
        elif line.strip().startswith("wildcards:"):
            wildcards = {f"_{k}": v.strip() for k, v in re.findall(r"(\w+)=([^,]*)", line.split("wildcards:")[1])}
        elif line.strip().startswith("resources:") and rule:
            items = re.findall(r"(\w+)=([^,]*)", line.split("resources:")[1])
            jobs.append((rule, {k: v.strip() for k, v in items} | wildcards))
            rule = None
    return jobs


def check_shards_and_runtimes(jobs, device: str) -> None:
    """The shard counts and each shard's runtime (10 min + 2 x its samples x seconds per sample)
    read one per-item cost: the catalogue's, for the demo's backends on `device` (the shard policy
    once used 40 ms per OCR item on a GPU and the runtimes 0.3 s)."""
    demo = yaml.safe_load((ROOT / "config/config.yaml").read_text())["datasets"]["demo"]["features"]
    settings = {name: (f["extractor"], f.get("backend", "")) for name, f in demo.items()}
    counts = shard_counts(settings, device, 0)  # the SLURM profile: gpus 0, no local slots
    shards = [res for rule, res in jobs if rule == "extract_shard"]
    assert {res["_feature"] for res in shards} == set(demo)
    for res in shards:
        extractor, backend = settings[res["_feature"]]
        n = int(res["_shard"].split("-of-")[1])
        seconds = entry(extractor).seconds(device, backend)
        assert n == counts[res["_feature"]], res
        assert int(res["runtime"]) == 10 + math.ceil(2 * seconds * PLANNED_SAMPLES / n / 60), (res, seconds)


def test_default_profile_does_not_override_the_slurm_profile():
    default = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    slurm = yaml.safe_load(SLURM.read_text())
    # A workflow profile's resources replace the user profile's whole mapping: none here.
    assert not {"default-resources", "set-resources", "resources", "config"} & default.keys()
    clashes = {k: (v, slurm[k]) for k, v in default.items() if k in slurm and slurm[k] != v}
    assert not clashes


def plan(tmp_path, profile, train=None):
    """The demo's planned jobs under `profile` (`train`: options over the demo's `train:`)."""
    config = tmp_path / "tiny.yaml"
    demo = {"compose": {"n": 12, "seed": 3}} | ({"experiments": {"train": train}} if train else {})
    config.write_text(yaml.safe_dump({"datasets": {"demo": demo}}))
    run = snakemake(tmp_path / "work", "-n", "-F", "--profile", str(profile), "results/demo_table.csv",
                    configfile=config, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return plan_resources(run.stdout)


def test_slurm_plan_as_shipped_has_partition_account_runtime_and_gpus_for_gpu_rules(tmp_path):
    jobs = plan(tmp_path, ROOT / "profiles/slurm")
    # the whole demo is planned: every kind of job, one training job per grid cell
    rules = [rule for rule, _ in jobs]
    assert {"compose_demo", "manifest", "fetch_weights", "extract_shard", "merge_shards", "train",
            "table"} <= set(rules)
    experiments = yaml.safe_load((ROOT / "config/config.yaml").read_text())["datasets"]["demo"]["experiments"]
    assert rules.count("train") == sum(  # pools, plus the two concat baselines of multi-feature ones
        len(c.get("pools") or experiments["pools"]) + 2 * (len(c["features"]) > 1 and c.get("baseline", True))
        for c in experiments["combinations"].values())
    for rule, res in jobs:
        assert res.get("slurm_partition") == "gpu" and res.get("slurm_account") == "my_account", (rule, res)
        assert res.get("runtime", "").isdigit(), (rule, res)
        assert (res.get("gpu") == "1") == (rule in ("extract_shard", "train", "predict")), (rule, res)
    runtimes = {rule: int(res["runtime"]) for rule, res in jobs}
    seeds = len(experiments["seeds"])  # a training job trains its cell's seeds: 10 min + 5 per run on a GPU
    assert runtimes["table"] == 60 and runtimes["train"] == 10 + 5 * seeds
    # shards: the extractor's peak (extract/catalog.py peak_mb), not the old flat 32,000 MB
    shard_mem = {int(res["mem_mb"]) for rule, res in jobs if rule == "extract_shard"}
    assert shard_mem and shard_mem <= {3000, 4000}
    check_shards_and_runtimes(jobs, "cuda")


def test_cpu_switch_requests_no_gpu(tmp_path):
    """`device: cpu`, the profile's one switch for clusters without GPUs: no job asks for one.
    Without a pinned lr (`lr: auto`), a training job's runtime counts every candidate's training."""
    profile = tmp_path / "slurm"
    profile.mkdir()
    text = SLURM.read_text()
    assert text.count("\n  device: cuda\n") == 1
    (profile / "config.yaml").write_text(text.replace("\n  device: cuda\n", "\n  device: cpu\n"))
    jobs = plan(tmp_path, profile, train={"lr": "auto", "lr_candidates": "1e-3,1e-2,3e-2"})
    assert jobs and all(res.get("gpu", "0") == "0" for _, res in jobs)
    assert all(res.get("slurm_partition") == "gpu" for _, res in jobs)
    runtimes = {rule: int(res["runtime"]) for rule, res in jobs}
    seeds = len(yaml.safe_load((ROOT / "config/config.yaml").read_text())["datasets"]["demo"]["experiments"]["seeds"])
    assert runtimes["train"] == 10 + 30 * seeds * 3  # CPU: 30 min per run and lr candidate
    check_shards_and_runtimes(jobs, "cpu")
