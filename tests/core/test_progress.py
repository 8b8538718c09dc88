"""Progress lines: plain lines a program can parse back, at most one per interval, a final line."""

from __future__ import annotations

import io
import os
import socket

import pytest

from core.progress import Progress, clock, parse


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def test_lines_start_throttle_and_end_and_parse_back() -> None:
    out, now = io.StringIO(), Clock()
    with Progress("ocr", 180, stream=out, every=10, now=now) as counter:
        for _ in range(9):  # 8 samples every 2 s: a line at most every 10 s
            now.t += 2
            counter.update(8)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    reports = [parse(line) for line in lines]
    assert all(reports) and len(lines) == 1 + 1 + 1  # start, one at 10 s, done (18 s)
    start, middle, end = reports
    assert (start.done, start.total, start.unit, start.task, start.rate) == (0, 180, "samples", "ocr", None)
    assert start.pid == os.getpid() and start.host == socket.gethostname()
    assert middle.done == 40 and middle.rate == 4.0 and middle.eta == 35 and not middle.finished
    assert end.done == 72 and end.finished and not end.stopped
    assert "done in 0:18 (4/s)" in lines[-1]


def test_an_error_inside_writes_stopped_and_megabytes_read_as_such() -> None:
    out, now = io.StringIO(), Clock()
    with pytest.raises(RuntimeError):
        with Progress("download x.pth", 0, "MB", stream=out, every=0, now=now) as counter:
            now.t += 4
            counter.update(12_500_000)
            raise RuntimeError("network gone")
    first, middle, last = (parse(line) for line in out.getvalue().splitlines())
    assert first.total is None and "12.5/? MB" in out.getvalue()
    assert middle.done == 12.5 and middle.rate == 3.12 and middle.eta is None
    assert last.stopped and not last.finished


def test_other_lines_are_not_reports() -> None:
    assert parse("2026-12-06 20:56:50,778 extract INFO ocr: 180 samples, 310 rows") is None
    assert parse("epoch 3/40 loss 0.1") is None
    assert clock(59) == "0:59" and clock(3725) == "1:02:05"


def test_fast_steps_read_without_an_exponent() -> None:
    out, now = io.StringIO(), Clock()
    with Progress("merge 2 shards", 360, stream=out, every=10, now=now) as counter:
        now.t += 0.3
        counter.update(360)
    assert "done in 0:00 (1200/s)" in out.getvalue() and parse(out.getvalue().splitlines()[-1]).rate == 1200
