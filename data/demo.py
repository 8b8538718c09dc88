"""Compose the bundled demo dataset in MM-IMDb's on-disk format, deterministic for a seed.

Layout written under ``ROOT``::

    dataset/<7-digit id>.jpeg   poster
    dataset/<7-digit id>.json   {"genres": [...], "plot": [...], "title": ..., "year": ...}
    split.json                  {"train": [ids], "dev": [ids], "test": [ids]} (MM-IMDb proportions)
    cues.csv                    the planted cues of every movie (to check feature importance)

Every modality carries partial, noisy genre signal (tables in ``data.demo_assets``): the poster's
colour palette, a pasted real photograph (object), 0-4 pasted real faces, an optional tagline
(OCR: one genre cue word among neutral distractor words), and the plot text. Each reveals some
genres reliably and others weakly, sometimes shows a decoy of another genre, and is sometimes
absent. The SET_ONLY genres are cued only inside the ragged sets: their star's face among other
faces, and their word among the tagline's words; never in the palette, the photo or the plot.

    python -m data.demo --out ROOT [--n 480] [--seed 0]
"""
from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from data import demo_assets as A

# MM-IMDb split sizes (train / dev / test of 25,959 movies).
MMIMDB_SPLIT = (15552, 2608, 7799)
CUE_COLUMNS = (
    "id", "split", "genres", "palette_genre", "photo", "photo_genre", "photo_box", "n_faces",
    "face_sources", "face_boxes", "star_genres", "tagline", "tagline_genre", "tagline_cue", "tagline_box",
    "title_on_poster", "plot_informative", "plot_genres", "plot_entries", "image_missing",
)
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), pixels


@dataclass(frozen=True)
class DemoOptions:
    n: int = 480
    seed: int = 0
    width: int = 288
    height: int = 432
    jpeg_quality: int = 90


@dataclass
class Movie:
    id: str
    genres: list[str]
    title: str
    year: int
    plot: list[str]
    cues: dict[str, object] = field(default_factory=dict)
    poster: Image.Image | None = None


def _decoy(rng: np.random.Generator, modality: str) -> str:
    """A random genre for a decoy cue; outside the tagline never a SET_ONLY genre."""
    pool = A.GENRES if modality == "tagline" else [g for g in A.GENRES if g not in A.SET_ONLY]
    return pool[int(rng.integers(len(pool)))]


def _reveal(rng: np.random.Generator, modality: str, genres: list[str]) -> str:
    """The genre one cue of ``modality`` shows: a true genre, a decoy, or '' (no cue)."""
    for g in rng.permutation(genres):
        if rng.random() < A.REVEAL[modality][A.GENRES.index(g)]:
            return str(g)
    if rng.random() < A.DECOY[modality]:
        return _decoy(rng, modality)
    return ""


def _draw_genres(rng: np.random.Generator) -> list[str]:
    k = int(rng.choice(3, p=A.N_GENRES_P)) + 1
    chosen: list[int] = []
    for _ in range(k):
        p = A.GENRE_WEIGHT.copy()
        for c in chosen:
            p = p * A.AFFINITY[c]
        p[chosen] = 0.0
        chosen.append(int(rng.choice(len(A.GENRES), p=p / p.sum())))
    return [A.GENRES[i] for i in sorted(chosen)]


def _plot(rng: np.random.Generator, genres: list[str], year: int) -> tuple[list[str], list[str]]:
    """(plot entries, genres planted in the text)."""
    if rng.random() < A.P_PLOT_EMPTY:
        return [], []
    shown = [g for g in genres if rng.random() < A.REVEAL["plot"][A.GENRES.index(g)]]
    if rng.random() < A.DECOY["plot"]:
        decoy = _decoy(rng, "plot")
        shown += [decoy] if decoy not in shown else []
    names = rng.choice(A.NAMES, size=2, replace=False)
    fill = {"a": names[0], "b": names[1], "p": rng.choice(A.PLACES), "y": year}
    n_fill = int(rng.integers(1, 4)) if shown else int(rng.integers(2, 5))
    sentences = [s.format(**fill) for s in rng.choice(A.FILLER, size=n_fill, replace=False)]
    for g in shown:
        for clause in rng.choice(A.PLOT_CLAUSES[g], size=int(rng.integers(1, 3)), replace=False):
            sentences.append(f"{rng.choice(names)} {clause}.")
    sentences = [sentences[i] for i in rng.permutation(len(sentences))]
    entries = [" ".join(sentences)]
    if rng.random() < A.P_PLOT_TWO_ENTRIES and len(sentences) > 1:  # a shorter second synopsis
        short = " ".join(sentences[: int(rng.integers(1, len(sentences)))])
        entries = [short, entries[0]] if rng.random() < 0.5 else [entries[0], short]
    return entries, sorted(set(shown), key=A.GENRES.index)


