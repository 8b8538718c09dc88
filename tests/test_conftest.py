"""tests/conftest.py: the shared Snakemake run starts with the session and its readers run last."""

from __future__ import annotations

from tests.conftest import SHARED_RUN, pytest_collection_modifyitems, reads_shared_run


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
