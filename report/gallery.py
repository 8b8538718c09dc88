"""A static HTML gallery of test samples: `python -m report gallery ... --out-dir results/D/gallery`.

One card per selected test sample: the poster with what the extractors found drawn on it (face
boxes, object boxes with class names, OCR words), the first lines of the text, the true labels
against the predicted ones with their probabilities (the max-pool run with the most modalities),
and the sample's feature importance matrix (the paper's Figures 2/3) with the poster beside it;
with `--removal` (the robustness output), the two views of importance side by side: per modality
the importance share and the removal effect (report/robustness.py).

Selection: the samples the importance matrices choose (`--samples`, config `importance_samples`;
report/matrices.py) plus the `--errors` most confident errors of that run: test samples whose
predicted label set differs from the true one, ranked by the largest |p - threshold| among their
wrong decisions. index.html links images relatively (`img/...`), so it opens from disk; each
image links to itself at full size, and the matrix rows are named in the page as well as in the
figure. standalone.html is the same page with its images inside it (data URIs, no links): one
file, which `snakemake --report` embeds. OCR rows scoring below `--ocr-min-score` (default 0.3, or the extractor's own
`min_confidence` if higher) are counted on the card but not drawn. File names come from
`report.matrices.safe_name` (unique per id). The page is rendered from
report/templates/gallery.html.j2 with Jinja2 (autoescaped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from core.atomic import atomic_write
from core.manifest import read_manifest
from extract.base import BadInput
from extract.image_files import load_rgb
from extract.store import read_store
from report.matrices import (Combination, choose_samples, load_combinations, modality_columns, safe_name,
                            truth, write_sample)

TEMPLATES = Path(__file__).with_name("templates")
TEXT_CHARS = 320  # characters of the text shown on a card
# OCR rows scoring below this are not drawn: EasyOCR (min_confidence 0 keeps every hit) returns
# punctuation at scores like 0.17 with a box over the whole poster, which hides what it did read.
OCR_MIN_SCORE = 0.3
STANDALONE = "standalone.html"  # the page with its images inside (one file; the report embeds it)


@dataclass
class Layer:
    """What one store found on the posters: boxes (n, 4) x1, y1, x2, y2 and a caption per box."""

    kind: str  # faces | objects | ocr
    boxes: dict[str, np.ndarray] = field(default_factory=dict)  # id -> (n, 4)
    captions: dict[str, list[str]] = field(default_factory=dict)  # id -> n captions
    hidden: dict[str, int] = field(default_factory=dict)  # id -> OCR rows below the score not drawn
    min_score: float = 0.0  # OCR: rows scoring below this are not drawn


def read_layer(path: str | Path, ids: Sequence[str], ocr_min_score: float = OCR_MIN_SCORE) -> Layer:
    """The boxes (and object class names or OCR words) of `ids` in one faces/objects/ocr store.
    OCR rows scoring below `ocr_min_score` (or the extractor's own `min_confidence`, if higher)
    are left out and counted in `hidden`."""
    probe = read_store(path, columns=[])
    kind = str(probe.attrs.get("extractor", ""))
    if kind not in ("faces", "objects", "ocr"):
        raise ValueError(f"--store {path}: a {kind or 'unknown'} store; give faces, objects or ocr stores")
    caption_column = {"objects": "labels", "ocr": "words"}.get(kind)
    scored = kind == "ocr" and "scores" in json.loads(probe.attrs.get("row_columns", "[]"))
    store = read_store(path, columns=["boxes"] + ([caption_column] if caption_column else [])
                       + (["scores"] if scored else []))
    names = json.loads(store.attrs["class_names"]) if kind == "objects" else None
    layer = Layer(kind)
    if kind == "ocr":
        kept = float(json.loads(store.attrs.get("config", "{}")).get("min_confidence", 0.0) or 0.0)
        layer.min_score = max(ocr_min_score, kept)
    for sid in ids:
        try:
            k = store.index(sid)
        except KeyError:
            continue
        rows = np.arange(int(store.offsets[k]), int(store.offsets[k + 1]))
        if scored:
            shown = store.rows["scores"][rows] >= layer.min_score
            layer.hidden[sid] = int((~shown).sum())
            rows = rows[shown]
        layer.boxes[sid] = np.asarray(store.rows["boxes"][rows], dtype=np.float32).reshape(-1, 4)
        if kind == "objects":
            layer.captions[sid] = [names[int(i)] for i in store.rows["labels"][rows]]
        elif kind == "ocr":
            layer.captions[sid] = [str(w) for w in store.rows["words"][rows]]
        else:
            layer.captions[sid] = [""] * len(rows)
    return layer


def found_text(layer: Layer, sample_id: str) -> str:
    """`3 faces`, or `2 ocr (1 below score 0.3 not drawn)`."""
    text = f"{len(layer.boxes.get(sample_id, ()))} {layer.kind}"
    hidden = layer.hidden.get(sample_id, 0)
    return text + (f" ({hidden} below score {layer.min_score:g} not drawn)" if hidden else "")


def confident_errors(combo: Combination, count: int, exclude: Sequence[str] = ()) -> list[str]:
    """The `count` test samples of `combo` whose predicted label set is wrong, most confident first."""
    if count < 1:
        return []
    probs, targets = combo.probabilities, combo.targets > 0  # (N, C)
    cut = combo.thresholds[:, None]  # (N, 1)
    wrong = (probs >= cut) != targets  # (N, C)
    confidence = np.where(wrong, np.abs(probs - cut), -1.0).max(1)  # (N,)
    order = np.argsort(-confidence, kind="stable")
    skip = set(exclude)
    chosen = [combo.ids[k] for k in order if confidence[k] >= 0 and combo.ids[k] not in skip]
    return chosen[:count]


def label_rows(combo: Combination, sample_id: str) -> list[dict]:
    """Per class, most probable first: name, probability, true, predicted (only classes that are
    true, predicted or among the 3 most probable)."""
    k = combo.row(sample_id)
    probs, targets = combo.probabilities[k], combo.targets[k] > 0
    top = set(np.argsort(-probs)[:3].tolist())
    rows = []
    for c in np.argsort(-probs):
        predicted = bool(probs[c] >= combo.thresholds[k])
        if targets[c] or predicted or c in top:
            rows.append({"name": combo.classes[c], "p": float(probs[c]), "true": bool(targets[c]),
                         "predicted": predicted})
    return rows


def threshold_text(thresholds: np.ndarray) -> str:
    """`0.35`, or `0.3-0.45` when the runs (folds) of the shown combination differ."""
    low, high = float(thresholds.min()), float(thresholds.max())
    return f"{low:g}" if low == high else f"{low:g}-{high:g} (per fold)"


def main_combination(combos: Sequence[Combination]) -> Combination:
    """The run whose predictions the cards show: the most modalities, trained on sets (a run
    with `collapse.NAME=mean` only when no other has as many modalities), the last given."""
    def rank(k: int) -> tuple[int, bool, int]:
        collapsed = bool((combos[k].metrics.get("config") or {}).get("collapse"))
        return len(combos[k].names), not collapsed, k

    return combos[max(range(len(combos)), key=rank)]


def removal_rows(combo: Combination, sample_id: str, removal: dict) -> list[dict]:
    """Per modality of `combo` (the gallery's main run) for one sample: its importance share
    beside the removal effect (probability change, its share, loss change); [] when the
    robustness output (`removal`: run folder -> report.removal.Removal) lacks the run."""
    import os

    k = combo.row(sample_id)
    for run in combo.runs:
        item = removal.get(os.path.normpath(str(run)))
        if k is None or item is None or sample_id not in item.ids:
            continue
        j = item.ids.index(sample_id)
        share = item.share[j]
        return [{"modality": label, "importance": float(combo.importance[k, m]), "share": float(share[m]),
                 "prob": float(item.prob[j, m]), "loss": float(item.loss[j, m])}
                for m, label in enumerate(combo.labels)]
    return []


def first_lines(text: str, limit: int = TEXT_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def write_gallery(manifest: str | Path, run_dirs: Sequence[str | Path], stores: Sequence[str | Path],
                  out_dir: str | Path, samples: int = 4, errors: int = 4, seed: int | None = 0,
                  labels: dict[str, str] | None = None, ocr_min_score: float | None = None,
                  removal: str | Path | None = None) -> Path:
    """Write `out_dir/index.html` and its images under `out_dir/img/`, and `out_dir/standalone.html`
    (the images inside it); returns index.html's path.
    `ocr_min_score` None: `OCR_MIN_SCORE`. `removal`: the robustness output's OUT_removal.h5, shown
    beside each card's importance."""
    from report import plots
    from report.removal import read_removal

    ocr_min_score = OCR_MIN_SCORE if ocr_min_score is None else ocr_min_score
    labels = labels or {}
    combos = load_combinations(run_dirs, labels, "max", seed)
    if not combos:
        raise ValueError("no max-pool run with an importance.h5 among --runs; the gallery needs them")
    columns = modality_columns(combos)
    main = main_combination(combos)
    chosen = choose_samples(combos, columns, samples)
    picked = [(sid, "chosen") for sid in chosen]
    picked += [(sid, "confident error") for sid in confident_errors(main, errors, chosen)]
    effects = read_removal(removal) if removal else {}
    frame = read_manifest(manifest).set_index("id")
    ids = [sid for sid, _ in picked]
    layers = [read_layer(path, ids, ocr_min_score) for path in stores]
    out_dir = Path(out_dir)
    img_dir = out_dir / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    cards = []
    for sid, why in picked:
        row = frame.loc[sid] if sid in frame.index else None
        image_path = str(row["image"]) if row is not None else ""
        poster, note = None, ""
        if image_path:
            try:
                poster = load_rgb(image_path)
            except BadInput as err:
                note = str(err)
        else:
            note = "no image"
        name = safe_name(sid)
        card = {"id": sid, "why": why, "poster": None, "matrix": f"img/{name}_matrix.png", "note": note,
                "text": first_lines(row["text"]) if row is not None else "",
                "title": str(row["title"]) if row is not None and "title" in row.index else "",
                "truth": truth(combos, sid), "labels": label_rows(main, sid) if main.row(sid) is not None else [],
                "found": [], "removal": removal_rows(main, sid, effects)}
        if poster is not None:
            drawn = [(layer.kind, layer.boxes.get(sid, np.zeros((0, 4))), layer.captions.get(sid, []))
                     for layer in layers]
            plots.detections_png(poster, drawn, img_dir / f"{name}_poster.png")
            card["poster"] = f"img/{name}_poster.png"
            card["found"] = [found_text(layer, sid) for layer in layers]
        write_sample(combos, columns, sid, img_dir / f"{name}_matrix.png", "max", poster=poster)
        cards.append(card)
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    template = env.get_template("gallery.html.j2")
    for name, embedded in (("index.html", False), (STANDALONE, True)):
        page = template.render(
            cards=cards, run=main.features, seed=main.seed, threshold=threshold_text(main.thresholds),
            combinations=[c.features for c in combos], task=main.task, embedded=embedded,
            inline=lambda path: data_uri(out_dir / path),
            ocr_min_score=max([layer.min_score for layer in layers if layer.kind == "ocr"], default=None))
        with atomic_write(out_dir / name) as tmp:
            tmp.write_text(page, encoding="utf-8")
    return out_dir / "index.html"


def data_uri(path: Path) -> str:
    """A PNG as a `data:` URI, for the page that holds its images."""
    import base64

    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")

