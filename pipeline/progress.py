"""`python -m pipeline.progress [--dir WORKDIR] [--watch SECONDS]`: what a running (or finished)
workflow is doing, read from what its jobs write.

- Each running job: the progress lines (`core/progress.py`) in its log under `WORKDIR/logs/`:
  items done of total, rate, time left. Jobs that write progress lines: extraction shards and
  merges (samples), weight downloads (MB), training (epochs). A log whose last progress line is
  not a final one is running; when that process was on this machine and is gone, it is listed as
  ended without its last line (killed, out of memory). Only logs written since the run began count.
- Overall: the steps done of the total, from Snakemake's run log (`.snakemake/log/`): its
  "N of M steps (P%) done" lines, the ones its terminal shows, and its "Job stats" total.

Torch-free and Snakemake-free: it reads text files only, so it runs beside a workflow (or on a
cluster's login node while the jobs run elsewhere) at no cost.
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.progress import Report, alive, clock, parse

STEPS = re.compile(r"^(\d+) of (\d+) steps \((\d+)%\) done")
TOTAL = re.compile(r"^total\s+(\d+)\s*$")
TAIL_BYTES = 1 << 16  # of a job log read for its last progress line


@dataclass
class Run:
    """The latest Snakemake run that executed (or found nothing to do) in a folder."""

    log: Path
    started: datetime
    done: int
    total: int | None
    nothing: bool  # "Nothing to be done"


@dataclass
class Job:
    log: Path
    report: Report
    state: str  # running | ended


def latest_run(workdir: Path) -> Run | None:
    """The newest `.snakemake/log/*.snakemake.log` of a run that planned jobs (reports and
    unlocks write logs too, without a job table)."""
    for path in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True):
        text = path.read_text(errors="replace")
        nothing = "Nothing to be done" in text
        if "Job stats" not in text and not nothing:
            continue
        done, total = 0, None
        for line in text.splitlines():
            steps, job_total = STEPS.match(line), TOTAL.match(line)
            if steps:
                done, total = int(steps[1]), int(steps[2])
            elif job_total and total is None:
                total = int(job_total[1])
        return Run(path, run_start(path), done, total, nothing)
    return None


def run_start(path: Path) -> datetime:
    """From the log's name (`2026-12-06T205317.580865.snakemake.log`), else its mtime."""
    try:
        return datetime.strptime(path.name.split(".")[0], "%Y-%m-%dT%H%M%S")
    except ValueError:
        return datetime.fromtimestamp(path.stat().st_mtime)


def last_report(path: Path) -> Report | None:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - TAIL_BYTES))
        lines = fh.read().decode("utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        report = parse(line)
        if report is not None:
            return report
    return None


def jobs(workdir: Path, since: datetime | None) -> list[Job]:
    """Jobs whose log (written since `since`) ends in a progress line that is not a final one."""
    found = []
    host = socket.gethostname()
    for path in sorted((workdir / "logs").rglob("*.log")):
        if since is not None and datetime.fromtimestamp(path.stat().st_mtime) < since:
            continue
        report = last_report(path)
        if report is None or report.finished or report.stopped:
            continue
        state = "ended" if report.host == host and not alive(report.pid) else "running"
        found.append(Job(path, report, state))
    return found


def amount(value: float, unit: str) -> str:
    return f"{value:.1f}" if unit == "MB" else str(int(value))


def ago(seconds: float) -> str:
    return f"{max(0, int(seconds))} s" if seconds < 60 else clock(seconds)


def job_line(job: Job, workdir: Path, now: datetime, width: int = 0) -> str:
    r = job.report
    age = (now - r.time).total_seconds()
    total = amount(r.total, r.unit) if r.total else "?"
    parts = [f"{amount(r.done, r.unit)}/{total} {r.unit}"]
    if r.total:
        parts[0] += f" ({100 * r.done / r.total:.0f}%)"
    if r.rate is not None:
        parts.append(f"{r.rate:g} {r.unit}/s")
    if job.state == "running" and r.eta is not None:
        parts.append(f"ETA {clock(max(0.0, r.eta - age))}")
    parts.append(f"reported {ago(age)} ago")
    return f"  {str(job.log.relative_to(workdir)):<{width}}  {r.task}: " + ", ".join(parts)


def summary(workdir: Path, now: datetime | None = None) -> str:
    """The progress view of `workdir` as text."""
    now = now or datetime.now()
    run = latest_run(workdir)
    lines = []
    if run is None:
        lines.append(f"no Snakemake run in {workdir} yet (no .snakemake/log/ with a job table)")
    elif run.nothing and run.total is None:
        lines.append(f"last run {run.started:%Y-%m-%d %H:%M:%S}: nothing to be done (all up to date)")
    else:
        total = "?" if run.total is None else run.total
        share = f" ({100 * run.done / run.total:.0f}%)" if run.total else ""
        lines.append(f"run of {run.started:%Y-%m-%d %H:%M:%S}: {run.done} of {total} steps done{share} "
                     f"({run.log.relative_to(workdir)})")
    found = jobs(workdir, run.started if run else None)
    running = [j for j in found if j.state == "running"]
    ended = [j for j in found if j.state == "ended"]
    width = max((len(str(j.log.relative_to(workdir))) for j in found), default=0)
    lines.append(f"running jobs with progress lines: {len(running)}" + (":" if running else ""))
    lines += [job_line(j, workdir, now, width) for j in running]
    if ended:
        lines.append(f"ended without a final progress line (killed? see the log): {len(ended)}:")
        lines += [job_line(j, workdir, now, width) for j in ended]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.progress", description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=".", help="the workflow's working folder (default: here)")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="print again every SECONDS until Ctrl-C")
    args = p.parse_args(argv)
    workdir = Path(args.dir)
    if not workdir.is_dir():
        print(f"error: {workdir} is not a folder; give the workflow's working folder with --dir", file=sys.stderr)
        return 2
    while True:
        print(summary(workdir), flush=True)
        if not args.watch:
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0
        print()


if __name__ == "__main__":
    sys.exit(main())
