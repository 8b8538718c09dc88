"""The image extractor on real photos with the real weights, and on bad or odd inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import data as photos
from torchvision.models import MobileNet_V2_Weights

from extract.__main__ import main as extract_main
from extract.backbones import load_backbone
from extract.base import Extractor, Options
from extract.store import read_store

CATEGORIES = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]


@pytest.fixture(scope="module")
def mobilenet():
    return load_backbone("mobilenet_v2", torch.device("cpu"))


@pytest.mark.parametrize("name, expected", [
    ("coffee", {"espresso", "cup", "coffee mug"}),
    ("chelsea", {"tabby", "tiger cat", "Egyptian cat"}),
])
def test_mobilenet_recognises_real_photos(mobilenet, name, expected):
    """The very weights the extractor loads give sensible ImageNet classes."""
    x = mobilenet.preprocess(Image.fromarray(getattr(photos, name)()))[None]
    top = {CATEGORIES[i] for i in mobilenet.logits(x).topk(3).indices[0].tolist()}
    assert top & expected, f"{name}: top-3 {top}"
    assert mobilenet.embed(x).shape == (1, 1280)
    assert mobilenet.weights[0] == "mobilenet_v2-b0353104.pth"


def write_inputs(folder):
    """Real photos, odd formats and broken files, as a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    coffee = Image.fromarray(photos.coffee())
    files = {}
    coffee.save(folder / "coffee.jpeg", quality=90)
    files["coffee"] = folder / "coffee.jpeg"
    raw = (folder / "coffee.jpeg").read_bytes()
    (folder / "truncated.jpeg").write_bytes(raw[: len(raw) // 3])
    files["truncated"] = folder / "truncated.jpeg"
    (folder / "empty.jpeg").write_bytes(b"")
    files["empty"] = folder / "empty.jpeg"
    (folder / "notes.jpeg").write_text("this is not an image\n")
    files["notimage"] = folder / "notes.jpeg"
    coffee.convert("L").save(folder / "gray.png")
    files["gray"] = folder / "gray.png"
    coffee.convert("CMYK").save(folder / "cmyk.jpeg")
    files["cmyk"] = folder / "cmyk.jpeg"
    coffee.convert("RGBA").convert("P").save(folder / "palette.png", transparency=0)
    files["palette"] = folder / "palette.png"
    Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16)).save(folder / "deep.png")
    files["deep16"] = folder / "deep.png"
    Image.new("RGB", (3000, 2), (200, 10, 10)).save(folder / "thin.png")
    files["thin"] = folder / "thin.png"
    Image.new("RGB", (1, 1), (0, 0, 0)).save(folder / "dot.png")
    files["dot"] = folder / "dot.png"
    files["missing"] = folder / "does-not-exist.jpeg"
    rows = [{"id": k, "split": "train", "image": str(v), "text": "", "labels": ""} for k, v in files.items()]
    rows.append({"id": "noimage", "split": "train", "image": "", "text": "", "labels": ""})
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_bad_inputs_are_recorded_and_odd_ones_processed(tmp_path, mobilenet):
    manifest = write_inputs(tmp_path / "in")
    out = tmp_path / "image.h5"
    code = extract_main(["image", "--manifest", str(manifest), "--out", str(out),
                         "--backend", "mobilenet_v2", "--set", "batch_size=4", "--no-progress"])
    assert code == 0
    store = read_store(out)
    assert set(store.failed) == {"truncated", "empty", "notimage", "missing"}
    assert "0 bytes" in store.failed["empty"] and "does not exist" in store.failed["missing"]
    counts = dict(zip(store.ids, store.counts.tolist()))
    for ok in ("coffee", "gray", "cmyk", "palette", "deep16", "thin", "dot"):
        assert counts[ok] == 1, ok
    assert counts["noimage"] == 0 and "noimage" not in store.failed  # absent, not failed
    assert store.rows["features"].shape == (7, 1280)
    assert np.isfinite(store.rows["features"].astype(np.float32)).all()
    assert store.attrs["backend"] == "mobilenet_v2" and store.attrs["dim"] == 1280
    # the stored row is the backbone's embedding of the same photo (float16 storage)
    x = mobilenet.preprocess(Image.open(tmp_path / "in" / "coffee.jpeg").convert("RGB"))[None]
    expect = mobilenet.embed(x)[0].numpy()
    got = store.sample("coffee")["features"][0].astype(np.float32)
    np.testing.assert_allclose(got, expect, rtol=2e-2, atol=2e-2)


