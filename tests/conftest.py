"""Shared test setup: offline, CPU, the project root importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Never download anything in tests: the resolver must find files or fail with its message.
os.environ["DMMS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def project_root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _offline_weights(tmp_path_factory, monkeypatch):
    """Each test sees an empty weights folder and torch hub cache unless it fills them."""
    base = tmp_path_factory.mktemp("weights")
    monkeypatch.setenv("DMMS_WEIGHTS", str(base / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(base / "torch"))
    monkeypatch.setenv("EASYOCR_MODULE_PATH", str(base / "easyocr"))
