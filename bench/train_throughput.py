"""Training throughput at MM-IMDb scale on synthetic stores (seconds per epoch per pool).

    python bench/train_throughput.py --device cuda --n 25959 --epochs 3 --out bench.json

Stores mimic the paper's IMDb features: WSL(i) 2048-d x 1 row, WSL(bbox) 2048-d x 0-10 rows,
Face(i) 256-d x 0-10 rows, RoBERTa(t) 768-d x 0-1 row, IE(obj) 0-10 indices of 80 classes; 23
genres; split 60/10/30. D = 1024, head [256, 128] as in the paper. Features are random, so only
the timings mean anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extract.store import RaggedStore, base_attrs, write_store  # noqa: E402
from model.data import FeatureSpec  # noqa: E402
from model.options import parse_options  # noqa: E402
from model.train import train  # noqa: E402

FEATURES = {  # name: (dim or -vocab, min rows, max rows)
    "image": (2048, 1, 1), "boxes": (2048, 0, 10), "faces": (256, 0, 10), "text": (768, 0, 1),
    "objects": (-80, 0, 10),
}


def make_data(root: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    ids = [f"{k:07d}" for k in range(n)]
    genres = [f"g{k}" for k in range(23)]
    freq = np.linspace(0.4, 0.01, 23)
    labels = ["|".join(g for g, p in zip(genres, freq) if rng.random() < p) or "g0" for _ in ids]
    split = rng.choice(["train", "dev", "test"], size=n, p=[0.6, 0.1, 0.3])
    manifest = root / "manifest.csv"
    pd.DataFrame({"id": ids, "split": split, "image": "", "text": "", "labels": labels}).to_csv(manifest, index=False)
    for name, (dim, lo, hi) in FEATURES.items():
        counts = rng.integers(lo, hi + 1, size=n)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if dim < 0:
            rows = {"labels": rng.integers(0, -dim, size=offsets[-1]).astype(np.int64)}
            attrs = base_attrs(name, "synthetic", -dim, {})
            attrs["vocab_size"] = -dim
        else:
            rows = {"features": rng.standard_normal((offsets[-1], dim), dtype=np.float32).astype(np.float16)}
            attrs = base_attrs(name, "synthetic", dim, {})
        write_store(root / f"{name}.h5", RaggedStore(ids, offsets, rows, attrs=attrs))
    return manifest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--n", type=int, default=25959)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--pools", default="max,sum,attention,concat")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = {"device": args.device, "n": args.n}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        manifest = make_data(root, args.n)
        results["make_data_s"] = round(time.perf_counter() - started, 1)
        specs = [FeatureSpec.parse(f"{name}={root / name}.h5") for name in FEATURES]
        options = parse_options([f"epochs={args.epochs}", "dim=1024", "hidden=256,128", "batch_size=128",
                                 "warmup_epochs=1", "class_weights=inv_sqrt"])
        for pool in args.pools.split(","):
            started = time.perf_counter()
            metrics = train(manifest, specs, pool, 0, root / f"run_{pool}", args.device, options, log=None)
            results[pool] = {"seconds_per_epoch": round(metrics["seconds_per_epoch"], 3),
                             "wall_s": round(time.perf_counter() - started, 1)}
            print(pool, results[pool], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
