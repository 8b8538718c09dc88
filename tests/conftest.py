"""Shared test setup: offline, CPU, the project root importable, the shared Snakemake run started
first and read last."""

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



SHARED_RUN = "shared_run"  # the session fixture in tests/workflow/conftest.py


def reads_shared_run(item: pytest.Item) -> bool:
    return SHARED_RUN in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The shared run's readers last (in collection order), so the rest of the suite runs on the
    other core while that run builds in the background (`shared_run_started`)."""
    items.sort(key=reads_shared_run)


@pytest.fixture(scope="session", autouse=True)
def shared_run_started(request, tmp_path_factory):
    """tests/workflow/shared_run.py's Snakemake run, started at the session's first test when a
    collected test reads it (None otherwise), ended at the session's end if still running."""
    if not any(reads_shared_run(item) for item in request.session.items):
        yield None
        return
    from tests.workflow.shared_run import start

    run = start(tmp_path_factory.mktemp("shared"))
    yield run
    run.stop()
