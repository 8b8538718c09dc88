"""Every figure dmms draws. Functions take arrays, labels and text and write one PNG each; what
is drawn is computed elsewhere (report/matrices.py, report/importance.py, report/robustness.py).

matplotlib is imported on first use, with the Agg backend (no display needed), so importing
this module costs nothing for jobs that draw nothing.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

GREY = "#d9d9d9"  # cells that do not apply (NaN)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: str | Path, dpi: int) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    _plt().close(fig)
    return out


def heatmap(ax, matrix: np.ndarray, columns: Sequence[str], row_labels: Sequence[str],
            row_colors: Sequence[str] | None = None, fmt: str = "{:.2f}", cmap: str = "Blues",
            vmin: float = 0.0, vmax: float = 1.0, diverging: bool = False) -> object:
    """Heat map of `matrix` (rows, cols) with values written in; NaN cells grey and hatched.

    Sequential colours from `vmin` to `vmax` by default; `diverging` centres the colours on the
    middle of the range (for signed changes). Returns the image (for a colour bar)."""
    plt = _plt()
    colours = plt.get_cmap(cmap).with_extremes(bad=GREY)
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=colours, vmin=vmin, vmax=vmax, aspect="auto")
    rows, cols = matrix.shape
    span = max(vmax - vmin, 1e-12)
    for r in range(rows):
        for c in range(cols):
            value = matrix[r, c]
            if math.isnan(value):
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///",
                                           edgecolor="#bdbdbd", linewidth=0))
                continue
            level = (value - vmin) / span  # 0..1 along the colour map
            dark = abs(level - 0.5) > 0.3 if diverging else level > 0.55
            ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=10,
                    color="white" if dark else "black")
    ax.set_xticks(range(cols), columns, rotation=35, ha="right", fontsize=10)
    ax.set_yticks(range(rows), row_labels, fontsize=9)
    if row_colors is not None:
        for tick, color in zip(ax.get_yticklabels(), row_colors):
            tick.set_color(color)
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return image


def matrix_size(rows: int, cols: int) -> tuple[float, float]:
    """Figure inches (width, height) of one importance matrix."""
    return 3.2 + 0.85 * cols, 1.9 + 0.48 * rows


FOOTNOTE_PT = 9  # the matrices' row legend: 15 px at 120 dpi (7 pt was ~5 px once the gallery scaled it)


def _footnote(fig, text: str) -> None:
    """Wrapped text under the axes; the constrained layout keeps the axes above it."""
    text = textwrap.fill(text, int(fig.get_figwidth() * 17 * 7 / FOOTNOTE_PT))
    fig.text(0.01, 0.005, text, fontsize=FOOTNOTE_PT, va="bottom", ha="left", color="#444444")
    bottom = (0.13 * FOOTNOTE_PT / 7 * (text.count("\n") + 1) + 0.08) / fig.get_figheight()
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))  # (left, bottom, width, height)


def sample_png(matrix: np.ndarray, columns: Sequence[str], row_labels: Sequence[str],
               row_colors: Sequence[str], title: str, footnote: str, out: str | Path,
               poster=None) -> Path:
    """One sample's importance matrix (rows, M) in [0, 1] (paper Figs. 2-3), with the sample's
    poster (a PIL image) on its left when given, as in the paper's figures."""
    plt = _plt()
    width, height = matrix_size(*matrix.shape)
    if poster is None:
        fig, ax = plt.subplots(figsize=(width + 1.2, height + 0.4), layout="constrained")
    else:
        side = (height + 0.4) * poster.width / max(poster.height, 1)  # poster as tall as the figure
        fig, (left, ax) = plt.subplots(1, 2, figsize=(width + 1.2 + side, height + 0.4), layout="constrained",
                                       width_ratios=(side, width + 1.2))
        left.imshow(np.asarray(poster.convert("RGB")))
        left.axis("off")
    image = heatmap(ax, matrix, columns, row_labels, row_colors)
    ax.set_ylabel("combination: predicted labels", fontsize=9)
    ax.set_title(title, fontsize=11)
    fig.colorbar(image, ax=ax, shrink=0.8, label="importance (share of dims)")
    _footnote(fig, footnote)
    return _save(fig, out, 120)


