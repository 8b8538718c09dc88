"""faces: MTCNN on real photos, the store through the CLI, and each face embedder (offline, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import data

from extract.__main__ import main
from extract.faces import FaceExtractor, FaceOptions, Photo
from extract.senet import SENet50Embedding, load_release_state, rename_release_key
from extract.store import read_store
from extract.weights import MissingWeights

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("DMMS_WEIGHTS", str(weights))
    monkeypatch.setenv("DMMS_OFFLINE", "1")
    torch.manual_seed(0)
    return weights


@pytest.fixture(scope="module")
def backbone_faces(tmp_path_factory) -> FaceExtractor:
    with pytest.MonkeyPatch.context() as mp:  # offline: mobilenet_v2 comes from its package
        mp.setenv("DMMS_WEIGHTS", str(tmp_path_factory.mktemp("weights")))
        mp.setenv("DMMS_OFFLINE", "1")
        return FaceExtractor("backbone", CPU, FaceOptions())


def photo(pixels: np.ndarray) -> Photo:
    img = Image.fromarray(pixels)
    return Photo(img, torch.from_numpy(np.asarray(img).copy()))


def crowd() -> np.ndarray:
    """12 astronauts in a 3 x 4 grid (480 x 640)."""
    small = np.asarray(Image.fromarray(data.astronaut()).resize((160, 160)))
    return np.concatenate([np.concatenate([small] * 4, 1)] * 3, 0)


def test_mtcnn_finds_the_astronaut_and_no_face_in_coffee(backbone_faces):
    (boxes, probs), (none_boxes, none_probs) = backbone_faces.detect(
        [photo(data.astronaut()).pixels, photo(data.coffee()).pixels])
    assert len(probs) == 1 and probs[0] > 0.99
    x1, y1, x2, y2 = boxes[0]
    assert 150 < x1 < x2 < 300 and 30 < y1 < y2 < 200  # her face, upper middle of the picture
    assert len(none_boxes) == 0 and len(none_probs) == 0


def write_manifest(folder) -> tuple[str, dict[str, tuple[int, int]]]:
    images = {"astronaut": data.astronaut(), "coffee": data.coffee(), "crowd": crowd()}
    rows, sizes = [], {}
    for name, pixels in images.items():
        Image.fromarray(pixels).save(folder / f"{name}.jpg", quality=95)
        sizes[name] = pixels.shape[1::-1]
        rows.append((name, f"{folder / name}.jpg"))
    good = (folder / "coffee.jpg").read_bytes()
    (folder / "corrupt.jpg").write_bytes(good[: len(good) // 3])  # truncated JPEG
    rows += [("corrupt", str(folder / "corrupt.jpg")), ("noimage", "")]
    frame = pd.DataFrame({"id": [r[0] for r in rows], "split": "train", "image": [r[1] for r in rows],
                          "text": "", "labels": "a"})
    frame.to_csv(folder / "manifest.csv", index=False)
    return str(folder / "manifest.csv"), sizes


def test_faces_store_through_the_cli(tmp_path):
    manifest, sizes = write_manifest(tmp_path)
    out = tmp_path / "faces.h5"
    assert main(["faces", "--manifest", manifest, "--out", str(out), "--backend", "backbone",
                 "--no-progress", "--set", "batch_size=3"]) == 0
    store = read_store(out)
    assert store.ids == ["astronaut", "coffee", "crowd", "corrupt", "noimage"]
    assert list(store.failed) == ["corrupt"] and "corrupt.jpg" in store.failed["corrupt"]
    assert store.attrs["extractor"] == "faces" and store.attrs["backend"] == "backbone"
    assert store.attrs["dim"] == 1280 and store.attrs["backbone"] == "mobilenet_v2"
    assert json.loads(store.attrs["weights"])[0]["file"] == "mobilenet_v2-b0353104.pth"
    counts = dict(zip(store.ids, store.counts.tolist()))
    assert counts == {"astronaut": 1, "coffee": 0, "crowd": 10, "corrupt": 0, "noimage": 0}
    assert store.rows["features"].shape == (11, 1280) and store.rows["features"].dtype == np.float16
    assert np.isfinite(store.rows["features"]).all()
    # l2_normalize (default true) applies to this backend too: the attrs agree with the rows' norms
    config = json.loads(store.attrs["config"])
    assert config["l2_normalize"] is True and store.attrs["l2_normalized"] is True
    norms = np.linalg.norm(store.rows["features"].astype(np.float32), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)  # float16 rows
    # the config holds the options this backend applies, not senet50_256's
    assert config["backbone"] == "mobilenet_v2" and not {"channel_order", "resize", "weights"} & set(config)
    for sid, (w, h) in sizes.items():
        rows = store.sample(sid)
        scores, boxes = rows["scores"], rows["boxes"]
        assert len(scores) <= 10 and np.all(np.diff(scores) <= 0) and np.all(scores >= 0.9)
        assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 2] <= w) and np.all(boxes[:, 0] < boxes[:, 2])
        assert np.all(boxes[:, 1] >= 0) and np.all(boxes[:, 3] <= h) and np.all(boxes[:, 1] < boxes[:, 3])


def test_l2_normalize_false_keeps_the_backbones_norms(tmp_path):
    """The option the store's config records is what its rows show (true: the CLI test above)."""
    manifest, _ = write_manifest(tmp_path)
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    frame[frame.id == "astronaut"].to_csv(manifest, index=False)
    out = tmp_path / "faces.h5"
    assert main(["faces", "--manifest", manifest, "--out", str(out), "--backend", "backbone", "--no-progress",
                 "--set", "l2_normalize=false", "--set", "dtype=float32"]) == 0
    store = read_store(out)
    assert json.loads(store.attrs["config"])["l2_normalize"] is False and store.attrs["l2_normalized"] is False
    assert np.linalg.norm(store.rows["features"], axis=1).min() > 5  # MobileNetV2's own: 18-25 on the demo


