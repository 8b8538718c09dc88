"""`faces`: MTCNN face detection, then one embedding per face (Face(i) in the paper).

At most `max_faces` faces per image with detection probability >= `threshold`, most probable
first. Rows: `features` (n, dim), `boxes` (n, 4) float32 x1, y1, x2, y2 in pixels of the image
as loaded (`extract.image_files.load_rgb`), `scores` (n,) float32 detection probabilities.
Backends (the face embedder):
  senet50_256                  SE-ResNet-50-256D trained on VGGFace2 (the paper's), 256-d
  inception_resnet_v1_vggface2 facenet-pytorch's InceptionResnetV1 trained on VGGFace2, 512-d
  backbone                     the image backbone of option `backbone` on face crops (offline demo;
                               timm / open_clip with options `model` and `pretrained`)
senet50_256 follows VGGFace2's official PyTorch feature extractor: crop shorter side `resize`
(224), centre 224 x 224, RGB 0..255 minus the mean (131.0912, 103.8827, 91.4953).
`channel_order=bgr` feeds BGR minus the mean in B, G, R order, for a Caffe conversion that kept
BGR filters. `l2_normalize` (default true, as VGGFace2's extractor) gives unit-norm rows on every
backend; InceptionResnetV1 always normalises (facenet-pytorch), so it refuses `false`. Options of
one backend (`channel_order`, `resize`: senet50_256; `weights`: senet50_256 and inception;
`backbone`, `model`, `pretrained`: backbone) are refused by the others. The store attrs
`preprocess` and `l2_normalized` record what the embedder was fed and whether the rows have unit
norm.
Each face is cropped to its box grown by `margin` x its size (half on each side): the box itself
for senet50_256, as the paper says ("that part of the image from the face bounding box"; VGGFace2's
own protocol grows MTCNN boxes by 0.3, which `margin: 0.3` gives and the store records as a
substitute), 0.3 for the demo's `backbone` crops.
MTCNN's weights ship inside the facenet-pytorch wheel; same-size images are detected together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch import nn

from extract.backbones import load_backbone
from extract.base import Extractor, Item, Options, Output, for_backends
from extract.crops import clip_boxes, crop
from extract.image_files import load_rgb
from extract.registry import register
from extract.senet import MEAN_BGR, MEAN_RGB, SENet50Embedding, load_release_state
from extract.catalog import SENET50_256
from extract.substitutes import FACE_MARGINS, model_attrs, own_senet, release_named
from extract.weights import WeightFile, load_state_dict, load_weight_file, published_mismatch

INCEPTION_WEIGHTS = WeightFile(
    "20180402-114759-vggface2.pt",
    url="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt")
DETECTOR = "MTCNN (facenet-pytorch)"


@dataclass
class FaceOptions(Options):
    batch_size: int = 16
    min_face_size: int = 20  # pixels; smaller faces are not searched for
    threshold: float = 0.9  # minimum MTCNN face probability
    max_faces: int = 10  # most probable faces kept per image
    margin: float = -1.0  # context around a face box, fraction of its size; < 0: the backend's own
    # (extract.substitutes.FACE_MARGINS: 0 for senet50_256, the paper's box itself; 0.3 for backbone);
    # any margin but 0 is recorded in the store's `substitute`
    backbone: str = for_backends("mobilenet_v2", "backbone")  # image backbone of the `backbone` backend
    model: str = for_backends("", "backbone")  # backbone timm / open_clip: the model's name
    # backbone timm / open_clip: true, false (random weights) or an open_clip tag
    pretrained: str = for_backends("true", "backbone")
    # weight file name (default: the release's)
    weights: str = for_backends("", "senet50_256", "inception_resnet_v1_vggface2")
    # input channels: rgb (the PyTorch release) or bgr (a Caffe conversion)
    channel_order: str = for_backends("rgb", "senet50_256")
    resize: int = for_backends(224, "senet50_256")  # crop's shorter side before the centre 224 (VGGFace2's)
    l2_normalize: bool = True  # unit-norm embeddings (as VGGFace2's extractor), every backend
    crop_batch: int = 64  # face crops per embedder call
    dtype: str = "float16"  # features as stored


@dataclass
class Embedder:
    """Face crop (PIL) -> tensor -> embedding."""

    dim: int
    margin: float  # default context around the box
    to_tensor: Callable[[Image.Image], torch.Tensor]  # crop -> (3, S, S)
    model: torch.nn.Module  # (B, 3, S, S) -> (B, dim)
    weights: tuple[str, str]
    model_name: str  # the exact model, for the store's `model` attr
    preprocess: dict[str, Any] = field(default_factory=dict)  # what the model is fed
    normalized: bool = False  # rows have unit L2 norm
    weights_note: str = ""  # a run-time difference from the paper (weights not the release's)


class L2Normalized(nn.Module):
    """(B, 3, S, S) -> (B, dim) unit-norm rows of the wrapped embedder's output (in float32)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(x).float(), dim=-1)


