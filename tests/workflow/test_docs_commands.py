"""Every `snakemake` command written in the project's Markdown (and in the comments of the
Snakefile and the profiles) runs as written.

The commands are read from the files themselves (fenced code lines, inline code spans, comment
lines that start with one), so
the docs cannot drift from the workflow: each one is run in a temporary copy of the project with
`-n` added at the end. Data that cannot exist here stands in as fixtures in the real layouts: a
tiny MM-IMDb tree for `imdb`, the README's own-data table built by the README's own Python
snippet, its YAML as `mine.yaml`. Two kinds are run differently, both said here and in the test:
- `--report FILE TARGET` needs TARGET's results on disk (Snakemake refuses "marked for report but
  does not exist", with or without `-n`), and building the MM-IMDb table is out of reach here:
  the command is parsed and its DAG dry-run with `--report FILE` left out, and the report itself
  is rendered as written but for the manifest target, which no report entry needs.
- `--unlock` is run as written after a real run was killed with SIGKILL
  (`test_unlock_after_kill_9_as_the_readme_says`).
A command that is not run at all is listed in NOT_RUN with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.workflow.snakemake_run import BIN, ROOT
from tests.workflow.test_workflows import fake_mmimdb

# Fragments that name an option in prose rather than a command to run.
NOT_RUN = {
    "snakemake -s PATH/Snakefile --directory WORKDIR": "placeholders (Snakefile comment); every workflow "
    "test runs this form (tests/workflow/snakemake_run.py)",
}
COMMENTED = ("Snakefile", "profiles/default/config.yaml", "profiles/slurm/config.yaml")
PROJECT = ("Snakefile", "rules", "config", "profiles", "envs", "bench/demo_fixed_threshold.yaml")
INLINE = re.compile(r"`(snakemake [^`]*)`")


def markdown_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True)
    files = [ROOT / name for name in listed.stdout.split()] if listed.returncode == 0 else []
    return files or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def doc_commands() -> list[tuple[str, str]]:
    """(file:line, command) of every snakemake command in the project's Markdown files."""
    found = []
    for path in markdown_files():
        fenced = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}"
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                text = line.strip()
                if text.startswith("snakemake "):
                    found.append((where, re.split(r"\s+#\s", text)[0].strip()))
                continue
            found += [(where, command.strip()) for command in INLINE.findall(line)]
    for name in COMMENTED:
        for number, line in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), 1):
            comment = line.partition("#")[2].strip() if line.lstrip().startswith("#") else ""
            commands = INLINE.findall(comment) or ([comment] if comment.startswith("snakemake ") else [])
            found += [(f"{name}:{number}", re.split(r"\s{2,}", c)[0].strip()) for c in commands]
    return found


def distinct_commands() -> list[tuple[str, str]]:
    """(every place it is written, command), each command once."""
    places: dict[str, list[str]] = {}
    for where, command in doc_commands():
        places.setdefault(command, []).append(where)
    return [(", ".join(where), command) for command, where in places.items()]


