"""Which Python the jobs run. Rules call `python -m ...`, found on PATH: a `snakemake` started as
`.venv/bin/snakemake` without activating the venv would run every job with the system's Python,
and each job would fail with `ModuleNotFoundError`. Checked once, when the workflow is parsed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# what the jobs import (requirements.txt): a system Python with torch and pandas alone would pass
# the check and fail in the extraction or report jobs
NEEDED = ("torch", "h5py", "pandas", "yaml", "sklearn", "matplotlib", "transformers", "easyocr")
PROBE = ("import importlib.util as u, sys; "
         f"sys.exit(any(u.find_spec(m) is None for m in {NEEDED!r}))")


def can_run_jobs(python: str | None) -> bool:
    """Whether `python` (a path; None: not found) finds every NEEDED package (no import: ~50 ms)."""
    if python is None:
        return False
    try:
        return subprocess.run([python, "-c", PROBE], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def job_path(environ: dict[str, str], executable: str = sys.executable) -> tuple[str | None, str]:
    """(PATH for the jobs, or None to keep it; a line saying why) when `python` on `environ`'s PATH
    cannot run jobs but `executable` (the Python running Snakemake) can: its folder goes first.
    Raises RuntimeError naming the fix when neither can."""
    path = environ.get("PATH", "")
    found = shutil.which("python", path=path)
    if found and os.path.abspath(found) == os.path.abspath(executable):  # not realpath: venvs link the base
        return None, ""
    if can_run_jobs(found):
        return None, ""
    here = os.path.dirname(executable)
    if can_run_jobs(executable):
        return (os.pathsep.join([here, path]) if path else here,
                f"dmms: `python` on PATH ({found or 'none'}) lacks {', '.join(NEEDED)}; jobs run "
                f"{os.path.join(here, 'python')}, the Python running Snakemake (activate the venv to "
                "silence this: source .venv/bin/activate)")
    raise RuntimeError(f"jobs run `python -m ...`, but neither `python` on PATH ({found or 'none'}) nor "
                       f"{executable} has {', '.join(NEEDED)}: run `make venv`, then "
                       "`source .venv/bin/activate` before snakemake")


def use_job_python(environ: dict[str, str]) -> str:
    """Put the Python running Snakemake first on `environ`'s PATH when the jobs need it
    (`job_path`); returns the line saying so, or ""."""
    path, why = job_path(environ)
    if path:
        environ["PATH"] = path
    return why