def test_options_of_another_backend_are_refused(offline):
    with pytest.raises(ValueError, match="option channel_order is for backend senet50_256, not backbone"):
        FaceExtractor("backbone", CPU, FaceOptions(channel_order="bgr"))
    with pytest.raises(ValueError, match="option backbone is for backend backbone, not senet50_256"):
        FaceExtractor("senet50_256", CPU, FaceOptions(backbone="timm"))
    with pytest.raises(ValueError, match="option weights is for backend senet50_256 or inception"):
        FaceExtractor("backbone", CPU, FaceOptions(weights="mine.pth"))
    with pytest.raises(ValueError, match="always L2-normalises"):  # facenet-pytorch normalises, always
        FaceExtractor("inception_resnet_v1_vggface2", CPU, FaceOptions(l2_normalize=False))


def test_max_faces_keeps_the_most_probable():
    ex = FaceExtractor("backbone", CPU, FaceOptions(max_faces=3))
    pixels = photo(crowd()).pixels
    boxes, probs = ex.detect([pixels])[0]
    ex.options.max_faces = 100
    all_boxes, all_probs = ex.detect([pixels])[0]
    assert len(all_probs) == 12 and len(probs) == 3
    np.testing.assert_allclose(probs, np.sort(all_probs)[::-1][:3])


def test_backbone_embedder_dim(backbone_faces):
    out = backbone_faces.forward([photo(data.astronaut()), None])
    assert out[0].rows["features"].shape == (1, 1280) and out[1].rows["features"].shape == (0, 1280)


