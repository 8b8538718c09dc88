"""Checks of tests/slurm/run.sh after its Slurm run; exits 1 naming every failed check.

    python tests/slurm/check.py --local DIR --slurm DIR --log SNAKEMAKE_LOG --cancelled JOBID
        --partition P --account A --out SUMMARY.json

- every job of the run (sacct, comment `rule_*`) had partition P, account A and one CPU (the
  threads of every rule of the small target);
- the cancelled job is CANCELLED in sacct, the run's log reports it failed, and a later job of
  the same rule and wildcards COMPLETED (the retry);
- jobs can be told apart as README says: every job's comment is `rule_RULE_wildcards_VALUES`, one
  comment per job but the retry, and the run's log names each Slurm job id with its log under
  .snakemake/slurm_logs/rule_RULE/;
- every file under results/ is identical to the local run's: HDF5 files dataset by dataset and
  attribute by attribute (but their timings), model.pt tensor by tensor, metrics.json and history.csv except their
  timings (TIMINGS), every other file byte for byte.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

# Wall times and clock readings the stores and runs record: they differ from run to run.
TIMINGS = {"seconds", "seconds_per_epoch", "seconds_per_sample", "created"}
FIELDS = ["JobID", "Partition", "Account", "AllocCPUS", "State", "Comment", "Elapsed", "ReqMem"]


def sacct_jobs() -> list[dict[str, str]]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-a", "--starttime", "now-1days",
                          "-o", ",".join(FIELDS)], capture_output=True, text=True, check=True).stdout
    rows = [dict(zip(FIELDS, line.split("|"))) for line in out.splitlines() if line]
    return [r for r in rows if r["Comment"].startswith("rule_")]


def settled_jobs(timeout: float = 60) -> list[dict[str, str]]:
    """sacct's rows once every job has a final state (slurmdbd records them with a delay)."""
    deadline = time.time() + timeout
    while True:
        jobs = sacct_jobs()
        if jobs and all(j["State"] in ("COMPLETED", "FAILED") or j["State"].startswith("CANCELLED")
                        for j in jobs) or time.time() > deadline:
            return jobs
        time.sleep(2)


def peak_rss_mb(job_ids: list[str]) -> dict[str, float]:
    """Largest MaxRSS of each job's steps (the step that ran the rule)."""
    out = subprocess.run(["sacct", "-n", "-P", "-j", ",".join(job_ids), "-o", "JobID,MaxRSS"],
                         capture_output=True, text=True, check=True).stdout
    peaks: dict[str, float] = {}
    units = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}
    for line in out.splitlines():
        job, _, rss = line.partition("|")
        if rss:
            mb = float(rss[:-1]) * units[rss[-1]] if rss[-1] in units else float(rss) / 2**20
            base = job.split(".")[0]
            peaks[base] = max(peaks.get(base, 0.0), mb)
    return peaks


def same_h5(a: Path, b: Path) -> list[str]:
    problems = []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        if names_a != names_b:
            return [f"{a.name}: objects differ ({names_a} vs {names_b})"]
        for name in [""] + names_a:
            oa, ob = (fa[name], fb[name]) if name else (fa, fb)
            if sorted(oa.attrs) != sorted(ob.attrs) or any(
                    not np.array_equal(np.asarray(oa.attrs[k]), np.asarray(ob.attrs[k]))
                    for k in oa.attrs if k not in TIMINGS):
                problems.append(f"{a}: attributes of /{name} differ")
            if isinstance(oa, h5py.Dataset) and not np.array_equal(oa[()], ob[()]):
                problems.append(f"{a}: dataset /{name} differs")
    return problems


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    return value


