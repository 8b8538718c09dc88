"""`python -m report table|paper-table|figure|matrices|gallery|comparisons|robustness|robustness-scores|stores`:
tables and figures over run folders (see --help of each)."""

from __future__ import annotations

import argparse
import sys

from core import cli


# --- arguments shared by several subcommands ---------------------------------------------------
def runs(p: argparse.ArgumentParser, text: str = "run folders") -> None:
    p.add_argument("--runs", nargs="+", required=True, help=text)


def label(p: argparse.ArgumentParser, text: str = "human label of a feature, e.g. image=WSL(i)") -> None:
    p.add_argument("--label", action="append", default=[], metavar="NAME=LABEL", help=text)


def device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")


def table_out(p: argparse.ArgumentParser, text: str = "TABLE.csv (TABLE.md is written next to it)") -> None:
    p.add_argument("--out", required=True, help=text)


def pool(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pool", default="max", help="runs with this pool are drawn (default max)")


def removal(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--removal", default=None, help=text)


def labels(args: argparse.Namespace) -> dict[str, str]:
    from report.runs import parse_labels

    return parse_labels(args.label)


# --- subcommands: arguments, then what runs (returns the line printed to stderr) --------------
def table_args(p: argparse.ArgumentParser) -> None:
    runs(p)
    p.add_argument("--out", required=True)
    label(p)


def table(args: argparse.Namespace) -> str:
    from report.results import write_table

    csv, md = write_table(args.runs, args.out, labels(args))
    return f"wrote {csv} and {md}"


def figure_args(p: argparse.ArgumentParser) -> None:
    table_args(p)
    pool(p)
    removal(p, "the robustness output's OUT_removal.h5: the removal-effect share drawn beside the importance")


def figure(args: argparse.Namespace) -> str:
    from report.importance import write_figure

    return f"wrote {write_figure(args.runs, args.out, labels(args), args.pool, args.removal)}"


def paper_table_args(p: argparse.ArgumentParser) -> None:
    runs(p)
    p.add_argument("--paper", required=True, choices=["imdb", "ads"],
                   help="imdb: Table 3 (MM-IMDb); ads: Table 2 (Ads-Parallelity)")
    table_out(p)
    label(p, "paper label of a feature, e.g. image=WSL(i); rows match the paper by these")


def paper_table(args: argparse.Namespace) -> str:
    from report.paper_table import write_paper_table

    csv, md = write_paper_table(args.runs, args.paper, args.out, labels(args))
    return f"wrote {csv} and {md}"


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
                   help="OCR rows scoring below this are counted but not drawn (default: report/gallery.py "
                   "OCR_MIN_SCORE, 0.3)")
    label(p)
    removal(p, "the robustness output's OUT_removal.h5: removal effects beside the importance")


def gallery(args: argparse.Namespace) -> str:
    from report.gallery import write_gallery

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
    from report.matrices import write_matrices

    result = write_matrices(args.runs, args.out_dir, args.samples, args.seed, args.pool, labels(args), args.ids)
    return (f"wrote {len(result['pngs'])} sample matrices ({', '.join(result['samples'])}), "
            f"{result['overview']} and {result['csv']}")


def comparisons_args(p: argparse.ArgumentParser) -> None:
    runs(p, "run folders of one dataset")
    table_out(p)
    label(p)
    p.add_argument("--resamples", type=int, default=1000,
                   help="bootstrap resamples behind the intervals and p-values (1000)")


def comparisons(args: argparse.Namespace) -> str:
    from report.comparisons import write_comparisons

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
    from report.robustness import write_robustness

    if bool(args.runs) == args.scored:
        raise ValueError("give --runs (score them here) or --scored (read robustness-scores' output), one of them")
    csv, md, png = write_robustness(args.runs, args.out, labels(args), args.device, args.scored)
    return f"wrote {csv}, {md} and {png}"


def robustness_scores_args(p: argparse.ArgumentParser) -> None:
    runs(p, "run folders (single-feature runs are skipped)")
    table_out(p, "the robustness TABLE.csv to come: TABLE_scores.csv and TABLE_removal.h5 are written")
    device(p)


def robustness_scores(args: argparse.Namespace) -> str:
    from report.robustness import write_scores

    scores, removal = write_scores(args.runs, args.out, args.device)
    return f"wrote {scores} and {removal}"


def stores_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", action="append", default=[], metavar="NAME=STORE.h5", help="a feature's store; repeat")
    table_out(p, "TABLE.csv (TABLE.md and TABLE.html are written next to it)")


def stores(args: argparse.Namespace) -> str:
    from report.provenance import write_provenance

    csv, md = write_provenance(args.store, args.out)
    return f"wrote {csv} and {md}"


COMMANDS = {
    "table": cli.Command("mean/std table over seeds (TABLE.csv + TABLE.md)", table_args, table),
    "figure": cli.Command("bar chart of mean modality importance (PNG)", figure_args, figure),
    "paper-table": cli.Command("our rows beside the paper's Table 2 or 3 (TABLE.csv + TABLE.md)",
                               paper_table_args, paper_table),
    "gallery": cli.Command("static HTML page of test samples (index.html + img/)", gallery_args, gallery),
    "matrices": cli.Command("feature importance matrices per test sample (paper Fig. 2/3)", matrices_args,
                            matrices),
    "comparisons": cli.Command("differences between table rows with bootstrap CIs and p-values "
                               "(TABLE.csv + TABLE.md)", comparisons_args, comparisons),
    "robustness": cli.Command("test scores with each modality removed / kept alone (CSV + MD + PNG)",
                              robustness_args, robustness),
    "stores": cli.Command("where each feature came from: model, weights sha256, substitute (TABLE.csv + TABLE.md)",
                          stores_args, stores),
    "robustness-scores": cli.Command("robustness's scoring alone, without labels (TABLE_scores.csv + "
                                     "TABLE_removal.h5; then robustness --scored)", robustness_scores_args,
                                     robustness_scores),
}


def main(argv: list[str] | None = None) -> int:
    return cli.main("python -m report", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
