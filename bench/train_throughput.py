"""Training throughput at MM-IMDb scale on synthetic stores: seconds per epoch per pool, the
model's FLOP rate and that rate over the measured GEMM rate at the model's shapes.

    python bench/train_throughput.py --device cuda --samples 25959 --epochs 3 --out bench/results/train_h200.json
    python bench/train_throughput.py --samples 1000000 --feature-device host --width-divisor 8 --epochs 1 --pools max

Stores mimic the paper's IMDb features: WSL(i) 2048-d x 1 row, WSL(bbox) 2048-d x 0-10 rows,
Face(i) 256-d x 0-10 rows, RoBERTa(t) 768-d x 0-1 row, IE(obj) 0-10 indices of 80 classes; 23
genres; split 60/10/30. D = 1024, head [256, 128] as in the paper (`--width-divisor K` divides
the feature dims and D by K, for runs that must fit a small machine). Features are random, so only
the timings mean anything.

FLOPs per epoch count the GEMMs: an encoder's Linear(M_i -> D) costs 2 E_i M_i D forward and the
same again for its weight gradient (inputs need no gradient); head layers cost forward plus two
backward GEMMs; dev evaluation is forward only. The GEMM rate times `torch.mm` at exactly those
shapes (rows of one batch) in the run's dtype. Peak RSS of training is the process's high-water
mark after it was reset once the stores were written (Linux `clear_refs`).

On a machine shared with other jobs use `--threads 1` (as the training rule runs): with more
torch threads than free cores every parallel op waits for a descheduled thread.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.record import write_result  # noqa: E402
from extract.store import RaggedStore, base_attrs, read_store, write_store  # noqa: E402
from model.options import FeatureSpec, parse_options  # noqa: E402
from model.train import train  # noqa: E402

FEATURES = {  # name: (dim or -vocab, min rows, max rows)
    "image": (2048, 1, 1), "boxes": (2048, 0, 10), "faces": (256, 0, 10), "text": (768, 0, 1),
    "objects": (-80, 0, 10),
}
CLASSES = 23
HIDDEN = (256, 128)
CHUNK = 1 << 22  # rows generated at a time


def feature_dims(divisor: int) -> dict[str, int]:
    return {name: dim if dim < 0 else max(dim // divisor, 1) for name, (dim, _, _) in FEATURES.items()}


def make_data(root: Path, n: int, divisor: int = 1, seed: int = 0) -> Path:
    """manifest.csv and one store per feature under `root` (kept when they exist for this n)."""
    manifest = root / "manifest.csv"
    done = root / f"complete_{n}_{divisor}"
    if done.exists():
        return manifest
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"{k:07d}" for k in range(n)]
    present = rng.random((n, CLASSES)) < np.linspace(0.4, 0.01, CLASSES)  # (N, C)
    present[~present.any(1), 0] = True
    names = np.array([f"g{k}" for k in range(CLASSES)], dtype=object)
    labels = ["|".join(names[row]) for row in present]
    split = rng.choice(["train", "dev", "test"], size=n, p=[0.6, 0.1, 0.3])
    pd.DataFrame({"id": ids, "split": split, "image": "", "text": "", "labels": labels}).to_csv(manifest, index=False)
    for name, dim in feature_dims(divisor).items():
        _, lo, hi = FEATURES[name]
        counts = rng.integers(lo, hi + 1, size=n)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        total = int(offsets[-1])
        if dim < 0:
            rows = {"labels": rng.integers(0, -dim, size=total).astype(np.int64)}
            attrs = base_attrs(name, "synthetic", -dim, {})
            attrs["vocab_size"] = -dim
        else:
            values = np.empty((total, dim), np.float16)
            for start in range(0, total, max(CHUNK // dim, 1)):
                part = values[start:start + max(CHUNK // dim, 1)]
                part[...] = rng.standard_normal(part.shape, dtype=np.float32)
            rows = {"features": values}
            attrs = base_attrs(name, "synthetic", dim, {})
        write_store(root / f"{name}.h5", RaggedStore(ids, offsets, rows, attrs=attrs))
        del rows
    done.touch()
    return manifest


def element_rows(root: Path, manifest: Path) -> dict[str, dict[str, int]]:
    """{split: {feature: rows}} (an index feature counts one element per sample with indices)."""
    split = pd.read_csv(manifest, dtype=str, keep_default_na=False)["split"].to_numpy()
    out: dict[str, dict[str, int]] = {s: {"samples": int((split == s).sum())} for s in ("train", "dev", "test")}
    for name, (dim, _, _) in FEATURES.items():
        counts = np.diff(read_store(root / f"{name}.h5", columns=[]).offsets)
        if dim < 0:
            counts = np.minimum(counts, 1)
        for s in out:
            out[s][name] = int(counts[split == s].sum())
    return out


def gemm_shapes(rows: dict[str, int], batches: int, dims: dict[str, int], dim: int, pool: str,
                train: bool) -> list[tuple[int, int, int, int]]:
    """(m, k, n, repeats) of the GEMMs of one epoch's batches over a split (one batch's shape,
    repeated `batches` times): encoder forward (+ weight gradient), head forward (+ 2 backward)."""
    per = max(batches, 1)
    shapes = []
    for name, m in dims.items():
        if m < 0 or rows[name] == 0:
            continue
        e = max(rows[name] // per, 1)
        shapes.append((e, m, dim, per))
        if train:
            shapes.append((m, e, dim, per))  # weight gradient: (M, E) @ (E, D)
    b = max(rows["samples"] // per, 1)
    if pool == "concat_padded":  # its width depends on the slots the training split gives
        raise ValueError("the GEMM model has no concat_padded; time it with --pools concat_mean instead")
    apart = pool == "concat_mean" or pool.endswith("_per_modality")  # modality blocks concatenated
    width = dim * (len(dims) if apart else 1)
    for out in (*HIDDEN, CLASSES):
        shapes.append((b, width, out, per))
        if train:
            shapes += [(b, out, width, per), (width, b, out, per)]
        width = out
    return shapes


def gemm_rate(shapes: list[tuple[int, int, int, int]], device: str, dtype: torch.dtype,
              seconds: float = 2.0) -> tuple[float, float]:
    """(FLOPs of `shapes` with their repeats, measured torch.mm FLOP/s at those shapes)."""
    total = sum(2.0 * m * k * n * r for m, k, n, r in shapes)
    mats = [(torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype))
            for m, k, n, _ in shapes]

    def once() -> None:
        for a, b in mats:
            torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    once()  # warm-up
    flops_once = sum(2.0 * m * k * n for m, k, n, _ in shapes)
    began, runs = time.perf_counter(), 0
    while runs < 3 or time.perf_counter() - began < seconds:
        once()
        runs += 1
    return total, flops_once * runs / (time.perf_counter() - began)


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--samples", "--n", dest="samples", type=int, default=25959)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--pools", default="max,sum,attention,concat_mean")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--feature-device", default="auto", choices=["auto", "device", "host"])
    p.add_argument("--width-divisor", type=int, default=1, help="divide feature dims and D by this")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--data", help="folder for the synthetic stores (kept and reused); default: a temp folder")
    p.add_argument("--out", help="JSON results (e.g. bench/results/train_cpu.json)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dim = max(1024 // args.width_divisor, 1)
    results = {"command": " ".join(sys.argv), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "torch_threads": torch.get_num_threads(),
                           "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None},
               "versions": {"python": platform.python_version(), "torch": torch.__version__,
                            "numpy": np.__version__},
               "device": args.device, "samples": args.samples, "epochs": args.epochs, "dim": dim,
               "feature_device": args.feature_device, "batch_size": args.batch_size, "amp": args.amp}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data) if args.data else Path(tmp)
        started = time.perf_counter()
        manifest = make_data(root, args.samples, args.width_divisor)
        results["make_data_s"] = round(time.perf_counter() - started, 1)
        rows = element_rows(root, manifest)
        results["elements"] = rows
        rss_reset = reset_peak_rss()
        specs = [FeatureSpec.parse(f"{name}={root / name}.h5") for name in FEATURES]
        options = parse_options([f"epochs={args.epochs}", f"dim={dim}", "hidden=256,128",
                                 f"batch_size={args.batch_size}", "warmup_epochs=1", "class_weights=inv_sqrt"]
                                + (["amp=true"] if args.amp else [])
                                + ([f"feature_device={args.feature_device}"] if args.feature_device != "auto" else []))
        dtype = torch.bfloat16 if args.amp and args.device.startswith("cuda") else torch.float32
        dims = feature_dims(args.width_divisor)
        for pool in args.pools.split(","):
            train_batches = -(-rows["train"]["samples"] // args.batch_size)
            dev_batches = -(-rows["dev"]["samples"] // options.eval_batch_size)
            shapes = (gemm_shapes(rows["train"], train_batches, dims, dim, pool, True)
                      + gemm_shapes(rows["dev"], dev_batches, dims, dim, pool, False))
            flops, rate = gemm_rate(shapes, args.device, dtype)
            started = time.perf_counter()
            metrics = train(manifest, specs, pool, 0, root / f"run_{pool}", args.device, options, log=None)
            wall = time.perf_counter() - started
            history = pd.read_csv(root / f"run_{pool}" / "history.csv")
            best = float(history["seconds"].min())
            achieved = flops / best
            results[pool] = {"seconds_per_epoch": round(metrics["seconds_per_epoch"], 3),
                             "best_epoch_s": round(best, 3), "wall_s": round(wall, 1),
                             "epoch_tflop": round(flops / 1e12, 4),
                             "achieved_tflops": round(achieved / 1e12, 4),
                             "gemm_tflops": round(rate / 1e12, 4),
                             "achieved_over_gemm": round(achieved / rate, 3),
                             "outside_epochs_s": round(wall - float(history["seconds"].sum()), 1),
                             "f1_micro": round(metrics["f1_micro"], 4),
                             "feature_device_used": metrics.get("feature_device", "device")}
            print(pool, results[pool], flush=True)
        results["peak_rss_mb_training"] = round(peak_rss_mb(), 0) if rss_reset else None
        results["peak_rss_mb_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    write_result(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
