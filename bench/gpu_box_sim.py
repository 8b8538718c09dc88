"""The whole MM-IMDb DAG on a simulated GPU box: the real job list, the real scheduler, sleep jobs.

    python bench/gpu_box_sim.py --gpus 1 2 8 --out bench/results/gpu_box_sim.json

For each GPU count G:
  1. plan: `snakemake -n -p results/imdb_table.csv` of the project's Snakefile with the imdb
     config (a fake MM-IMDb root in the real layout: split.json + dataset/), no --config device,
     CUDA_VISIBLE_DEVICES=0..G-1: device auto, shards auto, gpu_slots limit and rule priorities
     exactly as a user's run on a G-GPU box gets them;
  2. run: every planned job becomes a rule of a generated Snakefile with the same inputs,
     outputs, priority, threads and gpu_slots, whose command is the job's own gpuslots prefix
     (`python -m gpuslots run --kind ... --`) around a sleep of the job's simulated duration;
     the real Snakemake scheduler runs it (`--cores (G + 1) x 8 + 2`, the plan's gpu_slots and
     gpu_shared limits),
     with the lock folder in a temp dir (GPUSLOTS_DIR);
  3. measure, from each sleep's own start and end stamps and its part of its GPU
     (DMMS_GPU_SLOT): busy_fraction = sum(part x duration) / (G x makespan), makespan = first job
     start to last job end; and the most load any GPU ever carried (never above 1).

Durations (seconds on one H200, then x scale): extraction shard = per-item cost of its extractor
(extract/catalog.py `gpu_seconds`, from BENCHMARKS.md) x 25,959 / shards + EXTRACT_START_S; training job
= its runs (seeds) x epochs (40, config) x TRAIN_EPOCH_S + TRAIN_OUTSIDE_S, the same whether it
shares its GPU (what gpu_share train: 8 assumes: a run alone leaves most of the device idle); CPU
jobs CPU_JOB_S.
All durations x scale = max(--min-scale, --target-s x G / GPU work): each run's ideal makespan is
about --target-s, and no training run sleeps under 4.4 s (scale 0.1; 44 s on the H200), so the
wrapper's start, its 0.5 s polls and Snakemake's own latency on this small shared host do not
stand for GPU idleness of the real box.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import command, machine, write_result  # noqa: E402
from extract.catalog import entry  # noqa: E402

SAMPLES = 25959
TRAIN_EPOCH_S = 0.9  # one H200, MM-IMDb scale: 0.74-1.09 s per epoch (BENCHMARKS.md, previous version)
TRAIN_OUTSIDE_S = 3.8  # per training job outside the epochs (BENCHMARKS.md, measured on the CPU)
EXTRACT_START_S = 10.0  # per shard: loading a network onto the GPU (an estimate, not measured)
CPU_JOB_S = 2.0  # manifest, weights check, merge (395 MB in 1.1 s, BENCHMARKS.md), table


def fake_mmimdb(root: Path, n: int = 12) -> None:
    """split.json and dataset/<id>.json in MM-IMDb's layout: enough for the DAG to be planned."""
    (root / "dataset").mkdir(parents=True)
    ids = [f"{k + 1:07d}" for k in range(n)]
    for k, sid in enumerate(ids):
        meta = {"title": f"Movie {k}", "plot": [f"Story {k}."], "genres": ["Drama"]}
        (root / "dataset" / f"{sid}.json").write_text(json.dumps(meta))
    (root / "split.json").write_text(json.dumps({"train": ids[:8], "dev": ids[8:10], "test": ids[10:]}))


def parse_plan(text: str) -> list[dict]:
    """Jobs of a `snakemake -n -p` printout: rule, input, output, priority, threads, gpu_slots, shell."""
    jobs, job = [], None
    for line in text.splitlines():
        if re.match(r"^(local)?rule \w+:$", line):
            job = {"rule": line.split()[1].rstrip(":"), "input": [], "output": [], "priority": 0,
                   "threads": 1, "gpu_slots": 0, "gpu_shared": 0, "shell": ""}
            jobs.append(job)
        elif job is None:
            continue
        elif line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            if key in ("input", "output"):
                job[key] = [v.strip() for v in value.split(",")]
            elif key in ("priority", "threads", "jobid"):
                job[key] = int(value)
            elif key == "resources":
                for name in ("gpu_slots", "gpu_shared"):
                    found = re.search(rf"{name}=(\d+)", value)
                    job[name] = int(found.group(1)) if found else 0
        elif line.startswith("Shell command: "):
            job["shell"] = line.removeprefix("Shell command: ")
            job = None
    return jobs


