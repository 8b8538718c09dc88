"""Weight files of models named by the user (timm, open_clip), and the `pretrained` option.

A named model's weights live in a Hugging Face Hub repository (`repo`, one of `files`, the first
that exists wins) or, for a few old releases, at a plain `url`. They are looked for, in order:
  1. `resources/weights/<repo>/<file>` (or `$DMMS_WEIGHTS/<repo>/<file>`): the repository's own
     layout, e.g. resources/weights/timm/resnet18.a1_in1k/model.safetensors;
  2. the Hugging Face cache (`$HF_HUB_CACHE`, default ~/.cache/huggingface/hub), where timm,
     open_clip and transformers put what they download;
  3. `extra` paths a library keeps its own downloads in (open_clip: ~/.cache/clip/<file>);
  4. a download by `extract.weights.resolve` into the folder of 1 (never when `DMMS_OFFLINE=1`).
When none works the error names every place and the file to put there.

Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from core.offline import offline
from extract.weights import MissingWeights, WeightFile, fetch_url, file_sha256, resolve, weights_dir

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "none")


def parse_pretrained(value: str) -> bool | str:
    """The `pretrained` option: True (the model's default weights), False (random weights), or a
    tag / file (open_clip: `laion2b_s34b_b79k`, or a checkpoint path)."""
    text = str(value).strip()
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE or not text:
        return False
    return text


@dataclass(frozen=True)
class NamedWeights:
    model: str  # what the user named, for messages
    repo: str = ""  # Hugging Face Hub repository, e.g. timm/resnet18.a1_in1k
    files: tuple[str, ...] = ()  # candidate file names in `repo`, preferred first
    url: str = ""  # a plain download when there is no `repo`
    extra: tuple[Path, ...] = ()  # a library's own download folder entries


def hf_cached(repo: str, file: str) -> Path | None:
    """`file` of `repo` in the Hugging Face cache, or None (never touches the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo, file)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def hub_weight_info(name: str) -> list[tuple[str, str]]:
    """(file, sha256) of the weight file transformers reads for hub model `name` from the Hugging
    Face cache (model.safetensors first); [] when the cache has neither."""
    for file in ("model.safetensors", "pytorch_model.bin"):
        path = hf_cached(name, file)
        if path is not None:
            return [(file, file_sha256(path))]
    return []


def model_label(model: str) -> str:
    """A model's name for a store's `model` attr, never a machine path: a hub name as given, a local
    folder by its name (a Hugging Face cache snapshot by its repository, org/name)."""
    path = Path(model)
    if not path.exists():
        return model
    parts = path.resolve().parts
    repo = next((p for p in reversed(parts) if p.startswith("models--")), "")
    return repo[len("models--"):].replace("--", "/") if repo else parts[-1]


def local_file(spec: NamedWeights) -> Path | None:
    for file in spec.files:
        path = weights_dir() / spec.repo / file
        if path.is_file() and path.stat().st_size > 0:
            return path
    for file in spec.files:
        cached = hf_cached(spec.repo, file)
        if cached is not None:
            return cached
    return next((p for p in spec.extra if p.is_file() and p.stat().st_size > 0), None)


def _places(spec: NamedWeights) -> str:
    if spec.repo:
        places = [f"{weights_dir() / spec.repo / spec.files[0]}",
                  f"the Hugging Face cache (hf download {spec.repo} {spec.files[0]})"]
    else:
        places = [f"{weights_dir() / PurePosixPath(spec.url).name}"]
    places += [str(p) for p in spec.extra]
    return " or ".join(places)


def named_weights(spec: NamedWeights, fetch: Callable[..., None] = fetch_url) -> Path:
    """A local copy of the named model's weights, downloading it (with `fetch`) when allowed: the
    repository's candidate files in order (a repository may hold only the second)."""
    found = local_file(spec)
    if found is not None:
        return found
    if spec.repo:
        tries = [WeightFile(f"{spec.repo}/{f}", url=f"https://huggingface.co/{spec.repo}/resolve/main/{f}")
                 for f in spec.files]
    else:
        tries = [WeightFile(PurePosixPath(spec.url).name, url=spec.url)]
    reasons = []
    for file in tries:
        try:
            return resolve(file, fetch)  # also looks in resources/weights/<file> and torch hub's checkpoints
        except MissingWeights as err:
            reasons.append(str(err))
    reason = "DMMS_OFFLINE is set" if offline() else "; ".join(reasons)
    source = f"https://huggingface.co/{spec.repo}" if spec.repo else spec.url
    name = spec.files[0] if spec.files else PurePosixPath(spec.url).name
    raise MissingWeights(
        f"weights of {spec.model} not found ({reason}). To fix: download {name} from {source} and put it "
        f"at {_places(spec)}; or set pretrained: false for random weights (features without meaning: "
        "tests, dry runs).")
