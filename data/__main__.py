"""Dataset command lines.

- `python -m data manifest [--format mmimdb] --root ROOT --out MANIFEST [--genres A,B] [--plot all]`
- `python -m data manifest --format ads --annotations ADS.csv --out MANIFEST [--folds 5] [--seed 0]`
- `python -m data manifest --format table --table T.csv --out MANIFEST [--split-ratios 0.6,0.1,0.3]
  [--split-seed 0] [--sep ';'] [--strict-images] [--allow-missing-images]` (T.csv|.tsv|.jsonl|.parquet;
  format: data/table.py)
- `--predict` (any format): a dataset to predict on: no split, no class warnings
- `python -m data download [--url URL] --out ARCHIVE [--size BYTES] [--sha256 HEX] [--unpack DIR]`
"""

from __future__ import annotations

import argparse
import logging
import sys

from data.classes import describe, unscorable
from core.manifest import ADS_FOLDS, write_manifest

log = logging.getLogger("data")


def parser() -> argparse.ArgumentParser:
    from data.download import MMIMDB_URL
    from data.mmimdb import PLOTS

    p = argparse.ArgumentParser(prog="python -m data")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("manifest", help="write results/{dataset}/manifest.csv from a dataset folder")
    m.add_argument("--format", choices=["mmimdb", "ads", "table"], default="mmimdb")
    m.add_argument("--root", help="mmimdb: dataset root (holds split.json and dataset/)")
    m.add_argument("--out", required=True)
    m.add_argument("--genres", default="", help="mmimdb: comma-separated subset of genres (default: all 23)")
    m.add_argument("--plot", choices=list(PLOTS), default="all",
                   help="mmimdb: a movie's text from its plot entries: all (joined with a space, the "
                        "paper's), longest or first (default all)")
    m.add_argument("--annotations", help="ads: annotation CSV (format: data/ADS_FORMAT.md)")
    m.add_argument("--folds", type=int, default=ADS_FOLDS, help=f"ads: cross-validation folds (default {ADS_FOLDS})")
    m.add_argument("--seed", type=int, default=0, help="ads: seed of the fold assignment (default 0)")
    m.add_argument("--table", help="table: CSV, TSV, JSON Lines or Parquet file (format: data/table.py)")
    m.add_argument("--split-ratios", default="0.6,0.1,0.3",
                   help="table without a split column: train,dev,test shares (default 0.6,0.1,0.3)")
    m.add_argument("--split-seed", type=int, default=0,
                   help="table without a split column: seed of the stratified split (default 0)")
    m.add_argument("--sep", default="", help="table: CSV/TSV field separator (default: ',' for .csv, tab for .tsv)")
    m.add_argument("--strict-images", action="store_true",
                   help="table: any missing, empty, unreadable or truncated image stops with its line "
                        "(default: the row is kept without its image features)")
    m.add_argument("--allow-missing-images", action="store_true",
                   help="table: go on when half the rows or more have no image (default: stop, naming examples)")
    m.add_argument("--predict", action="store_true",
                   help="a dataset to predict on: every split empty, no warnings about classes (its labels "
                        "are not used)")
    d = sub.add_parser("download", help="fetch a dataset archive (resumable) and optionally unpack it")
    d.add_argument("--url", default=MMIMDB_URL, help=f"http(s):// or file:// URL (default {MMIMDB_URL})")
    d.add_argument("--out", required=True, help="where the archive goes, e.g. resources/imdb/mmimdb.tar.gz")
    d.add_argument("--size", type=int, help="expected size in bytes")
    d.add_argument("--sha256", help="expected sha256 (hex)")
    d.add_argument("--unpack", help="folder to unpack the archive into, e.g. resources/imdb")
    return p


def manifest(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    if args.format == "ads":
        if not args.annotations:
            p.error("--format ads needs --annotations ADS.csv")
        from data.ads import manifest_from_ads

        frame, counts = manifest_from_ads(args.annotations, folds=args.folds, seed=args.seed)
    elif args.format == "table":
        if not args.table:
            p.error("--format table needs --table FILE")
        from data.table import manifest_from_table, parse_ratios

        try:
            ratios = parse_ratios(args.split_ratios)
        except ValueError as err:
            p.error(f"--split-ratios: {err}")
        frame, counts = manifest_from_table(args.table, ratios, args.split_seed, sep=args.sep,
                                            strict_images=args.strict_images,
                                            allow_missing_images=args.allow_missing_images, predict=args.predict)
    else:
        if not args.root:
            p.error("--format mmimdb needs --root ROOT")
        from data.mmimdb import manifest_from_mmimdb

        genres = [g.strip() for g in args.genres.split(",") if g.strip()]
        frame, counts = manifest_from_mmimdb(args.root, genres or None, plot=args.plot)
    if args.predict:
        frame["split"] = ""
        counts = {k: v for k, v in counts.items() if not k.startswith("split=")}
    write_manifest(frame, args.out)
    found = [] if args.predict else unscorable(frame)
    if found:
        log.warning("%s: %d classes cannot be scored; each counts as F1 = 0 in macro averages (positives per "
                    "split in brackets; give them more samples or drop them):\n  %s", args.out, len(found),
                    describe(found))
    log.info("%s: %s", args.out, ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0


def download(args: argparse.Namespace) -> int:
    from data.download import fetch, unpack

    archive = fetch(args.url, args.out, size=args.size, sha256=args.sha256)
    if args.unpack:
        root = unpack(archive, args.unpack)
        print(root)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    p = parser()
    args = p.parse_args(argv)
    from data.ads import AdsFormatError
    from data.download import DownloadError, UnsafeArchive
    from data.table import TableFormatError

    try:
        return manifest(args, p) if args.command == "manifest" else download(args)
    except (AdsFormatError, TableFormatError, DownloadError, UnsafeArchive) as err:
        log.error("%s", err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
