"""Command line: `python -m model train|predict|table|figure|paper-table|matrices|gallery|robustness|comparisons ...` (see --help of each)."""

from __future__ import annotations

import argparse
import sys

from model.options import TrainOptions
from model.pools import ALL_POOLS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train and evaluate one run, write its run folder")
    train.add_argument("--manifest", required=True, help="results/{dataset}/manifest.csv")
    train.add_argument("--feature", action="append", required=True, metavar="NAME=STORE.h5[:COLUMN]",
                       help="a feature (modality); repeat for several; order = modality order")
    train.add_argument("--pool", required=True, choices=ALL_POOLS)
    train.add_argument("--seed", type=int, required=True)
    train.add_argument("--out", required=True, help="run folder")
    train.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    defaults = ", ".join(f"{k}={v}" for k, v in TrainOptions().to_dict().items() if k not in ("max_elements_by", "encoders", "collapse"))
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help=f"training option; defaults: {defaults}; per feature: max_elements.NAME=N, encoder.NAME=bag|cnn, collapse.NAME=mean (the set's mean row)")

    for name, text in (("table", "mean/std table over seeds (TABLE.csv + TABLE.md)"),
                       ("figure", "bar chart of mean modality importance (PNG)")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--runs", nargs="+", required=True, help="run folders")
        cmd.add_argument("--out", required=True)
        cmd.add_argument("--label", action="append", default=[], metavar="NAME=LABEL",
                         help="human label of a feature, e.g. image=WSL(i)")
        if name == "figure":
            cmd.add_argument("--pool", default="max", help="runs with this pool are drawn (default max)")
            cmd.add_argument("--removal", default=None, help="the robustness output's OUT_removal.h5: the "
                             "removal-effect share drawn beside the importance")

    paper = sub.add_parser("paper-table", help="our rows beside the paper's Table 2 or 3 (TABLE.csv + TABLE.md)")
    paper.add_argument("--runs", nargs="+", required=True, help="run folders")
    paper.add_argument("--paper", required=True, choices=["imdb", "ads"],
                       help="imdb: Table 3 (MM-IMDb); ads: Table 2 (Ads-Parallelity)")
    paper.add_argument("--out", required=True, help="TABLE.csv (TABLE.md is written next to it)")
    paper.add_argument("--label", action="append", default=[], metavar="NAME=LABEL",
                       help="paper label of a feature, e.g. image=WSL(i); rows match the paper by these")

    pred = sub.add_parser("predict", help="apply a trained run to new samples (PRED.csv + PRED.h5)")
    pred.add_argument("--run", required=True, help="run folder holding model.pt")
    pred.add_argument("--manifest", required=True, help="manifest of the new samples (labels may be empty)")
    pred.add_argument("--feature", action="append", required=True, metavar="NAME=STORE.h5[:COLUMN]",
                      help="one store per feature of the run, extracted as the training stores were")
    pred.add_argument("--out", required=True, help="PRED: writes PRED.csv and PRED.h5")
    pred.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    pred.add_argument("--batch-size", type=int, default=1024)

    gal = sub.add_parser("gallery", help="static HTML page of test samples (index.html + img/)")
    gal.add_argument("--manifest", required=True, help="the dataset's manifest (posters and text)")
    gal.add_argument("--runs", nargs="+", required=True, help="run folders (max-pool runs are used)")
    gal.add_argument("--store", action="append", default=[],
                     help="a faces, objects or ocr store whose boxes are drawn on the posters; repeat")
    gal.add_argument("--out-dir", required=True, help="folder for index.html and img/")
    gal.add_argument("--samples", type=int, default=4, help="samples chosen as for the matrices (default 4)")
    gal.add_argument("--errors", type=int, default=4, help="most confident errors added (default 4)")
    gal.add_argument("--seed", type=int, default=0, help="seed of the runs shown (default 0)")
    gal.add_argument("--ocr-min-score", type=float,
                     help="OCR rows scoring below this are counted but not drawn (default: model/gallery.py "
                     "OCR_MIN_SCORE, 0.3)")
    gal.add_argument("--label", action="append", default=[], metavar="NAME=LABEL",
                     help="human label of a feature, e.g. image=WSL(i)")
    gal.add_argument("--removal", default=None,
                     help="the robustness output's OUT_removal.h5: removal effects beside the importance")

    fim = sub.add_parser("matrices", help="feature importance matrices per test sample (paper Fig. 2/3)")
    fim.add_argument("--runs", nargs="+", required=True, help="run folders")
    fim.add_argument("--out-dir", required=True, help="folder for <id>.png, samples.png, overview.png, matrices.csv")
    fim.add_argument("--samples", type=int, default=4, help="samples chosen when --ids is not given (default 4)")
    fim.add_argument("--ids", nargs="+", default=None, help="test sample ids to draw instead")
    fim.add_argument("--seed", type=int, default=0,
                     help="seed of the run drawn per combination (default 0; else its first seed)")
    fim.add_argument("--pool", default="max", help="runs with this pool are drawn (default max)")
    fim.add_argument("--label", action="append", default=[], metavar="NAME=LABEL",
                     help="human label of a feature, e.g. image=WSL(i)")
    cmp_ = sub.add_parser("comparisons", help="differences between table rows with bootstrap CIs and "
                          "permutation p-values (TABLE.csv + TABLE.md)")
    cmp_.add_argument("--runs", nargs="+", required=True, help="run folders of one dataset")
    cmp_.add_argument("--out", required=True, help="TABLE.csv (TABLE.md is written next to it)")
    cmp_.add_argument("--label", action="append", default=[], metavar="NAME=LABEL",
                      help="human label of a feature, e.g. image=WSL(i)")
    cmp_.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples and permutations (1000)")
    rob = sub.add_parser("robustness", help="test scores with each modality removed / kept alone (CSV + MD + PNG)")
    rob.add_argument("--runs", nargs="+", required=True, help="run folders (single-feature runs are skipped)")
    rob.add_argument("--out", required=True, help="TABLE.csv (TABLE.md and TABLE.png are written next to it)")
    rob.add_argument("--label", action="append", default=[], metavar="NAME=LABEL",
                     help="human label of a feature, e.g. image=WSL(i)")
    rob.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "robustness":
            from model.report import parse_labels
            from model.robustness import write_robustness

            csv, md, png = write_robustness(args.runs, args.out, parse_labels(args.label), args.device)
            print(f"wrote {csv}, {md} and {png}", file=sys.stderr)
        elif args.command == "comparisons":
            from model.comparisons import write_comparisons
            from model.report import parse_labels

            csv, md = write_comparisons(args.runs, args.out, parse_labels(args.label), args.resamples)
            print(f"wrote {csv} and {md}", file=sys.stderr)
        elif args.command == "train":
            from model.spec import FeatureSpec
            from model.options import parse_options
            from model.train import train

            if args.threads:
                import torch

                torch.set_num_threads(args.threads)
            options = parse_options(args.set)
            specs = [FeatureSpec.parse(text) for text in args.feature]
            train(args.manifest, specs, args.pool, args.seed, args.out, args.device, options)
        elif args.command == "predict":
            from model.spec import FeatureSpec
            from model.predict import predict_new

            specs = [FeatureSpec.parse(text) for text in args.feature]
            csv, h5 = predict_new(args.run, args.manifest, specs, args.out, args.device, args.batch_size)
            print(f"wrote {csv} and {h5}", file=sys.stderr)
        elif args.command == "gallery":
            from model.gallery import write_gallery
            from model.report import parse_labels

            page = write_gallery(args.manifest, args.runs, args.store, args.out_dir, args.samples,
                                 args.errors, args.seed, parse_labels(args.label), args.ocr_min_score,
                                 args.removal)
            print(f"wrote {page}", file=sys.stderr)
        elif args.command == "table":
            from model.report import parse_labels, write_table

            csv, md = write_table(args.runs, args.out, parse_labels(args.label))
            print(f"wrote {csv} and {md}", file=sys.stderr)
        elif args.command == "paper-table":
            from model.paper_table import write_paper_table
            from model.report import parse_labels

            csv, md = write_paper_table(args.runs, args.paper, args.out, parse_labels(args.label))
            print(f"wrote {csv} and {md}", file=sys.stderr)
        elif args.command == "matrices":
            from model.matrices import write_matrices
            from model.report import parse_labels

            result = write_matrices(args.runs, args.out_dir, args.samples, args.seed, args.pool,
                                    parse_labels(args.label), args.ids)
            print(f"wrote {len(result['pngs'])} sample matrices ({', '.join(result['samples'])}), "
                  f"{result['overview']} and {result['csv']}", file=sys.stderr)
        else:
            from model.report import parse_labels, write_figure

            print(f"wrote {write_figure(args.runs, args.out, parse_labels(args.label), args.pool, args.removal)}",
                  file=sys.stderr)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
