"""extract.substitutes: the paper's model per extractor, one-line substitutions, and the
paper_strict check over the real config sections (importable without torch)."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.hashing import sha256
from extract import substitutes
from extract.substitutes import strict_problems, substitution

ROOT = Path(__file__).resolve().parents[2]


def features(dataset: str) -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())["datasets"][dataset]["features"]


def test_importable_without_torch():
    code = ("import sys, yaml; from extract.substitutes import strict_problems; "
            "strict_problems(yaml.safe_load(open('config/config.yaml'))['datasets']['imdb']['features']); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_paper_backends_are_no_substitute(monkeypatch):
    monkeypatch.setattr(substitutes, "detectron2_problem", lambda: "")
    for name, spec in features("imdb").items():
        if spec["extractor"] != "ocr":  # nobody can run the paper's OCR model [3]
            assert substitution(spec["extractor"], spec.get("backend", ""), spec.get("options")) is None, name
    assert substitution("text", "fairseq", {"model": "/data/weights/roberta.base"}) is None
    assert substitution("faces", "senet50_256", {"weights": "senet50_256.pth"}) is None


def test_stand_ins_are_named(monkeypatch):
    monkeypatch.setattr(substitutes, "detectron2_problem", lambda: "detectron2 is not importable")
    demo = {name: substitution(s["extractor"], s.get("backend", ""), s.get("options")) for name, s in features("demo").items()}
    assert "mobilenet_v2" in demo["image"] and "ResNeXt-101 32x16d WSL" in demo["image"]
    assert "minilm" in demo["text"] and "RoBERTa" in demo["ocr_words"]
    assert "MTCNN + mobilenet_v2 on face crops" in demo["faces"] and "SE-ResNet-50-256D" in demo["faces"]
    assert demo["ocr"].startswith("ocr backend easyocr-en (EasyOCR 1.7 by Jaided AI")  # a stand-in for [3]
    assert "instead of the paper's OCR model from its reference [3]" in demo["ocr"]
    assert "face crops grown by 0.3 x the box size (paper: the face bounding box itself)" in demo["faces"]
    assert "torchvision" in substitution("objects", "auto") and "detectron2" in substitution("objects", "auto")
    assert "score threshold 0.5" in substitution("objects", "torchvision", {"score_threshold": 0.5})
    assert "at most 128 tokens" in substitution("text", "roberta-base", {"max_tokens": 128})
    assert "roberta-large" in substitution("text", "roberta-base", {"model": "roberta-large"})
    assert "my_senet.pth" in substitution("faces", "senet50_256", {"weights": "my_senet.pth"})
    assert "BGR" in substitution("faces", "senet50_256", {"channel_order": "bgr"})
    assert "mobilenet_v2" in substitution("boxes", "", {"backbone": "mobilenet_v2"})
    assert substitution("index", "") is None
    with pytest.raises(ValueError, match="unknown extractor 'audio': extract/catalog.py has no entry"):
        substitution("audio", "")


def test_strict_names_detectron2_and_how_to_build_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "detectron2", None)  # not installed, wherever this runs
    for name in ("DMMS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    problems = strict_problems(features("imdb"))
    assert len(problems) == 1 and problems[0].startswith("objects: ")
    assert "setuptools<81" in problems[0] and "pip install --no-build-isolation --no-deps ." in problems[0]
    assert strict_problems(features("ads"))[0].startswith("objects: ")


def test_strict_passes_the_paper_setup_with_everything_there(monkeypatch):
    monkeypatch.setattr(substitutes, "detectron2_problem", lambda: "")
    for name in ("DMMS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # weights download when needed
        monkeypatch.delenv(name, raising=False)
    assert strict_problems(features("imdb")) == []
    assert len(strict_problems(features("demo"))) == 4  # image, text, faces, ocr_words; EasyOCR accepted


def test_strict_offline_needs_the_weight_files_present(monkeypatch, tmp_path):
    monkeypatch.setattr(substitutes, "detectron2_problem", lambda: "")
    monkeypatch.setenv("DMMS_OFFLINE", "1")
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # not this machine's cache
    problems = dict(p.split(": ", 1) for p in strict_problems(features("imdb")))
    assert set(problems) == {"image", "faces", "objects", "boxes", "text", "ocr_text"}  # RoBERTa too
    assert "RoBERTa roberta-base weights not found" in problems["text"]
    assert "hf download FacebookAI/roberta-base config.json model.safetensors" in problems["text"]
    assert "senet50_256.pth" in problems["faces"] and "senet50_256_pytorch.tar.gz" in problems["faces"]
    assert "ig_resnext101_32x16-c6f796b0.pth" in problems["image"]
    assert "model_final_b275ba.pkl" in problems["objects"]


def put_paper_files(folder: Path) -> dict[str, Path]:
    """Every paper weight file where the project looks for it (DMMS_WEIGHTS, the WSL file in torch
    hub's cache), with other bytes than the published files: a random or corrupt download."""
    from extract.weights import hub_dir

    hub_dir().mkdir(parents=True)
    files = {name: folder / name for name in ("senet50_256.pth", "model_final_b275ba.pkl")}
    files["ig_resnext101_32x16-c6f796b0.pth"] = hub_dir() / "ig_resnext101_32x16-c6f796b0.pth"
    for name, path in files.items():
        path.write_bytes(f"random weights standing for {name}".encode())
    roberta = folder / "roberta-base"
    roberta.mkdir()
    (roberta / "config.json").write_text("{}")
    files["roberta"] = roberta / "model.safetensors"
    files["roberta"].write_bytes(b"random weights standing for roberta-base")
    return files


def test_strict_lists_every_weight_file_that_is_not_the_published_one(monkeypatch, tmp_path):
    monkeypatch.setattr(substitutes, "detectron2_problem", lambda: "")
    monkeypatch.setenv("DMMS_OFFLINE", "1")
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    files = put_paper_files(tmp_path)
    problems = dict(p.split(": ", 1) for p in strict_problems(features("imdb")))
    # detectron2 publishes no hash for model_final_b275ba.pkl: only what can be checked is listed
    assert set(problems) == {"image", "boxes", "faces", "text", "ocr_text"}
    for name, prefix in (("image", "c6f796b0"), ("boxes", "c6f796b0")):
        assert problems[name].startswith(f"{files['ig_resnext101_32x16-c6f796b0.pth']}: weights ig_resnext101_32x16")
        assert f"not torch hub's WSL-Images release's {prefix} (the hash prefix in its file name" in problems[name]
        assert "download https://download.pytorch.org/models/ig_resnext101_32x16-c6f796b0.pth" in problems[name]
    assert problems["faces"].startswith(f"{files['senet50_256.pth']}: weights senet50_256.pth have sha256 ")
    assert "not the VGGFace2 PyTorch release's 3a3c7e03fcd9ccfd" in problems["faces"]
    assert problems["text"].startswith(f"{files['roberta']}: weights model.safetensors have sha256 ")
    assert "not Hugging Face's roberta-base's 5bde1d28afb363d0" in problems["text"]
    # the published files pass: each hash made to be the one of the file in place
    digest = {name: sha256(path) for name, path in files.items()}
    monkeypatch.setattr(substitutes, "SENET50_256", dataclasses.replace(
        substitutes.SENET50_256, sha256=digest["senet50_256.pth"], size=0))
    monkeypatch.setattr(substitutes, "WSL_WEIGHTS", dataclasses.replace(
        substitutes.WSL_WEIGHTS, sha256_prefix=digest["ig_resnext101_32x16-c6f796b0.pth"][:8]))
    monkeypatch.setitem(substitutes.ROBERTA_BASE_FILES, "model.safetensors", dataclasses.replace(
        substitutes.ROBERTA_BASE_FILES["model.safetensors"], sha256=digest["roberta"]))
    assert strict_problems(features("imdb")) == []


def test_strict_checks_roberta_in_the_hugging_face_cache(monkeypatch, tmp_path):
    """The cache's layout: models--NAME/snapshots/REVISION/ with refs/main naming the revision."""
    monkeypatch.setenv("DMMS_OFFLINE", "1")
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    repo = tmp_path / "hf" / "models--roberta-base"
    for revision, content in (("0ld", b"old"), ("e2da8e2f811d1448a5b465c236feacd80ffbac7b", b"random weights")):
        snapshot = repo / "snapshots" / revision
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text("{}")
        (snapshot / "pytorch_model.bin").write_bytes(content)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("e2da8e2f811d1448a5b465c236feacd80ffbac7b")
    text = {"text": {"extractor": "text", "backend": "roberta-base"}}
    problem = strict_problems(text)[0]
    assert problem.startswith(f"text: {repo / 'snapshots/e2da8e2f811d1448a5b465c236feacd80ffbac7b/pytorch_model.bin'}: ")
    assert "not Hugging Face's roberta-base's 278b7a95739c4392" in problem


def test_readme_installs_detectron2_with_the_hint_of_the_code():
    readme = (ROOT / "README.md").read_text()
    assert substitutes.DETECTRON2_INSTALL in readme
    assert substitutes.DETECTRON2_INSTALL in substitutes.DETECTRON2_HINT
    for package in ("fvcore", "iopath", "pycocotools", "omegaconf", "hydra-core", "yacs"):
        assert package in substitutes.DETECTRON2_INSTALL


def fake_detectron2(folder: Path, model_zoo: str) -> None:
    """A package named detectron2 whose `model_zoo` module holds `model_zoo` (source code)."""
    package = folder / "detectron2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model_zoo.py").write_text(model_zoo)


