"""`NAME=STORE.h5[:COLUMN]`: the one parser of a feature's store, for the command line and for
what metrics.json records (`feature_stores`). Torch-free (the report and tables use it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FeatureSpec:
    """`NAME=STORE.h5[:COLUMN]` from the command line; COLUMN picks a row column of the store
    (default `features`, or `labels` for an index store)."""

    name: str
    path: Path
    column: str | None = None

    @classmethod
    def parse(cls, text: str) -> "FeatureSpec":
        name, sep, rest = text.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise ValueError(f"--feature {text!r}: write NAME=STORE.h5 (or NAME=STORE.h5:COLUMN)")
        path, column = rest, None
        if ":" in rest and not rest.endswith(".h5"):
            path, _, column = rest.rpartition(":")
        return cls(name.strip(), Path(path), column or None)
