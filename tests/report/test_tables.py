"""report/tables.py, the one table writer, and report/runs.py, the one reader of run folders:
every table's cells, rows and summary come from them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from report.__main__ import main
from report.runs import group_rows, read_runs
from report.tables import cell, markdown_table, over_seeds
from tests.report.test_results import fake_run


def test_a_cell_is_mean_plus_minus_std_or_what_there_is() -> None:
    assert cell(0.61234, 0.01999) == "0.6123 ± 0.0200"
    assert cell(0.61234, np.nan) == "0.6123" and cell(0.61234) == "0.6123"  # one seed: no std
    assert cell(np.nan, 0.1) == "" and cell(None) == "" and cell(np.nan, empty="-") == "-"
    assert cell(-0.0123, 0.004, sign="+") == "-0.0123 ± 0.0040" and cell(0.0123, sign="+") == "+0.0123"
    assert cell(61.2345, 1.5, digits=3) == "61.234 ± 1.500"


def test_markdown_rows_escape_a_pipe_inside_a_cell() -> None:
    lines = markdown_table(["A", "B"], [["x|y", 1], ["", 2.5]])
    assert lines == ["| A | B |", "|---|---|", "| x\\|y | 1 |", "|  | 2.5 |"]


def test_over_seeds_averages_a_seeds_folds_first(tmp_path) -> None:
    frame = pd.DataFrame({"key": ["a"] * 5 + ["b"], "seed": [0, 0, 1, 1, 2, 0],
                          "m": [0.1, 0.3, 0.4, 0.6, 0.9, 0.5]})  # a: seeds 0.2, 0.5, 0.9
    table = over_seeds(frame, ["key"], ["m"], lambda per_seed: {"twice": 2 * per_seed["m"].to_numpy()})
    a = table.set_index("key").loc["a"]
    assert a["m"] == pytest.approx(1.6 / 3) and a["m_std"] == pytest.approx(np.std([0.2, 0.5, 0.9], ddof=1))
    assert a["twice"] == pytest.approx(3.2 / 3) and (a["seeds"], a["runs"]) == (3, 5)
    assert list(table.columns) == ["key", "m", "m_std", "twice", "twice_std", "seeds", "runs"]
    assert table["key"].tolist() == ["a", "b"] and np.isnan(table.set_index("key").loc["b", "m_std"])


def test_a_label_holding_a_pipe_keeps_the_results_table_whole(tmp_path) -> None:
    runs = [fake_run(tmp_path, ["image"], "max", seed, 0.5 + seed / 10) for seed in (0, 1)]
    out = tmp_path / "t.csv"
    assert main(["table", "--runs", *map(str, runs), "--out", str(out), "--label", "image=WSL|i"]) == 0
    header, _, row = out.with_suffix(".md").read_text().splitlines()[:3]
    cells = re.split(r"(?<!\\)\|", row)  # a markdown reader splits a row at every unescaped |
    assert len(cells) == len(header.split("|")) and "WSL\\|i" in row


def test_rows_keep_the_order_given_and_group_a_seeds_folds(tmp_path) -> None:
    given = [fake_run(tmp_path, ["text"], "max", 1, 0.5, fold=0), fake_run(tmp_path, ["image"], "max", 0, 0.5),
             fake_run(tmp_path, ["text"], "max", 0, 0.5, fold=1), fake_run(tmp_path, ["text"], "max", 1, 0.5, fold=1)]
    runs = read_runs(given, {"text": "T"})
    assert [run.dir for run in runs] == list(map(str, given))
    rows = group_rows(runs)
    assert [row.labels["Features"] for row in rows] == ["T", "image"] and rows[0].pool == "max"
    assert {seed: [run.fold for run in folds] for seed, folds in rows[0].seeds().items()} == {1: [0, 1], 0: [1]}


def test_every_report_reads_a_runs_metrics_once(tmp_path, monkeypatch) -> None:
    """metrics.json is read once per run and table (the one reader hands the Runs on); the
    results table read each twice (rows, then the classes note)."""
    runs = [fake_run(tmp_path, ["image", "text"], "max", seed, 0.6) for seed in (0, 1, 2)]
    reads: list[str] = []
    original = Path.read_text

    def counted(path: Path, *args, **kwargs) -> str:
        if path.name == "metrics.json":
            reads.append(str(path.parent))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    assert main(["table", "--runs", *map(str, runs), "--out", str(tmp_path / "t.csv")]) == 0
    assert sorted(reads) == sorted(map(str, runs))

