"""Job-seconds of a Snakemake run, per rule, from its log (the work two cores must do).

    python bench/demo_jobs.py .snakemake/log/<run>.snakemake.log --out bench/results/demo_jobs_cpu.json

Wall time on a shared machine says little; the sum of job runtimes does not depend on how many
other jobs ran beside them as much (a loaded machine still stretches each job). Each job's time
runs from its start stamp (the `[date]` line before `rule NAME:` / `localrule NAME:`) to its
`Finished jobid: N` stamp (1 s resolution). Extraction shards are also split by feature.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import write_result  # noqa: E402

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FEATURE = re.compile(r"^\s+wildcards: .*feature=(\w+)")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def job_seconds(lines: list[str]) -> tuple[dict[str, float], float, int]:
    """({rule or extract_shard:feature: seconds}, wall seconds, jobs) of one Snakemake log."""
    stamp, first, last = None, None, None
    started: dict[str, tuple[str, datetime]] = {}
    pending: tuple[str, datetime] | None = None
    current: str | None = None  # jobid of the job block being read
    total: dict[str, float] = defaultdict(float)
    jobs = 0
    for line in lines:
        line = line.rstrip("\n")
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            current = None
            first = first or stamp
            last = stamp
        elif (m := START.match(line)) and stamp is not None:
            pending, current = (m.group(1), stamp), None
        elif (m := JOBID.match(line)) and pending is not None:
            current = m.group(1)
            started[current] = pending
            pending = None
        elif (m := FEATURE.match(line)) and current in started and started[current][0] == "extract_shard":
            started[current] = (f"extract_shard:{m.group(1)}", started[current][1])
        elif (m := FINISHED.match(line)) and m.group(1) in started and stamp is not None:
            rule, began = started.pop(m.group(1))
            total[rule] += (stamp - began).total_seconds()
            jobs += 1
    wall = (last - first).total_seconds() if first and last else 0.0
    return dict(total), wall, jobs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", type=Path, help="a Snakemake log (.snakemake/log/*.snakemake.log or its stdout)")
    p.add_argument("--note", default="", help="what else ran on the machine")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    per_rule, wall, jobs = job_seconds(args.log.read_text().splitlines())
    result = {"benchmark": "demo_jobs", "command": " ".join(["python", *sys.argv]), "log": str(args.log),
              "jobs": jobs, "job_seconds": dict(sorted(per_rule.items(), key=lambda kv: -kv[1])),
              "job_seconds_total": sum(per_rule.values()), "wall_seconds": wall,
              "two_core_lower_bound_s": sum(per_rule.values()) / 2, "note": args.note}
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
