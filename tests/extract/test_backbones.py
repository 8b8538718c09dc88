"""Backbones by name (timm, open_clip, any transformers encoder): random weights, weight files in
the real layouts (resources/weights, the Hugging Face cache), the offline message, preprocessing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import data as photos

from core.hashing import sha256
from extract.__main__ import main as extract_main
from extract.backbones import load_backbone
from extract.base import Item
from extract.boxes import BoxExtractor, BoxOptions
from extract.faces import FaceExtractor, FaceOptions, build_embedder
from extract.store import read_store
from extract.substitutes import strict_problems
from extract.text import TextExtractor, TextOptions, minilm_dir
from extract.weights import MissingWeights

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache: only what a test puts there is found."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def manifest(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photos.coffee()).save(folder / "coffee.jpeg")
    Image.fromarray(photos.chelsea()).save(folder / "cat.jpeg")
    rows = [{"id": "coffee", "image": str(folder / "coffee.jpeg"), "text": "A cup of coffee on a saucer."},
            {"id": "cat", "image": str(folder / "cat.jpeg"), "text": "A tabby cat looks at the camera."},
            {"id": "none", "image": "", "text": ""}]
    path = folder / "manifest.csv"
    pd.DataFrame([{**r, "split": "train", "labels": ""} for r in rows]).to_csv(path, index=False)
    return path


def hf_cache_file(cache, repo: str, file: str):
    """Where huggingface_hub keeps `file` of `repo`: models--ORG--NAME/snapshots/REV/FILE, refs/main = REV."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    path = folder / "snapshots" / "0123abcd" / file
    path.parent.mkdir(parents=True)
    return path


