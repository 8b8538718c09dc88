"""`image`: one pooled backbone embedding of the whole image per sample (WSL(i) in the paper).

Backends: the paper's resnext101_32x16d_wsl, mobilenet_v2, and any model by name: `timm` (option
`model`, e.g. resnet18; `pretrained` true/false) or `open_clip` (`model` ViT-B-32, `pretrained` a
tag such as laion2b_s34b_b79k; `extract.named_backbones`). attrs: `model`, `substitute`, and
`preprocess` (what the backbone was fed, JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from extract.backbones import load_backbone
from extract.base import Extractor, Item, Options, Output, for_backends
from extract.image_files import load_rgb
from extract.registry import register
from extract.substitutes import model_attrs


@dataclass
class ImageOptions(Options):
    batch_size: int = 32
    full: bool = False  # squash the whole image to a square instead of centre-cropping
    dtype: str = "float16"  # features as stored
    model: str = for_backends("", "timm", "open_clip")  # the model's name (resnet18, ViT-B-32)
    # true, false (random weights) or an open_clip tag
    pretrained: str = for_backends("true", "timm", "open_clip")


@register
class ImageExtractor(Extractor):
    name = "image"
    backends = ("resnext101_32x16d_wsl", "mobilenet_v2", "timm", "open_clip")
    options_class = ImageOptions

    def __init__(self, backend: str, device: torch.device, options: ImageOptions) -> None:
        super().__init__(backend, device, options)
        self.net = load_backbone(backend, device, model=options.model, pretrained=options.pretrained)
        self.weights = self.net.files

    @property
    def dim(self) -> int:
        return self.net.dim

    def row_columns(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        return {"features": ((self.dim,), np.dtype(self.options.dtype))}

    def extra_attrs(self) -> dict[str, Any]:
        return {"preprocess": json.dumps(self.net.preprocess.recipe(self.options.full)),
                **model_attrs(self.name, self.backend, self.config(),
                                 f"{self.net.label} ({self.net.weights_name})", self.net.note)}

    def prepare(self, item: Item) -> torch.Tensor | None:
        if not item.image:
            return None  # no image for this sample: the modality is absent
        return self.net.preprocess(load_rgb(item.image), full=self.options.full)

    def forward(self, batch: list[torch.Tensor | None]) -> list[Output]:
        present = [x for x in batch if x is not None]
        feats = self.net.embed(present).numpy() if present else None  # (B', dim)
        outs, j = [], 0
        for x in batch:
            if x is None:
                outs.append(Output({"features": np.zeros((0, self.dim), self.options.dtype)}))
            else:
                outs.append(Output({"features": feats[j:j + 1].astype(self.options.dtype)}))
                j += 1
        return outs
