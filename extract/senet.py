"""SE-ResNet-50-256D, the VGGFace2 face embedder used by the paper ("senet50_256").

Architecture of the released Caffe model (and of its official PyTorch conversion,
`senet50_256_pytorch.tar.gz` on the VGGFace2 site, which holds `senet50_256.pth`):
Caffe-style ResNet-50 (the stride of a down-sampling block sits on its first 1x1 convolution,
max-pool with ceil mode), each bottleneck with a squeeze-and-excitation gate (reduction 16,
1x1 convolutions with bias) on its residual branch, global average pooling, then a 1x1
convolution 2048 -> 256 without bias (`feat_extract`): the 256-d embedding.

Inputs of the PyTorch release: 224 x 224 face crops, **RGB**, 0..255 minus the mean
(131.0912, 103.8827, 91.4953) in R, G, B order (its `meta`, and VGGFace2's official
`pytorch_feature_extractor.py`, which also L2-normalises the output). The Caffe model takes the
same mean in B, G, R order on BGR crops (`MEAN_BGR`); use that only for a Caffe conversion that
kept BGR first-layer filters.

`load_release_state` accepts that release's flat layer names (`conv2_1_1x1_reduce`, ...) as
well as this module's own.
"""

from __future__ import annotations

import re

import torch
from torch import nn

MEAN_RGB = (131.0912, 103.8827, 91.4953)  # the PyTorch release's `meta['mean']`, R, G, B
MEAN_BGR = MEAN_RGB[::-1]  # the Caffe model's, B, G, R
STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (width, blocks, stride) of conv2..conv5


class SEBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, reduction: int = 16) -> None:
        super().__init__()
        cout = width * self.expansion
        self.reduce = nn.Conv2d(cin, width, 1, stride=stride, bias=False)
        self.reduce_bn = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.conv3_bn = nn.BatchNorm2d(width)
        self.increase = nn.Conv2d(width, cout, 1, bias=False)
        self.increase_bn = nn.BatchNorm2d(cout)
        self.se_down = nn.Conv2d(cout, cout // reduction, 1)
        self.se_up = nn.Conv2d(cout // reduction, cout, 1)
        self.proj: nn.Conv2d | None = None
        self.proj_bn: nn.BatchNorm2d | None = None
        if stride != 1 or cin != cout:
            self.proj = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            self.proj_bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, cin, H, W) -> (B, cout, H/s, W/s)
        y = self.relu(self.reduce_bn(self.reduce(x)))
        y = self.relu(self.conv3_bn(self.conv3(y)))
        y = self.increase_bn(self.increase(y))
        gate = torch.sigmoid(self.se_up(self.relu(self.se_down(y.mean((2, 3), keepdim=True)))))  # (B, cout, 1, 1)
        shortcut = x if self.proj is None else self.proj_bn(self.proj(x))
        return self.relu(y * gate + shortcut)


class SENet50Embedding(nn.Module):
    """(B, 3, 224, 224) mean-subtracted crops (RGB for the PyTorch release) -> (B, dim) embedding."""

    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.dim = dim
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        stages, cin = [], 64
        for width, blocks, stride in STAGES:
            layers = []
            for b in range(blocks):
                layers.append(SEBottleneck(cin, width, stride if b == 0 else 1))
                cin = width * SEBottleneck.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.embed = nn.Conv2d(cin, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu(self.bn1(self.conv1(x))))  # (B, 64, 56, 56)
        for stage in self.stages:
            x = stage(x)  # ... -> (B, 2048, 7, 7)
        x = x.mean((2, 3), keepdim=True)  # (B, 2048, 1, 1)
        return torch.flatten(self.embed(x), 1)  # (B, dim)


_RELEASE_PART = {
    "1x1_reduce": "reduce", "1x1_reduce_bn": "reduce_bn", "3x3": "conv3", "3x3_bn": "conv3_bn",
    "1x1_increase": "increase", "1x1_increase_bn": "increase_bn", "1x1_down": "se_down",
    "1x1_up": "se_up", "1x1_proj": "proj", "1x1_proj_bn": "proj_bn",
}
_RELEASE_KEY = re.compile(r"^conv(\d)_(\d+)_(\w+?)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
_RELEASE_TOP = {"conv1_7x7_s2": "conv1", "conv1_7x7_s2_bn": "bn1", "feat_extract": "embed"}


def rename_release_key(key: str) -> str:
    """`conv3_2_1x1_reduce_bn.weight` -> `stages.1.1.reduce_bn.weight`; other keys unchanged."""
    head, _, param = key.partition(".")
    if head in _RELEASE_TOP:
        return f"{_RELEASE_TOP[head]}.{param}"
    m = _RELEASE_KEY.match(key)
    if m and m.group(3) in _RELEASE_PART:
        stage, block = int(m.group(1)) - 2, int(m.group(2)) - 1
        return f"stages.{stage}.{block}.{_RELEASE_PART[m.group(3)]}.{m.group(4)}"
    return key


def load_release_state(model: SENet50Embedding, state: dict[str, torch.Tensor]) -> None:
    """Load a state dict strictly, in the release's naming or this module's."""
    state = {rename_release_key(k): v for k, v in state.items()}
    if "embed.weight" in state and state["embed.weight"].ndim == 2:  # a linear-layer export
        state["embed.weight"] = state["embed.weight"][:, :, None, None]
    model.load_state_dict(state, strict=True)
