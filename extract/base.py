"""What every extractor is: options, a per-sample `prepare`, a batched `forward`.

The runner (`extract/run.py`) calls `prepare(item)` for each sample (decoding, cleaning; may raise
`BadInput`, which records the sample as failed and goes on), groups prepared samples into batches
of `options.batch_size`, and calls `forward(batch)` once per batch under `torch.inference_mode`.
`forward` returns one `Output` per prepared sample, in order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch


class BadInput(Exception):
    """The sample's input cannot be used (unreadable image, ...): recorded, never fatal."""


@dataclass
class Item:
    """One manifest row, plus that sample's entries of an input store when the rule gives one."""

    id: str
    image: str = ""
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    from_input: bool = False  # True when `extra` comes from an input store (`--input`)


@dataclass
class Output:
    """One sample's result: row columns (all of equal length) and sample columns."""

    rows: dict[str, np.ndarray] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    """Options common to all extractors; each extractor subclasses this dataclass."""

    batch_size: int = 16


class Extractor:
    """Base class; subclasses register themselves with `extract.registry.register`."""

    name: ClassVar[str]
    backends: ClassVar[tuple[str, ...]]
    options_class: ClassVar[type[Options]] = Options
    needs_input: ClassVar[bool] = False  # True when it reads another store (`--input`)

    def __init__(self, backend: str, device: torch.device, options: Options) -> None:
        if backend not in self.backends:
            raise ValueError(f"extractor {self.name!r} has no backend {backend!r}; "
                             f"choose one of {', '.join(self.backends)}")
        self.backend = backend
        self.device = device
        self.options = options
        self.weights: list[tuple[str, str]] = []  # (file name, sha256) of every weight file used

    # --- what a subclass provides -------------------------------------------------------
    @property
    def dim(self) -> int:
        raise NotImplementedError

    def row_columns(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        """Row column name -> (trailing shape, dtype); used for stores with zero rows."""
        return {"features": ((self.dim,), np.float16)}

    def extra_attrs(self) -> dict[str, Any]:
        return {}

    def prepare(self, item: Item) -> Any:
        raise NotImplementedError

    def forward(self, batch: list[Any]) -> list[Output]:
        raise NotImplementedError

    # --- shared helpers -------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.options)

    def autocast(self):
        """fp16 autocast on CUDA, a no-op context on the CPU."""
        return torch.autocast(self.device.type, dtype=torch.float16,
                              enabled=self.device.type == "cuda")


def parse_options(cls: type[Options], pairs: list[str]) -> Options:
    """Build an options dataclass from `KEY=VALUE` strings, coercing to the field types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        if key not in fields:
            raise ValueError(f"unknown option {key!r}; known: {', '.join(sorted(fields))}")
        values[key] = coerce(raw, fields[key].type)
    return cls(**values)


def coerce(raw: str, kind: Any) -> Any:
    kind = str(kind)
    if kind in ("int", "<class 'int'>"):
        return int(raw)
    if kind in ("float", "<class 'float'>"):
        return float(raw)
    if kind in ("bool", "<class 'bool'>"):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {raw!r}")
    return raw
