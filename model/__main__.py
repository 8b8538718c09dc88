"""Command line: `python -m model train|table|figure ...` (see --help of each)."""

from __future__ import annotations

import argparse
import sys

from model.options import TrainOptions


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train and evaluate one run, write its run folder")
    train.add_argument("--manifest", required=True, help="results/{dataset}/manifest.csv")
    train.add_argument("--feature", action="append", required=True, metavar="NAME=STORE.h5[:COLUMN]",
                       help="a feature (modality); repeat for several; order = modality order")
    train.add_argument("--pool", required=True,
                       choices=["max", "min", "sum", "mean", "attention", "concat"])
    train.add_argument("--seed", type=int, required=True)
    train.add_argument("--out", required=True, help="run folder")
    train.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    defaults = ", ".join(f"{k}={v}" for k, v in TrainOptions().to_dict().items() if k != "max_elements_by")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help=f"training option; defaults: {defaults}; max_elements.NAME=N per feature")

    for name, text in (("table", "mean/std table over seeds (TABLE.csv + TABLE.md)"),
                       ("figure", "bar chart of mean modality importance (PNG)")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--runs", nargs="+", required=True, help="run folders")
        cmd.add_argument("--out", required=True)
        cmd.add_argument("--label", action="append", default=[], metavar="NAME=LABEL",
                         help="human label of a feature, e.g. image=WSL(i)")
        if name == "figure":
            cmd.add_argument("--pool", default="max", help="runs with this pool are drawn (default max)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            from model.data import FeatureSpec
            from model.options import parse_options
            from model.train import train

            if args.threads:
                import torch

                torch.set_num_threads(args.threads)
            options = parse_options(args.set)
            specs = [FeatureSpec.parse(text) for text in args.feature]
            train(args.manifest, specs, args.pool, args.seed, args.out, args.device, options)
        elif args.command == "table":
            from model.report import parse_labels, write_table

            csv, md = write_table(args.runs, args.out, parse_labels(args.label))
            print(f"wrote {csv} and {md}", file=sys.stderr)
        else:
            from model.report import parse_labels, write_figure

            print(f"wrote {write_figure(args.runs, args.out, parse_labels(args.label), args.pool)}",
                  file=sys.stderr)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