def save_timm_resnet18(path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    net = timm.create_model("resnet18", pretrained=False).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(net.state_dict(), str(path))
    return net


# --- image: timm --------------------------------------------------------------------------
def test_cli_timm_random_weights_writes_a_512d_store_naming_the_model(tmp_path, manifest):
    out = tmp_path / "image.h5"
    assert extract_main(["image", "--manifest", str(manifest), "--out", str(out), "--backend", "timm",
                         "--set", "model=resnet18", "--set", "pretrained=false", "--no-progress"]) == 0
    store = read_store(out)
    assert store.attrs["dim"] == 512 and store.offsets.tolist() == [0, 1, 2, 2]
    assert store.attrs["model"] == "timm resnet18 (random weights)"
    assert "random weights" in store.attrs["substitute"] and "instead of the paper's" in store.attrs["substitute"]
    assert json.loads(store.attrs["weights"]) == []
    recipe = json.loads(store.attrs["preprocess"])
    assert recipe["crop_pct"] == 0.95 and recipe["interpolation"] == "bicubic"  # resnet18.a1_in1k's own
    feats = store.rows["features"].astype(np.float32)
    assert np.isfinite(feats).all() and not np.allclose(feats[0], feats[1])


def test_timm_preprocessing_comes_from_the_models_pretrained_config():
    """vit_tiny augreg weights want mean = std = 0.5, not ImageNet's: a mid-grey pixel maps to ~0."""
    bb = load_backbone("timm", CPU, model="vit_tiny_patch16_224.augreg_in21k", pretrained="false")
    assert bb.dim == 192
    grey = Image.new("RGB", (400, 100), (128, 128, 128))
    x = bb.preprocess(grey)
    assert x.shape == (3, 224, 224)
    assert torch.allclose(x, torch.full_like(x, (128 / 255 - 0.5) / 0.5), atol=1e-3)
    assert bb.preprocess.recipe()["mean"] == [0.5, 0.5, 0.5]
    # full: the whole (wide) image squashed, not centre-cropped
    halves = [np.zeros((100, 200, 3), np.uint8), np.full((100, 200, 3), 255, np.uint8)]
    wide = Image.fromarray(np.concatenate(halves, 1))
    squashed, cropped = bb.preprocess(wide, full=True), bb.preprocess(wide)
    assert squashed.shape == cropped.shape == (3, 224, 224)
    assert squashed[:, :, :50].max() < -0.9 and squashed[:, :, -50:].min() > 0.9  # black left, white right
    assert bb.preprocess.recipe(full=True)["crop_mode"] == "squash"


def test_timm_pretrained_loads_the_file_in_resources_weights(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    monkeypatch.setenv("DMMS_WEIGHTS", str(weights))
    path = weights / "timm" / "resnet18.a1_in1k" / "model.safetensors"
    reference = save_timm_resnet18(path)
    bb = load_backbone("timm", CPU, model="resnet18", pretrained="true")
    assert bb.weights == ("model.safetensors", sha256(path)) and bb.note == ""
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)
        assert torch.allclose(bb.embed(x), expected, atol=1e-5)
        assert torch.allclose(bb.logits(x), reference(x), atol=1e-4)  # the head was loaded too


def test_timm_pretrained_found_in_the_hugging_face_cache(empty_hf_cache):
    path = hf_cache_file(empty_hf_cache, "timm/resnet18.a1_in1k", "model.safetensors")
    reference = save_timm_resnet18(path)
    bb = load_backbone("timm", CPU, model="resnet18.a1_in1k", pretrained="true")
    assert bb.weights == ("model.safetensors", sha256(path))
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(bb.embed(x), reference.forward_head(reference.forward_features(x), pre_logits=True),
                              atol=1e-5)


def test_offline_without_weights_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(MissingWeights) as err:
        load_backbone("timm", CPU, model="resnet18", pretrained="true")
    text = str(err.value)
    assert "DMMS_OFFLINE is set" in text
    assert str(tmp_path / "weights" / "timm" / "resnet18.a1_in1k" / "model.safetensors") in text
    assert "https://huggingface.co/timm/resnet18.a1_in1k" in text and "pretrained: false" in text


def test_online_the_file_is_downloaded_from_the_hub_into_resources_weights(tmp_path, monkeypatch):
    from timm.models import get_pretrained_cfg

    from extract.hub import named_weights
    from extract.named_backbones import timm_spec

    monkeypatch.setenv("DMMS_OFFLINE", "0")
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path / "weights"))
    release = tmp_path / "release.safetensors"
    save_timm_resnet18(release)
    asked = []

    def fetch(url, dest, hash_prefix=None):  # stands in for the network: serves the release
        asked.append(url)
        shutil.copyfile(release, dest)

    path = named_weights(timm_spec("resnet18", get_pretrained_cfg("resnet18")), fetch)
    assert asked == ["https://huggingface.co/timm/resnet18.a1_in1k/resolve/main/model.safetensors"]
    assert path == tmp_path / "weights" / "timm" / "resnet18.a1_in1k" / "model.safetensors"
    assert sha256(path) == sha256(release)
    assert named_weights(timm_spec("resnet18", get_pretrained_cfg("resnet18")), fetch) == path and len(asked) == 1


def test_a_repository_without_the_first_file_serves_the_second(tmp_path, monkeypatch):
    from extract.hub import NamedWeights, named_weights

    monkeypatch.setenv("DMMS_OFFLINE", "0")
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path / "weights"))
    asked = []

    def fetch(url, dest, hash_prefix=None):  # the Hub answers 404 for the safetensors file
        asked.append(url.rsplit("/", 1)[1])
        if url.endswith(".safetensors"):
            raise OSError("HTTP Error 404: Not Found")
        (tmp_path / "x").write_bytes(b"weights")
        shutil.copyfile(tmp_path / "x", dest)

    files = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    spec = NamedWeights("open_clip X y", repo="org/clip", files=files)
    path = named_weights(spec, fetch)
    assert asked == ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    assert path == tmp_path / "weights" / "org" / "clip" / "open_clip_pytorch_model.bin"