def senet_input(channel_order: str, resize: int) -> tuple[Callable[[Image.Image], torch.Tensor], dict[str, Any]]:
    """Crop -> (3, 224, 224) float: shorter side `resize`, centre 224, channels in `channel_order`,
    0..255 minus the release's mean in that order; and that recipe as a dict for the attrs."""
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"faces option channel_order={channel_order!r}: use rgb (the VGGFace2 PyTorch "
                         "release) or bgr (a Caffe conversion that kept BGR filters)")
    if resize < 224:
        raise ValueError(f"faces option resize={resize}: the shorter side must be at least the 224 crop")
    values = MEAN_RGB if channel_order == "rgb" else MEAN_BGR
    mean = torch.tensor(values).view(3, 1, 1)

    def to_tensor(img: Image.Image) -> torch.Tensor:
        x = TF.center_crop(TF.resize(TF.pil_to_tensor(img), [resize], antialias=True), [224, 224])
        if channel_order == "bgr":
            x = x.flip(0)
        return x.float() - mean

    recipe = {"resize_shorter": resize, "center_crop": 224, "channel_order": channel_order,
              "scale": "0..255", "mean": list(values), "std": 1.0}
    return to_tensor, recipe


def _inception_tensor(img: Image.Image) -> torch.Tensor:
    """facenet-pytorch's protocol: 160 x 160, fixed standardisation (x - 127.5) / 128."""
    x = TF.resize(TF.pil_to_tensor(img), [160, 160], antialias=True).float()
    return (x - 127.5) / 128.0


def channels_last(net: nn.Module) -> nn.Module:
    """The embedder CNNs run channels_last, as the image backbones (extract/backbones.py)."""
    return net.to(memory_format=torch.channels_last)


def build_senet(options: FaceOptions, device: torch.device) -> Embedder:
    to_tensor, recipe = senet_input(options.channel_order, options.resize)  # bad options: before any download
    spec = own_senet(options.weights) if options.weights else SENET50_256
    path, state, info = load_weight_file(spec)
    net = SENet50Embedding(256)
    load_release_state(net, state)
    model: nn.Module = L2Normalized(net) if options.l2_normalize else net
    note = published_mismatch(SENET50_256, path, info[1]) if release_named(options.weights) else ""
    name = f"{DETECTOR} + SE-ResNet-50-256D ({info[0]}"
    name += ", the VGGFace2 PyTorch release)" if info[1] == SENET50_256.sha256 else f", sha256 {info[1][:12]}...)"
    return Embedder(256, FACE_MARGINS["senet50_256"], to_tensor, channels_last(model.eval().to(device)), info, name, recipe,
                    options.l2_normalize, note)


def build_embedder(backend: str, options: FaceOptions, device: torch.device) -> Embedder:
    if backend == "senet50_256":
        return build_senet(options, device)
    if backend == "inception_resnet_v1_vggface2":
        if not options.l2_normalize:
            raise ValueError("faces backend inception_resnet_v1_vggface2 always L2-normalises its embeddings "
                             "(facenet-pytorch's InceptionResnetV1); drop l2_normalize=false or use another backend")
        from facenet_pytorch import InceptionResnetV1
        spec = WeightFile(options.weights) if options.weights else INCEPTION_WEIGHTS
        state, info = load_state_dict(spec)
        net = InceptionResnetV1(pretrained=None, classify=False)  # never downloads
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}  # the VGGFace2 classifier
        net.load_state_dict(state, strict=True)
        recipe = {"resize": [160, 160], "channel_order": "rgb", "scale": "(x - 127.5) / 128"}
        return Embedder(512, FACE_MARGINS[backend], _inception_tensor, channels_last(net.eval().to(device)), info,
                        f"{DETECTOR} + InceptionResnetV1 (VGGFace2, {info[0]})", recipe, True)
    bb = load_backbone(options.backbone, device, model=options.model, pretrained=options.pretrained)
    model = L2Normalized(bb.model).eval() if options.l2_normalize else bb.model
    return Embedder(bb.dim, FACE_MARGINS["backbone"], lambda img: bb.preprocess(img, full=True), model, bb.weights,
                    f"{DETECTOR} + {bb.label} on face crops ({bb.weights_name})", bb.preprocess.recipe(full=True),
                    options.l2_normalize, bb.note)


@dataclass
class Photo:
    image: Image.Image
    pixels: torch.Tensor  # (H, W, 3) uint8


