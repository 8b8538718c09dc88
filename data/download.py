"""Fetch a dataset archive (resumable) and unpack it safely; MM-IMDb's by default.

`fetch(url, out)` writes to `OUT.part` and renames it to `OUT` once complete. A rerun resumes
from the bytes already in `OUT.part` (HTTP Range; `file://` URLs are read from that offset, which
is how the tests run offline). The result is checked against the expected size (given, or as the
server announced it) and, when given, its sha256. `DMMS_OFFLINE=1` forbids network access. It
writes progress lines in MB (`core.progress`) to stderr: the download rule's log.

`unpack(archive, dest)` extracts a .tar(.gz) into a staging folder inside `dest`, rejecting
(tarfile's "data" filter) members with absolute paths or landing outside the folder, links that
leave the tree, or device files, then moves the
entries into `dest` and writes `dest/dmms-unpacked.json` naming the dataset root found inside
(the folder holding `split.json` and `dataset/`; MM-IMDb's archive unpacks to `mmimdb/`).
`find_root(dest)` reads that marker (or searches) so callers need not know the archive layout.
"""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from core.atomic import atomic_write
from core.hashing import sha256 as sha256_file
from core.offline import offline
from core.progress import Progress

log = logging.getLogger("data.download")

MMIMDB_URL = "https://archive.org/download/mmimdb/mmimdb.tar.gz"
MMIMDB_SIZE = "about 8.1 GB"  # as reported by projects using the mirror; no exact byte count known
MARKER = "dmms-unpacked.json"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The archive could not be fetched or is not the expected file."""


class UnsafeArchive(ValueError):
    """An archive member would land outside the target folder."""


def how_to_fix(url: str, out: Path, size: int | None) -> str:
    expected = f"{size} bytes" if size else (MMIMDB_SIZE if url == MMIMDB_URL else "size unknown")
    return (f"To fix: download {url} ({expected}) by other means and put it at {out} "
            f"(a partial copy at {part_path(out)} is resumed), then rerun; or set `root:` of the "
            "dataset in config/config.yaml to an existing unpacked copy (the folder holding "
            "split.json and dataset/).")


def part_path(out: Path) -> Path:
    return out.with_name(out.name + ".part")


# ---------------------------------------------------------------------------------------------
# download


def fetch(url: str, out: str | Path, size: int | None = None, sha256: str | None = None,
          timeout: float = 60.0) -> Path:
    """Download `url` to `out` (resuming `out.part`), verify it, return `out`."""
    out = Path(out)
    if out.is_file():
        verify(out, size, sha256, fixable=False)
        log.info("%s already present and verified", out)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(out)
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset > size:
        log.warning("%s holds %d bytes, more than the expected %d; starting over", part, offset, size)
        part.unlink()
        offset = 0
    announced = None
    if size is None or offset < size:
        if offset:
            log.info("resuming %s at byte %d", part, offset)
        try:
            announced = _copy_file_url(url, part, offset) if url.startswith("file:") else \
                _copy_http(url, part, offset, timeout)
        except OSError as err:  # includes requests' connection errors and timeouts
            kept = part.stat().st_size if part.is_file() else 0
            raise DownloadError(f"downloading {url} failed: {type(err).__name__}: {err}. "
                                f"{part} keeps {kept} bytes; rerun to resume. "
                                + how_to_fix(url, out, size)) from err
    verify(part, size if size is not None else announced, sha256, fixable=True)
    part.replace(out)
    log.info("%s complete (%d bytes)", out, out.stat().st_size)
    return out


def _copy_file_url(url: str, part: Path, offset: int) -> int:
    """Append `url`'s bytes from `offset` to `part`; returns the source's size."""
    source = Path(unquote(urlparse(url).path))
    if not source.is_file():
        raise DownloadError(f"{source} (from {url}) does not exist. " + how_to_fix(url, _out_of(part), None))
    total = source.stat().st_size
    with source.open("rb") as src, part.open("ab") as dst:
        src.seek(offset)
        _pump(iter(lambda: src.read(CHUNK), b""), dst, offset, total)
    return total


def _copy_http(url: str, part: Path, offset: int, timeout: float) -> int | None:
    """Append the remote bytes from `offset`; returns the size the server announced, if any."""
    out = _out_of(part)
    if offline():
        raise DownloadError(f"{out} is missing and DMMS_OFFLINE is set, so {url} is not fetched. "
                            + how_to_fix(url, out, None))
    import requests

    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with requests.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True) as resp:
        if resp.status_code == 416 and offset:  # nothing after offset: the part may be complete
            return _total_from_range(resp.headers.get("Content-Range", ""))
        if resp.status_code >= 400:
            raise DownloadError(f"{url} answered HTTP {resp.status_code} {resp.reason}. "
                                + how_to_fix(url, out, None))
        if offset and resp.status_code != 206:
            log.warning("%s ignored the Range request; downloading from the start", url)
            part.unlink()
            offset = 0
        total = _total_from_range(resp.headers.get("Content-Range", ""))
        if total is None and resp.headers.get("Content-Length", "").isdigit():
            total = offset + int(resp.headers["Content-Length"])
        with part.open("ab") as dst:
            _pump(resp.iter_content(CHUNK), dst, offset, total)
    return total


def _total_from_range(header: str) -> int | None:
    """'bytes 100-199/2000' or 'bytes */2000' -> 2000."""
    total = header.rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


def _pump(chunks, dst, offset: int, total: int | None) -> None:
    """Append `chunks` to `dst`, writing progress lines in MB (core.progress) of the bytes left
    after `offset` (what a resumed download still fetches)."""
    name = Path(dst.name).name.removesuffix(".part")
    task = f"download {name}" + (f" (resumed at {offset / 1e6:.1f} MB)" if offset else "")
    with Progress(task, max(0, total - offset) if total else 0, "MB") as counter:
        for chunk in chunks:
            dst.write(chunk)
            counter.update(len(chunk))


def _out_of(part: Path) -> Path:
    return part.with_name(part.name.removesuffix(".part"))


def verify(path: Path, size: int | None, sha256: str | None, fixable: bool) -> None:
    """Check size and sha256; a bad `.part` (fixable) is moved aside so a rerun starts over."""
    actual = path.stat().st_size
    if size is not None and actual < size:
        raise DownloadError(f"{path} is incomplete: {actual} of {size} bytes. Rerun to resume"
                            + ("." if fixable else f", or delete {path} and download it again."))
    problem = ""
    if size is not None and actual > size:
        problem = f"{path} has {actual} bytes, expected {size}"
    elif sha256:
        got = sha256_file(path)
        if got.lower() != sha256.strip().lower():
            problem = f"{path} has sha256 {got}, expected {sha256.strip().lower()}"
    if not problem:
        return
    if fixable:
        bad = path.with_name(_out_of(path).name + ".bad")
        path.replace(bad)
        raise DownloadError(f"{problem}. It was moved to {bad}; rerun to download again, or check "
                            "--size/--sha256.")
    raise DownloadError(f"{problem}. Delete {path} and rerun, or check --size/--sha256.")


# ---------------------------------------------------------------------------------------------
# unpack


UNSAFE = (  # tarfile's "data" filter refusals -> what we tell the user
    (tarfile.AbsolutePathError, "has an absolute path"),
    (tarfile.OutsideDestinationError, "would land outside the target folder"),
    ((tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError), "links outside the archive"),
    (tarfile.SpecialFileError, "is a device or fifo"),
)


def safe_member(archive: Path):
    """The `filter` for `TarFile.extract`: tarfile's "data" filter (no absolute paths, nothing
    outside the folder, no links leaving it, no device files), with its refusals raised as
    UnsafeArchive naming the archive and member. A leading "/", which the filter strips, is refused
    too: such an archive was not made for unpacking into a folder."""

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        try:
            if member.name.startswith(("/", "\\")):
                raise tarfile.AbsolutePathError(member)
            return tarfile.data_filter(member, dest)
        except tarfile.FilterError as err:
            reason = next((text for kind, text in UNSAFE if isinstance(err, kind)), str(err))
            raise UnsafeArchive(f"{archive}: member {member.name!r} {reason}; "
                                "refusing to unpack this archive") from err

    return check


def unpack(archive: str | Path, dest: str | Path) -> Path:
    """Extract `archive` into `dest` (once); returns the dataset root inside it."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive} not found; run `python -m data download` first")
    marker = dest / MARKER
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("archive") == archive.name and info.get("size") == archive.stat().st_size:
            log.info("%s already unpacked into %s", archive, dest)
            return find_root(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / ".unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            check = safe_member(archive)
            for member in tar:
                tar.extract(member, staging, filter=check)
                count += 1
        entries = sorted(staging.iterdir())
        for e in entries:  # an empty folder (Snakemake makes its outputs' parents) is no clash
            if (dest / e.name).is_dir() and not any((dest / e.name).iterdir()):
                (dest / e.name).rmdir()
        clash = [str(dest / e.name) for e in entries if (dest / e.name).exists()]
        if clash:
            raise FileExistsError(f"unpacking {archive} would overwrite {', '.join(clash)}; "
                                  "move or delete them and rerun")
        for entry in entries:
            entry.rename(dest / entry.name)
    except (tarfile.TarError, EOFError, OSError) as err:
        if isinstance(err, FileExistsError):
            raise
        raise DownloadError(f"{archive} could not be unpacked ({type(err).__name__}: {err}); "
                            f"delete it and download it again") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    root = search_root(dest)
    with atomic_write(marker) as tmp:  # a half-written marker would make reruns skip unpacking
        tmp.write_text(json.dumps({"archive": archive.name, "size": archive.stat().st_size,
                                   "members": count, "root": root.relative_to(dest).as_posix()},
                                  indent=1) + "\n")
    log.info("unpacked %d members of %s; dataset root %s", count, archive, root)
    return root


def is_root(folder: Path) -> bool:
    return (folder / "split.json").is_file() and (folder / "dataset").is_dir()


def search_root(folder: Path, depth: int = 3) -> Path:
    """The shallowest folder under `folder` holding split.json and dataset/ (breadth first)."""
    level = [folder]
    for _ in range(depth + 1):
        for candidate in level:
            if is_root(candidate):
                return candidate
        level = [c for d in level for c in sorted(d.iterdir())
                 if c.is_dir() and not c.name.startswith(".") and c.name != "dataset"]
    raise FileNotFoundError(f"no folder holding split.json and dataset/ within {depth} levels of "
                            f"{folder}; is this an MM-IMDb copy? Point `root:` in config/config.yaml "
                            "at the folder that holds them")


def find_root(folder: str | Path) -> Path:
    """The dataset root under `folder`: from its marker when unpacked here, else searched."""
    folder = Path(folder)
    marker = folder / MARKER
    if marker.is_file():
        root = folder / json.loads(marker.read_text())["root"]
        if is_root(root):
            return root
    return search_root(folder)