@pytest.mark.parametrize("name, options, message", [
    ("timm", {"model": "no_such_net"}, "timm.list_models()"),
    ("timm", {"model": "resnet18", "pretrained": "laion"}, "use true or false"),
    ("mobilenet_v2", {"model": "resnet18"}, "are for backbones timm and open_clip"),
    ("mobilenet_v2", {"pretrained": "false"}, "are for backbones timm and open_clip"),
    ("open_clip", {"model": "ViT-S-32", "pretrained": "true"}, "names no weights"),
    ("open_clip", {"model": "RN50", "pretrained": "nope"}, "neither a tag of RN50 (openai, yfcc15m"),
    ("open_clip", {"model": "ViT-Nope", "pretrained": "false"}, "open_clip.list_models()"),
])
def test_bad_names_are_refused_with_the_fix(name, options, message):
    with pytest.raises(ValueError) as err:
        load_backbone(name, CPU, **options)
    assert message in str(err.value)


# --- image and text: open_clip -------------------------------------------------------------
def test_open_clip_random_image_and_text_towers(tmp_path, manifest):
    for extractor in ("image", "text"):
        out = tmp_path / f"{extractor}.h5"
        assert extract_main([extractor, "--manifest", str(manifest), "--out", str(out), "--backend", "open_clip",
                             "--set", "model=ViT-S-32", "--set", "pretrained=false", "--no-progress"]) == 0
        store = read_store(out)
        assert store.attrs["dim"] == 384 and store.offsets.tolist() == [0, 1, 2, 2]
        assert store.attrs["model"].startswith(f"open_clip ViT-S-32, {extractor} tower")
        assert "random weights" in store.attrs["substitute"]
        feats = store.rows["features"].astype(np.float32)
        assert np.isfinite(feats).all() and not np.allclose(feats[0], feats[1])
    assert read_store(tmp_path / "text.h5").attrs["max_tokens"] == 77  # CLIP's context length
    assert json.loads(read_store(tmp_path / "image.h5").attrs["preprocess"])["resize_mode"] == "shortest"


def test_open_clip_tag_loads_its_weights_and_its_preprocessing(tmp_path, monkeypatch):
    """PE-Core-T-16-384 (the smallest tagged model): its tag `meta` resolves to the Hub repo
    timm/PE-Core-T-16-384; the tag's preprocessing (squash, bilinear, mean 0.5) is applied."""
    import open_clip
    from safetensors.torch import save_file

    weights = tmp_path / "weights"
    monkeypatch.setenv("DMMS_WEIGHTS", str(weights))
    torch.manual_seed(0)
    reference = open_clip.create_model("PE-Core-T-16-384", pretrained=None, load_weights=False,
                                       pretrained_image=False, pretrained_text=False).eval()
    path = weights / "timm" / "PE-Core-T-16-384" / "open_clip_model.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    bb = load_backbone("open_clip", CPU, model="PE-Core-T-16-384", pretrained="meta")
    assert bb.weights == ("open_clip_model.safetensors", sha256(path)) and bb.dim == 512
    recipe = bb.preprocess.recipe()
    assert recipe["resize_mode"] == "squash" and recipe["interpolation"] == "bilinear" and recipe["mean"] == [0.5] * 3
    x = torch.randn(1, 3, 384, 384)
    with torch.inference_mode():
        assert torch.allclose(bb.embed(x), reference.encode_image(x), atol=1e-4)


# --- text: hf -------------------------------------------------------------------------------
def test_cli_hf_on_the_offline_minilm_folder_writes_384d(tmp_path, manifest):
    folder = str(minilm_dir())
    out = tmp_path / "text.h5"
    assert extract_main(["text", "--manifest", str(manifest), "--out", str(out), "--backend", "hf",
                         "--set", f"model={folder}", "--no-progress"]) == 0
    store = read_store(out)
    assert store.attrs["dim"] == 384 and store.offsets.tolist() == [0, 1, 2, 2]
    assert store.attrs["pooling"] == "mean" and store.attrs["max_tokens"] == 256  # the folder's own
    # a local folder is named by its name, not its machine path; the file and its sha256 in weights
    assert store.attrs["model"] == "model (transformers)" and "text backend hf" in store.attrs["substitute"]
    assert json.loads(store.attrs["weights"]) == [{"file": "model.safetensors",
                                                   "sha256": sha256(Path(folder) / "model.safetensors")}]
    # the same network as the minilm backend, which L2-normalises the same mean
    minilm = TextExtractor("minilm", CPU, TextOptions())
    texts = ["A cup of coffee on a saucer.", "A tabby cat looks at the camera."]
    hf = store.rows["features"].astype(np.float32)
    hf /= np.linalg.norm(hf, axis=1, keepdims=True)
    assert np.allclose(hf, minilm._encode(texts), atol=2e-3)


