"""Name -> extractor class. Each extractor's module (its `extract/catalog.py` entry names it)
registers the class when imported."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from extract.catalog import entry

if TYPE_CHECKING:  # the registry itself needs no torch (`python -m extract merge` imports it)
    from extract.base import Extractor

_REGISTRY: dict[str, type[Extractor]] = {}


def register(cls: type[Extractor]) -> type[Extractor]:
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Extractor]:
    module = entry(name).module  # an extractor the catalogue lacks is refused there
    if name not in _REGISTRY:
        importlib.import_module(module)
    if name not in _REGISTRY:
        raise ValueError(f"extract/catalog.py names {module} for extractor {name!r}, but importing it "
                         f"registered no class named {name!r} (@register with `name = {name!r}`)")
    return _REGISTRY[name]
