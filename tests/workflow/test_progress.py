"""What a user watching a run sees: the jobs' logs (plain progress lines, no colour codes, carriage
returns or library load reports) and the progress view over them, on the shared run and on a live
extraction."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.progress import parse
from pipeline.progress import main as progress_main
from pipeline.progress import summary
from tests.workflow.snakemake_run import ROOT


@pytest.fixture(scope="module")
def work(shared_run) -> Path:
    return shared_run[0]


def reports(path: Path) -> list:
    return [r for r in map(parse, path.read_text(errors="replace").splitlines()) if r is not None]


def test_logs_are_plain_text_without_load_reports(work) -> None:
    logs = sorted((work / "logs").rglob("*.log"))
    assert len(logs) > 40
    for path in logs:
        text = path.read_text(errors="replace")
        for noise in ("\x1b[", "\r", "LOAD REPORT", "Loading weights"):
            assert noise not in text, (path, noise)
    # extraction shards and merges end with a final progress line counting every sample
    shards = sorted(work.glob("logs/demo/extract/*/*-of-*.log"))
    merges = sorted(work.glob("logs/demo/extract/*/merge.log"))
    assert len(shards) >= 5 and len(merges) == 5
    for path in shards + merges:
        found = reports(path)
        assert found and found[-1].finished and found[-1].done == found[-1].total, path
    assert reports(work / "logs/demo/extract/ocr/merge.log")[-1].total == 40  # both shards' samples
    # a fetch says what it resolves and loads, and what it found
    fetch = {p.name: p.read_text() for p in (work / "logs/weights").glob("*.log")}
    assert fetch and all("resolving its weight files" in t and "ready in" in t for t in fetch.values())
    assert any("loading transformers model" in t for t in fetch.values())
    # transformers' load report, as one plain line: MiniLM's pooler is not used (we pool ourselves)
    text_log = (work / "logs/demo/extract/text/1-of-1.log").read_text()
    assert "2 weights in the checkpoint but not used by this model: pooler.dense.bias" in text_log
    training = reports(work / "logs/demo/train/all/max.log")
    assert training[-1].unit == "epochs" and training[-1].finished and training[-1].done == 3 * 4  # 3 seeds x 4 epochs


def test_progress_view_of_the_finished_run(work, capsys) -> None:
    assert progress_main(["--dir", str(work)]) == 0
    text = capsys.readouterr().out
    steps = re.search(r"(\d+) of (\d+) steps done \(100%\)", text)
    assert steps and steps[1] == steps[2] and int(steps[2]) > 50, text
    assert "running jobs with progress lines: 0" in text and "ended without" not in text


def extraction(work: Path, log: Path, out: Path) -> subprocess.Popen:
    """A real extraction of the shared run's 40 demo posters, one per forward, a progress line
    after each (DMMS_PROGRESS_EVERY=0), its stderr into `log` as under Snakemake."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DMMS_PROGRESS_EVERY="0", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "extract", "image", "--manifest", "results/demo/manifest.csv", "--out", str(out),
           "--backend", "mobilenet_v2", "--set", "batch_size=1", "--threads", "1"]
    with open(log, "w") as fh:
        return subprocess.Popen(cmd, cwd=work, env=env, stdout=fh, stderr=subprocess.STDOUT)


def wait_for(view: Path, test, process: subprocess.Popen, timeout: float = 120) -> str:
    """The view's text once `test(text)` holds, while `process` runs."""
    end = time.time() + timeout
    while time.time() < end:
        text = summary(view)
        if test(text):
            return text
        assert process.poll() is None, f"the extraction ended before the view saw it:\n{text}"
        time.sleep(0.05)
    raise AssertionError(f"not seen in {timeout} s:\n{summary(view)}")


def test_progress_view_follows_a_live_extraction_and_spots_a_killed_one(work, tmp_path) -> None:
    view = tmp_path / "view"
    shown = re.compile(r"logs/demo/extract/image/1-of-2\.log\s+image: ([1-9]\d*)/40 samples \(\d+%\), "
                       r"[\d.]+ samples/s, ETA \d+:\d\d, reported \d+ s ago")
    live = extraction(work, view / "logs/demo/extract/image/1-of-2.log", tmp_path / "a.h5")
    killed = extraction(work, view / "logs/demo/extract/image/2-of-2.log", tmp_path / "b.h5")
    try:
        text = wait_for(view, lambda t: shown.search(t) is not None, live)
        assert "running jobs with progress lines: " in text and "no Snakemake run" in text
        wait_for(view, lambda t: re.search(r"2-of-2\.log\s+image: [1-9]", t) is not None, killed)
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        assert live.wait(300) == 0
    finally:
        for process in (live, killed):
            if process.poll() is None:
                process.kill()
    text = summary(view)
    assert "running jobs with progress lines: 0" in text
    ended = text.split("ended without a final progress line")[1]
    assert "2-of-2.log" in ended and "1-of-2.log" not in ended  # the finished one is not listed