def test_sharded_runs_merge_to_single_run(tmp_path):
    manifest = write_inputs(tmp_path / "in")
    single = tmp_path / "single.h5"
    args = ["--manifest", str(manifest), "--backend", "mobilenet_v2", "--no-progress"]
    extract_main(["image", *args, "--out", str(single)])
    shards = []
    for k in (1, 2, 3):
        shards.append(str(tmp_path / f"s{k}.h5"))
        extract_main(["image", *args, "--out", shards[-1], "--shard", f"{k}-of-3"])
    extract_main(["merge", *shards, "--out", str(tmp_path / "merged.h5")])
    a, b = read_store(single), read_store(tmp_path / "merged.h5")
    assert a.ids == b.ids and a.failed == b.failed
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_allclose(a.rows["features"].astype(np.float32),
                               b.rows["features"].astype(np.float32), atol=1e-2)


def test_wsl_backend_names_its_missing_weights(tmp_path):
    manifest = write_inputs(tmp_path / "in")
    with pytest.raises(FileNotFoundError, match="ig_resnext101_32x16-c6f796b0.pth"):
        extract_main(["image", "--manifest", str(manifest), "--out", str(tmp_path / "x.h5"),
                      "--backend", "resnext101_32x16d_wsl"])


def test_wsl_architecture_loads_a_release_shaped_file(tmp_path, monkeypatch):
    """The ResNeXt-101 32x16d we build matches the WSL release's tensor names and shapes."""
    from extract.backbones import resnext101_32x16d

    net = resnext101_32x16d()
    n_params = sum(p.numel() for p in net.parameters())
    assert 193e6 < n_params < 195e6  # the WSL 32x16d model has ~194M parameters
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path))
    torch.save(net.state_dict(), tmp_path / "ig_resnext101_32x16-c6f796b0.pth")
    backbone = load_backbone("resnext101_32x16d_wsl", torch.device("cpu"))
    x = backbone.preprocess(Image.fromarray(photos.chelsea()))[None]
    assert backbone.embed(x).shape == (1, 2048)
    # random weights under the release's name: their sha256 does not start with c6f796b0, and the
    # image (and boxes) stores write that into `substitute`
    assert backbone.note.startswith("weights ig_resnext101_32x16-c6f796b0.pth have sha256 ")
    assert f"sha256 {backbone.weights[1][:16]}..., not torch hub's WSL-Images release's c6f796b0" in backbone.note


class Probe(Extractor):
    name = "probe"
    backends = ("plain",)


def test_batch_size_and_precision_follow_the_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU
    assert Probe("plain", cpu, Options(batch_size=8)).batch_size == 8
    assert Probe("plain", cuda, Options(batch_size=8)).batch_size == 32
    assert Probe("plain", cuda, Options(batch_size=8, cuda_batch_size=100)).batch_size == 100
    assert Probe("plain", cpu, Options()).precision == "fp32"
    assert Probe("plain", cuda, Options()).precision == "fp16"
    assert Probe("plain", cpu, Options(precision="bf16")).precision == "bf16"
    with pytest.raises(ValueError, match="--set precision"):
        Probe("plain", cpu, Options(precision="half"))
    stacked = Probe("plain", cpu, Options()).to_device([torch.ones(3, 2, 2), torch.zeros(3, 2, 2)])
    assert stacked.shape == (2, 3, 2, 2) and stacked.device.type == "cpu"


def test_autocast_run_records_its_cosine_against_fp32(tmp_path):
    """bf16 autocast on the CPU: features close to fp32, and the store says how close."""
    manifest = write_inputs(tmp_path / "in")
    out = tmp_path / "bf16.h5"
    extract_main(["image", "--manifest", str(manifest), "--out", str(out), "--backend", "mobilenet_v2",
                  "--set", "batch_size=4", "--set", "precision=bf16", "--no-progress"])
    store = read_store(out)
    check = json.loads(store.attrs["precision_check"])
    assert store.attrs["precision"] == "bf16" and check["precision"] == "bf16"
    assert check["rows"] >= 1 and 0.97 < check["cosine_min"] <= check["cosine_mean"] <= 1.0 + 1e-6
    assert store.attrs["batch_size"] == 4 and store.rows["features"].shape == (7, 1280)
    fp32 = tmp_path / "fp32.h5"
    extract_main(["image", "--manifest", str(manifest), "--out", str(fp32), "--backend", "mobilenet_v2",
                  "--set", "batch_size=4", "--no-progress"])
    plain = read_store(fp32)
    assert plain.attrs["precision"] == "fp32" and "precision_check" not in plain.attrs
    a = plain.rows["features"].astype(np.float32)
    b = store.rows["features"].astype(np.float32)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.9  # bf16 keeps 8 bits of mantissa: 0.96 on the padded 3000 x 2 image
    # the first batch's only decodable image is coffee (row 0): the recorded check is its cosine
    assert abs(cos[0] - check["cosine_min"]) < 1e-3
