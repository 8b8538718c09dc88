"""Peak memory and time of `python -m extract merge` and of loading the merged store.

    python bench/store_memory.py --samples 100000 --dim 2048 --shards 4 --out bench/results/store_memory_400mb.json

Writes `--shards` synthetic float16 image-feature shards (one row per sample, the layout of
`python -m extract image`) into `--dir`, merges them through the CLI and loads the result with
`read_store`, each in its own process under `/usr/bin/time -v`. Extra memory is that process's
peak RSS minus the peak RSS of a process that only imports the same modules; the limit it is
compared with is 25% of the merged store's size. The files are deleted afterwards.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import write_result  # noqa: E402
from extract.store import RaggedStore, base_attrs, write_store  # noqa: E402

IMPORTS = "import extract.__main__"  # what `python -m extract merge` imports before merging
LOAD = ("import sys, time, extract.store as s; t = time.perf_counter(); st = s.read_store(sys.argv[1]); "
        "print('rows', int(st.offsets[-1]), 'seconds', round(time.perf_counter() - t, 3))")


def write_shards(folder: Path, samples: int, dim: int, shards: int, block: int) -> list[Path]:
    """Shard k holds a contiguous run of ids; every sample one row of `dim` float16 values."""
    paths = []
    rng = np.random.default_rng(0)
    for k in range(shards):
        lo, hi = k * samples // shards, (k + 1) * samples // shards
        ids = [f"{i:07d}" for i in range(lo, hi)]
        feats = np.empty((hi - lo, dim), np.float16)
        for start in range(0, hi - lo, block):  # bounded temporaries while generating
            n = min(block, hi - lo - start)
            feats[start:start + n] = rng.standard_normal((n, dim), dtype=np.float32)
        attrs = base_attrs("image", "synthetic", dim, {"bench": "store_memory"})
        store = RaggedStore(ids, np.arange(hi - lo + 1, dtype=np.int64), {"features": feats}, attrs=attrs)
        paths.append(write_store(folder / f"shard{k + 1}.h5", store))
        del feats, store
    return paths


def timed(args: list[str]) -> dict[str, float | str]:
    """Run `args` under /usr/bin/time -v: peak RSS (MB), wall seconds, last stdout line."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return {"peak_rss_mb": round(peak / 1024, 1), "seconds": round(time.perf_counter() - started, 2),
            "stdout": done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""}


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "numpy": np.__version__, "h5py": h5py.__version__,
            "hdf5": h5py.version.hdf5_version}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--dir", default=str(ROOT / "bench" / "tmp-store-memory"), help="scratch folder (deleted)")
    p.add_argument("--block", type=int, default=50_000, help="samples generated at a time")
    p.add_argument("--label", default="", help="free text recorded in the JSON (e.g. the commit measured)")
    p.add_argument("--out", help="JSON file to write")
    args = p.parse_args()
    folder = Path(args.dir)
    if folder.exists():
        raise SystemExit(f"{folder} exists; remove it or pass another --dir")
    folder.mkdir(parents=True)
    py = sys.executable
    try:
        started = time.perf_counter()
        shards = write_shards(folder, args.samples, args.dim, args.shards, args.block)
        write_seconds = time.perf_counter() - started
        merged = folder / "merged.h5"
        base = timed([py, "-c", IMPORTS])
        merge = timed([py, "-m", "extract", "merge", *map(str, shards), "--out", str(merged)])
        load_base = timed([py, "-c", "import extract.store"])
        load = timed([py, "-c", LOAD, str(merged)])
        size_mb = merged.stat().st_size / 2**20
        extra = merge["peak_rss_mb"] - base["peak_rss_mb"]
        result = {
            "benchmark": "store_memory",
            "command": " ".join([Path(py).name, *sys.argv]),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"host": platform.node(), "cpus": __import__("os").cpu_count(),
                        "platform": platform.platform()},
            "versions": versions(),
            "label": args.label,
            "samples": args.samples, "dim": args.dim, "shards": args.shards,
            "store_mb": round(size_mb, 1),
            "write_shards_seconds": round(write_seconds, 2),
            "imports_only": base,
            "merge": {**merge, "extra_mb": round(extra, 1), "extra_fraction": round(extra / size_mb, 4),
                      "limit_fraction": 0.25, "ok": extra / size_mb < 0.25},
            "load": {**load, "imports_only_peak_rss_mb": load_base["peak_rss_mb"],
                     "extra_mb": round(load["peak_rss_mb"] - load_base["peak_rss_mb"], 1)},
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
