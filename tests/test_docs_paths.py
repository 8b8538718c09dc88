"""Every repository path named in the project's Markdown exists (README.md, BENCHMARKS.md, docs/,
data/ADS_FORMAT.md, config/paper/README.md: every Markdown file of the repository).

What counts as a repository path, in prose, code spans and fenced blocks alike:
- a link target `[text](target)` that is not a URL, from the file's folder; its `#anchor` must be
  a heading of the target (GitHub's slug: lower case, punctuation dropped, spaces to hyphens);
- a path that starts with one of the repository's top-level folders (TOPS): `extract/store.py`,
  `rules/`, `.ci/run`; a glob (`bench/results/*.json`) must match at least one file;
- a bare file name with a source extension (SOURCE: `store.py`, `common.smk`, `PAPER.md`): a file
  of that name exists somewhere in the repository (a doc names a file of a folder it just named).
Not checked: what the workflow or the user makes (`results/`, `logs/`, `resources/`,
`.snakemake/`, a dataset's own `dataset/` or `images/`: no top-level folder of the repository),
absolute and home paths, and placeholders: a path with a part in `{}` or `<>`, a `$VARIABLE`, a
word of PLACEHOLDERS (`RUN_DIR/`, `tests/PACKAGE/test_MODULE.py`) or one capital letter (`X.md`).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The repository's top-level folders (test_tops_lists_every_top_level_folder keeps it complete).
# A fixed list, so a folder that is removed or renamed leaves its old paths checked (and failing).
TOPS = (".ci", "bench", "config", "core", "data", "docs", "envs", "extract", "gpuslots", "model", "pipeline",
        "profiles", "report", "rules", "tests")
SOURCE = ("py", "smk", "sh", "j2", "rst", "md")
PLACEHOLDERS = {"PACKAGE", "MODULE", "FILE", "NAME", "ROOT", "DIR", "RUN", "DATASET", "FEATURE", "COMBINATION",
                "POOL", "ID"}
# Not walked: what git ignores (outputs, environments, caches).
SKIP_DIRS = {".git", ".snakemake", ".pytest_cache", "__pycache__", "results", "resources", "logs", "bench-out",
             "tests/slurm/last"}

TOP_PATH = re.compile(r"(?<![\w/.$~<{-])((?:%s)/[\w.*{}<>$-]*(?:/[\w.*{}<>$-]*)*)"
                      % "|".join(re.escape(t) for t in TOPS))
BARE_NAME = re.compile(r"(?<![\w/.$~<{-])([\w-]+\.(?:%s))(?![\w/-])" % "|".join(SOURCE))
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def repository_files(root: Path = ROOT) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not {d, str(rel / d)} & SKIP_DIRS and not d.startswith(".venv"))
        found += [Path(folder) / f for f in sorted(files)]
    return found


def markdown_files() -> list[Path]:
    return [p for p in repository_files() if p.suffix == ".md"]


def placeholder(path: str) -> bool:
    return (any(c in path for c in "{}<>$") or "..." in path
            or any(word in PLACEHOLDERS or re.fullmatch("[A-Z]", word) for word in re.split(r"[/_.*-]", path)))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of the headings of a Markdown text (not of `#` lines in fenced blocks)."""
    found, count = set(), {}
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            base = slug(m.group(1))
            found.add(f"{base}-{count[base]}" if base in count else base)  # GitHub numbers repeats
            count[base] = count.get(base, 0) + 1
    return found


def missing_paths(text: str, where: Path, root: Path = ROOT) -> list[str]:
    """The repository paths named in `text` (a Markdown file at `where`) that do not exist under
    `root`, each as `path: why`."""
    names = {p.name for p in repository_files(root)}
    missing = []
    prose = LINK.sub("]()", text)  # link targets are checked below, from the file's folder
    for m in TOP_PATH.finditer(prose):
        path = m.group(1).rstrip(".,;:")
        if placeholder(path):
            continue
        if "*" in path:
            if not list(root.glob(path.rstrip("/"))):
                missing.append(f"{path}: no file matches")
        elif not (root / path).exists():
            missing.append(f"{path}: no such file or folder")
    for m in BARE_NAME.finditer(prose):
        if not placeholder(m.group(1)) and m.group(1) not in names:
            missing.append(f"{m.group(1)}: no file of that name in the repository")
    for m in LINK.finditer(text):
        target, _, anchor = m.group(1).partition("#")
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # a URL (https:, mailto:)
            continue
        file = (where.parent / target).resolve() if target else where
        if not file.exists():
            missing.append(f"{m.group(1)}: link to a missing file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            missing.append(f"{m.group(1)}: no heading with that anchor in {file.name}")
    return list(dict.fromkeys(missing))


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_doc_names_exists(doc):
    missing = missing_paths(doc.read_text(), doc)
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist:\n  " + "\n  ".join(missing)


def test_the_docs_checked_include_the_readme_design_and_benchmarks():
    checked = {str(p.relative_to(ROOT)) for p in markdown_files()}
    assert {"README.md", "BENCHMARKS.md", "docs/DESIGN.md", "docs/PAPER.md", "data/ADS_FORMAT.md",
            "config/paper/README.md"} <= checked


def test_a_made_up_path_fails_and_placeholders_and_outputs_pass(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "extract").mkdir()
    (tmp_path / "extract" / "store.py").write_text("")
    (tmp_path / "docs" / "GUIDE.md").write_text("# Feature store\n\n```bash\n# not a heading\n```\n")
    doc = tmp_path / "README.md"
    made_up = ("`extract/stores.py` holds it; see extract/missing/ and `synthetic.py`, "
               "[guide](docs/NOPE.md), [section](docs/GUIDE.md#not-a-heading), `bench/*.json`.\n")
    real = ("`extract/store.py`, extract/, `store.py`, [guide](docs/GUIDE.md#feature-store), "
            "[web](https://example.org/extract/x.py), results/demo_table.csv, `logs/`, `resources/weights/`, "
            "`RUN_DIR/metrics.json`, `tests/PACKAGE/test_MODULE.py`, `X.md`, `extract/{name}.py`, "
            "`$DMMS_WEIGHTS/<file>`, /tmp/gpuslots, ~/.cache/clip/, `mine.yaml`, metadata/x.py.\n")
    assert missing_paths(real, doc, tmp_path) == []
    assert missing_paths(made_up, doc, tmp_path) == [
        "extract/stores.py: no such file or folder", "extract/missing/: no such file or folder",
        "bench/*.json: no file matches", "synthetic.py: no file of that name in the repository",
        "docs/NOPE.md: link to a missing file",
        "docs/GUIDE.md#not-a-heading: no heading with that anchor in GUIDE.md"]


DESIGN_MAX_LINES = 350  # the architecture, the contracts, the layering and three recipes; the rest is the code's


def test_design_stays_short():
    """docs/DESIGN.md holds what the code cannot show by itself, not a walk through the code: a
    fact that belongs next to what it explains goes into that file's docstring or comment."""
    lines = len((ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8").splitlines())
    assert lines <= DESIGN_MAX_LINES, (f"docs/DESIGN.md has {lines} lines, more than {DESIGN_MAX_LINES}: move what "
                                       "the code can say into its docstrings and keep the contracts")


def test_tops_lists_every_top_level_folder():
    """A new top-level folder is added to TOPS, else paths in it would go unchecked."""
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout ({listed.stderr.strip()}): the tracked folders are unknown")
    folders = {line.split("/")[0] for line in listed.stdout.splitlines() if "/" in line}
    assert folders <= set(TOPS), f"add {sorted(folders - set(TOPS))} to TOPS"
