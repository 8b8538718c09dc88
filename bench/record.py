"""Writing a benchmark's result: one JSON file (atomically, folders made) and the same on stdout."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

from core.atomic import atomic_write


def write_result(result: dict[str, Any], out: str | Path | None, echo: bool = True) -> None:
    """Print `result` as JSON (unless not `echo`) and, when `out` is given, write it there (e.g.
    bench/results/X.json)."""
    text = json.dumps(result, indent=1)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out) as tmp:
            tmp.write_text(text + "\n")
    if echo:
        print(text, flush=True)


def command() -> str:
    """The command line that ran this benchmark, as one would retype it."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def machine(**extra: Any) -> dict[str, Any]:
    """Host, CPU count and load, platform and Python of this run (plus `extra`)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"host": platform.node(), "cpus": os.cpu_count(), "load_1min": round(load[0], 2) if load else None,
            "platform": platform.platform(), "python": platform.python_version(), **extra}
