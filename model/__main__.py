"""`python -m model train|predict`: train runs and write their run folders; apply a trained run
to new samples (see --help of each). The tables and figures over run folders are `python -m report`."""

from __future__ import annotations

import argparse
import sys

from core import cli
from model.options import TrainOptions, check_pool


# --- arguments shared by the subcommands -------------------------------------------------------
def device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")


def feature(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--feature", action="append", required=True, metavar="NAME=STORE.h5[:COLUMN]", help=text)


def pool_name(text: str) -> str:
    """--pool: a pool name of model/options.py (a renamed one says what it is now)."""
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


def predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder holding model.pt")
    p.add_argument("--manifest", required=True, help="manifest of the new samples (labels may be empty)")
    feature(p, "one store per feature of the run, extracted as the training stores were")
    p.add_argument("--out", required=True, help="PRED: writes PRED.csv and PRED.h5")
    device(p)
    p.add_argument("--batch-size", type=int, default=1024)


def predict(args: argparse.Namespace) -> str:
    from model.options import FeatureSpec
    from model.predict import predict_new

    specs = [FeatureSpec.parse(text) for text in args.feature]
    csv, h5 = predict_new(args.run, args.manifest, specs, args.out, args.device, args.batch_size)
    return f"wrote {csv} and {h5}"


COMMANDS = {
    "train": cli.Command("train and evaluate one run, write its run folder", train_args, train),
    "predict": cli.Command("apply a trained run to new samples (PRED.csv + PRED.h5)", predict_args, predict),
}


def main(argv: list[str] | None = None) -> int:
    return cli.main("python -m model", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
