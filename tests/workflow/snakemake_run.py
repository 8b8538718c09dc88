"""Running the project's Snakefile in a temporary working folder (shared by workflow tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def command(workdir: Path, args: tuple[str, ...], configfile: Path | None, replace: bool,
            env: dict[str, str] | None = None) -> dict:
    """subprocess keywords (args, cwd, env) of one Snakemake call. `replace`: the config file replaces
    config/config.yaml instead of being merged into it; `env`: variables set for this call."""
    env = dict(os.environ, **(env or {}), PYTHONPATH=str(ROOT), PATH=f"{BIN}:{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)] + (["--replace-workflow-config"] if replace else [])
    return {"args": cmd + list(args), "cwd": ROOT, "env": env}


def snakemake(workdir: Path, *args: str, configfile: Path | None = None, replace: bool = False,
              timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(**command(workdir, args, configfile, replace), capture_output=True, text=True,
                          timeout=timeout)


def start_snakemake(workdir: Path, *args: str, log: Path, configfile: Path | None = None,
                    replace: bool = False, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The same call in the background, its stdout and stderr written to `log` (a pipe nobody
    reads would fill and stall it)."""
    with open(log, "w") as out:
        return subprocess.Popen(**command(workdir, args, configfile, replace, env), stdout=out,
                                stderr=subprocess.STDOUT, text=True)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run as {rule: count}."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    counts = {}
    for line in lines[start + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts
