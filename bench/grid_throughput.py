"""Training-grid wall time with GPU device slots: one job at a time vs jobs sharing each GPU.

    python bench/grid_throughput.py --device cuda --out bench/results/grid_h200.json
    python bench/grid_throughput.py --device cpu --quick       # tiny sizes: proves the path runs

Two grids, each run twice through the command lines the workflow runs, one run per process
(the workflow now trains a cell's seeds in one job, one after another; this measures how many
training processes share a GPU), `python -m gpuslots run --kind train ... -- python -m model train ...`:
  serial  one job at a time on one GPU (what the old `resources: gpu=1` profile allowed);
  shared  gpus x share jobs at once, `share` per GPU (gpu_share train, default 8), as
          `snakemake --cores N --config device=cuda` now runs them.
Grids:
  demo    the demo's grid from config/config.yaml (its combinations, pools, concat baselines,
          seeds and training options) on the demo's stores (`--demo results/demo`, after
          `make demo`), else on 480-sample synthetic stores (ocr_text then uses the text store);
  imdb    24 runs at MM-IMDb scale (25,959 samples, D = 1024, the imdb training options):
          5 single features with max pooling and all 5 with max, sum and concat_mean, x 3 seeds, on
          bench/train_throughput.py's synthetic stores.
Each mode's runs must all succeed; test F1 micro of the same run in both modes is compared
(sharing a device must not change results beyond GPU non-determinism).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import command, machine, write_result  # noqa: E402
from bench.train_throughput import FEATURES, make_data  # noqa: E402
from pipeline.plan import combination_pools  # noqa: E402

IMDB_SAMPLES = 25959
IMDB_CELLS = [([name], "max") for name in FEATURES] + [(list(FEATURES), p) for p in ("max", "sum", "concat_mean")]


def demo_cells(experiments: dict) -> list[tuple[list[str], str]]:
    """(features, pool) of every cell of a dataset's grid, as the workflow plans it."""
    return [(combo["features"], pool) for name, combo in experiments["combinations"].items()
            for pool in combination_pools(experiments, name)]


def demo_stores(demo: Path | None, work: Path, names: list[str]) -> tuple[Path, dict[str, Path]]:
    """(manifest, {feature: store}) of the demo: the real ones under `demo`, else synthetic."""
    if demo is not None:
        stores = {}
        for name in names:
            found = [p for p in (demo / "features" / f"{name}.h5", demo / f"{name}.h5") if p.exists()]
            if not found:
                raise SystemExit(f"--demo {demo}: no {name}.h5 in features/ or beside manifest.csv; "
                                 "run `make demo` first or leave --demo out for synthetic stores")
            stores[name] = found[0]
        return demo / "manifest.csv", stores
    manifest = make_data(work / "demo_data", 480)
    synthetic = {"ocr_text": "text"}  # the synthetic set has no OCR text; text is its nearest kind
    return manifest, {name: work / "demo_data" / f"{synthetic.get(name, name)}.h5" for name in names}


def commands(cells, seeds, manifest: Path, stores: dict[str, Path], options: dict, device: str,
             out: Path) -> list[tuple[str, list[str]]]:
    """(run folder, `python -m model train` argv) for every cell x seed."""
    runs = []
    for features, pool in cells:
        for seed in seeds:
            run_dir = out / f"{'+'.join(features)}_{pool}_seed{seed}"
            argv = [sys.executable, "-m", "model", "train", "--manifest", str(manifest), "--pool", pool,
                    "--seed", str(seed), "--out", str(run_dir), "--device", device, "--threads", "1"]
            for name in features:
                argv += ["--feature", f"{name}={stores[name]}"]
            for key, value in options.items():
                argv += ["--set", f"{key}={value}"]
            runs.append((str(run_dir), argv))
    return runs


