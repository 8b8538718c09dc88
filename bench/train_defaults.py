"""Training defaults on a dataset's stores: every (setting x combination x pool x seed) trained by
`model.train.train` (what `python -m model train` runs), its dev and test scores, the lr and
threshold it used, and its time.

    python bench/train_defaults.py --manifest results/mine/manifest.csv \
        --feature image=results/mine/features/image.h5 --feature text=results/mine/features/text.h5 \
        --combination image --combination text --combination image,text --pools max,concat_mean \
        --seeds 0,1,2 --setting 'today=lr=0.001;threshold=0.5' --setting defaults= \
        --out bench/results/train_defaults_emoji.json

A setting is NAME=KEY=VALUE;KEY=VALUE (`--set` pairs over the current defaults; empty: the
defaults as they are). Choices are made on dev only; test scores are reported, never used. The
JSON is rewritten after every run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.record import command, machine, write_result  # noqa: E402
from model.options import BASELINES, PER_MODALITY, FeatureSpec, TrainOptions, parse_options  # noqa: E402
from model.train import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--feature", action="append", required=True, metavar="NAME=STORE.h5")
    parser.add_argument("--combination", action="append", required=True, help="comma-joined feature names")
    parser.add_argument("--pools", default="max",
                        help="comma-separated (model/options.py); baselines and per-modality pools only for several features")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--setting", action="append", required=True, metavar="NAME=K=V;K=V")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    stores = {s.name: s for s in map(FeatureSpec.parse, args.feature)}
    settings = {}
    for text in args.setting:
        name, _, pairs = text.partition("=")
        settings[name] = [p for p in pairs.split(";") if p]
        parse_options(settings[name])  # a typo stops here, before any training
    runs = []
    result = {"benchmark": "train_defaults", "command": command(), "manifest": args.manifest,
              "settings": settings, "defaults": TrainOptions().to_dict(), "machine": machine(), "runs": runs}
    with tempfile.TemporaryDirectory() as tmp:
        for name, pairs in settings.items():
            options = parse_options(pairs)
            for combination in args.combination:
                features = combination.split(",")
                for pool in args.pools.split(","):
                    if (pool in BASELINES or pool.endswith(PER_MODALITY)) and len(features) < 2:
                        continue
                    for seed in map(int, args.seeds.split(",")):
                        began = time.perf_counter()
                        metrics = train(args.manifest, [stores[f] for f in features], pool, seed,
                                        Path(tmp) / f"{name}-{combination}-{pool}-{seed}", options=options, log=None)
                        row = {"setting": name, "combination": "+".join(features), "pool": pool, "seed": seed,
                               "seconds": round(time.perf_counter() - began, 2), "lr": metrics["lr"],
                               "threshold": metrics["threshold"], "best_epoch": metrics["best_epoch"],
                               "dev": {k: metrics["dev"].get(k) for k in ("f1_micro", "f1_macro", "accuracy")
                                       if k in metrics["dev"]},
                               "test": {k: metrics[k] for k in metrics["metric_names"]},
                               "lr_search": metrics["lr_search"]}
                        print(f"{name} {row['combination']} {pool} seed {seed}: lr {row['lr']:g} threshold "
                              f"{row['threshold']:g} test " + " ".join(f"{k} {v:.4f}" for k, v in row["test"].items())
                              + f" ({row['seconds']} s)", file=sys.stderr, flush=True)
                        runs.append(row)
                        if args.out:
                            write_result(result, args.out, echo=False)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