def same_objects(a, b) -> bool:
    """Equal nested checkpoints: tensors element for element, everything else by ==."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_objects(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_objects(x, y) for x, y in zip(a, b))
    return a == b


def compare_results(local: Path, slurm: Path) -> tuple[int, list[str]]:
    files_a = sorted(p.relative_to(local) for p in (local / "results").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(slurm) for p in (slurm / "results").rglob("*") if p.is_file())
    if files_a != files_b:
        return 0, [f"result files differ: only local {sorted(set(files_a) - set(files_b))}, "
                   f"only slurm {sorted(set(files_b) - set(files_a))}"]
    problems = []
    for rel in files_a:
        a, b = local / rel, slurm / rel
        if rel.suffix == ".h5":
            problems += same_h5(a, b)
        elif rel.suffix == ".pt":
            if not same_objects(torch.load(a, map_location="cpu", weights_only=True),
                                torch.load(b, map_location="cpu", weights_only=True)):
                problems.append(f"{rel} differs")
        elif rel.suffix == ".json":
            if without_timings(json.loads(a.read_text())) != without_timings(json.loads(b.read_text())):
                problems.append(f"{rel} differs")
        elif rel.name == "history.csv":
            ta, tb = (pd.read_csv(p).drop(columns=list(TIMINGS), errors="ignore") for p in (a, b))
            if not ta.equals(tb):
                problems.append(f"{rel} differs")
        elif a.read_bytes() != b.read_bytes():
            problems.append(f"{rel} differs")
    return len(files_a), problems


def job_names(jobs: list[dict[str, str]], log: str, retries: int) -> list[str]:
    """README's way to tell jobs apart (sacct's JobName is the run's id for all): the comment
    `rule_RULE_wildcards_VALUES`, distinct per job but retries, and the submission line of the
    run's log naming each job id with its Slurm log under .snakemake/slurm_logs/rule_RULE/."""
    problems = []
    for j in jobs:
        if not re.fullmatch(r"rule_[a-z_]+_wildcards_tiny(_[\w.-]+)*", j["Comment"]):
            problems.append(f"job {j['JobID']}: comment {j['Comment']!r} does not name its rule and wildcards")
        rule = j["Comment"].split("_wildcards_")[0]
        if not re.search(rf"submitted with SLURM jobid {j['JobID']} \(log: \S*slurm_logs/{rule}/", log):
            problems.append(f"job {j['JobID']}: the run's log does not name it with its rule's Slurm log")
    if len({j["Comment"] for j in jobs}) != len(jobs) - retries:
        problems.append(f"{len(jobs)} jobs ({retries} retried) share comments: {sorted(j['Comment'] for j in jobs)}")
    return problems


def main() -> int:
    p = argparse.ArgumentParser()
    for name in ("local", "slurm", "log", "out"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.add_argument("--cancelled", required=True)
    p.add_argument("--partition", required=True)
    p.add_argument("--account", required=True)
    args = p.parse_args()
    problems = []
    jobs = settled_jobs()
    if not jobs:
        problems.append("sacct lists no job of the run")
    for j in jobs:
        if (j["Partition"], j["Account"], j["AllocCPUS"]) != (args.partition, args.account, "1"):
            problems.append(f"job {j['JobID']} ({j['Comment']}): partition {j['Partition']}, account "
                            f"{j['Account']}, {j['AllocCPUS']} CPUs; wanted {args.partition}, {args.account}, 1")
    cancelled = [j for j in jobs if j["JobID"] == args.cancelled]
    retried = []
    if not cancelled or not cancelled[0]["State"].startswith("CANCELLED"):
        problems.append(f"job {args.cancelled} is not CANCELLED in sacct: {cancelled}")
    else:
        retried = [j for j in jobs if j["Comment"] == cancelled[0]["Comment"]
                   and int(j["JobID"]) > int(args.cancelled) and j["State"] == "COMPLETED"]
        if not retried:
            problems.append(f"no completed retry of {cancelled[0]['Comment']} after job {args.cancelled}")
    log = args.log.read_text(errors="replace")
    if f"SLURM-job '{args.cancelled}' failed" not in log:
        problems.append(f"the run's log does not report job {args.cancelled} as failed")
    problems += job_names(jobs, log, len(retried))
    n_files, differ = compare_results(args.local, args.slurm)
    problems += differ
    peaks = peak_rss_mb([j["JobID"] for j in jobs]) if jobs else {}
    summary = {
        "jobs": len(jobs),
        "cancelled": args.cancelled,
        "retry": retried[0]["JobID"] if retried else None,
        "identical_result_files": n_files if not differ else 0,
        "per_job": [dict(j, MaxRSS_MB=round(peaks.get(j["JobID"], 0.0), 1)) for j in jobs],
    }
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"slurm check: {len(jobs)} jobs, all partition {args.partition} / account {args.account} / 1 CPU: "
          f"{'no' if any('partition' in p for p in problems) else 'yes'}; cancelled {args.cancelled}, "
          f"retried as {summary['retry']}; {n_files} result files, {len(differ)} differ; jobs told apart by "
          f"comment: {'no' if any('comment' in p or 'share comments' in p for p in problems) else 'yes'}")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