def duration(job: dict, extractors: dict[str, str], epochs: int) -> float:
    """Seconds of the job on one H200 (before scaling)."""
    if job["rule"] == "extract_shard":
        feature, shard = job["output"][0].split("/")[-2:]
        shards = int(shard.removesuffix(".h5").split("-of-")[1])
        return entry(extractors[feature]).gpu_seconds * SAMPLES / shards + EXTRACT_START_S
    if job["rule"] == "train":  # one job trains its cell's runs (seeds), one `--run` each
        return job["shell"].count(" --run ") * epochs * TRAIN_EPOCH_S + TRAIN_OUTSIDE_S
    return CPU_JOB_S


def gpu_prefix(shell: str) -> str:
    """The `python -m gpuslots run ... -- ` part of a job's command ("" for CPU jobs)."""
    if not shell.startswith("python -m gpuslots run "):
        return ""
    return shell[: shell.index(" -- ") + 4]


JOB_SH = """#!/bin/sh
# job.sh ID SECONDS OUTPUT...: stamp start, sleep, stamp end, create the outputs
id=$1; secs=$2; shift 2
echo "$(date +%s.%N) ${CUDA_VISIBLE_DEVICES:--} ${DMMS_GPU_SLOT:--}" > stamps/$id.start
sleep "$secs"
date +%s.%N > stamps/$id.end
for f in "$@"; do mkdir -p "$(dirname "$f")"; : > "$f"; done
"""


def sim_snakefile(jobs: list[dict], seconds: dict[int, float]) -> str:
    produced = {o for j in jobs for o in j["output"]}
    final = [o for o in produced if not any(o in j["input"] for j in jobs)]
    lines = ["rule all:", f"    input: {final!r}", ""]
    for k, job in enumerate(jobs):
        outs = " ".join(shlex.quote(o) for o in job["output"])
        cmd = f"{gpu_prefix(job['shell'])}sh job.sh {k} {seconds[k]:.3f} {outs}"
        lines += [f"rule j{k}_{job['rule']}:", f"    input: {job['input']!r}", f"    output: {job['output']!r}",
                  f"    priority: {job['priority']}", f"    threads: {job['threads']}",
                  f"    resources: gpu_slots={job['gpu_slots']}, gpu_shared={job['gpu_shared']}", f"    shell: {cmd!r}", ""]
    return "\n".join(lines)