@pytest.mark.parametrize("importable", [False, True])
def test_auto_picks_detectron2_only_when_its_model_zoo_imports(monkeypatch, tmp_path, importable):
    """A detectron2 built against another torch is found by find_spec but fails to import: auto
    falls back to torchvision (recorded as a substitute) and strict mode names the import error."""
    code = "" if importable else "raise ImportError('undefined symbol: _ZN3c10 (built against another torch)')"
    fake_detectron2(tmp_path, code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "detectron2", raising=False)
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model_final_b275ba.pkl").write_bytes(b"weights")  # no published hash to check
    substitutes._import_error.cache_clear()
    assert importlib.util.find_spec("detectron2") is not None  # the package is found either way
    objects = {"objects": {"extractor": "objects", "backend": "auto"}}
    if importable:
        assert substitutes.resolved_backend("objects", "auto") == "detectron2"
        assert substitution("objects", "auto") is None
        assert strict_problems(objects) == []
    else:
        assert substitutes.resolved_backend("objects", "auto") == "torchvision"
        assert "torchvision" in substitution("objects", "auto")
        problem = strict_problems(objects)[0]
        assert "detectron2 is installed but `from detectron2 import model_zoo` fails" in problem
        assert "built against another torch" in problem and substitutes.DETECTRON2_INSTALL in problem
    substitutes._import_error.cache_clear()


