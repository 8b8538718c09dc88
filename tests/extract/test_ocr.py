"""OCR: EasyOCR (offline weights) reads rendered taglines, in reading order; bad images are recorded."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from extract.__main__ import main
from extract.ocr import OcrExtractor, OcrOptions, quad_to_box, reading_order
from extract.store import read_store

FONT = Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans-Bold.ttf"


def render(size: tuple[int, int], lines: list[tuple[tuple[int, int], str]], points: int = 22) -> Image.Image:
    """Light text on a dark poster-like background, each string at its (x, y)."""
    img = Image.new("RGB", size, (24, 22, 40))
    draw = ImageDraw.Draw(img)
    draw.rectangle((size[0] // 5, size[1] // 2, size[0] * 4 // 5, size[1] - 20), fill=(120, 40, 30))
    font = ImageFont.truetype(str(FONT), points)
    for xy, text in lines:
        draw.text(xy, text, font=font, fill=(240, 232, 200))
    return img


@pytest.fixture(scope="module")
def ocr() -> OcrExtractor:
    return OcrExtractor("easyocr-en", torch.device("cpu"), OcrOptions())


def test_quad_to_box_is_the_axis_aligned_hull():
    assert quad_to_box([[10, 5], [50, 8], [48, 30], [9, 27]]) == [9.0, 5.0, 50.0, 30.0]


def test_reading_order_groups_lines_by_vertical_overlap():
    boxes = np.array([[150, 94, 220, 118],   # DELTA: line 2, right, sits a little higher
                      [10, 40, 90, 62],      # ALPHA: line 1, left
                      [10, 100, 120, 124],   # CHARLIE: line 2, left
                      [150, 46, 230, 68]],   # BRAVO: line 1, right, a little lower
                     dtype=np.float32)
    assert reading_order(boxes) == [1, 3, 2, 0]
    assert reading_order(np.zeros((0, 4), np.float32)) == []


def test_reads_a_poster_tagline(ocr):
    poster = render((192, 288), [((14, 40), "FEAR THE"), ((44, 70), "NIGHT")])
    out = ocr.read(np.asarray(poster))
    words = " ".join(out.rows["words"]).upper().split()
    assert {"FEAR", "THE", "NIGHT"} <= set(words)
    assert out.samples["text"].upper().split() == ["FEAR", "THE", "NIGHT"]
    boxes = out.rows["boxes"]
    assert boxes.dtype == np.float32 and boxes.shape == (len(out.rows["words"]), 4)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert np.all(boxes >= -1) and np.all(boxes[:, 2] <= 193) and np.all(boxes[:, 3] <= 289)
    assert np.all((out.rows["scores"] > 0.5) & (out.rows["scores"] <= 1))


def test_text_follows_reading_order_on_two_lines(ocr):
    # Words far apart are separate boxes; the right-hand word of line 2 sits higher than its
    # left-hand neighbour, so sorting by top edge alone would put DELTA before CHARLIE.
    image = render((420, 200), [((10, 40), "ALPHA"), ((260, 48), "BRAVO"),
                                ((10, 112), "CHARLIE"), ((260, 104), "DELTA")])
    out = ocr.read(np.asarray(image))
    assert out.samples["text"].upper().split() == ["ALPHA", "BRAVO", "CHARLIE", "DELTA"]
    assert out.samples["text"] == " ".join(out.rows["words"])


def test_min_confidence_drops_rows(ocr):
    image = np.asarray(render((192, 288), [((14, 40), "FEAR THE")]))
    ocr.options.min_confidence = 1.01
    try:
        out = ocr.read(image)
    finally:
        ocr.options.min_confidence = 0.0
    assert len(out.rows["words"]) == 0 and out.rows["boxes"].shape == (0, 4) and out.samples["text"] == ""


@pytest.mark.parametrize("mag_ratio", [1.0, 0.5])
def test_tiny_images_read_as_zero_words(ocr, mag_ratio):
    """1 x 1, one-pixel strips and a few pixels of noise: no text, and no failure (at half
    magnification a 1-pixel side would round to 0 in EasyOCR's resize, which OpenCV refuses)."""
    rng = np.random.default_rng(0)
    ocr.options.mag_ratio = mag_ratio
    try:
        for shape in [(1, 1, 3), (1, 300, 3), (300, 1, 3), (2, 3, 3), (5, 7, 3)]:
            out = ocr.read(rng.integers(0, 256, shape, dtype=np.uint8))
            assert len(out.rows["words"]) == 0 and out.rows["boxes"].shape == (0, 4), shape
            assert out.samples["text"] == ""
    finally:
        ocr.options.mag_ratio = 1.0


def test_detector_size_follows_easyocr():
    from easyocr.imgproc import resize_aspect_ratio

    from extract.ocr import detector_size

    for shape, canvas, mag in [((1, 1), 2560, 0.5), ((3, 4000), 2560, 1.0), ((37, 53), 2560, 1.5), ((288, 192), 100, 1.0)]:
        img = np.zeros((*shape, 3), np.uint8)
        h, w = detector_size(*shape, canvas, mag)
        if min(h, w) < 1:
            continue  # EasyOCR's resize would fail here
        _, ratio, _ = resize_aspect_ratio(img, canvas, interpolation=1, mag_ratio=mag)
        assert (int(shape[0] * ratio), int(shape[1] * ratio)) == (h, w)
    assert min(detector_size(1, 1, 2560, 0.5)) == 0 and min(detector_size(1, 4000, 2560, 1.0)) == 0


def test_cli_records_bad_images_and_absent_ones(tmp_path):
    render((192, 288), [((30, 60), "HELLO")]).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    Image.new("RGB", (1, 1), (255, 255, 255)).save(tmp_path / "dot.png")
    pd.DataFrame({"id": ["0000001", "0000002", "0000003", "0000004"], "split": ["train", "dev", "test", "test"],
                  "image": [str(tmp_path / "good.png"), str(tmp_path / "bad.jpg"), "", str(tmp_path / "dot.png")],
                  "text": ["", "", "", ""], "labels": ["a", "b", "a", "b"]}).to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "ocr.h5"
    assert main(["ocr", "--manifest", str(tmp_path / "m.csv"), "--out", str(out), "--no-progress"]) == 0
    store = read_store(out)
    assert store.ids == ["0000001", "0000002", "0000003", "0000004"]
    assert set(store.rows) == {"words", "boxes", "scores"} and set(store.samples) == {"text"}
    assert list(store.failed) == ["0000002"] and "bad.jpg" in store.failed["0000002"]
    assert store.sample("0000001")["text"].upper() == "HELLO"
    assert store.counts.tolist()[1:] == [0, 0, 0] and store.samples["text"][2] == ""
    assert store.samples["text"][3] == ""  # the 1 x 1 image: no words, not a failure
    assert store.attrs["model"].startswith("EasyOCR ")  # a stand-in for the paper's OCR [3], recorded as one:
    assert store.attrs["substitute"].endswith("instead of the paper's OCR model from its reference [3], unnamed in its text")
    assert store.attrs["dim"] == 0 and store.attrs["extractor"] == "ocr"
    assert "craft_mlt_25k.pth" in store.attrs["weights"]
    assert store.attrs["row_unit"].startswith("text box")  # a `words` row is a box: maybe several words


def test_precision_other_than_fp32_is_refused():
    """EasyOCR always runs in float32: a store recording bf16 would not tell the truth."""
    with pytest.raises(ValueError, match="always runs in float32"):
        OcrExtractor("easyocr-en", torch.device("cpu"), OcrOptions(precision="bf16"))
