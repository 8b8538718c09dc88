"""The demo dataset composer: determinism, MM-IMDb layout, planted cues (offline, CPU)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data import demo, demo_assets
from data.mmimdb import GENRES as MMIMDB_GENRES

N = 40


def _decoded(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _cues(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "cues.csv", newline="") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def _box(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    demo.compose(out, n=N, seed=0)
    return out


def test_same_seed_gives_identical_files(root: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    demo.compose(again, n=N, seed=0)
    for name in ("split.json", "cues.csv"):
        assert (root / name).read_bytes() == (again / name).read_bytes(), name
    files = sorted(p.name for p in (root / "dataset").iterdir())
    assert files == sorted(p.name for p in (again / "dataset").iterdir())
    for name in files:
        a, b = root / "dataset" / name, again / "dataset" / name
        if name.endswith(".json"):
            assert a.read_bytes() == b.read_bytes(), name
        else:
            assert np.array_equal(_decoded(a), _decoded(b)), name


def test_other_seed_differs(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    demo.compose(other, n=N, seed=1)
    assert (root / "split.json").read_bytes() != (other / "split.json").read_bytes()
    assert (root / "cues.csv").read_bytes() != (other / "cues.csv").read_bytes()


def test_mmimdb_layout(root: Path) -> None:
    split = json.loads((root / "split.json").read_text())
    assert sorted(split) == ["dev", "test", "train"]
    ids = [i for part in split.values() for i in part]
    assert len(ids) == len(set(ids)) == N
    assert all(isinstance(i, str) and len(i) == 7 and i.isdigit() for i in ids)
    total = sum(demo.MMIMDB_SPLIT)
    for name, size in zip(("train", "dev", "test"), demo.MMIMDB_SPLIT):
        assert abs(len(split[name]) / N - size / total) < 0.03, name
    for i in ids:
        meta = json.loads((root / "dataset" / f"{i}.json").read_text())
        assert isinstance(meta["title"], str) and meta["title"]
        assert isinstance(meta["plot"], list) and all(isinstance(p, str) and p for p in meta["plot"])
        assert 1 <= len(meta["genres"]) <= 3 and len(set(meta["genres"])) == len(meta["genres"])
        assert set(meta["genres"]) <= set(demo_assets.GENRES) <= set(MMIMDB_GENRES)
    jpegs = {p.stem for p in (root / "dataset").glob("*.jpeg")}
    assert jpegs <= set(ids) and len(jpegs) >= N - 3
    with Image.open(root / "dataset" / f"{sorted(jpegs)[0]}.jpeg") as im:
        assert im.format == "JPEG" and im.size == (demo.DemoOptions.width, demo.DemoOptions.height)


def test_some_movies_have_two_plot_entries_of_different_length(root: Path) -> None:
    plots = [json.loads(p.read_text())["plot"] for p in (root / "dataset").glob("*.json")]
    two = [p for p in plots if len(p) == 2]
    assert two and all(len(a) != len(b) for a, b in two)


def test_cues_match_the_files(root: Path) -> None:
    cues = _cues(root)
    split = json.loads((root / "split.json").read_text())
    assert set(cues) == {i for part in split.values() for i in part}
    W, H = demo.DemoOptions.width, demo.DemoOptions.height
    for i, c in cues.items():
        meta = json.loads((root / "dataset" / f"{i}.json").read_text())
        assert c["genres"].split("|") == meta["genres"]
        assert i in split[c["split"]]
        assert int(c["plot_entries"]) == len(meta["plot"])
        assert (c["plot_informative"] == "1") == bool(c["plot_genres"])
        for g in filter(None, c["plot_genres"].split("|")):  # planted plot genres show in the text
            assert any(clause in " ".join(meta["plot"]) for clause in demo_assets.PLOT_CLAUSES[g])
        assert (c["image_missing"] == "1") != (root / "dataset" / f"{i}.jpeg").is_file()
        n_faces = int(c["n_faces"])
        assert 0 <= n_faces <= 4
        assert len(list(filter(None, c["face_sources"].split("|")))) == n_faces
        boxes = [_box(b) for b in filter(None, c["face_boxes"].split(";"))] + (
            [_box(c["photo_box"])] if c["photo_box"] else []) + ([_box(c["tagline_box"])] if c["tagline_box"] else [])
        assert len(boxes) == n_faces + bool(c["photo"]) + bool(c["tagline"])
        assert all(0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H for x0, y0, x1, y1 in boxes)
        assert all(x1 - x0 >= 60 for x0, _, x1, _ in boxes[:n_faces])  # large enough for MTCNN
        assert c["photo"] == "" or demo_assets.PHOTOS[c["photo"]] == c["photo_genre"]
        words = c["tagline"].split()
        assert c["tagline_cue"] == "" or c["tagline_cue"] in demo_assets.CUE_WORDS[c["tagline_genre"]]
        assert [w for w in words if w not in demo_assets.DISTRACTOR_WORDS] == ([c["tagline_cue"]] if c["tagline_cue"] else [])
        assert c["tagline"] == "" or 2 <= len(words) - bool(c["tagline_cue"]) <= 3  # one cue among distractors
    rows = list(cues.values())
    # every cue kind occurs, and cues are partial: each is missing on some movies
    for col in ("photo", "tagline", "palette_genre", "plot_genres"):
        assert 0 < sum(bool(r[col]) for r in rows) < len(rows), col
    assert len({r["n_faces"] for r in rows}) >= 3


def test_set_only_genres_are_cued_inside_the_sets_only(tmp_path: Path) -> None:
    """Thriller, Horror and Sci-Fi show in no palette, photo or plot; their cues are their star's
    face, always among other faces, and their tagline word."""
    demo.compose(tmp_path, n=160, seed=2)
    rows = list(_cues(tmp_path).values())
    set_only = set(demo_assets.SET_ONLY)
    assert set_only == set(demo_assets.STARS) and not set_only & set(demo_assets.PALETTES)
    assert not set_only & set(demo_assets.PHOTOS.values()) and not set_only & set(demo_assets.PLOT_CLAUSES)
    starred = 0
    for r in rows:
        genres, stars = set(r["genres"].split("|")), set(filter(None, r["star_genres"].split("|")))
        faces = list(filter(None, r["face_sources"].split("|")))
        assert not {r["palette_genre"], r["photo_genre"]} & set_only
        assert not set(filter(None, r["plot_genres"].split("|"))) & set_only
        assert stars <= genres & set_only and {demo_assets.STARS[g] for g in stars} <= set(faces)
        assert not set(faces) & {demo_assets.STARS[g] for g in set_only - stars}  # a star means its genre
        assert not stars or len(faces) > len(stars)  # never alone: one face of the set carries it
        starred += bool(stars)
    assert starred >= 10
    assert any(r["tagline_genre"] in set_only and set(r["genres"].split("|")) & set_only for r in rows)


def test_tagline_posters_have_their_text_band(root: Path) -> None:
    bands = ((0, 0, 0), (255, 255, 255), (250, 220, 0))
    tagged = [c for c in _cues(root).values() if c["tagline"]]
    assert tagged
    for c in tagged:
        x0, y0, x1, y1 = _box(c["tagline_box"])
        assert y1 - y0 >= 40 and x1 - x0 >= 200  # large text on a wide band
        region = _decoded(root / "dataset" / f"{c['id']}.jpeg")[y0:y1, x0:x1].astype(int)
        share = [(np.abs(region - np.array(b)).max(-1) < 40).mean() for b in bands]
        band = int(np.argmax(share))
        assert share[band] > 0.5, c["id"]  # a solid band ...
        ink = (255, 255, 255) if band == 0 else (0, 0, 0)
        assert (np.abs(region - np.array(ink)).max(-1) < 60).mean() > 0.05, c["id"]  # ... with text on it


def test_every_tagline_fits_in_large_type() -> None:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (8, 8)))
    widest = sorted(demo_assets.DISTRACTOR_WORDS, key=lambda w: -draw.textlength(w, font=demo_assets.font(32)))[:3]
    cues = [w for words in demo_assets.CUE_WORDS.values() for w in words]
    for cue in cues:  # the widest taglines: each cue word beside the three widest distractors
        for place in range(4):
            text = " ".join(widest[:place] + [cue] + widest[place:])
            size, lines = demo._fit_text(draw, text, demo.DemoOptions.width - 20)
            assert size >= 32 and 1 <= len(lines) <= 3, text  # DejaVu Bold cap height ~0.73 em >= 22 px


def test_posters_without_tagline_have_no_band(root: Path) -> None:
    plain = [c for c in _cues(root).values() if not c["tagline"] and c["image_missing"] == "0"]
    assert plain and all(c["tagline_box"] == "" for c in plain)


def test_cli_writes_and_replaces_a_dataset(tmp_path: Path) -> None:
    demo.main(["--out", str(tmp_path), "--n", "12", "--seed", "3"])
    assert len(list((tmp_path / "dataset").glob("*.json"))) == 12
    demo.main(["--out", str(tmp_path), "--n", "10", "--seed", "4"])  # no stale files remain
    split = json.loads((tmp_path / "split.json").read_text())
    assert {p.stem for p in (tmp_path / "dataset").glob("*.json")} == {i for v in split.values() for i in v}
    with pytest.raises(SystemExit):
        demo.main(["--out", str(tmp_path), "--n", "3"])
