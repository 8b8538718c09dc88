"""tests/conftest.py: the shared Snakemake run starts with the session and its readers run last."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import SHARED_RUN, pytest_collection_modifyitems, reads_shared_run
from tests.workflow.shared_run import SharedRun


class Item:
    """What the hook reads of a collected test: its name and fixtures."""

    def __init__(self, name: str, *fixtures: str) -> None:
        self.name, self.fixturenames = name, list(fixtures)


def test_shared_run_readers_run_last_in_collection_order() -> None:
    items = [Item("plan", "tmp_path"), Item("ads", "ads_run", SHARED_RUN), Item("sets"),
             Item("stores", "pipeline", SHARED_RUN), Item("started", "shared_run_started")]
    pytest_collection_modifyitems(items)
    assert [i.name for i in items] == ["plan", "sets", "started", "ads", "stores"]


def test_the_run_is_started_at_the_first_test_only_when_read(request, shared_run_started) -> None:
    """Started (and still running or done) when this session reads it; never for a session
    without a reader, such as this file alone."""
    readers = [item for item in request.session.items if reads_shared_run(item)]
    if not readers:
        assert shared_run_started is None
        return
    assert shared_run_started.process.pid > 0 and shared_run_started.log.exists()
    assert request.session.items.index(readers[0]) > request.session.items.index(request.node)


def test_a_failed_run_is_reported_with_its_log_and_a_running_one_is_stopped(tmp_path) -> None:
    log = tmp_path / "snakemake.log"
    with open(log, "w") as out:
        failed = subprocess.Popen(["sh", "-c", "echo MissingInputException; exit 1"], stdout=out)
    with pytest.raises(AssertionError, match=r"snakemake\.log:\nMissingInputException"):
        SharedRun(tmp_path, failed, log, tmp_path / "ads.yaml").wait(timeout=60)
    running = subprocess.Popen(["sleep", "600"])
    SharedRun(tmp_path, running, log, tmp_path / "ads.yaml").stop()  # the session ended first
    assert running.poll() is not None