def env_for(gpus: int, locks: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES=",".join(map(str, range(gpus))),
                GPUSLOTS_DIR=str(locks), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def measure(work: Path, jobs: list[dict], gpus: int) -> dict:
    spans = []  # (start, end, gpu or None, part)
    for k, job in enumerate(jobs):
        start, gpu, slot = (work / "stamps" / f"{k}.start").read_text().split()
        end = float((work / "stamps" / f"{k}.end").read_text())
        part = Fraction(slot.split(":")[1]) if slot != "-" else Fraction(0)
        spans.append((float(start), end, gpu if slot != "-" else None, part, job["rule"]))
    t0, t1 = min(s[0] for s in spans), max(s[1] for s in spans)
    used = sum(float(p) * (e - s) for s, e, g, p, _ in spans if g is not None)
    events = sorted([(s, float(p), g) for s, e, g, p, _ in spans if g] + [(e, -float(p), g) for s, e, g, p, _ in spans if g],
                    key=lambda x: (x[0], x[1]))
    load, peak = {}, 0.0
    for _, delta, g in events:
        load[g] = load.get(g, 0.0) + delta
        peak = max(peak, load[g])
    by_rule = {}
    for s, e, g, p, rule in spans:
        r = by_rule.setdefault(rule, {"jobs": 0, "first_start_s": s - t0, "last_end_s": 0.0})
        r["jobs"] += 1
        r["first_start_s"] = round(min(r["first_start_s"], s - t0), 2)
        r["last_end_s"] = round(max(r["last_end_s"], e - t0), 2)
    per_gpu = {g: round(sum(float(p) * (e - s) for s, e, gg, p, _ in spans if gg == g) / (t1 - t0), 3)
               for g in sorted({s[2] for s in spans if s[2]})}
    extract = [s for s in spans if s[4] == "extract_shard"]
    trains_done_before_last_extract = sum(1 for s in spans if s[4] == "train" and s[1] <= max(x[0] for x in extract))
    return {"gpus": gpus, "busy_fraction": round(used / (gpus * (t1 - t0)), 3), "makespan_s": round(t1 - t0, 1),
            "gpu_seconds_used": round(used, 1), "peak_load_of_a_gpu": round(peak, 3), "busy_per_gpu": per_gpu,
            "gpus_used": len(per_gpu), "rules": by_rule,
            "train_runs_finished_before_the_last_extraction_shard_started": trains_done_before_last_extract}


def simulate(gpus: int, target_s: float, min_scale: float, base: Path) -> dict:
    root, work, locks = base / "mmimdb", base / f"sim{gpus}", base / f"locks{gpus}"
    if not root.exists():
        fake_mmimdb(root)
    override = base / "imdb.yaml"
    override.write_text(yaml.safe_dump({"datasets": {"imdb": {"root": str(root)}}}))
    env = env_for(gpus, locks)
    plan = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                           str(base / f"plan{gpus}"), "-n", "-p", "results/imdb_table.csv", "--configfile",
                           str(override)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if plan.returncode != 0:
        raise SystemExit(plan.stdout[-3000:] + plan.stderr[-3000:])
    jobs = parse_plan(plan.stdout)
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())["datasets"]["imdb"]
    extractors = {name: f["extractor"] for name, f in config["features"].items()}
    epochs = int(config["experiments"]["train"]["epochs"])
    real = {k: duration(j, extractors, epochs) for k, j in enumerate(jobs)}
    gpu_work = sum(real[k] * (j["gpu_slots"] / 8 if j["gpu_slots"] else 0) for k, j in enumerate(jobs))
    scale = max(min_scale, target_s * gpus / gpu_work)
    seconds = {k: d * scale for k, d in real.items()}
    work.mkdir(parents=True)
    (work / "stamps").mkdir()
    (work / "job.sh").write_text(JOB_SH)
    (work / "Snakefile").write_text(sim_snakefile(jobs, seconds))
    produced = {o for j in jobs for o in j["output"]}
    for path in {i for j in jobs for i in j["input"]} - produced:  # what exists before the run
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).touch()
    slots = [j["gpu_slots"] for j in jobs if j["gpu_slots"]]
    units = max(slots)  # a whole device: what an extraction shard asks for
    limit, shared = (gpus + 1) * units, gpus * units  # gpuslots.SlotResources limit and total, as rules/resources.smk registers them
    cores = (gpus + 1) * units + 2
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "snakemake", "all", "--cores", str(cores), "--resources",
                          f"gpu_slots={limit}", f"gpu_shared={shared}", "--quiet"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - started
    if run.returncode != 0:
        raise SystemExit(run.stdout[-3000:] + run.stderr[-3000:])
    result = measure(work, jobs, gpus)
    shards = {}
    for j in jobs:
        if j["rule"] == "extract_shard":
            feature, shard = j["output"][0].split("/")[-2:]
            shards[feature] = int(shard.removesuffix(".h5").split("-of-")[1])
    result.update({"jobs": len(jobs), "shards": shards, "scale": round(scale, 5), "cores": cores,
                   "gpu_slots_limit": limit, "gpu_shared_limit": shared, "snakemake_wall_s": round(wall, 1),
                   "h200_makespan_h": round(result["makespan_s"] / scale / 3600, 2),
                   "h200_ideal_makespan_h": round(gpu_work / gpus / 3600, 2)})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--target-s", type=float, default=200.0, help="ideal makespan of each run, seconds")
    parser.add_argument("--min-scale", type=float, default=0.1, help="fewest simulated seconds per H200 second")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="gpu_box_sim.") as tmp:
        for gpus in args.gpus:
            runs.append(simulate(gpus, args.target_s, args.min_scale, Path(tmp)))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    write_result({
        "benchmark": "gpu_box_sim", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command(),
        "machine": machine(note="no GPU: fake devices (CUDA_VISIBLE_DEVICES), sleep jobs; a small shared host"),
        "assumptions": {"samples": SAMPLES, "extract_ms_per_item": {k: cost_ms(k) for k in
                        ("image", "text", "faces", "objects", "boxes", "ocr", "index")},
                        "extract_start_s": EXTRACT_START_S, "train_epoch_s": TRAIN_EPOCH_S,
                        "train_outside_s": TRAIN_OUTSIDE_S, "cpu_job_s": CPU_JOB_S,
                        "train_shares_a_gpu_8_ways_at_full_speed": True},
        "target": "busy_fraction >= 0.9 on 1, 2 and 8 GPUs",
        "runs": runs,
    }, args.out)


if __name__ == "__main__":
    main()
