"""Name -> extractor class. Each extractor module registers itself when imported."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry itself needs no torch (`python -m extract merge` imports it)
    from extract.base import Extractor

# extractor name -> module that defines it (imported lazily: each pulls in its own libraries)
MODULES = {
    "image": "extract.image",
    "text": "extract.text",
    "faces": "extract.faces",
    "objects": "extract.objects",
    "boxes": "extract.boxes",
    "ocr": "extract.ocr",
    "index": "extract.index",
}

# Options that pick weight files (an image backbone, a named model or folder, pretrained or not, a
# faces weight file), whatever the extractor: the only options the `fetch_weights` job depends on,
# so changing another one (e.g. faces `min_face_size`) re-extracts without fetching again.
WEIGHT_OPTIONS = ("backbone", "model", "pretrained", "weights")
# Extractors that load no weight files: no `fetch_weights` job (index reads manifest columns or
# hashes OCR words; built with its weight options alone it would lack its `column`).
WEIGHTLESS = ("index",)

_REGISTRY: dict[str, type[Extractor]] = {}


def register(cls: type[Extractor]) -> type[Extractor]:
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Extractor]:
    if name not in MODULES:
        raise KeyError(f"unknown extractor {name!r}; known: {', '.join(sorted(MODULES))}")
    if name not in _REGISTRY:
        importlib.import_module(MODULES[name])
    return _REGISTRY[name]
