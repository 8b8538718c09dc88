"""One way to write a file: to a temporary name beside the target, renamed when complete.

    with atomic_write(path) as tmp:
        write_everything_to(tmp)
    # here `path` exists, complete; on an exception nothing was left at `path` or beside it

Every file dmms writes whole goes through it (stores, run folders' files, the manifest,
predictions, tables, the unpack marker, bench JSON), so a killed job leaves no half-written
file where a later job would take it for complete. Not yet through it: the figures
(report/plots.py) and the demo composer's files (data/demo.py).

Imports nothing beyond the standard library, so data/, extract/ and model/ can all use it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temporary_name(path: Path) -> Path:
    """A hidden name in the same folder (so the rename stays on one file system), unique per process."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success flush it to disk and rename it to `path`
    (replacing any old file), on failure delete it. The parent folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} for {path}")
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
        if fsync:  # the rename itself is durable once the folder is synced
            _fsync(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
