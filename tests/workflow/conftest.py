"""The end-to-end tests' one Snakemake run (tests/workflow/shared_run.py), started in the background
by tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def shared_run(shared_run_started):
    """(working folder, the run, the Ads config), once the shared run has finished."""
    return shared_run_started.wait()
