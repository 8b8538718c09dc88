"""MM-IMDb adapter: `ROOT/dataset/<id>.json|.jpeg` + `ROOT/split.json` -> manifest rows.

Used for the real dataset and for the composed demo alike. Text = the movie's `plot` entries
(a list of strings) as chosen by `plot`: `all` joins every entry with a single space (the paper:
"We concatenate all sentences as one for an individual sample"; the text extractor clips to 512
tokens), `longest` keeps the longest entry, `first` the first; whitespace inside an entry is
collapsed and empty entries are dropped. Labels = the movie's genres among the 23 MM-IMDb genres (GMU frequency order), optionally
restricted to a subset; split from split.json. A missing plot or image keeps the sample with that
modality absent (empty `text` / `image`) and is counted.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pandas as pd

log = logging.getLogger("data.mmimdb")

# The 23 genres of MM-IMDb in the order of the GMU paper (most to least frequent).
GENRES = ("Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror",
          "Documentary", "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History",
          "Music", "Animation", "Musical", "Western", "Sport", "Short", "Film-Noir")
SPLITS = ("train", "dev", "test")
PLOTS = ("all", "longest", "first")  # how a movie's plot entries become its text


def read_split(root: Path) -> dict[str, str]:
    """id -> split name, from ROOT/split.json."""
    path = root / "split.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: an MM-IMDb root holds split.json and dataset/")
    split = json.loads(path.read_text())
    missing = [s for s in SPLITS if s not in split]
    if missing:
        raise ValueError(f"{path} lacks the lists {missing}; expected keys {list(SPLITS)}")
    out: dict[str, str] = {}
    for name in SPLITS:
        for raw in split[name]:
            sid = normalise_id(raw)
            if sid in out:
                raise ValueError(f"{path}: id {sid} is in both {out[sid]} and {name}")
            out[sid] = name
    return out


def normalise_id(raw: object) -> str:
    """MM-IMDb ids are 7-digit, zero-padded strings (split.json may hold them as ints)."""
    text = str(raw).strip()
    return text.zfill(7) if text.isdigit() else text


def plot_text(meta: dict, plot: str = "all") -> str:
    """The text of one movie from its `plot` entries (see the module docstring); '' when none."""
    entries = meta.get("plot") or []
    if isinstance(entries, str):
        entries = [entries]
    plots = [" ".join(str(p).split()) for p in entries if p and str(p).strip()]
    if not plots:
        return ""
    if plot == "all":
        return " ".join(plots)
    if plot == "longest":
        return max(plots, key=len)
    if plot == "first":
        return plots[0]
    raise ValueError(f"plot={plot!r}: use one of {', '.join(PLOTS)}")


def manifest_from_mmimdb(root: str | Path, genres: list[str] | None = None,
                         plot: str = "all") -> tuple[pd.DataFrame, Counter]:
    """The manifest rows of an MM-IMDb-format folder and counts of what was missing; `plot`:
    all | longest | first (module docstring)."""
    if plot not in PLOTS:
        raise ValueError(f"plot={plot!r}: use one of {', '.join(PLOTS)}")
    root = Path(root)
    keep = list(GENRES) if not genres else list(genres)
    unknown = [g for g in keep if g not in GENRES]
    if unknown:
        raise ValueError(f"unknown genres {unknown}; MM-IMDb genres are {', '.join(GENRES)}")
    order = [g for g in GENRES if g in keep]
    split = read_split(root)
    counts: Counter = Counter()
    rows = []
    for sid, part in split.items():
        meta_path = root / "dataset" / f"{sid}.json"
        if not meta_path.is_file():
            counts["no_json"] += 1
            log.warning("sample %s: %s is missing; sample skipped (no labels)", sid, meta_path)
            continue
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            counts["bad_json"] += 1
            log.warning("sample %s: %s is not valid JSON (%s); sample skipped", sid, meta_path, err)
            continue
        text = plot_text(meta, plot)
        image = root / "dataset" / f"{sid}.jpeg"
        counts["no_plot"] += not text
        counts["no_image"] += not image.is_file()
        movie_genres = set(meta.get("genres") or [])
        labels = [g for g in order if g in movie_genres]
        counts["no_label"] += not labels
        rows.append({"id": sid, "split": part, "image": str(image) if image.is_file() else "",
                     "text": text, "labels": "|".join(labels), "title": str(meta.get("title", ""))})
    counts["samples"] = len(rows)
    frame = pd.DataFrame(rows, columns=["id", "split", "image", "text", "labels", "title"])
    return frame, counts
