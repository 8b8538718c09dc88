"""Writing a benchmark's result: one JSON file (atomically, folders made) and the same on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from extract.atomic import atomic_write


def write_result(result: dict[str, Any], out: str | Path | None) -> None:
    """Print `result` as JSON and, when `out` is given, write it there (e.g. bench/results/X.json)."""
    text = json.dumps(result, indent=1)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out) as tmp:
            tmp.write_text(text + "\n")
    print(text, flush=True)
