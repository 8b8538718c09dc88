"""`python -m data manifest --format mmimdb --root ROOT --out MANIFEST [--genres A,B]`."""

from __future__ import annotations

import argparse
import logging
import sys

from data.manifest import write_manifest


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m data")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("manifest", help="write results/{dataset}/manifest.csv from a dataset folder")
    m.add_argument("--format", choices=["mmimdb"], default="mmimdb")
    m.add_argument("--root", required=True, help="dataset root (MM-IMDb: holds split.json and dataset/)")
    m.add_argument("--out", required=True)
    m.add_argument("--genres", default="", help="comma-separated subset of MM-IMDb genres (default: all 23)")
    args = p.parse_args(argv)
    from data.mmimdb import build_manifest

    genres = [g.strip() for g in args.genres.split(",") if g.strip()]
    frame, counts = build_manifest(args.root, genres or None)
    write_manifest(frame, args.out)
    logging.getLogger("data").info("%s: %s", args.out, ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
