"""extract.substitutes: the paper's model per extractor, one-line substitutions, and the
paper_strict check over the real config sections (importable without torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from extract import substitutes
from extract.substitutes import PAPER, strict_problems, substitution

ROOT = Path(__file__).resolve().parents[1]


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
        assert substitution(spec["extractor"], spec.get("backend", ""), spec.get("options")) is None, name
    assert substitution("text", "fairseq", {"model": "/data/weights/roberta.base"}) is None
    assert substitution("faces", "senet50_256", {"weights": "senet50_256.pth"}) is None


def test_stand_ins_are_named(monkeypatch):
    monkeypatch.setattr(substitutes, "detectron2_available", lambda: False)
    demo = {name: substitution(s["extractor"], s.get("backend", ""), s.get("options")) for name, s in features("demo").items()}
    assert "mobilenet_v2" in demo["image"] and "ResNeXt-101 32x16d WSL" in demo["image"]
    assert "minilm" in demo["text"] and "RoBERTa" in demo["ocr_text"]
    assert "MTCNN + mobilenet_v2 on face crops" in demo["faces"] and "SE-ResNet-50-256D" in demo["faces"]
    assert demo["ocr"] is None  # EasyOCR is the paper's; its magnification is not a model change
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
    monkeypatch.delenv("DMMS_OFFLINE", raising=False)
    problems = strict_problems(features("imdb"))
    assert len(problems) == 1 and problems[0].startswith("objects: ")
    assert "setuptools<81" in problems[0] and "pip install --no-build-isolation --no-deps ." in problems[0]
    assert strict_problems(features("ads"))[0].startswith("objects: ")


def test_strict_passes_the_paper_setup_with_everything_there(monkeypatch):
    monkeypatch.setattr(substitutes, "detectron2_available", lambda: True)
    monkeypatch.delenv("DMMS_OFFLINE", raising=False)  # weights download when needed
    assert strict_problems(features("imdb")) == []
    assert len(strict_problems(features("demo"))) == 4  # image, text, faces, ocr_text


def test_strict_offline_needs_the_weight_files_present(monkeypatch, tmp_path):
    monkeypatch.setattr(substitutes, "detectron2_available", lambda: True)
    monkeypatch.setenv("DMMS_OFFLINE", "1")
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path))
    problems = dict(p.split(": ", 1) for p in strict_problems(features("imdb")))
    assert set(problems) == {"image", "faces", "objects", "boxes"}
    assert "senet50_256.pth" in problems["faces"] and "senet50_256_pytorch.tar.gz" in problems["faces"]
    assert "ig_resnext101_32x16-c6f796b0.pth" in problems["image"]
    assert "model_final_b275ba.pkl" in problems["objects"]
    for name in ("senet50_256.pth", "ig_resnext101_32x16-c6f796b0.pth", "model_final_b275ba.pkl"):
        (tmp_path / name).write_bytes(b"weights")
    assert strict_problems(features("imdb")) == []


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