def run_grid(runs, gpus: int, share: int, lock_dir: Path, device: str) -> dict:
    """Every run under the slot wrapper, gpus x share at a time; wall time and failures. On the
    CPU the wrapper hands out `gpus` fake device ids (the runs use --device cpu)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(k) for k in range(gpus))

    def one(run):
        run_dir, argv = run
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        wrapped = [sys.executable, "-m", "gpuslots", "run", "--kind", "train", "--gpus", str(gpus),
                   "--share", str(share), "--dir", str(lock_dir), "--", *argv]
        started = time.perf_counter()
        with open(Path(run_dir) / "job.log", "w") as log:
            code = subprocess.run(wrapped, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
        return code, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=gpus * share) as pool:
        results = list(pool.map(one, runs))
    failed = [{"run": run_dir, "exit": code,  # the log's end: a temporary --work folder is gone later
               "log_tail": (Path(run_dir) / "job.log").read_text(errors="replace").splitlines()[-5:]}
              for (run_dir, _), (code, _) in zip(runs, results) if code != 0]
    return {"jobs_at_once": gpus * share, "runs": len(runs), "failed": failed,
            "wall_s": round(time.perf_counter() - started, 2),
            "mean_run_s": round(sum(s for _, s in results) / len(results), 2)}


def f1(run_dir: str) -> float | None:
    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text())["f1_micro"] if path.exists() else None


def compare(name: str, runs_by_mode: dict, gpus: int, share: int, work: Path, device: str) -> dict:
    """Run one grid serially and shared; timings, speed-up and the F1 agreement between modes."""
    result = {}
    for mode, (g, s) in {"serial": (1, 1), "shared": (gpus, share)}.items():
        result[mode] = run_grid(runs_by_mode[mode], g, s, work / f"locks_{name}_{mode}", device)
        print(name, mode, result[mode], flush=True)
    pairs = [(f1(a), f1(b)) for (a, _), (b, _) in zip(runs_by_mode["serial"], runs_by_mode["shared"])]
    diffs = [abs(a - b) for a, b in pairs if a is not None and b is not None]
    result["speedup"] = round(result["serial"]["wall_s"] / result["shared"]["wall_s"], 2)
    result["f1_micro_max_abs_diff"] = round(max(diffs), 6) if diffs else None
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (the measurement) or cpu (a check that it runs)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs shared in the shared mode (default 1)")
    p.add_argument("--share", type=int, default=8, help="training jobs per GPU in the shared mode (default 8)")
    p.add_argument("--grids", default="demo,imdb", help="comma list of demo, imdb")
    p.add_argument("--demo", type=Path, help="the demo's results folder (manifest.csv, features/*.h5)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell, the first K of 0, 1, 2 (default 3)")
    p.add_argument("--imdb-epochs", type=int, default=3, help="epochs of the imdb grid's runs (default 3)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes: one seed, 2 epochs, 400 imdb-like samples with D = 64")
    p.add_argument("--work", type=Path, help="folder for stores and runs (default: a temporary one)")
    p.add_argument("--out", type=Path, help="JSON results (default bench/results/grid_DEVICE[_quick].json)")
    args = p.parse_args()
    out = args.out or ROOT / "bench/results" / f"grid_{args.device}{'_quick' if args.quick else ''}.json"
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())["datasets"]
    results = {"command": command(), "machine": machine(), "device": args.device, "gpus": args.gpus,
               "share": args.share, "quick": args.quick,
               "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "grids": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for grid in args.grids.split(","):
            if grid == "demo":
                exp = config["demo"]["experiments"]
                cells = demo_cells(exp)
                seeds = exp["seeds"][:1 if args.quick else args.seeds]
                options = dict(exp["train"], **({"epochs": 2} if args.quick else {}))
                names = sorted({n for features, _ in cells for n in features})
                manifest, stores = demo_stores(args.demo, work, names)
                source = str(args.demo) if args.demo else "synthetic, 480 samples"
            elif grid == "imdb":
                cells, seeds = IMDB_CELLS, [0, 1, 2][:1 if args.quick else args.seeds]
                options = dict(config["imdb"]["experiments"]["train"], epochs=args.imdb_epochs)
                n = 400 if args.quick else IMDB_SAMPLES
                if args.quick:
                    options.update(epochs=2, dim=64, hidden="32")
                manifest = make_data(work / "imdb_data", n)
                stores = {name: work / "imdb_data" / f"{name}.h5" for name in FEATURES}
                source = f"synthetic, {n} samples"
            else:
                raise SystemExit(f"--grids: unknown grid {grid!r}; choose from demo, imdb")
            runs = {mode: commands(cells, seeds, manifest, stores, options, args.device, work / grid / mode)
                    for mode in ("serial", "shared")}
            results["grids"][grid] = {"stores": source, "cells": len(cells), "seeds": len(seeds),
                                      "options": options,
                                      **compare(grid, runs, args.gpus, args.share, work, args.device)}
    write_result(results, out)
    failed = [run for g in results["grids"].values() for m in ("serial", "shared") for run in g[m]["failed"]]
    if failed:
        print(f"{len(failed)} run(s) failed: their log tails are in {out} (--work keeps whole logs)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
