"""extract.substitutes: the paper's model per extractor, one-line substitutions, and the
paper_strict check over the real config sections (importable without torch)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from extract import substitutes
from extract.substitutes import PAPER, strict_problems, substitution

ROOT = Path(__file__).resolve().parents[2]


def features(dataset: str) -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())["datasets"][dataset]["features"]


def test_importable_without_torch():
    code = ("import sys, yaml; from extract.substitutes import strict_problems; "
            "strict_problems(yaml.safe_load(open('config/config.yaml'))['datasets']['imdb']['features']); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_table_matches_the_extractors():
    from extract import registry
    from extract.backbones import WEIGHTS
    from extract.ocr import DETECTOR, RECOGNIZER

    assert set(PAPER) == set(registry.MODULES)
    for name, paper in PAPER.items():
        cls = registry.get(name)
        assert paper.default == cls.backends[0], name
        assert set(paper.backends) <= set(cls.backends), name
    assert substitutes.WSL_WEIGHTS == WEIGHTS["resnext101_32x16d_wsl"]
    assert substitutes.EASYOCR_FILES == (DETECTOR, RECOGNIZER)


def test_paper_backends_are_no_substitute(monkeypatch):
    monkeypatch.setattr(substitutes, "detectron2_available", lambda: True)
    for name, spec in features("imdb").items():
        if spec["extractor"] != "ocr":  # nobody can run the paper's OCR model [3]
            assert substitution(spec["extractor"], spec.get("backend", ""), spec.get("options")) is None, name
    assert substitution("text", "fairseq", {"model": "/data/weights/roberta.base"}) is None
    assert substitution("faces", "senet50_256", {"weights": "senet50_256.pth"}) is None


def test_stand_ins_are_named(monkeypatch):
    monkeypatch.setattr(substitutes, "detectron2_available", lambda: False)
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
    with pytest.raises(ValueError, match="unknown extractor"):
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
    monkeypatch.setattr(substitutes, "detectron2_available", lambda: True)
    for name in ("DMMS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # weights download when needed
        monkeypatch.delenv(name, raising=False)
    assert strict_problems(features("imdb")) == []
    assert len(strict_problems(features("demo"))) == 4  # image, text, faces, ocr_words; EasyOCR accepted


def test_strict_offline_needs_the_weight_files_present(monkeypatch, tmp_path):
    monkeypatch.setattr(substitutes, "detectron2_available", lambda: True)
    monkeypatch.setenv("DMMS_OFFLINE", "1")
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # not this machine's cache
    problems = dict(p.split(": ", 1) for p in strict_problems(features("imdb")))
    assert set(problems) == {"image", "faces", "objects", "boxes", "text", "ocr_text"}  # RoBERTa too
    assert "RoBERTa roberta-base weights not found" in problems["text"] and "save_pretrained" in problems["text"]
    assert "senet50_256.pth" in problems["faces"] and "senet50_256_pytorch.tar.gz" in problems["faces"]
    assert "ig_resnext101_32x16-c6f796b0.pth" in problems["image"]
    assert "model_final_b275ba.pkl" in problems["objects"]
    for name in ("senet50_256.pth", "ig_resnext101_32x16-c6f796b0.pth", "model_final_b275ba.pkl"):
        (tmp_path / name).write_bytes(b"weights")
    roberta = tmp_path / "roberta-base"
    roberta.mkdir()
    (roberta / "config.json").write_text("{}")
    (roberta / "model.safetensors").write_bytes(b"weights")
    problems = strict_problems(features("imdb"))  # all present; the local senet file is not the release
    assert len(problems) == 1 and problems[0].startswith(f"faces: {tmp_path / 'senet50_256.pth'} has sha256 ")
    assert "not the VGGFace2 PyTorch release's 3a3c7e03fcd9ccfd" in problems[0]
    monkeypatch.setattr(substitutes, "SENET50_256", dataclasses.replace(
        substitutes.SENET50_256, sha256=substitutes.sha256(tmp_path / "senet50_256.pth"), size=7))
    assert strict_problems(features("imdb")) == []


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
    from extract.store import StoreBuilder, base_attrs, read_store, write_store

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
    assert strict_problems(feats) == []