def test_hf_pool_cls_random_weights_and_a_name_under_resources_weights(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    monkeypatch.setenv("DMMS_WEIGHTS", str(weights))
    shutil.copytree(minilm_dir(), weights / "sentence-transformers" / "all-MiniLM-L6-v2")
    name = "sentence-transformers/all-MiniLM-L6-v2"
    mean = TextExtractor("hf", CPU, TextOptions(model=name))
    cls = TextExtractor("hf", CPU, TextOptions(model=name, pool="cls", max_tokens=16))
    rand = TextExtractor("hf", CPU, TextOptions(model=name, pretrained="false"))
    text = ["a film about a long journey home"]
    assert cls.extra_attrs()["pooling"] == "first_token" and cls.extra_attrs()["max_tokens"] == 16
    assert not np.allclose(mean._encode(text), cls._encode(text), atol=1e-3)
    assert rand.weights == [] and "random weights" in rand.extra_attrs()["substitute"]
    assert not np.allclose(rand._encode(text), mean._encode(text), atol=1e-2)
    with pytest.raises(MissingWeights, match="put the Hugging Face model folder"):
        TextExtractor("hf", CPU, TextOptions(model="sentence-transformers/not-here"))
    with pytest.raises(ValueError, match="pool='max'"):
        TextExtractor("hf", CPU, TextOptions(model=name, pool="max"))
    with pytest.raises(ValueError, match="option pool is for backend hf, not minilm"):
        TextExtractor("minilm", CPU, TextOptions(pool="cls"))
    with pytest.raises(ValueError, match="option pretrained is for backend hf or open_clip, not roberta-base"):
        TextExtractor("roberta-base", CPU, TextOptions(pretrained="false"))


# --- box and face crops ------------------------------------------------------------------------
def test_box_and_face_crops_take_the_same_named_backbones(tmp_path):
    img = Image.fromarray(photos.astronaut())
    img.save(tmp_path / "astronaut.png")
    boxes = np.array([[10, 10, 200, 200], [150, 40, 400, 300]], np.float32)
    ext = BoxExtractor("backbone", CPU, BoxOptions(backbone="timm", model="resnet18", pretrained="false"))
    extra = {"boxes": boxes, "labels": np.array([1, 2]), "scores": np.array([0.9, 0.8], np.float32)}
    out = ext.forward([ext.prepare(Item("a", image=str(tmp_path / "astronaut.png"), extra=extra, from_input=True))])[0]
    assert out.rows["features"].shape == (2, 512) and ext.weights == []
    attrs = ext.extra_attrs()
    assert attrs["model"] == "timm resnet18 on object box crops (random weights)"
    assert "random weights" in attrs["substitute"] and json.loads(attrs["preprocess"])["crop_mode"] == "squash"
    emb = build_embedder("backbone", FaceOptions(backbone="timm", model="resnet18", pretrained="false"), CPU)
    assert emb.dim == 512 and emb.preprocess["crop_mode"] == "squash" and "random weights" in emb.weights_note
    assert "timm resnet18 on face crops" in emb.model_name
    assert emb.model(emb.to_tensor(img.crop((150, 40, 300, 200)))[None]).shape == (1, 512)
    with pytest.raises(ValueError, match="option model is for backend backbone, not senet50_256"):
        FaceExtractor("senet50_256", CPU, FaceOptions(model="resnet18"))


def test_strict_mode_lists_named_backbones_as_not_the_papers():
    problems = strict_problems({
        "image": {"extractor": "image", "backend": "timm", "options": {"model": "resnet18"}},
        "text": {"extractor": "text", "backend": "hf", "options": {"model": "roberta-base"}},
        "boxes": {"extractor": "boxes", "backend": "", "options": {"backbone": "open_clip"}}})
    assert len(problems) == 3 and all("instead of the paper's" in p for p in problems)