def release_name(key: str) -> str:
    """This module's key -> the VGGFace2 PyTorch release's flat layer name (inverse of the loader's)."""
    top = {"conv1": "conv1_7x7_s2", "bn1": "conv1_7x7_s2_bn", "embed": "feat_extract"}
    parts = key.split(".")
    if parts[0] in top:
        return f"{top[parts[0]]}.{parts[1]}"
    names = {"reduce": "1x1_reduce", "reduce_bn": "1x1_reduce_bn", "conv3": "3x3", "conv3_bn": "3x3_bn",
             "increase": "1x1_increase", "increase_bn": "1x1_increase_bn", "se_down": "1x1_down",
             "se_up": "1x1_up", "proj": "1x1_proj", "proj_bn": "1x1_proj_bn"}
    _, stage, block, layer, param = parts
    return f"conv{int(stage) + 2}_{int(block) + 1}_{names[layer]}.{param}"


def test_senet_loads_release_layer_names():
    net = SENet50Embedding().eval()
    state = {release_name(k): v for k, v in net.state_dict().items()}
    assert "conv2_1_1x1_proj.weight" in state and "conv5_3_1x1_up.bias" in state
    assert all(rename_release_key(release_name(k)) == k for k in net.state_dict())
    other = SENet50Embedding().eval()
    load_release_state(other, state)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(net(x), other(x)) and net(x).shape == (2, 256)


def save_release(folder, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random SENet saved as the VGGFace2 PyTorch release lays it out: senet50_256.pth, a plain
    state dict with the release's flat layer names (conv1_7x7_s2, conv2_1_1x1_reduce, ...,
    feat_extract); batch-norm statistics of real-scale inputs (else activations overflow)."""
    torch.manual_seed(seed)
    net = SENet50Embedding().train()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one batch sets the statistics
    with torch.no_grad():
        net(torch.rand(4, 3, 224, 224) * 255 - 128)
    state = {release_name(k): v for k, v in net.eval().state_dict().items()}
    assert {"conv1_7x7_s2.weight", "conv2_1_1x1_reduce.weight", "feat_extract.weight"} <= set(state)
    torch.save(state, folder / "senet50_256.pth")
    return state


def network_input(ex: FaceExtractor, crop_img: Image.Image) -> torch.Tensor:
    """What the SENet's first convolution receives for one face crop: (1, 3, 224, 224)."""
    seen = []
    senet = ex.embedder.model.net if hasattr(ex.embedder.model, "net") else ex.embedder.model
    hook = senet.conv1.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    try:
        ex.embed([ex.embedder.to_tensor(crop_img)])
    finally:
        hook.remove()
    return seen[0]


def test_senet_release_gets_rgb_minus_the_release_mean_and_unit_norm(offline):
    save_release(offline)
    ex = FaceExtractor("senet50_256", CPU, FaceOptions())
    red = Image.new("RGB", (300, 260), (255, 0, 0))
    x = network_input(ex, red)
    assert x.shape == (1, 3, 224, 224)
    want = torch.tensor([255 - 131.0912, -103.8827, -91.4953])  # R, G, B channels
    torch.testing.assert_close(x[0].mean((1, 2)), want)
    torch.testing.assert_close(x[0].amax((1, 2)), x[0].amin((1, 2)))  # every pixel the same
    feats = ex.embed([ex.embedder.to_tensor(red), ex.embedder.to_tensor(Image.new("RGB", (9, 9), (0, 0, 255)))])
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(feats[0], feats[1], atol=1e-3)
    attrs = ex.extra_attrs()
    assert attrs["l2_normalized"] is True
    assert json.loads(attrs["preprocess"])["channel_order"] == "rgb"
    assert json.loads(attrs["preprocess"])["mean"] == [131.0912, 103.8827, 91.4953]
    assert "SE-ResNet-50-256D" in attrs["model"] and "MTCNN" in attrs["model"]
    # random weights are not the release: said so, in the model and as a substitute
    assert "not the VGGFace2 PyTorch release" in attrs["substitute"]
    # also when the option names that file (here by its path): its name is the release's
    named = FaceExtractor("senet50_256", CPU, FaceOptions(weights=str(offline / "senet50_256.pth")))
    assert "not the VGGFace2 PyTorch release" in named.extra_attrs()["substitute"]
    assert "instead of" not in named.extra_attrs()["substitute"]  # not reported as another file


