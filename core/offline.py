"""The offline switch: `DMMS_OFFLINE=1` (any value but "" and "0") forbids network access."""

from __future__ import annotations

import os


def offline() -> bool:
    return os.environ.get("DMMS_OFFLINE", "") not in ("", "0")
