"""`boxes`: an image backbone's embedding of each detected object box (WSL(bbox) in the paper).

Reads the objects store (`--input`). Rows are aligned one-to-one with that store's detections,
in the same order: `features` (n, dim) plus copies of `boxes`, `labels` and `scores`.
A sample that failed in the objects store fails here too, with the same reason.
Crops of all samples of a batch go through the backbone together. Option `backbone` takes the
image extractor's backends (timm and open_clip with options `model` and `pretrained`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from extract.backbones import load_backbone
from extract.base import BadInput, Extractor, Item, Options, Output
from extract.crops import crop
from extract.image_files import load_rgb
from extract.registry import register
from extract.substitutes import model_attrs

COPIED = {"boxes": ((4,), np.float32), "labels": ((), np.int64), "scores": ((), np.float32)}


@dataclass
class BoxOptions(Options):
    batch_size: int = 8  # samples per batch (each up to 10 boxes)
    backbone: str = "resnext101_32x16d_wsl"  # the paper's WSL; the demo uses mobilenet_v2
    full: bool = True  # squash the whole box to the backbone's square input (else centre-crop)
    margin: float = 0.0  # context around a box, fraction of its size
    crop_batch: int = 64  # crops per backbone call
    dtype: str = "float16"
    model: str = ""  # backbone timm / open_clip: the model's name
    pretrained: str = "true"  # backbone timm / open_clip: true, false (random weights) or an open_clip tag


@dataclass
class Crops:
    tensors: torch.Tensor  # (n, 3, S, S)
    rows: dict[str, np.ndarray]  # the copied detection columns, n rows each


@register
class BoxExtractor(Extractor):
    name = "boxes"
    backends = ("backbone",)
    options_class = BoxOptions
    needs_input = True

    def __init__(self, backend: str, device: torch.device, options: BoxOptions) -> None:
        super().__init__(backend, device, options)
        self.net = load_backbone(options.backbone, device, model=options.model, pretrained=options.pretrained)
        self.weights = self.net.files

    @property
    def dim(self) -> int:
        return self.net.dim

    def row_columns(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        return {"features": ((self.dim,), np.dtype(self.options.dtype)), **COPIED}

    def extra_attrs(self) -> dict[str, Any]:
        model = f"{self.net.label} on object box crops ({self.net.weights_name})"
        recipe = json.dumps(self.net.preprocess.recipe(self.options.full))
        return {"backbone": self.options.backbone, "preprocess": recipe,
                **model_attrs(self.name, self.backend, self.config(), model, self.net.note)}

    def prepare(self, item: Item) -> Crops:
        if not item.extra:
            raise BadInput(f"sample {item.id} is not in the --input objects store; rerun objects on this manifest")
        if "failed" in item.extra:
            raise BadInput(f"objects failed for this sample: {item.extra['failed']}")
        missing = set(COPIED) - set(item.extra)
        if missing:
            raise BadInput(f"the --input store lacks row columns {sorted(missing)}; pass an objects store")
        rows = {k: np.asarray(item.extra[k]).astype(dtype, copy=False) for k, (_, dtype) in COPIED.items()}
        boxes = rows["boxes"].reshape(-1, 4)
        if len(boxes) == 0:
            return Crops(torch.zeros((0, 3, 1, 1)), rows)
        img = load_rgb(item.image)
        tensors = [self.net.preprocess(crop(img, b, self.options.margin), full=self.options.full) for b in boxes]
        return Crops(torch.stack(tensors), rows)

    def forward(self, batch: list[Crops]) -> list[Output]:
        parts = [c.tensors for c in batch if len(c.tensors)]
        feats = np.zeros((0, self.dim), np.float32)
        if parts:
            crops = torch.cat(parts)  # (all boxes, 3, S, S)
            size = max(1, self.options.crop_batch)
            feats = torch.cat([self.net.embed(crops[i:i + size]) for i in range(0, len(crops), size)]).numpy()
        feats = feats.astype(self.options.dtype)
        outs, start = [], 0
        for c in batch:
            n = len(c.tensors)
            outs.append(Output({"features": feats[start:start + n], **c.rows}))
            start += n
        return outs