def test_senet_bgr_option_for_caffe_conversions(offline):
    save_release(offline)
    ex = FaceExtractor("senet50_256", CPU, FaceOptions(channel_order="bgr", l2_normalize=False))
    x = network_input(ex, Image.new("RGB", (224, 224), (255, 0, 0)))
    torch.testing.assert_close(x[0].mean((1, 2)), torch.tensor([-91.4953, -103.8827, 255 - 131.0912]))
    feats = ex.embed([ex.embedder.to_tensor(Image.new("RGB", (224, 224), (255, 0, 0)))])
    assert abs(np.linalg.norm(feats) - 1) > 1e-3  # not normalised when asked not to
    assert ex.extra_attrs()["l2_normalized"] is False
    assert "BGR" in ex.extra_attrs()["substitute"]  # BGR input is not how the release is fed
    (offline / "senet50_256.pth").unlink()  # a bad option is refused before weights are sought
    with pytest.raises(ValueError, match="channel_order"):
        FaceExtractor("senet50_256", CPU, FaceOptions(channel_order="rbg"))


def test_senet_release_weights_through_the_cli_store(tmp_path, offline):
    """The release's own file: the store says it ran the release, with no substitute."""
    save_release(offline)
    manifest, _ = write_manifest(tmp_path)
    from extract import weights
    from core.hashing import sha256
    digest = sha256(offline / "senet50_256.pth")
    out = tmp_path / "faces.h5"
    with pytest.MonkeyPatch.context() as mp:  # this file stands for the release
        mp.setattr("extract.faces.SENET50_256", weights.WeightFile("senet50_256.pth", sha256=digest))
        assert main(["faces", "--manifest", manifest, "--out", str(out), "--backend", "senet50_256",
                     "--no-progress", "--set", "dtype=float32"]) == 0
        grown = tmp_path / "faces_margin.h5"  # VGGFace2's own 0.3 margin: recorded as a difference
        assert main(["faces", "--manifest", manifest, "--out", str(grown), "--backend", "senet50_256",
                     "--no-progress", "--set", "dtype=float32", "--set", "margin=0.3"]) == 0
    assert read_store(grown).attrs["margin"] == 0.3
    assert read_store(grown).attrs["substitute"] == "face crops grown by 0.3 x the box size (paper: the face bounding box itself)"
    store = read_store(out)
    assert store.attrs["margin"] == 0.0  # the paper's "part of the image from the face bounding box"
    assert store.attrs["dim"] == 256 and store.attrs["substitute"] == ""
    assert store.attrs["model"].endswith("(senet50_256.pth, the VGGFace2 PyTorch release)")
    assert dict(zip(store.ids, store.counts.tolist()))["astronaut"] == 1
    np.testing.assert_allclose(np.linalg.norm(store.rows["features"], axis=1), 1.0, rtol=1e-5)


def test_missing_senet_weights_name_the_file():
    with pytest.raises(MissingWeights, match="senet50_256.pth") as err:
        FaceExtractor("senet50_256", CPU, FaceOptions())
    assert "senet50_256_pytorch.tar.gz" in str(err.value)


def test_inception_resnet_v1_vggface2(offline):
    from facenet_pytorch import InceptionResnetV1
    state = InceptionResnetV1(pretrained=None).state_dict()
    state["logits.weight"] = torch.zeros(8631, 512)  # the release also holds its classifier
    state["logits.bias"] = torch.zeros(8631)
    torch.save(state, offline / "20180402-114759-vggface2.pt")
    ex = FaceExtractor("inception_resnet_v1_vggface2", CPU, FaceOptions())
    with torch.inference_mode():
        feats = ex.forward([photo(data.astronaut())])[0].rows["features"].astype(np.float32)
    assert ex.dim == 512 and feats.shape == (1, 512)
    assert abs(np.linalg.norm(feats) - 1) < 1e-2  # facenet-pytorch L2-normalises its embeddings