def _background(rng: np.random.Generator, opt: DemoOptions, palette_genre: str) -> np.ndarray:
    top, bottom, block = A.PALETTES.get(palette_genre, A.NEUTRAL_PALETTE)
    jit = lambda c: np.clip(np.array(c, np.float32) + rng.normal(0, 12, 3).astype(np.float32), 0, 255)  # noqa: E731
    t = np.linspace(0.0, 1.0, opt.height, dtype=np.float32)[:, None, None]  # (H, 1, 1)
    img = rng.random((opt.height, opt.width, 3), dtype=np.float32) * 32.0 - 16.0  # (H, W, 3) noise, std ~9
    img += (1 - t) * jit(top) + t * jit(bottom)  # + (H, 1, 3) vertical gradient
    for _ in range(int(rng.integers(1, 4))):  # translucent blocks in the accent colour
        x0, y0 = rng.integers(0, opt.width - 40), rng.integers(0, opt.height - 40)
        w, h = rng.integers(30, opt.width // 2), rng.integers(20, opt.height // 3)
        img[y0:y0 + h, x0:x0 + w] = 0.5 * img[y0:y0 + h, x0:x0 + w] + 0.5 * jit(block)
    return np.clip(img, 0, 255).astype(np.uint8)


def _overlaps(box: Box, taken: list[Box], gap: int = 4) -> bool:
    return any(box[0] < b[2] + gap and b[0] < box[2] + gap and box[1] < b[3] + gap and b[1] < box[3] + gap
               for b in taken)


def _fit_text(draw: ImageDraw.ImageDraw, text: str, max_w: int) -> tuple[int, list[str]]:
    """Largest font size (cap height >= 22 px) and fewest lines (1-3, most balanced split) that
    fit ``max_w``."""
    sizes = (38, 35, 32)
    width = lambda lines, size: max(draw.textlength(s, font=A.font(size)) for s in lines)  # noqa: E731
    words = text.split()
    cuts = lambda k: itertools.combinations(range(1, len(words)), k - 1)  # noqa: E731
    for k in (1, 2, 3):
        splits = sorted(([" ".join(words[a:b]) for a, b in zip((0, *cut), (*cut, len(words)))] for cut in cuts(k)),
                        key=lambda lines: width(lines, sizes[-1]))
        for lines in splits:
            for size in sizes:
                if width(lines, size) <= max_w:
                    return size, lines
    raise ValueError(f"tagline {text!r} does not fit {max_w} px in three lines; shorten it in data/demo_assets.py")


def _render(rng: np.random.Generator, opt: DemoOptions, m: Movie) -> None:
    """Draw the poster of ``m`` and record its image cues in ``m.cues``."""
    c = m.cues
    W, H = opt.width, opt.height
    img = Image.fromarray(_background(rng, opt, str(c["palette_genre"])))
    draw = ImageDraw.Draw(img)
    taken: list[Box] = []
    if c["tagline"]:  # solid band at the top, high-contrast text
        size, lines = _fit_text(draw, str(c["tagline"]), W - 20)
        line_h = int(size * 1.2)
        y0 = int(rng.integers(8, 24))
        box = (4, y0, W - 4, y0 + line_h * len(lines) + 12)
        band, ink = [((0, 0, 0), (255, 255, 255)), ((255, 255, 255), (0, 0, 0)),
                     ((250, 220, 0), (0, 0, 0))][int(rng.integers(3))]
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=band)
        for i, line in enumerate(lines):
            draw.text((W // 2, y0 + 6 + line_h * i + line_h // 2), line, font=A.font(size), fill=ink, anchor="mm")
        c["tagline_box"] = box
        taken.append(box)
    if c["title_on_poster"]:
        draw.text((W // 2, H - 22), m.title.upper(), font=A.font(20), fill=(255, 255, 255), anchor="mm",
                  stroke_width=2, stroke_fill=(0, 0, 0))
        taken.append((0, H - 36, W, H))
    if c["photo"]:  # large, so an ImageNet CNN can recognise it
        src = A.photo(str(c["photo"]))
        top = (taken[0][3] if c["tagline"] else 20) + 6
        s = min((W - 24) / src.width, min(200, H - 80 - top) / src.height) * rng.uniform(0.85, 1.0)
        pw, ph = int(src.width * s), int(src.height * s)
        x0, y0 = int(rng.integers(6, W - pw - 5)), int(rng.integers(top, top + 40))
        img.paste(src.resize((pw, ph), Image.LANCZOS), (x0, y0))
        c["photo_box"] = (x0, y0, x0 + pw, y0 + ph)
        taken.append(c["photo_box"])
    boxes: list[Box] = []
    placed: list[str] = []
    for src_name in c["face_sources"]:
        lo, hi = (64, 90) if c["photo"] else (80, 124)
        for size in (int(rng.integers(lo, hi)), 60):
            for _ in range(60):
                x0, y0 = int(rng.integers(0, W - size)), int(rng.integers(0, H - size))
                box = (x0, y0, x0 + size, y0 + size)
                if not _overlaps(box, taken + boxes):
                    break
            else:
                continue
            face = A.face(src_name)
            img.paste(face.resize((size, size), Image.BICUBIC if face.width < size else Image.LANCZOS), box[:2])
            boxes.append(box)
            placed.append(src_name)
            break
    c["face_sources"] = placed  # the faces that found room
    c["star_genres"] = [g for g in c["star_genres"] if A.STARS[g] in placed]
    c["face_boxes"], c["n_faces"] = boxes, len(boxes)
    m.poster = img


def _tagline(rng: np.random.Generator, genre: str) -> tuple[str, str]:
    """(tagline, its cue word): `genre`'s cue word at a random place among distractor words;
    without a genre, distractors only (with P_PLAIN_TAGLINE) or no tagline."""
    if not genre and rng.random() >= A.P_PLAIN_TAGLINE:
        return "", ""
    count = int(rng.integers(A.TAGLINE_DISTRACTORS[0], A.TAGLINE_DISTRACTORS[1] + 1))
    words = [str(w) for w in rng.choice(A.DISTRACTOR_WORDS, size=count, replace=False)]
    cue = str(rng.choice(A.CUE_WORDS[genre])) if genre else ""
    if cue:
        words.insert(int(rng.integers(count + 1)), cue)
    return " ".join(words), cue


def _faces(rng: np.random.Generator, genres: list[str]) -> tuple[list[str], list[str]]:
    """(face sources in pasting order, genres whose star is among them). Each SET_ONLY genre's
    star with P_STAR, always beside 1-3 grey LFW faces; else Poisson(genre rate) LFW faces."""
    stars = [g for g in genres if g in A.STARS and rng.random() < A.P_STAR]
    rate = float(np.mean([A.FACE_RATE[A.GENRES.index(g)] for g in genres]))
    others = min(int(rng.poisson(rate)), 4 - len(stars))
    if stars:
        others = max(others, 1)
    taken = {int(s.split(":")[1]) for s in A.STARS.values() if s.startswith("lfw:")}
    lfw = [k for k in range(100) if k not in taken]
    faces = [A.STARS[g] for g in stars] + [f"lfw:{lfw[int(rng.integers(len(lfw)))]}" for _ in range(others)]
    return [faces[i] for i in rng.permutation(len(faces))], stars


def _movie(rng: np.random.Generator, opt: DemoOptions, movie_id: str) -> Movie:
    genres = _draw_genres(rng)
    title = f"{rng.choice(A.TITLE_WORDS[0])} {rng.choice(A.TITLE_WORDS[1])}"
    year = int(rng.integers(1950, 2015))
    plot, plot_genres = _plot(rng, genres, year)
    m = Movie(movie_id, genres, title, year, plot)
    missing = bool(rng.random() < A.P_IMAGE_MISSING)
    photo_genre = _reveal(rng, "photo", genres)
    photos = [p for p, g in A.PHOTOS.items() if g == photo_genre]
    tagline_genre = _reveal(rng, "tagline", genres)
    tagline, cue = _tagline(rng, tagline_genre)
    faces, stars = _faces(rng, genres)
    m.cues = {
        "palette_genre": _reveal(rng, "palette", genres),
        "photo": str(rng.choice(photos)) if photos else "", "photo_genre": photo_genre,
        "face_sources": faces, "star_genres": stars,
        "tagline": tagline, "tagline_genre": tagline_genre, "tagline_cue": cue,
        "title_on_poster": int(rng.random() < A.P_TITLE_ON_POSTER),
        "plot_informative": int(bool(plot_genres)), "plot_genres": plot_genres,
        "plot_entries": len(plot), "image_missing": int(missing),
    }
    if missing:  # nothing observable on a poster that does not exist
        m.cues.update(palette_genre="", photo="", photo_genre="", face_sources=[], face_boxes=[],
                      star_genres=[], n_faces=0, tagline="", tagline_genre="", tagline_cue="", title_on_poster=0)
    else:
        _render(rng, opt, m)
    return m


def _fmt(value: object) -> str:
    if isinstance(value, tuple):  # a box
        return " ".join(map(str, value))
    if isinstance(value, list):
        return ";".join(_fmt(v) for v in value) if value and isinstance(value[0], tuple) else "|".join(map(str, value))
    return str(value)


def compose_options(root: Path, opt: DemoOptions) -> None:
    root = Path(root)
    data = root / "dataset"
    data.mkdir(parents=True, exist_ok=True)
    for old in data.iterdir():  # a previous composition (other seed or n) must not linger
        if re.fullmatch(r"\d{7}\.(json|jpeg)", old.name):
            old.unlink()
    rng = np.random.default_rng(opt.seed)
    ids = [f"{i:07d}" for i in np.sort(rng.choice(3_000_000, size=opt.n, replace=False) + 1)]
    order = rng.permutation(opt.n)
    n_train = round(opt.n * MMIMDB_SPLIT[0] / sum(MMIMDB_SPLIT))
    n_dev = round(opt.n * MMIMDB_SPLIT[1] / sum(MMIMDB_SPLIT))
    parts = {"train": order[:n_train], "dev": order[n_train:n_train + n_dev], "test": order[n_train + n_dev:]}
    split = {name: sorted(ids[i] for i in idx) for name, idx in parts.items()}
    split_of = {i: name for name, members in split.items() for i in members}
    rows = []
    for k, movie_id in enumerate(ids):
        m = _movie(np.random.default_rng([opt.seed, k]), opt, movie_id)
        meta = {"genres": m.genres, "plot": m.plot, "title": m.title, "year": m.year}
        (data / f"{movie_id}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if m.poster is not None:
            buf = io.BytesIO()
            m.poster.save(buf, format="JPEG", quality=opt.jpeg_quality, subsampling=0)
            (data / f"{movie_id}.jpeg").write_bytes(buf.getvalue())
        row = {"id": movie_id, "split": split_of[movie_id], "genres": m.genres, **m.cues}
        rows.append({col: _fmt(row.get(col, "")) for col in CUE_COLUMNS})
    (root / "split.json").write_text(json.dumps(split, indent=2) + "\n")
    with open(root / "cues.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CUE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def compose(root: Path, n: int = 480, seed: int = 0) -> None:
    """Write the demo dataset of ``n`` movies under ``root`` (same seed => identical files)."""
    compose_options(Path(root), DemoOptions(n=n, seed=seed))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m data.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="dataset root (dataset/, split.json, cues.csv)")
    ap.add_argument("--n", type=int, default=480, help="number of movies (default 480)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = ap.parse_args(argv)
    if args.n < 10:
        ap.error("--n must be at least 10 so that every split gets movies")
    compose(args.out, n=args.n, seed=args.seed)
    print(f"wrote {args.n} movies to {args.out}")


if __name__ == "__main__":
    main()
