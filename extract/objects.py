"""`objects`: Faster R-CNN R50-FPN 1x COCO detections (IE(obj) in the paper; boxes for WSL(bbox)).

Rows per sample: at most `max_boxes` detections with score >= `score_threshold`, best first:
`labels` (n,) int64, the 80 contiguous COCO classes 0..79 (attrs `class_names`, `vocab_size`),
`scores` (n,) float32, `boxes` (n, 4) float32 x1, y1, x2, y2 in pixels of the image as loaded
(`extract.image_files.load_rgb`). No `features` column: the store is an index feature (`dim` 0).
Backends:
  auto         detectron2 when `from detectron2 import model_zoo` works, else torchvision (the
               store's `backend`, `model` and `substitute` attrs record which ran)
  torchvision  torchvision's fasterrcnn_resnet50_fpn COCO weights (box AP 37.0)
  detectron2   the model zoo's faster_rcnn_R_50_FPN_1x (box AP 37.9; the paper's); see extract/detectron.py
Detection runs in float32 (no autocast), as both libraries' predictors do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch import nn

from extract import coco, detectron
from extract.base import Extractor, Item, Options, Output
from extract.crops import clip_boxes
from extract.image_files import load_rgb
from extract.registry import register
from extract.substitutes import model_attrs
from extract.weights import WeightFile, load_weight_file, published_mismatch

TORCHVISION_WEIGHTS = WeightFile(
    "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
    url="https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
    sha256_prefix="258fb6c6", release="torchvision's release")


@dataclass
class ObjectOptions(Options):
    batch_size: int = 4
    score_threshold: float = 0.65  # minimum detection score
    max_boxes: int = 10  # best-scoring detections kept per image
    min_size: int = 800  # test-time resize: shorter side (both libraries' default) ...
    max_size: int = 1333  # ... unless the longer side would pass this
    precision: str = "fp32"  # detection always runs in float32 (`forward`); other values are refused


def freeze_batch_norms(module: nn.Module) -> None:
    """Swap every BatchNorm2d for torchvision's FrozenBatchNorm2d with eps 0, statistics kept.
    (A plain BatchNorm2d with eps 0 is refused by cuDNN on the GPU.)"""
    from torchvision.ops import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=0.0)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            freeze_batch_norms(child)


class TorchvisionDetector:
    """PIL RGB images -> per image (boxes, scores, labels 0..79); see `Detectron2Detector`."""

    def __init__(self, options: ObjectOptions, device: torch.device) -> None:
        from torchvision.models.detection import fasterrcnn_resnet50_fpn
        net = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91,  # never downloads
                                      box_score_thresh=options.score_threshold,
                                      min_size=options.min_size, max_size=options.max_size)
        path, state, self.weights = load_weight_file(TORCHVISION_WEIGHTS)
        self.note = published_mismatch(TORCHVISION_WEIGHTS, path, self.weights[1])  # "" for the release's
        self.name = f"torchvision fasterrcnn_resnet50_fpn COCO ({self.weights[0]})"
        net.load_state_dict(state, strict=True)
        freeze_batch_norms(net)  # trained with frozen BN, used with eps 0 (as torchvision does)
        self.model = net.eval().to(device)
        self.device = device

    def prepare(self, img: Image.Image) -> torch.Tensor:
        return TF.pil_to_tensor(img)  # (3, H, W) uint8

    @torch.inference_mode()
    def __call__(self, images: list[torch.Tensor]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        batch = [TF.to_dtype(x.to(self.device), torch.float32, scale=True) for x in images]
        outs = []
        for pred in self.model(batch):  # boxes in input pixels, sorted by score
            labels = coco.contiguous_from_coco(pred["labels"].cpu().numpy())  # -1: background / unused id
            outs.append((pred["boxes"].float().cpu().numpy(), pred["scores"].float().cpu().numpy(), labels))
        return outs


def build_detector(backend: str, options: ObjectOptions, device: torch.device):
    if backend == "detectron2":
        return detectron.Detectron2Detector(options.score_threshold, device, options.min_size, options.max_size)
    return TorchvisionDetector(options, device)


@dataclass
class Prepared:
    size: tuple[int, int]  # (width, height)
    data: Any  # the detector's input


@register
class ObjectExtractor(Extractor):
    name = "objects"
    backends = ("auto", "torchvision", "detectron2")
    options_class = ObjectOptions
    precisions = ("fp32",)

    def __init__(self, backend: str, device: torch.device, options: ObjectOptions) -> None:
        super().__init__(backend, device, options)
        if backend == "auto":
            self.backend = "detectron2" if detectron.available() else "torchvision"
        self.detector = build_detector(self.backend, options, device)
        self.weights = [self.detector.weights]

    @property
    def dim(self) -> int:
        return 0  # no dense features; `labels` index a vocabulary of `vocab_size` classes

    def row_columns(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        return {"labels": ((), np.int64), "scores": ((), np.float32), "boxes": ((4,), np.float32)}

    def extra_attrs(self) -> dict[str, Any]:
        return {"class_names": json.dumps(list(coco.CLASS_NAMES)), "vocab_size": coco.NUM_CLASSES,
                "detector": self.detector.name,
                **model_attrs(self.name, self.backend, self.config(), self.detector.name,
                              self.detector.note)}

    def prepare(self, item: Item) -> Prepared | None:
        if not item.image:
            return None
        img = load_rgb(item.image)
        return Prepared(img.size, self.detector.prepare(img))

    def select(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
               size: tuple[int, int]) -> dict[str, np.ndarray]:
        """Valid detections (a class, score >= threshold, a box inside the image), best first."""
        boxes, ok = clip_boxes(boxes, *size, min_side=1e-3)
        ok &= (labels >= 0) & (labels < coco.NUM_CLASSES) & (scores >= self.options.score_threshold)
        order = np.argsort(-scores[ok], kind="stable")[: self.options.max_boxes]
        return {"labels": labels[ok][order].astype(np.int64), "scores": scores[ok][order].astype(np.float32),
                "boxes": boxes[ok][order]}

    def forward(self, batch: list[Prepared | None]) -> list[Output]:
        present = [x for x in batch if x is not None]
        with torch.autocast(self.device.type, enabled=False):
            found = iter(self.detector([x.data for x in present]) if present else [])
        outs = []
        for x in batch:
            if x is None:
                empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
                outs.append(Output(self.select(*empty, (1, 1))))
            else:
                outs.append(Output(self.select(*next(found), x.size)))
        return outs
