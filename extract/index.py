"""`index`: integer class indices from a manifest column (Ads naturalness, concreteness: IE(...)).

A manifest cell holds zero or more non-negative integers: `3|7|12`, `[3, 7]`, `3,7`, `3 7`, or
empty (zero rows: the modality is absent). Each index is one row:
    labels  (R,)  int64
attrs: `column` (the manifest column) and `vocab_size` (= `dim`): the model's lookup table has
`vocab_size` entries. With `vocab_size=0` it is inferred as max index + 1 over the samples seen:
shards are merged with the largest vocabulary among them.

With `source=words` and `--input` an OCR store, the indices are the store's recognised words,
lower-cased, split into alphanumeric tokens and hashed (CRC-32) into `vocab_size` buckets
(default 65536): the paper's IE(ocr), a fastText-style bag of token embeddings.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from extract.base import BadInput, Extractor, Item, Options, Output
from extract.registry import register
from extract.substitutes import model_attrs

SEPARATORS = re.compile(r"[|,;\s]+")


@dataclass
class IndexOptions(Options):
    batch_size: int = 1024
    precision: str = "fp32"  # no network runs: nothing to autocast; other values are refused
    column: str = ""  # manifest column holding the indices (required with source=column)
    vocab_size: int = 0  # 0: max index + 1 over the samples seen (words: 65536 buckets)
    source: str = "column"  # column: a manifest column; words: hashed tokens of an OCR store (--input)


TOKEN = re.compile(r"[a-z0-9]+")
WORD_BUCKETS = 1 << 16


def hash_tokens(words: Any, buckets: int) -> np.ndarray:
    """(R,) int64 bucket of every alphanumeric token of the given words, in order."""
    tokens = TOKEN.findall(" ".join(str(w) for w in words).lower())
    return np.array([zlib.crc32(t.encode()) % buckets for t in tokens], dtype=np.int64)


def parse_indices(raw: Any) -> list[int]:
    """`3|7|12`, `[3, 7]`, `3,7`, `3 7`, `''` -> a list of non-negative ints (ValueError if not)."""
    text = "" if raw is None else str(raw).strip()
    if text.lower() in ("", "nan", "none", "[]"):
        return []
    values = []
    for token in SEPARATORS.split(text.strip("[]() ")):
        if not token:
            continue
        number = float(token)  # accepts "3" and "3.0"; rejects words
        if number != int(number) or number < 0:
            raise ValueError(f"{token!r} is not a non-negative integer")
        values.append(int(number))
    return values


@register
class IndexExtractor(Extractor):
    name = "index"
    backends = ("metadata",)
    options_class = IndexOptions
    precisions = ("fp32",)

    def __init__(self, backend: str, device: torch.device, options: IndexOptions) -> None:
        super().__init__(backend, device, options)
        if options.source not in ("column", "words"):
            raise ValueError(f"index source must be 'column' or 'words', got {options.source!r}")
        if options.source == "words":
            if options.column:
                raise ValueError(f"index option column={options.column!r} is for source=column; source=words "
                                 "reads the --input OCR store's words: drop column or set source=column")
            options.vocab_size = options.vocab_size or WORD_BUCKETS
        elif not options.column:
            raise ValueError("extractor 'index' needs the manifest column: --set column=NAME")
        if options.vocab_size < 0:
            raise ValueError(f"vocab_size must be >= 0, got {options.vocab_size}")
        self.largest = -1  # largest index seen

    @property
    def dim(self) -> int:
        return self.options.vocab_size or self.largest + 1

    def row_columns(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        return {"labels": ((), np.int64)}

    def extra_attrs(self) -> dict[str, Any]:
        model = ("none: crc32-hashed OCR tokens, one index per token" if self.options.source == "words"
                 else f"none: the manifest's `{self.options.column}` indices")
        return {"vocab_size": self.dim, "column": self.options.column, "source": self.options.source,
                **model_attrs(self.name, self.backend, self.config(), model)}

    def prepare(self, item: Item) -> np.ndarray:
        if self.options.source == "words":
            if not item.from_input:
                raise SystemExit("index with source=words reads an OCR store: pass --input ocr.h5")
            if not item.extra:
                raise BadInput(f"sample {item.id} is not in the input store; rerun its extraction")
            if "failed" in item.extra:
                raise BadInput(f"input store failed on this sample: {item.extra['failed']}")
            return hash_tokens(item.extra.get("words", []), self.options.vocab_size)
        column = self.options.column
        if column not in item.extra:
            # The same for every sample: a wrong option, not a bad input. Stop the run.
            raise SystemExit(f"manifest has no column {column!r} (sample {item.id}); "
                             f"columns it has: {', '.join(sorted(item.extra)) or 'only the standard ones'}")
        try:
            labels = np.array(parse_indices(item.extra[column]), dtype=np.int64)  # (R,)
        except ValueError as err:
            raise BadInput(f"column {column!r} of sample {item.id}: {err}") from None
        vocab = self.options.vocab_size
        if vocab and len(labels) and labels.max() >= vocab:
            raise BadInput(f"column {column!r} of sample {item.id}: index {labels.max()} >= vocab_size {vocab}")
        return labels

    def forward(self, batch: list[np.ndarray]) -> list[Output]:
        for labels in batch:
            if len(labels):
                self.largest = max(self.largest, int(labels.max()))
        return [Output({"labels": labels}) for labels in batch]
