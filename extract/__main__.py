"""`python -m extract EXTRACTOR ...` writes one store (or shard); `python -m extract merge ...` joins
shards; `python -m extract fetch ...` resolves an extractor's weight files before its shards run."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from extract import registry
from extract.catalog import CATALOG
from core.atomic import atomic_write
from extract.store import merge_stores

# torch and the runner are imported where an extractor runs: `merge` stays light (no torch)
log = logging.getLogger("extract")


def _extract_parser(name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m extract {name}",
                                description=f"Run the {name!r} extractor over a manifest into one HDF5 store.")
    p.add_argument("--manifest", required=True, help="results/{dataset}/manifest.csv")
    p.add_argument("--out", required=True, help="store (or shard) to write")
    p.add_argument("--backend", help="model backend (default: the extractor's first)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--shard", help="K/N: process the K-th of N contiguous parts (1-based)")
    p.add_argument("--input", help="another store whose samples this extractor reads (ocr for ocr_text, objects for boxes)")
    p.add_argument("--feature", help="the feature this store is (recorded in its `feature` attr; the pipeline "
                   "passes the config's feature name)")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="extractor option (repeatable)")
    p.add_argument("--compression", choices=["gzip", "lzf"], help="compress columns (default: none, fastest to load)")
    p.add_argument("--workers", type=int, default=0,
                   help="threads decoding inputs (0: 2 on the CPU, every core up to 16 on CUDA)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true")
    return p


def fetch(argv: list[str]) -> int:
    """Build an extractor once on the CPU so that every weight file it needs is resolved (and
    downloaded where there is a network); record what was found."""
    p = argparse.ArgumentParser(prog="python -m extract fetch",
                                description="Resolve an extractor's weights ahead of extraction.")
    p.add_argument("extractor", choices=sorted(CATALOG))
    p.add_argument("--backend")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, help="JSON record of the weight files found")
    args = p.parse_args(argv)
    import torch

    from core.options import parse_options

    cls = registry.get(args.extractor)
    backend = args.backend or cls.backends[0]
    options = " ".join(args.options) or "default options"
    log.info("fetch %s backend %s (%s): resolving its weight files (a download writes progress lines) "
             "and loading the model once on the CPU", args.extractor, backend, options)
    started = time.perf_counter()
    extractor = cls(backend, torch.device("cpu"), parse_options(cls.options_class, args.options))
    record = {"extractor": args.extractor, "backend": backend,
              "weights": [{"file": f, "sha256": h} for f, h in extractor.weights]}
    with atomic_write(args.out) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    files = "; ".join(f"{f} (sha256 {h[:16]})" for f, h in extractor.weights) or "no weight files"
    log.info("fetch %s: ready in %.1f s: %s", args.extractor, time.perf_counter() - started, files)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m extract {" + ",".join(sorted(CATALOG)) + "} --manifest M --out S ...\n"
              "       python -m extract merge SHARD.h5 ... --out STORE.h5\n"
              "       python -m extract fetch EXTRACTOR [--backend B] [--set K=V] --out READY.json")
        return 0
    if argv[0] == "merge":
        p = argparse.ArgumentParser(prog="python -m extract merge", description="Concatenate shards in order.")
        p.add_argument("shards", nargs="+")
        p.add_argument("--out", required=True)
        p.add_argument("--compression", choices=["gzip", "lzf"])
        p.add_argument("--no-progress", action="store_true")
        args = p.parse_args(argv[1:])
        merge_stores(args.shards, args.out, args.compression, progress=not args.no_progress)
        log.info("merged %d shards into %s", len(args.shards), args.out)
        return 0
    if argv[0] == "fetch":
        return fetch(argv[1:])
    return run_extractor(argv[0], argv[1:])


def run_extractor(name: str, argv: list[str]) -> int:
    if name not in CATALOG:
        raise SystemExit(f"python -m extract: {name!r} is no command or extractor; "
                         f"choose merge, fetch or one of {', '.join(sorted(CATALOG))}")
    import torch

    from core.manifest import read_manifest
    from core.options import parse_options
    from extract.run import extract, items_from, load_input, parse_shard, resolve_device, shard_slice
    from extract.substitutes import upstream

    cls = registry.get(name)
    args = _extract_parser(name).parse_args(argv)
    if cls.needs_input and not args.input:
        raise SystemExit(f"extractor {name!r} reads another store: pass --input STORE.h5")
    if args.threads:
        torch.set_num_threads(args.threads)
    options = parse_options(cls.options_class, args.options)
    manifest = read_manifest(args.manifest)
    if args.shard:
        manifest = manifest.iloc[shard_slice(len(manifest), *parse_shard(args.shard))]
    source = load_input(args.input)
    items = items_from(manifest, source)
    extractor = cls(args.backend or cls.backends[0], resolve_device(args.device), options)
    carried = upstream(str(source.attrs.get("substitute", "")), Path(args.input).stem) if source else ""
    extract(extractor, items, args.out, workers=args.workers, progress=not args.no_progress,
            compression=args.compression, upstream=carried, attrs=source_attrs(args.feature, source))
    return 0


def source_attrs(feature: str | None, input_store) -> dict[str, str]:
    """What a store was built from: `input` is the input store's feature (or extractor) or
    `manifest`, and `feature` the feature name when given. A run refuses a store whose `feature`
    or `input` differs from its training store's (an `ocr_text` store given as `text`)."""
    if input_store is None:
        source = "manifest"
    else:
        source = str(input_store.attrs.get("feature") or input_store.attrs.get("extractor") or "store")
    return {"input": source, **({"feature": feature} if feature else {})}


if __name__ == "__main__":
    sys.exit(main())
