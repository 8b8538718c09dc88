"""Command line: `python -m model train|predict|table|figure|paper-table|matrices|gallery|robustness|robustness-scores|comparisons|stores ...` (see --help of each)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, NamedTuple

from model.options import TrainOptions, check_pool


# --- arguments shared by several subcommands ---------------------------------------------------
def runs(p: argparse.ArgumentParser, text: str = "run folders") -> None:
    p.add_argument("--runs", nargs="+", required=True, help=text)


def label(p: argparse.ArgumentParser, text: str = "human label of a feature, e.g. image=WSL(i)") -> None:
    p.add_argument("--label", action="append", default=[], metavar="NAME=LABEL", help=text)


def device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")


def feature(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--feature", action="append", required=True, metavar="NAME=STORE.h5[:COLUMN]", help=text)


def table_out(p: argparse.ArgumentParser, text: str = "TABLE.csv (TABLE.md is written next to it)") -> None:
    p.add_argument("--out", required=True, help=text)


def pool(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pool", default="max", help="runs with this pool are drawn (default max)")


def removal(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--removal", default=None, help=text)


def pool_name(text: str) -> str:
    """--pool: a name of model/options.py (a renamed one says what it is now)."""
    try:
        return check_pool(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_spec(text: str) -> tuple[int, int | None, str]:
    """--run SEED[:FOLD]=RUN_DIR -> (seed, fold or None, run folder)."""
    head, sep, out = text.partition("=")
    seed, _, fold = head.partition(":")
    try:
        if not sep or not out:
            raise ValueError
        return int(seed), (int(fold) if fold else None), out
    except ValueError:
        raise argparse.ArgumentTypeError(f"--run {text!r}: write SEED[:FOLD]=RUN_DIR, e.g. 0=runs/all/max/seed0 "
                                         "or 1:3=runs/all/max/seed1-fold3") from None


def labels(args: argparse.Namespace) -> dict[str, str]:
    from model.report import parse_labels

    return parse_labels(args.label)


# --- subcommands: arguments, then what runs (returns the line printed to stderr) --------------
def train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, help="results/{dataset}/manifest.csv")
    feature(p, "a feature (modality); repeat for several; order = modality order")
    p.add_argument("--pool", required=True, type=pool_name, help="model/options.py ALL_POOLS")
    p.add_argument("--seed", type=int, help="the run's seed (with --out)")
    p.add_argument("--out", help="run folder")
    p.add_argument("--run", action="append", default=[], type=run_spec, metavar="SEED[:FOLD]=RUN_DIR",
                   help="instead of --seed/--out: one of several runs this process trains one after another "
                   "(FOLD sets fold=); repeat")
    device(p)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    defaults = ", ".join(f"{k}={v}" for k, v in TrainOptions().to_dict().items()
                         if k not in ("max_elements_by", "encoders", "collapse"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"training option; defaults: {defaults}; per feature: max_elements.NAME=N, "
                   "encoder.NAME=bag|cnn, collapse.NAME=mean (the set's mean row)")


def train(args: argparse.Namespace) -> str | None:
    from model.options import FeatureSpec, parse_options
    from model.train import train_runs

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    single = (args.seed, args.out)
    if (args.run and single != (None, None)) or (not args.run and None in single):
        raise ValueError("give --seed S --out RUN_DIR for one run, or --run SEED[:FOLD]=RUN_DIR per run")
    options = parse_options(args.set)
    specs = [FeatureSpec.parse(text) for text in args.feature]
    runs = args.run or [(args.seed, None, args.out)]
    train_runs(args.manifest, specs, args.pool, runs, args.device, options)
    return None


def table_args(p: argparse.ArgumentParser) -> None:
    runs(p)
    p.add_argument("--out", required=True)
    label(p)


def table(args: argparse.Namespace) -> str:
    from model.report import write_table

    csv, md = write_table(args.runs, args.out, labels(args))
    return f"wrote {csv} and {md}"


def figure_args(p: argparse.ArgumentParser) -> None:
    table_args(p)
    pool(p)
    removal(p, "the robustness output's OUT_removal.h5: the removal-effect share drawn beside the importance")


def figure(args: argparse.Namespace) -> str:
    from model.report import write_figure

    return f"wrote {write_figure(args.runs, args.out, labels(args), args.pool, args.removal)}"


def paper_table_args(p: argparse.ArgumentParser) -> None:
    runs(p)
    p.add_argument("--paper", required=True, choices=["imdb", "ads"],
                   help="imdb: Table 3 (MM-IMDb); ads: Table 2 (Ads-Parallelity)")
    table_out(p)
    label(p, "paper label of a feature, e.g. image=WSL(i); rows match the paper by these")


def paper_table(args: argparse.Namespace) -> str:
    from model.paper_table import write_paper_table

    csv, md = write_paper_table(args.runs, args.paper, args.out, labels(args))
    return f"wrote {csv} and {md}"


def predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder holding model.pt")
    p.add_argument("--manifest", required=True, help="manifest of the new samples (labels may be empty)")
    feature(p, "one store per feature of the run, extracted as the training stores were")
    p.add_argument("--out", required=True, help="PRED: writes PRED.csv and PRED.h5")
    device(p)
    p.add_argument("--batch-size", type=int, default=1024)


def predict(args: argparse.Namespace) -> str:
    from model.predict import predict_new
    from model.options import FeatureSpec

    specs = [FeatureSpec.parse(text) for text in args.feature]
    csv, h5 = predict_new(args.run, args.manifest, specs, args.out, args.device, args.batch_size)
    return f"wrote {csv} and {h5}"


def gallery_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, help="the dataset's manifest (posters and text)")
    runs(p, "run folders (max-pool runs are used)")
    p.add_argument("--store", action="append", default=[],
                   help="a faces, objects or ocr store whose boxes are drawn on the posters; repeat")
    p.add_argument("--out-dir", required=True, help="folder for index.html and img/")
    p.add_argument("--samples", type=int, default=4, help="samples chosen as for the matrices (default 4)")
    p.add_argument("--errors", type=int, default=4, help="most confident errors added (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the runs shown (default 0)")
    p.add_argument("--ocr-min-score", type=float,
                   help="OCR rows scoring below this are counted but not drawn (default: model/gallery.py "
                   "OCR_MIN_SCORE, 0.3)")
    label(p)
    removal(p, "the robustness output's OUT_removal.h5: removal effects beside the importance")


def gallery(args: argparse.Namespace) -> str:
    from model.gallery import write_gallery

    page = write_gallery(args.manifest, args.runs, args.store, args.out_dir, args.samples, args.errors,
                         args.seed, labels(args), args.ocr_min_score, args.removal)
    return f"wrote {page}"


def matrices_args(p: argparse.ArgumentParser) -> None:
    runs(p)
    p.add_argument("--out-dir", required=True, help="folder for <id>.png, samples.png, overview.png, matrices.csv")
    p.add_argument("--samples", type=int, default=4, help="samples chosen when --ids is not given (default 4)")
    p.add_argument("--ids", nargs="+", default=None, help="test sample ids to draw instead")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the run drawn per combination (default 0; else its first seed)")
    pool(p)
    label(p)


def matrices(args: argparse.Namespace) -> str:
    from model.matrices import write_matrices

    result = write_matrices(args.runs, args.out_dir, args.samples, args.seed, args.pool, labels(args), args.ids)
    return (f"wrote {len(result['pngs'])} sample matrices ({', '.join(result['samples'])}), "
            f"{result['overview']} and {result['csv']}")


def comparisons_args(p: argparse.ArgumentParser) -> None:
    runs(p, "run folders of one dataset")
    table_out(p)
    label(p)
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples and permutations (1000)")


def comparisons(args: argparse.Namespace) -> str:
    from model.comparisons import write_comparisons

    csv, md = write_comparisons(args.runs, args.out, labels(args), args.resamples)
    return f"wrote {csv} and {md}"


def robustness_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", nargs="+", help="run folders (single-feature runs are skipped); or --scored")
    p.add_argument("--scored", action="store_true",
                   help="read OUT_scores.csv and OUT_removal.h5 of `robustness-scores` instead of scoring --runs")
    table_out(p, "TABLE.csv (TABLE.md, TABLE.png and TABLE_views.csv are written next to it)")
    label(p)
    device(p)


def robustness(args: argparse.Namespace) -> str:
    from model.robustness import write_robustness

    if bool(args.runs) == args.scored:
        raise ValueError("give --runs (score them here) or --scored (read robustness-scores' output), one of them")
    csv, md, png = write_robustness(args.runs, args.out, labels(args), args.device, args.scored)
    return f"wrote {csv}, {md} and {png}"


def robustness_scores_args(p: argparse.ArgumentParser) -> None:
    runs(p, "run folders (single-feature runs are skipped)")
    table_out(p, "the robustness TABLE.csv to come: TABLE_scores.csv and TABLE_removal.h5 are written")
    device(p)


def robustness_scores(args: argparse.Namespace) -> str:
    from model.robustness import write_scores

    scores, removal = write_scores(args.runs, args.out, args.device)
    return f"wrote {scores} and {removal}"


def stores_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", action="append", default=[], metavar="NAME=STORE.h5", help="a feature's store; repeat")
    table_out(p, "TABLE.csv (TABLE.md and TABLE.html are written next to it)")


def stores(args: argparse.Namespace) -> str:
    from model.provenance import write_provenance

    csv, md = write_provenance(args.store, args.out)
    return f"wrote {csv} and {md}"


class Command(NamedTuple):
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], str | None]


COMMANDS = {
    "train": Command("train and evaluate one run, write its run folder", train_args, train),
    "table": Command("mean/std table over seeds (TABLE.csv + TABLE.md)", table_args, table),
    "figure": Command("bar chart of mean modality importance (PNG)", figure_args, figure),
    "paper-table": Command("our rows beside the paper's Table 2 or 3 (TABLE.csv + TABLE.md)",
                           paper_table_args, paper_table),
    "predict": Command("apply a trained run to new samples (PRED.csv + PRED.h5)", predict_args, predict),
    "gallery": Command("static HTML page of test samples (index.html + img/)", gallery_args, gallery),
    "matrices": Command("feature importance matrices per test sample (paper Fig. 2/3)", matrices_args, matrices),
    "comparisons": Command("differences between table rows with bootstrap CIs and permutation p-values "
                           "(TABLE.csv + TABLE.md)", comparisons_args, comparisons),
    "robustness": Command("test scores with each modality removed / kept alone (CSV + MD + PNG)",
                          robustness_args, robustness),
    "stores": Command("where each feature came from: model, weights sha256, substitute (TABLE.csv + TABLE.md)",
                      stores_args, stores),
    "robustness-scores": Command("robustness's scoring alone, without labels (TABLE_scores.csv + "
                                 "TABLE_removal.h5; then robustness --scored)", robustness_scores_args,
                                 robustness_scores),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        message = COMMANDS[args.command].run(args)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if message:
        print(message, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
