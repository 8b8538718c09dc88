"""Progress lines in a job's log, and their parser (the progress view, `python -m pipeline.progress`,
reads them).

Long steps (extraction shards, merges, weight downloads, training epochs) write plain lines, one per
report and never a carriage return, so that a log reads in `less` and a program can follow it:

    2026-12-06 20:56:50 progress[8812@node7] ocr: 24/180 samples, 2.0/s, ETA 1:18
    2026-12-06 20:58:20 progress[8812@node7] ocr: 180/180 samples, done in 1:30 (2.0/s)
    2026-12-06 20:58:21 progress[8813@node7] download senet50_256_pytorch.tar.gz: 12.6/98.4 MB, 4.1/s, ETA 0:21

`[PID@HOST]` names the process, so a reader on the same host can tell a live job from one that was
killed before its last line. A line is written when the step starts, then at most every `every`
seconds (`DMMS_PROGRESS_EVERY`, default 10), and when it ends: `done in`, or `stopped after` when
it ends on an error. A total of `?` means unknown (a download without a size). Unit `MB` counts
bytes and shows megabytes.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, TextIO

EVERY = 10.0  # seconds between two lines of one step
LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) progress\[(?P<pid>\d+)@(?P<host>[^\]]*)\] (?P<task>.+?): "
    r"(?P<done>[\d.]+)/(?P<total>[\d.]+|\?) (?P<unit>[^,]+), (?P<state>.*)$")
RATE = re.compile(r"([\d.]+)/s")
ETA = re.compile(r"ETA (\d+(?::\d\d)+)")


def clock(seconds: float) -> str:
    """`1:05:09`, `4:09`, `0:03` (hours only when there are some)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rate_text(rate: float) -> str:
    """3 significant digits without an exponent: `1210`, `4.1`, `0.0123`."""
    if rate >= 100:
        return f"{rate:.0f}"
    return f"{rate:.3g}" if rate >= 1e-3 else f"{rate:.6f}".rstrip("0").rstrip(".") or "0"


def parse_clock(text: str) -> int:
    seconds = 0
    for part in text.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def every_seconds() -> float:
    value = os.environ.get("DMMS_PROGRESS_EVERY", "")
    try:
        return float(value) if value else EVERY
    except ValueError:
        raise ValueError(f"DMMS_PROGRESS_EVERY={value!r}: give seconds between progress lines, e.g. 10") from None


class Progress:
    """Counts `done` of `total` (0: unknown) `unit`s of one task and writes a progress line to
    `stream` (default stderr) at the start, at most every `every` seconds, and at the end. Use as a
    context manager: leaving it on an exception writes `stopped after`."""

    def __init__(self, task: str, total: int, unit: str = "samples", stream: TextIO | None = None,
                 every: float | None = None, now: Callable[[], float] = time.time) -> None:
        self.task, self.total, self.unit = task, int(total), unit
        self.stream = stream
        self.every = every_seconds() if every is None else every
        self.now = now
        self.done = 0
        self.started = self.last = now()
        self.closed = False
        self.tag = f"{os.getpid()}@{socket.gethostname()}"
        self._write(self._state())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, kind, error, trace) -> None:
        self.close(stopped=kind is not None)

    def update(self, count: int = 1) -> None:
        self.done += count
        moment = self.now()
        if moment - self.last >= self.every:
            self.last = moment
            self._write(self._state())

    def close(self, stopped: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        elapsed = self.now() - self.started
        word = "stopped after" if stopped else "done in"
        self._write(f"{word} {clock(elapsed)} ({self._rate(elapsed)})")

    def _amount(self, value: float) -> str:
        return f"{value / 1e6:.1f}" if self.unit == "MB" else str(int(value))

    def _rate(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.unit == "MB":
            rate /= 1e6
        return f"{rate_text(rate)}/s"

    def _state(self) -> str:
        elapsed = self.now() - self.started
        if not self.done or elapsed <= 0:
            return "starting"
        state = self._rate(elapsed)
        if self.total:
            state += f", ETA {clock((self.total - self.done) * elapsed / self.done)}"
        return state

    def _write(self, state: str) -> None:
        stamp = datetime.fromtimestamp(self.now()).strftime("%Y-%m-%d %H:%M:%S")
        total = self._amount(self.total) if self.total else "?"
        print(f"{stamp} progress[{self.tag}] {self.task}: {self._amount(self.done)}/{total} {self.unit}, {state}",
              file=self.stream or sys.stderr, flush=True)


def alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@dataclass
class Report:
    """One parsed progress line."""

    time: datetime
    pid: int
    host: str
    task: str
    done: float
    total: float | None  # None: unknown
    unit: str
    rate: float | None  # units per second (MB for MB)
    eta: int | None  # seconds left at `time`
    finished: bool  # `done in`
    stopped: bool  # `stopped after`: the step ended on an error


def parse(line: str) -> Report | None:
    """The report of a progress line, or None for any other line."""
    match = LINE.match(line.rstrip("\n"))
    if not match:
        return None
    state = match["state"]
    rate, eta = RATE.search(state), ETA.search(state)
    return Report(time=datetime.strptime(match["time"], "%Y-%m-%d %H:%M:%S"), pid=int(match["pid"]),
                  host=match["host"], task=match["task"], done=float(match["done"]),
                  total=None if match["total"] == "?" else float(match["total"]), unit=match["unit"],
                  rate=float(rate[1]) if rate else None, eta=parse_clock(eta[1]) if eta else None,
                  finished=state.startswith("done in"), stopped=state.startswith("stopped after"))
