"""The HTML gallery: parsed as a browser would read it, every linked image exists."""

from __future__ import annotations

import base64

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from extract.store import base_attrs, write_store
from model.options import FeatureSpec, parse_options
from model.train import train
from report.__main__ import main
from tests.builders import StoreBuilder, make_toy

torch.set_num_threads(1)
FAST = ["epochs=10", "batch_size=32", "dim=16", "hidden=16", "warmup_epochs=2", "lr=0.01"]


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.cards: list[str] = []
        self.linked: list[str] = []  # images inside a link to themselves
        self.rows: list[str] = []  # the matrix row names listed on the page
        self._href: str | None = None
        self._row = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self._href = attrs.get("href")
        if tag == "img":
            self.images.append(attrs["src"])
            if self._href == attrs["src"]:
                self.linked.append(attrs["src"])
        if tag == "div" and attrs.get("class") == "card":
            self.cards.append(attrs["id"])
        self._row = tag == "li"

    def handle_endtag(self, tag):
        if tag == "a":
            self._href = None

    def handle_data(self, data):
        if self._row and data.strip():
            self.rows.append(data.strip())
            self._row = False


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from skimage import data as skdata

    root = tmp_path_factory.mktemp("gallery")
    manifest, stores = make_toy(root, n=120)
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    poster = root / "poster.png"
    Image.fromarray(skdata.astronaut()).resize((256, 256)).save(poster)
    frame["image"] = [str(poster) if k % 5 else "" for k in range(len(frame))]  # some have none
    frame.loc[3, "image"] = str(root / "missing.jpg")  # a listed but missing file
    frame["text"] = "A plot <b>with markup</b> that must be escaped. " * 20
    frame.to_csv(manifest, index=False)
    specs = [FeatureSpec(n, p) for n, p in stores.items()]
    runs = []
    for names in (["signal"], ["signal", "noise", "tags"]):
        run = root / "runs" / "_".join(names)
        train(manifest, [s for s in specs if s.name in names], "max", 0, run,
              options=parse_options(FAST), log=None)
        runs.append(run)
    faces, ocr = StoreBuilder(), StoreBuilder()
    for sid in frame["id"]:
        faces.add(sid, {"features": np.zeros((1, 4), np.float16),
                        "boxes": np.array([[60, 20, 140, 120]], np.float32), "scores": np.ones(1, np.float32)})
        # a low-score punctuation hit over the whole poster, as EasyOCR returns them
        ocr.add(sid, {"words": np.array(["SPACE", "<script>", ","], dtype=object),
                      "boxes": np.array([[10, 200, 80, 230], [90, 200, 200, 230], [0, 0, 255, 255]], np.float32),
                      "scores": np.array([0.9, 0.8, 0.17], np.float32)}, {"text": "SPACE <script> ,"})
    box = {"boxes": ((4,), np.float32), "scores": ((), np.float32)}
    write_store(root / "faces.h5", faces.build(base_attrs("faces", "backbone", 4, {}),
                                               {"features": ((4,), np.float16), **box}))
    write_store(root / "ocr.h5", ocr.build(base_attrs("ocr", "easyocr", 0, {}), {"words": ((), object), **box}))
    return root, manifest, runs


def test_gallery_page_links_only_existing_images(setup, capsys) -> None:
    root, manifest, runs = setup
    out = root / "site"
    args = ["gallery", "--manifest", str(manifest), "--runs", *map(str, runs), "--store", str(root / "faces.h5"),
            "--store", str(root / "ocr.h5"), "--out-dir", str(out), "--samples", "2", "--errors", "3"]
    assert main(args) == 0, capsys.readouterr().err
    html = (out / "index.html").read_text()
    parser = Links()
    parser.feed(html)
    assert len(parser.cards) == 5 and len(set(parser.cards)) == 5  # 2 chosen + 3 confident errors
    assert html.count("confident error") >= 3
    assert parser.images, "no image linked"
    for src in parser.images:
        assert not src.startswith(("/", "http:", "https:", "file:")), src  # relative links only
        assert (out / src).is_file() and (out / src).stat().st_size > 1000, src
    posters = [s for s in parser.images if s.endswith("_poster.png")]
    assert posters and all(Image.open(out / s).size[0] >= 256 for s in posters)
    assert "<script>" not in html
    assert "&lt;b&gt;with markup&lt;/b&gt;" in html  # text is escaped, not rendered
    # standalone.html (what the report embeds): the same cards, each image inside the page
    standalone = Links()
    standalone.feed((out / "standalone.html").read_text())
    assert standalone.cards == parser.cards and len(standalone.images) == len(parser.images)
    for src, inside in zip(parser.images, standalone.images):
        assert base64.b64decode(inside.removeprefix("data:image/png;base64,")) == (out / src).read_bytes()


def test_confident_errors_ranked_by_margin() -> None:
    from report.gallery import confident_errors
    from report.matrices import Combination

    combo = Combination(("set", "a+b", "a, b", "max"), "a, b", ["a", "b"], ["a", "b"], 0, ids=["x", "y", "z", "w"],
                        probabilities=np.array([[0.9, 0.1], [0.6, 0.2], [0.1, 0.2], [0.02, 0.9]]),
                        targets=np.array([[0, 0], [0, 0], [0, 0], [1, 1]]), classes=["c", "d"],
                        thresholds=np.full(4, 0.5))
    combo.finish()
    # x: wrong c at 0.9 (margin 0.4); y: wrong c at 0.6 (0.1); z: right; w: wrong c at 0.02 (0.48)
    assert confident_errors(combo, 5) == ["w", "x", "y"]
    assert confident_errors(combo, 1, exclude=["w"]) == ["x"]
    combo.thresholds[:] = [0.95, 0.7, 0.5, 0.05]  # each sample's run's own: x and y now predict nothing
    assert confident_errors(combo, 5) == ["w"]     # (right); w misses c (0.02 < 0.05)


