"""The sha256 of a file, read in chunks (weights, downloaded archives)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
