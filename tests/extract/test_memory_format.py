"""CNN extractors run channels_last on the CPU too (BENCHMARKS.md: bare MobileNetV2 about 1.7x)."""

from __future__ import annotations

import torch
from torch import nn

from extract.backbones import load_backbone
from extract.base import to_device
from extract.faces import channels_last

CPU = torch.device("cpu")


def first_conv(net: nn.Module) -> nn.Conv2d:
    return next(m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1))


def test_backbone_and_its_inputs_are_channels_last_on_the_cpu():
    bb = load_backbone("mobilenet_v2", CPU)
    assert bb.channels_last
    assert first_conv(bb.model).weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 224, 224)
    fed = to_device([x[0], x[1]], CPU, channels_last=True)
    assert fed.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(memory_format=torch.channels_last)
    assert to_device(x, CPU).is_contiguous()  # only CNN inputs change format
    with torch.inference_mode():
        plain = bb.model.to(memory_format=torch.contiguous_format)(x)
        bb.model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(bb.embed(x), plain, atol=1e-4, rtol=1e-4)  # same features


def test_face_embedders_are_channels_last():
    net = channels_last(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    assert first_conv(net).weight.is_contiguous(memory_format=torch.channels_last)
