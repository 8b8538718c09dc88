"""bench/demo_jobs.py: job-seconds per rule from a Snakemake log."""

from __future__ import annotations

from bench.demo_jobs import job_seconds

LOG = """\
[Mon Nov 30 17:08:19 2026]
localrule fetch_weights:
    output: resources/weights/ready/demo/faces.json
    jobid: 13
    wildcards: dataset=demo, feature=faces
Select jobs to execute...
[Mon Nov 30 17:08:20 2026]
rule extract_shard:
    output: results/demo/features/shards/ocr/1-of-2.h5
    jobid: 7
    reason: Missing output files
    wildcards: dataset=demo, feature=ocr, scatteritem=1-of-2
[Mon Nov 30 17:08:36 2026]
Finished jobid: 13 (Rule: fetch_weights)
1 of 3 steps (33%) done
[Mon Nov 30 17:08:40 2026]
rule extract_shard:
    jobid: 8
    wildcards: dataset=demo, feature=ocr, scatteritem=2-of-2
[Mon Nov 30 17:09:20 2026]
Finished jobid: 7 (Rule: extract_shard)
[Mon Nov 30 17:09:30 2026]
Finished jobid: 8 (Rule: extract_shard)
"""


def test_job_seconds_per_rule_and_feature():
    per_rule, wall, jobs = job_seconds(LOG.splitlines())
    assert per_rule == {"fetch_weights": 17.0, "extract_shard:ocr": 60.0 + 50.0}
    assert wall == 71.0 and jobs == 3
