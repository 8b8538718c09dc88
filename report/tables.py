"""Every table dmms writes, written one way: `mean ± std` cells (`cell`), markdown rows
(`markdown_table`, a `|` inside a cell escaped), and TABLE.csv, TABLE.md and TABLE.html
(`write_csv_md`: the markdown rendered, what `snakemake --report` shows), each file whole through
`atomic_write`. `over_seeds` is the tables' one summary: mean and std over seeds per row, a
seed's runs (folds) averaged first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from core.atomic import atomic_write


def cell(mean: float | None, std: float | None = None, digits: int = 4, sign: str = "", empty: str = "") -> str:
    """`mean ± std` to `digits` decimals (`sign="+"`: the mean's sign always shown); the mean alone
    without a std (one seed); `empty` without a mean."""
    if mean is None or pd.isna(mean):
        return empty
    text = f"{mean:{sign}.{digits}f}"
    return text if std is None or pd.isna(std) else f"{text} ± {std:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A markdown table's lines: the header, its rule, one line per row of cells."""
    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header)] + [line(row) for row in rows]


def over_seeds(frame: pd.DataFrame, keys: Sequence[str], columns: Sequence[str],
               derive: Callable[[pd.DataFrame], dict[str, np.ndarray]] | None = None) -> pd.DataFrame:
    """Per `keys` group (in the order first given) the mean and `<column>_std` (ddof 1) over
    seeds of each of `columns`, a seed's rows (folds) averaged first, and the `seeds` and `runs`
    counts. `derive` computes further per-seed columns from the per-seed means (summarised too)."""
    keys, columns = list(keys), list(columns)
    per_seed = frame.groupby(keys + ["seed"], sort=False, dropna=False)[columns].mean().reset_index()
    if derive is not None:
        for name, values in derive(per_seed).items():
            per_seed[name] = values
            columns.append(name)
    grouped = per_seed.groupby(keys, sort=False)
    table = grouped[columns].mean()
    std = grouped[columns].std(ddof=1)
    for column in columns:
        table[f"{column}_std"] = std[column]
    table = table[[c for column in columns for c in (column, f"{column}_std")]]
    table["seeds"] = grouped["seed"].nunique()
    table["runs"] = frame.groupby(keys, sort=False).size()
    return table.reset_index()


def write_csv(path: str | Path, frame: pd.DataFrame, float_format: str | None = "%.6f") -> Path:
    """A table's CSV (floats to 6 decimals; None: every digit, to be read back), written atomically."""
    path = Path(path)
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format)
    return path


HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: sans-serif; margin: 1em; }} table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 2px 6px; text-align: left; }} th {{ background: #eee; }}</style>
</head><body>
{body}</body></html>
"""


def markdown_html(markdown: str, title: str) -> str:
    """A table's markdown rendered as a standalone HTML page (markdown-it-py, tables enabled)."""
    from html import escape

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return HTML_PAGE.format(title=escape(title), body=body)


def write_csv_md(out: str | Path, frame: pd.DataFrame, markdown: str) -> tuple[Path, Path]:
    """TABLE.csv (`write_csv`), TABLE.md beside it and TABLE.html (the markdown rendered, what
    `snakemake --report` shows), each written atomically."""
    md = Path(out).with_suffix(".md")
    with atomic_write(md) as tmp:
        tmp.write_text(markdown)
    with atomic_write(md.with_suffix(".html")) as tmp:
        tmp.write_text(markdown_html(markdown, md.stem), encoding="utf-8")
    return write_csv(out, frame), md
