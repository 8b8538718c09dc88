"""`python -m extract.inspect STORE.h5 [ID]`: a store's summary, or one sample's rows.

Neither loads the store's columns: a summary reads ids, offsets and attrs, a sample its own rows.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from extract.store import column_info, read_attrs, read_sample, read_store


def summary(path: str) -> str:
    s = read_store(path, columns=[])
    counts = s.counts
    lines = [f"{path}"]
    for key in ("format", "version", "extractor", "backend", "dim", "device", "created", "seconds_per_sample"):
        if key in s.attrs:
            lines.append(f"  {key:<18} {s.attrs[key]}")
    weights = json.loads(s.attrs.get("weights", "[]"))
    for w in weights:
        lines.append(f"  weights            {w['file']}  sha256 {w['sha256'][:16]}...")
    lines.append(f"  config             {s.attrs.get('config', '{}')}")
    lines.append(f"  samples            {len(s)}  rows {int(s.offsets[-1])}")
    if len(s):
        hist = np.bincount(np.minimum(counts, 10), minlength=11)
        lines.append(f"  rows per sample    min {counts.min()}  mean {counts.mean():.2f}  max {counts.max()}  "
                     f"(empty: {int((counts == 0).sum())})")
        lines.append("  histogram          " + "  ".join(f"{k}{'+' if k == 10 else ''}:{v}"
                                                          for k, v in enumerate(hist) if v))
    rows = json.loads(s.attrs.get("row_columns", "[]"))
    for name, (dtype, shape) in column_info(path).items():
        kind = "row column   " if name in rows else "sample column"
        lines.append(f"  {kind}      {name:<10} {dtype} {shape}")
    lines.append(f"  failed             {len(s.failed)}")
    for sid, reason in list(s.failed.items())[:10]:
        lines.append(f"    {sid}: {reason}")
    return "\n".join(lines)


def one_sample(path: str, sample_id: str) -> str:
    values = read_sample(path, sample_id)
    rows = json.loads(read_attrs(path).get("row_columns", "[]"))
    count = len(values[rows[0]]) if rows else 0
    np.set_printoptions(precision=4, suppress=True, threshold=40, edgeitems=4)
    lines = [f"{path} sample {sample_id}: {count} rows"]
    for name, value in values.items():
        lines.append(f"  {name}: {value if not isinstance(value, np.ndarray) else repr(value)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extract.inspect", description=__doc__)
    p.add_argument("store")
    p.add_argument("id", nargs="?")
    args = p.parse_args(argv)
    print(one_sample(args.store, args.id) if args.id else summary(args.store))
    return 0


if __name__ == "__main__":
    sys.exit(main())