@register
class FaceExtractor(Extractor):
    name = "faces"
    backends = ("senet50_256", "inception_resnet_v1_vggface2", "backbone")
    options_class = FaceOptions

    def __init__(self, backend: str, device: torch.device, options: FaceOptions) -> None:
        super().__init__(backend, device, options)
        from facenet_pytorch import MTCNN
        # MTCNN's last stage keeps faces above 0.7; a lower `threshold` lowers it too
        stages = [0.6, 0.7, min(0.7, options.threshold)]
        self.mtcnn = MTCNN(min_face_size=options.min_face_size, thresholds=stages, keep_all=True,
                           select_largest=False, post_process=False, device=device).eval()
        self.embedder = build_embedder(backend, options, device)
        self.margin = options.margin if options.margin >= 0 else self.embedder.margin
        self.weights = [self.embedder.weights] if self.embedder.weights[1] else []  # [] for random weights

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def row_columns(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        return {"features": ((self.dim,), np.dtype(self.options.dtype)),
                "boxes": ((4,), np.float32), "scores": ((), np.float32)}

    def extra_attrs(self) -> dict[str, Any]:
        e = self.embedder
        attrs = {"detector": "mtcnn (facenet-pytorch)", "margin": self.margin,
                 "preprocess": json.dumps(e.preprocess), "l2_normalized": e.normalized,
                 **model_attrs(self.name, self.backend, self.config(), e.model_name, e.weights_note)}
        if self.backend == "backbone":
            attrs["backbone"] = self.options.backbone
        return attrs

    def prepare(self, item: Item) -> Photo | None:
        if not item.image:
            return None  # no image for this sample: no faces
        img = load_rgb(item.image)
        return Photo(img, torch.from_numpy(np.asarray(img).copy()))

    # --- detection ----------------------------------------------------------------------
    def _detect_group(self, pixels: list[torch.Tensor]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Same-size (H, W, 3) uint8 images -> per image (boxes (n, 4), probabilities (n,))."""
        h, w = pixels[0].shape[:2]
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
        if min(h, w) < self.options.min_face_size:  # MTCNN's image pyramid would be empty
            return [empty] * len(pixels)
        with torch.autocast(self.device.type, enabled=False):
            boxes, probs = self.mtcnn.detect(torch.stack(pixels).to(self.device))  # (B, H, W, 3)
        out = []
        for b, p in zip(boxes, probs):
            if b is None:
                out.append(empty)
            else:
                out.append((np.asarray(b, np.float32).reshape(-1, 4), np.asarray(p, np.float32).reshape(-1)))
        return out

    @torch.inference_mode()
    def detect(self, pixels: list[torch.Tensor]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Images grouped by size, one MTCNN call per group; kept faces sorted by probability."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(pixels):
            groups.setdefault(tuple(x.shape), []).append(i)
        found: list[Any] = [None] * len(pixels)
        for idx in groups.values():
            try:
                results = self._detect_group([pixels[i] for i in idx])
            except Exception:
                if len(idx) == 1:
                    raise
                results = [r for i in idx for r in self._detect_group([pixels[i]])]
            for i, (boxes, probs) in zip(idx, results):
                h, w = pixels[i].shape[:2]
                boxes, ok = clip_boxes(boxes, w, h)
                ok &= probs >= self.options.threshold
                order = np.argsort(-probs[ok], kind="stable")[: self.options.max_faces]
                found[i] = (boxes[ok][order], probs[ok][order])
        return found

    # --- embedding ----------------------------------------------------------------------
    @torch.inference_mode()
    def embed(self, crops: list[torch.Tensor]) -> np.ndarray:
        """(n, 3, S, S) crops -> (n, dim) float32, `crop_batch` at a time."""
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        size = max(1, self.options.crop_batch)
        parts = [self.embedder.model(self.to_device(crops[i:i + size], channels_last=True)).float().cpu()
                 for i in range(0, len(crops), size)]
        return torch.cat(parts).numpy()

    def forward(self, batch: list[Photo | None]) -> list[Output]:
        present = [i for i, x in enumerate(batch) if x is not None]
        found = dict(zip(present, self.detect([batch[i].pixels for i in present]))) if present else {}
        crops: list[torch.Tensor] = []
        for i in present:
            crops.extend(self.embedder.to_tensor(crop(batch[i].image, box, self.margin)) for box in found[i][0])
        feats = self.embed(crops).astype(self.options.dtype)  # (all faces, dim)
        outs, start = [], 0
        for i in range(len(batch)):
            boxes, probs = found.get(i, (np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
            n = len(boxes)
            outs.append(Output({"features": feats[start:start + n], "boxes": boxes, "scores": probs}))
            start += n
        return outs