def test_faces_margin_is_the_box_itself_on_the_paper_path():
    assert substitutes.face_margin("senet50_256", {}) == 0.0  # "that part of the image from the face bounding box"
    assert substitution("faces", "senet50_256", {"margin": -1}) is None
    assert substitution("faces", "senet50_256", {"margin": 0.3}) == (
        "face crops grown by 0.3 x the box size (paper: the face bounding box itself)")
    assert substitutes.face_margin("backbone", {}) == 0.3  # the demo keeps VGGFace2's 0.3
    assert "face bounding box itself" in strict_problems({"faces": {"extractor": "faces", "options": {"margin": 0.3}}})[0]


def test_ocr_stand_in_reaches_the_stores_that_read_it(tmp_path):
    """A store built from the OCR store (IE(ocr) here; RoBERTa(ocr) the same) carries its stand-in."""
    import numpy as np
    import pandas as pd

    from extract.__main__ import main as extract_main
    from extract.store import base_attrs, read_store, write_store
    from tests.builders import StoreBuilder

    b = StoreBuilder()
    b.add("a", {"words": np.array(["FEAR"], dtype=object)}, {"text": "FEAR"})
    attrs = {**base_attrs("ocr", "easyocr-en", 0, {}), "substitute": substitution("ocr", "easyocr-en")}
    ocr = write_store(tmp_path / "ocr.h5", b.build(attrs, {"words": ((), object)}))
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"id": ["a"], "split": "train", "image": "", "text": "", "labels": ""}).to_csv(manifest, index=False)
    out = tmp_path / "words.h5"
    assert extract_main(["index", "--manifest", str(manifest), "--out", str(out), "--input", str(ocr),
                         "--set", "source=words", "--no-progress"]) == 0
    assert read_store(out).attrs["substitute"] == f"its input ocr: {attrs['substitute']}"


def test_strict_fairseq_backend_needs_fairseq_and_its_release(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "fairseq", None)
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path))
    feats = {"text": {"extractor": "text", "backend": "fairseq"}}
    assert "fairseq is not importable" in strict_problems(feats)[0] and "make test-fairseq" in strict_problems(feats)[0]
    monkeypatch.setattr(substitutes, "_missing_module", lambda name, hint: "")
    monkeypatch.setattr(substitutes.importlib.util, "find_spec", lambda name: object())
    assert "roberta.base.tar.gz" in strict_problems(feats)[0]
    (tmp_path / "roberta.base").mkdir()
    (tmp_path / "roberta.base" / "model.pt").write_bytes(b"x")
    # model.pt alone is not what the backend loads: dict.txt, then GPT-2's BPE files, are named
    assert "no model.pt + dict.txt" in strict_problems(feats)[0]
    (tmp_path / "roberta.base" / "dict.txt").write_text("x 1\n")
    assert "encoder.json and vocab.bpe not found" in strict_problems(feats)[0]
    for name in ("encoder.json", "vocab.bpe"):
        (tmp_path / "roberta.base" / name).write_text("{}")
    assert strict_problems(feats) == []
