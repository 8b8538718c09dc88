"""Time of the comparisons table for the MM-IMDb grid at MM-IMDb's test size.

    python bench/comparisons_speed.py --out bench/results/comparisons_imdb_cpu.json

The imdb grid of config/config.yaml (its combinations, pools, concat baselines and seeds, as
pipeline/plan.py plans them) gets synthetic run folders: predictions.h5 of 7,799 test samples x
23 classes per run (probabilities that agree with random targets more often for larger
combinations) and their metrics.json. Then `python -m report comparisons`' code path
(`report.comparisons.write_comparisons`, 1,000 two-level resamples) runs on them, timed
from reading the runs to writing CSV and markdown, best of `--repeats`. Target: < 60 s on 2 CPU
cores (issue 18).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.grid_throughput import demo_cells  # noqa: E402
from bench.record import write_result  # noqa: E402
from model.metrics import f1_scores  # noqa: E402
from model.runfiles import write_metrics, write_predictions  # noqa: E402

TEST_SAMPLES, CLASSES = 7799, 23


def write_grid(root: Path, experiments: dict, n: int, classes: int) -> list[Path]:
    """Synthetic run folders for every cell x seed of the grid; returns them."""
    rng = np.random.default_rng(0)
    targets = (rng.random((n, classes)) < 0.12).astype(np.uint8)  # MM-IMDb: ~2.5 genres of 23
    ids = [f"{k:07d}" for k in range(n)]
    runs = []
    for k, (features, pool) in enumerate(demo_cells(experiments)):
        skill = 0.55 + 0.05 * len(features) + 0.01 * (not pool.startswith("concat"))
        for seed in experiments["seeds"]:
            noise = rng.random((n, classes), dtype=np.float32)
            probs = np.where(targets > 0, skill, 1 - skill) * noise + (1 - noise) * 0.3
            out = root / f"c{k}" / pool / f"seed{seed}"
            out.mkdir(parents=True)
            write_predictions(out, ids, probs, targets, [f"g{c}" for c in range(classes)], "multilabel")
            scores = f1_scores(targets, (probs >= 0.5).astype(int))
            write_metrics(out, {**scores, "metric_names": list(scores), "task": "multilabel", "pool": pool,
                                "seed": seed, "features": features, "config": {"threshold": 0.5}})
            runs.append(out)
    return runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2, help="timed runs; the best counts (default 2)")
    p.add_argument("--out", type=Path, help="JSON result (e.g. bench/results/comparisons_imdb_cpu.json)")
    args = p.parse_args()
    import torch  # only to report the thread count numpy's BLAS is likely to use alongside

    from report.comparisons import write_comparisons

    experiments = yaml.safe_load((ROOT / "config/config.yaml").read_text())["datasets"]["imdb"]["experiments"]
    labels = experiments["labels"]
    with tempfile.TemporaryDirectory() as tmp:
        runs = write_grid(Path(tmp) / "runs", experiments, TEST_SAMPLES, CLASSES)
        times = []
        for repeat in range(args.repeats):
            began = time.perf_counter()
            csv, _ = write_comparisons(runs, Path(tmp) / f"imdb_comparisons_{repeat}.csv", labels, args.resamples)
            times.append(time.perf_counter() - began)
        rows = sum(1 for _ in open(csv)) - 1
    result = {
        "benchmark": "comparisons_speed", "command": " ".join(["python", *sys.argv]),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "numpy": np.__version__,
                    "torch_threads": torch.get_num_threads(), "load_1min": os.getloadavg()[0]},
        "grid": {"runs": len(runs), "rows": len({r.parent for r in runs}), "seeds": len(experiments["seeds"]),
                 "test_samples": TEST_SAMPLES, "classes": CLASSES},
        "resamples": args.resamples, "comparisons": rows, "seconds": times, "best_seconds": min(times),
        "target_seconds": 60, "meets_target": min(times) < 60,
    }
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
