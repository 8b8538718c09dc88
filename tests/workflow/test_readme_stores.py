"""README's "Reading the stores" snippets, read from README.md and run as written on a real store
of the shared run, from that run's folder (not the project's) with the venv's Python and no
PYTHONPATH: the project's reader imports because `make venv` installed the project (editable)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from extract.store import read_store
from tests.workflow.snakemake_run import ROOT

MARKER = "<!-- README test: reading stores"


def snippets() -> list[str]:
    """The ```python blocks after the marker, up to the next heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(MARKER):]
    section = section[:section.index("\n#")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_has_the_reader_and_the_h5py_snippet() -> None:
    blocks = snippets()
    assert len(blocks) == 2
    assert "from extract.store import read_sample, read_store" in blocks[0] and "import h5py" in blocks[1]


@pytest.mark.parametrize("number", [0, 1])
def test_readme_store_snippet_runs_from_another_folder(shared_run, number) -> None:
    work = shared_run[0]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", snippets()[number]], cwd=work, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    store = read_store(work / "results/demo/features/faces.h5")
    sid, rows = store.ids[0], int(store.counts[0])
    expected = {0: f"{sid} ({rows}, 1280) ({rows}, 4) {int(store.counts.sum())} {store.attrs['model']}",
                1: f"{sid} ({rows}, 1280) ({int(store.counts.sum())}, 1280)"}[number]
    assert done.stdout.strip() == expected
