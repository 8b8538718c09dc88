"""Mean modality importance per row of runs (`python -m report figure`: one bar panel per row,
with the removal-effect share of report/robustness.py beside it); the matrices' overview reads
`importance_groups` too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from model.runfiles import read_importance
from report.runs import group_rows, read_runs


def importance_groups(run_dirs: Sequence[str | Path], labels: dict[str, str] | None = None,
                      pool: str = "max") -> list[dict]:
    """Per row of runs with `pool`: its key, modalities, mean importance (M,) over test samples
    with non-empty sets, then over runs (seeds, folds), and its std over runs."""
    labels = labels or {}
    groups = []
    for row in group_rows(run for run in read_runs(run_dirs, labels) if run.pool == pool):
        per_run, modalities = [], None
        for run in row.runs:
            _, importance, found = read_importance(run.dir)  # (N, M)
            modalities = modalities or found
            nonempty = importance.sum(1) > 0
            per_run.append(importance[nonempty].mean(0) if nonempty.any() else np.zeros(len(found)))
        stack = np.stack(per_run)  # (runs, M)
        groups.append({"key": row.labels, "modalities": modalities, "labels": [labels.get(m, m) for m in modalities],
                       "runs": per_run, "dirs": [run.dir for run in row.runs], "mean": stack.mean(0),
                       "std": stack.std(0, ddof=1) if len(stack) > 1 else np.zeros(stack.shape[1])})
    return groups


def removal_shares(group: dict, removal: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean (M,) and std over runs of the group's mean removal-effect share, or None when a run
    is missing from `removal` (run folder -> report.removal.Removal)."""
    per_run = []
    for run_dir in group["dirs"]:
        item = removal.get(os.path.normpath(str(run_dir)))
        if item is None:
            return None
        per_run.append(item.mean_share())
    stack = np.stack(per_run)
    return stack.mean(0), stack.std(0, ddof=1) if len(stack) > 1 else np.zeros(stack.shape[1])


def write_figure(run_dirs: Sequence[str | Path], out: str | Path,
                 labels: dict[str, str] | None = None, pool: str = "max",
                 removal: str | Path | None = None) -> Path:
    """PNG: one bar panel per run group, mean importance per modality with std over runs; with
    `removal` (the robustness output's OUT_removal.h5) the removal-effect share beside it."""
    from report import plots

    groups = importance_groups(run_dirs, labels, pool)
    if not groups:
        raise ValueError(f"none of the {len(run_dirs)} runs uses pool {pool} with an importance.h5; "
                         "pass runs trained with that pool or choose --pool")
    panels = [(g["labels"], g["mean"], g["std"], f"{g['key']['Features']} ({g['key']['Pool']}, {len(g['runs'])} runs)")
              for g in groups]
    second = None
    if removal:
        from report.removal import read_removal

        effects = read_removal(removal)
        second = [removal_shares(g, effects) for g in groups]
    return plots.importance_bars(panels, out, second)
