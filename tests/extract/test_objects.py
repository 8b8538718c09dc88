"""objects (torchvision detector with random weights), COCO ids, detectron2's absence, and box
embeddings aligned with the detections (offline, CPU)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import data

from extract import coco
from extract.__main__ import main
from extract.detectron import MissingDetectron2
from extract.objects import ObjectExtractor, ObjectOptions, TORCHVISION_WEIGHTS
from extract.store import read_store
from tests.builders import coco_from_contiguous

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A randomly initialised torchvision Faster R-CNN saved under the COCO release's file name."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    net = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    torch.save(net.state_dict(), folder / TORCHVISION_WEIGHTS.file)
    return folder


@pytest.fixture(autouse=True)
def offline(weights, monkeypatch):
    monkeypatch.setenv("DMMS_WEIGHTS", str(weights))
    monkeypatch.setenv("DMMS_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "detectron2", None)  # as if not installed, wherever we run


def test_coco_ids_round_trip_and_match_torchvision_names():
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights
    index = np.arange(80)
    ids = coco_from_contiguous(index)
    assert len(set(ids)) == 80 and ids.min() == 1 and ids.max() == 90
    np.testing.assert_array_equal(coco.contiguous_from_coco(ids), index)
    assert (coco.contiguous_from_coco(np.array([0, 12, 26, 83, 91, -3])) == -1).all()
    names = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]  # 91 entries, "N/A" in gaps
    assert [names[i] for i in ids] == list(coco.CLASS_NAMES)
    assert all(names[i] == "N/A" for i in coco.UNUSED_IDS)
    with pytest.raises(ValueError):
        coco_from_contiguous(np.array([80]))


def test_detectron2_backend_says_what_to_install():
    with pytest.raises(MissingDetectron2) as err:
        ObjectExtractor("detectron2", CPU, ObjectOptions())
    message = str(err.value)
    assert "detectron2" in message and "pip install" in message and "--backend torchvision" in message


def test_auto_backend_falls_back_to_torchvision():
    ex = ObjectExtractor("auto", CPU, ObjectOptions())
    assert ex.backend == "torchvision" and ex.weights[0][0] == TORCHVISION_WEIGHTS.file
    attrs = ex.extra_attrs()  # the store says which detector ran, and that it is not the paper's
    assert attrs["model"] == attrs["detector"] == f"torchvision fasterrcnn_resnet50_fpn COCO ({TORCHVISION_WEIGHTS.file})"
    assert "detectron2" not in attrs["model"]
    assert "torchvision" in attrs["substitute"] and "detectron2" in attrs["substitute"]
    from torchvision.ops import FrozenBatchNorm2d

    modules = list(ex.detector.model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in modules)  # cuDNN refuses eps 0
    frozen = [m for m in modules if isinstance(m, FrozenBatchNorm2d)]
    assert frozen and all(m.eps == 0.0 for m in frozen)  # as torchvision's own COCO_V1 loading does


def test_precision_other_than_fp32_is_refused():
    """Detection never autocasts, so a store recording fp16 would not tell the truth."""
    with pytest.raises(ValueError, match="always runs in float32"):
        ObjectExtractor("torchvision", CPU, ObjectOptions(precision="fp16"))


def test_frozen_batch_norm_swap_keeps_outputs():
    from extract.objects import freeze_batch_norms

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
        net[1].weight.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(2, 3, 8, 8)
    net[1].eps = 0.0
    expected = net(x)
    freeze_batch_norms(net)
    torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)


def write_manifest(folder) -> tuple[str, dict[str, tuple[int, int]]]:
    images = {"coffee": data.coffee(), "rocket": np.asarray(Image.fromarray(data.rocket()).resize((192, 288)))}
    sizes = {}
    for name, pixels in images.items():
        Image.fromarray(pixels).save(folder / f"{name}.jpg", quality=95)
        sizes[name] = pixels.shape[1::-1]
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    ids = ["coffee", "broken", "rocket", "noimage"]
    paths = [str(folder / f"{i}.jpg") for i in ids[:3]] + [""]
    pd.DataFrame({"id": ids, "split": "train", "image": paths, "text": "", "labels": "a"}).to_csv(
        folder / "manifest.csv", index=False)
    return str(folder / "manifest.csv"), sizes


def test_objects_then_boxes_through_the_cli(tmp_path):
    manifest, sizes = write_manifest(tmp_path)
    objects = tmp_path / "objects.h5"
    assert main(["objects", "--manifest", manifest, "--out", str(objects), "--backend", "torchvision",
                 "--set", "score_threshold=0", "--set", "min_size=320", "--set", "max_size=480", "--no-progress"]) == 0
    store = read_store(objects)
    assert store.ids == ["coffee", "broken", "rocket", "noimage"] and list(store.failed) == ["broken"]
    assert set(store.rows) == {"labels", "scores", "boxes"} and store.rows["labels"].dtype == np.int64
    assert store.attrs["dim"] == 0 and store.attrs["vocab_size"] == 80 and store.attrs["backend"] == "torchvision"
    assert json.loads(store.attrs["class_names"]) == list(coco.CLASS_NAMES)
    counts = dict(zip(store.ids, store.counts.tolist()))
    assert counts["broken"] == 0 and counts["noimage"] == 0
    assert 0 < counts["coffee"] <= 10 and 0 < counts["rocket"] <= 10  # random weights, threshold 0
    for sid, (w, h) in sizes.items():
        rows = store.sample(sid)
        b, labels, scores = rows["boxes"], rows["labels"], rows["scores"]
        assert ((labels >= 0) & (labels < 80)).all() and np.all(np.diff(scores) <= 0)
        assert (b[:, 0] < b[:, 2]).all() and (b[:, 1] < b[:, 3]).all()
        assert (b[:, :2] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all()

    boxes = tmp_path / "boxes.h5"
    assert main(["boxes", "--manifest", manifest, "--out", str(boxes), "--input", str(objects),
                 "--set", "backbone=mobilenet_v2", "--set", "batch_size=2", "--no-progress"]) == 0
    emb = read_store(boxes)
    assert emb.ids == store.ids and list(emb.failed) == ["broken"] and "objects failed" in emb.failed["broken"]
    np.testing.assert_array_equal(emb.offsets, store.offsets)  # one embedding per detection
    for column in ("boxes", "labels", "scores"):
        np.testing.assert_array_equal(emb.rows[column], store.rows[column])  # same order
    assert emb.rows["features"].shape == (int(store.offsets[-1]), 1280) and emb.attrs["dim"] == 1280
    assert emb.attrs["backbone"] == "mobilenet_v2" and np.isfinite(emb.rows["features"]).all()
    assert emb.attrs["model"].startswith("mobilenet_v2 on object box crops")
    assert "mobilenet_v2" in emb.attrs["substitute"] and "WSL" in emb.attrs["substitute"]
    assert "score threshold 0.0" in store.attrs["substitute"] and "torchvision" in store.attrs["model"]
    # random weights under the release's file name: not the published file, and the store says so
    assert (f"weights {TORCHVISION_WEIGHTS.file} have sha256 {json.loads(store.attrs['weights'])[0]['sha256'][:16]}"
            "..., not torchvision's release's 258fb6c6 (the hash prefix in its file name") in store.attrs["substitute"]
    # the rows are the embeddings of those very boxes: recompute one crop by hand
    from extract.backbones import load_backbone
    from extract.crops import crop
    net = load_backbone("mobilenet_v2", CPU)
    k = store.index("rocket")
    first = int(store.offsets[k])
    img = Image.open(tmp_path / "rocket.jpg").convert("RGB")
    expected = net.embed(net.preprocess(crop(img, store.rows["boxes"][first]), full=True)[None])[0]
    np.testing.assert_allclose(emb.rows["features"][first].astype(np.float32), expected.numpy(), rtol=2e-2, atol=2e-2)


def test_boxes_needs_input(tmp_path):
    manifest, _ = write_manifest(tmp_path)
    with pytest.raises(SystemExit, match="--input"):
        main(["boxes", "--manifest", manifest, "--out", str(tmp_path / "b.h5")])