def readme_block(language: str, after: str) -> str:
    """The first ```language block of README.md after the line holding `after`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(after)
    match = re.search(rf"```{language}\n(.*?)```", text[start:], re.S)
    assert match, f"README.md has no ```{language} block after {after!r}"
    return match.group(1)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the workflow with the fixtures the documented targets need."""
    work = tmp_path_factory.mktemp("docs") / "dmms"
    work.mkdir()
    for name in PROJECT:
        source = ROOT / name
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / name)
    root = fake_mmimdb(work.parent / "mmimdb")
    config = yaml.safe_load((work / "config/config.yaml").read_text())
    config["datasets"]["imdb"]["root"] = str(root)
    (work / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # the README's own data: images of several formats, captions, its snippet, its YAML
    images = work / "mine/images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = [f"m{k}" for k in range(8)]
    for sid, suffix in zip(ids, [".jpg", ".JPEG", ".png", ".webp", ".tif", ".bmp", ".jpg", ""]):
        if suffix:
            Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(images / f"{sid}{suffix}")
    (images / "notes.txt").write_text("not an image")
    pd.DataFrame({"id": ids, "text": [f"caption {k}" for k in range(8)],
                  "labels": ["a|b", "a", "b", "a", "b", "a|b", "a", "b"]}).to_csv(work / "mine/captions.csv",
                                                                                  index=False)
    snippet = readme_block("python", "## Your own data")
    done = subprocess.run([sys.executable, "-c", snippet], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (work / "mine.yaml").write_text(readme_block("yaml", "## Your own data"))
    (work / "new").mkdir()
    pd.DataFrame({"id": ["n1", "n2"], "image": "", "text": ["one", "two"], "labels": ""}).to_csv(
        work / "new/table.csv", index=False)
    return work


def run(project: Path, args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{BIN}:{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_markdown_has_the_commands_this_test_expects() -> None:
    commands = [c for _, c in doc_commands()]
    assert any("--configfile mine.yaml" in c for c in commands)
    assert any("--profile profiles/slurm" in c for c in commands)
    assert "snakemake --unlock" in commands and any(c.startswith("snakemake --report ") for c in commands)


@pytest.mark.parametrize("where, command", distinct_commands(), ids=lambda v: v)
def test_documented_command_runs_as_written(project, where, command) -> None:
    if command in NOT_RUN:
        assert NOT_RUN[command]
        return
    args = shlex.split(command)[1:]
    if "--unlock" in args:  # tested with a real lock below
        return
    if "--report" in args:  # see the module docstring
        at = args.index("--report")
        page, targets = args[at + 1], args[at + 2:]  # no target: rule all's
        assert not any(t.startswith("-") for t in targets), f"{where}: {command}"
        dag = run(project, args[:at] + targets + ["-n"])
        assert dag.returncode == 0, f"{where}: {command}\n{(dag.stdout + dag.stderr)[-4000:]}"
        args = args[:at + 2] + ["results/demo/manifest.csv"]
        (project / page).parent.mkdir(parents=True, exist_ok=True)  # there after any real run
        done = run(project, args)
        assert done.returncode == 0, f"{where}: {command}\n{(done.stdout + done.stderr)[-4000:]}"
        html = (project / page).read_text(encoding="utf-8")
        # no result reported: the intro names no dataset (test_workflows: one that reports some)
        assert "arXiv 2003.01607)." in html and " on demo." not in html
        return
    done = run(project, args + ["-n"])
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{where}: {command}\n{output[-4000:]}"
    assert "Job stats" in output or "Nothing to be done" in output, f"{where}: {command}\n{output[-2000:]}"


def test_own_data_snippet_takes_every_image_format(project) -> None:
    table = pd.read_csv(project / "mine/table.csv", dtype=str, keep_default_na=False)
    assert table.set_index("id")["image"].to_dict() == {
        "m0": "images/m0.jpg", "m1": "images/m1.JPEG", "m2": "images/m2.png", "m3": "images/m3.webp",
        "m4": "images/m4.tif", "m5": "images/m5.bmp", "m6": "images/m6.jpg", "m7": ""}


def test_own_data_snippet_matches_ids_and_file_names_in_any_case(tmp_path) -> None:
    """Ids in upper case, files in lower case (and a suffix in upper case): the snippet matched
    ids to file names exactly and lost 1,870 of 1,886 images that way."""
    images = tmp_path / "mine/images"
    images.mkdir(parents=True)
    ids = [f"TT{k:04d}" for k in range(12)] + ["Mixed", "plain"]
    for k, sid in enumerate(ids):
        Image.new("RGB", (4, 4)).save(images / f"{sid.lower()}{'.JPG' if k == 3 else '.png'}")
    pd.DataFrame({"id": ids, "text": "caption", "labels": "a"}).to_csv(tmp_path / "mine/captions.csv", index=False)
    done = subprocess.run([sys.executable, "-c", readme_block("python", "## Your own data")], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 of 14 ids have no image"
    table = pd.read_csv(tmp_path / "mine/table.csv", dtype=str, keep_default_na=False).set_index("id")["image"]
    assert table["TT0000"] == "images/tt0000.png" and table["TT0003"] == "images/tt0003.JPG"
    assert all((tmp_path / "mine" / path).is_file() for path in table)


def test_unlock_after_kill_9_as_the_readme_says(project) -> None:
    """A run killed with SIGKILL leaves its lock: the next run is refused and names --unlock;
    `snakemake --unlock` (as the README writes it) clears it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{BIN}:{os.environ['PATH']}")
    target = ["results/demo/manifest.csv"]
    victim = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1", *target], cwd=project, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    locks = project / ".snakemake/locks"
    deadline = time.monotonic() + 120
    while not (locks.is_dir() and any(locks.iterdir())) and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.2)
    assert victim.poll() is None, "the run ended before it could be killed"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    refused = run(project, ["--cores", "1", *target])
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "--unlock" in said and "Directory cannot be locked" in said  # as README
    unlock = next(c for _, c in doc_commands() if shlex.split(c)[1:] == ["--unlock"])
    assert run(project, shlex.split(unlock)[1:]).returncode == 0
    again = run(project, ["--cores", "1", *target, "-n"])
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]


SLURM_TOOLS = {"sacct", "sacctmgr", "salloc", "sattach", "sbatch", "sbcast", "scancel", "scontrol", "sdiag",
               "sinfo", "sprio", "squeue", "sreport", "srun", "sshare", "sstat", "strigger"}


def test_slurm_profile_dry_run_needs_no_slurm(project, tmp_path) -> None:
    """The documented SLURM command plans on a machine without Slurm's tools (a laptop): PATH
    is rebuilt from links to every program on it except Slurm's client commands."""
    hidden = tmp_path / "bin"
    hidden.mkdir()
    for folder in [BIN, *os.environ["PATH"].split(os.pathsep)]:
        if Path(folder).is_dir():
            for program in Path(folder).iterdir():
                if program.name not in SLURM_TOOLS and not (hidden / program.name).exists():
                    (hidden / program.name).symlink_to(program)
    assert shutil.which("sinfo", path=str(hidden)) is None and shutil.which("sbatch", path=str(hidden)) is None
    command = next(c for _, c in doc_commands() if "--profile profiles/slurm" in c)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=str(hidden))
    done = subprocess.run([sys.executable, "-m", "snakemake", *shlex.split(command)[1:], "-n"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "Job stats" in done.stdout and "gpu=1" in done.stdout