def test_matrix_png_puts_the_poster_beside_the_matrix(setup, tmp_path) -> None:
    from report.matrices import load_combinations, modality_columns, write_sample

    root, manifest, runs = setup
    combos = load_combinations(runs)
    columns = modality_columns(combos)
    sid = combos[-1].ids[0]
    plain = write_sample(combos, columns, sid, tmp_path / "plain.png", "max")
    poster = Image.open(root / "poster.png")
    beside = write_sample(combos, columns, sid, tmp_path / "beside.png", "max", poster=poster)
    (w0, h0), (w1, h1) = Image.open(plain).size, Image.open(beside).size
    assert h1 == h0 and w1 > w0 + 0.5 * h0  # a square poster as tall as the figure, on the left


def test_gallery_links_full_size_images_names_rows_and_skips_low_score_ocr(setup, capsys) -> None:
    import re

    from report import plots

    root, manifest, runs = setup
    out = root / "site2"
    args = ["gallery", "--manifest", str(manifest), "--runs", *map(str, runs), "--store", str(root / "ocr.h5"),
            "--out-dir", str(out), "--samples", "2", "--errors", "2"]
    assert main(args) == 0, capsys.readouterr().err
    html = (out / "index.html").read_text()
    parser = Links()
    parser.feed(html)
    assert sorted(parser.linked) == sorted(parser.images)  # every image opens at full size
    assert len(parser.rows) == 2 * len(parser.cards) and parser.rows[:2] == ["signal", "signal, noise, tags"]
    # the low-score ',' is counted, not drawn: the poster's border keeps the photo's pixels
    assert html.count("2 ocr (1 below score 0.3 not drawn)") == len([s for s in parser.images if "poster" in s])
    original = np.asarray(Image.open(root / "poster.png").convert("RGB"), dtype=np.int16)
    for src in (s for s in parser.images if s.endswith("_poster.png")):
        drawn = np.asarray(Image.open(out / src).convert("RGB"), dtype=np.int16)
        assert np.abs(drawn[:, 0] - original[:, 0]).max() < 8 and np.abs(drawn[0] - original[0]).max() < 8
        assert (drawn[200:231, 10] == plots.DETECTION_COLOURS["ocr"]).all(1).any()  # SPACE is drawn
    # the matrix's row legend as the page shows it: at least 12 px high
    cap = re.search(r"\.matrix img \{ max-width: (\d+)px", html)
    for src in (s for s in parser.images if s.endswith("_matrix.png")):
        width = Image.open(out / src).size[0]
        scale = min(1.0, int(cap.group(1)) / width) if cap else 1.0
        assert plots.FOOTNOTE_PT * 120 / 72 * scale >= 12, (src, width, scale)


def test_file_names_are_unique_per_id() -> None:
    from report.matrices import safe_name

    ids = ["a/1", "a_1", "a 1", "a:1", "..", "", "00012", "film.1"]
    names = [safe_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert all(re.fullmatch(r"[\w.-]+", n) and n not in (".", "..") for n in names)
    assert safe_name("00012") == "00012" and safe_name("a_1") == "a_1"  # safe ids keep their name


def test_gallery_shows_both_views_of_importance(setup, tmp_path) -> None:
    from report.removal import read_removal, removal_path
    from report.robustness import write_robustness

    root, manifest, runs = setup
    write_robustness([runs[1]], tmp_path / "rob.csv")  # the multi-feature run
    out = tmp_path / "site"
    assert main(["gallery", "--manifest", str(manifest), "--runs", *map(str, runs), "--out-dir", str(out),
                 "--samples", "2", "--errors", "1", "--removal", str(removal_path(tmp_path / "rob.csv"))]) == 0
    html = (out / "index.html").read_text()
    assert html.count("Two views of importance") == 3  # every card
    item = next(iter(read_removal(removal_path(tmp_path / "rob.csv")).values()))
    sid = Links()
    sid.feed(html)
    j = item.ids.index(sid.cards[0])
    card = html.split(f'id="{sid.cards[0]}"')[1].split('class="card"')[0]
    assert f"{item.prob[j, 0]:.3f}" in card and f"{item.loss[j, 0]:+.3f}" in card


def test_cards_show_the_set_run_rather_than_its_collapsed_twin(setup, tmp_path) -> None:
    from report.gallery import main_combination
    from report.matrices import load_combinations

    root, manifest, runs = setup
    twin = tmp_path / "collapsed"
    specs = [FeatureSpec(n, root / f"{n}.h5") for n in ("signal", "noise", "tags")]
    train(manifest, specs, "max", 0, twin, options=parse_options(FAST + ["collapse.noise=mean"]), log=None)
    combos = load_combinations([runs[1], twin, runs[0]])
    assert [len(c.names) for c in combos] == [1, 3, 3]
    assert main_combination(combos).runs == [runs[1]]