def samples_png(panels: Sequence[tuple[np.ndarray, Sequence[str], Sequence[str], str]],
                columns: Sequence[str], footnote: str, out: str | Path) -> Path:
    """Several samples' matrices side by side, 4 per row; `panels` holds per sample
    `(matrix (rows, M), row labels, row colours, title)`."""
    plt = _plt()
    width, height = matrix_size(panels[0][0].shape[0], len(columns))
    cols = min(len(panels), 4)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, (height + 0.4) * rows + 0.4),
                             layout="constrained", squeeze=False)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    image = None
    for ax, (matrix, row_labels, row_colors, title) in zip(axes.flat, panels):
        image = heatmap(ax, matrix, columns, row_labels, row_colors)
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=list(axes.flat), shrink=0.8, label="importance (share of dims)")
    _footnote(fig, footnote)
    return _save(fig, out, 110)


def overview_png(matrix: np.ndarray, columns: Sequence[str], row_labels: Sequence[str], title: str,
                 out: str | Path) -> Path:
    """Mean importance per combination (rows) and modality (columns), in [0, 1]."""
    plt = _plt()
    width, height = matrix_size(*matrix.shape)
    fig, ax = plt.subplots(figsize=(width + 2.2, height + 0.2), layout="constrained")
    image = heatmap(ax, matrix, columns, row_labels)
    ax.set_title(title, fontsize=11)
    fig.colorbar(image, ax=ax, shrink=0.8, label="mean importance")
    return _save(fig, out, 120)


def importance_bars(panels: Sequence[tuple[Sequence[str], np.ndarray, np.ndarray, str]],
                    out: str | Path, removal: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None) -> Path:
    """One bar panel per run group: `(modality labels, mean (M,), std (M,), title)`; with
    `removal` (per panel `(mean (M,), std (M,))` of the removal-effect share, or None), its bars
    beside the importance bars."""
    plt = _plt()
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for k, (ax, (labels, mean, std, title)) in enumerate(zip(axes.flat, panels)):
        x = np.arange(len(labels))
        second = removal[k] if removal else None
        width = 0.4 if second is not None else 0.8
        ax.bar(x - (width / 2 if second is not None else 0), mean, width, yerr=std, capsize=3, color="tab:blue",
               label="importance share")
        if second is not None:
            ax.bar(x + width / 2, second[0], width, yerr=second[1], capsize=3, color="tab:orange",
                   label="removal share (|Δp|)")
            ax.legend(fontsize=7)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("importance (share)")
        ax.set_title(title, fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, out, 120)


def robustness_png(delta: np.ndarray, columns: Sequence[str], row_labels: Sequence[str], metric: str,
                   title: str, footnote: str, out: str | Path) -> Path:
    """Change of `metric` vs the intact input, (rows, conditions); NaN where a condition does not
    apply to a row. Red = worse, blue = better, symmetric around 0."""
    plt = _plt()
    finite = np.abs(delta[np.isfinite(delta)])
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 0.05
    rows, cols = delta.shape
    fig, ax = plt.subplots(figsize=(3.6 + 0.95 * cols, 2.2 + 0.42 * rows), layout="constrained")
    image = heatmap(ax, delta, columns, row_labels, fmt="{:+.3f}", cmap="RdBu", vmin=-limit, vmax=limit,
                    diverging=True)
    ax.set_title(title, fontsize=11)
    fig.colorbar(image, ax=ax, shrink=0.8, label=f"{metric} change vs intact")
    _footnote(fig, footnote)
    return _save(fig, out, 120)


# ---------------------------------------------------------------------------------------------
# posters with detections (the gallery)

DETECTION_COLOURS = {"faces": (214, 39, 40), "objects": (31, 119, 180), "ocr": (44, 160, 44)}


def _font(size: int):
    """DejaVu Sans from matplotlib's own files (no system fonts needed)."""
    import matplotlib
    from PIL import ImageFont

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)


def detections_png(image, layers: Sequence[tuple[str, np.ndarray, Sequence[str]]], out: str | Path) -> Path:
    """The poster (PIL image) with each layer's boxes drawn: `layers` holds (kind, boxes (n, 4)
    x1, y1, x2, y2 in the image's pixels, n captions) per kind (faces, objects, ocr)."""
    from PIL import ImageDraw

    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 250))
    font = _font(max(11, round(max(canvas.size) / 40)))
    for kind, boxes, captions in layers:
        colour = DETECTION_COLOURS.get(kind, (0, 0, 0))
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        for box, caption in zip(boxes, list(captions) + [""] * len(boxes)):
            x1, y1, x2, y2 = (float(v) for v in box)
            draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
            if caption:
                left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
                y = max(0.0, y1 - (bottom - top) - 3)  # the caption sits on the box's top edge
                draw.rectangle((x1, y, x1 + right - left + 4, y + bottom - top + 3), fill=colour)
                draw.text((x1 + 2 - left, y + 1 - top), caption, fill=(255, 255, 255), font=font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
