"""Image backbones named in the config, beyond the paper: any timm model, or an open_clip image tower.

    backbone timm       option `model`: a timm name (`timm.list_models()`; a weight tag may follow
                        a dot, resnet18.a1_in1k); `pretrained`: true (the tag's weights) or false
    backbone open_clip  option `model`: an open_clip name (`open_clip.list_models()`, ViT-B-32);
                        `pretrained`: a tag (`open_clip.list_pretrained_tags_by_model`, e.g.
                        laion2b_s34b_b79k), a checkpoint file, or false

Each keeps its library's own evaluation preprocessing: timm's data config of the model's
pretrained weights (`resolve_model_data_config` + `create_transform`: resize, crop_pct, crop
mode, interpolation, mean/std), open_clip's preprocess config of the tag (`image_transform_v2`).
`full=True` (box and face crops, option `full`) squashes the whole image to the input size with
the same interpolation and normalisation. Features: timm's pooled pre-logits (what the
classifier sees), open_clip's image embedding (`encode_image`, in the space of its text tower,
not normalised). Weights: `extract.hub` (resources/weights, the Hugging Face cache, a download);
`pretrained: false` builds the architecture with random weights, which `note` says.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image
from torch import nn

from core.hashing import sha256
from extract.hub import NamedWeights, named_weights, parse_pretrained

RANDOM_NOTE = "random weights (pretrained: false): the features carry no learned meaning"


@dataclass(frozen=True)
class LibraryPreprocess:
    """PIL image -> (3, H, W) float through a library's own evaluation transforms."""

    crop: Callable[[Image.Image], torch.Tensor]  # as the model was evaluated (resize, centre crop)
    squash: Callable[[Image.Image], torch.Tensor]  # the whole image resized to the input size
    crop_recipe: dict[str, Any] = field(default_factory=dict)
    squash_recipe: dict[str, Any] = field(default_factory=dict)

    def __call__(self, img: Image.Image, full: bool = False) -> torch.Tensor:
        return (self.squash if full else self.crop)(img)

    def recipe(self, full: bool = False) -> dict[str, Any]:
        return self.squash_recipe if full else self.crop_recipe


@dataclass
class Named:
    """What `load_named` hands to `extract.backbones.Backbone`."""

    dim: int
    preprocess: LibraryPreprocess
    model: nn.Module  # (B, 3, H, W) -> (B, dim)
    classifier: nn.Module
    weights: tuple[str, str]  # (file, sha256); ("", "") for random weights
    label: str  # the model (timm resnet18), for the store's `model` attr beside the weights file
    note: str  # a run-time difference from the paper's weights ("" when none)


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


# --- timm ---------------------------------------------------------------------------------
class _PreLogits(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, head_hidden_size)
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)


def timm_spec(model: str, cfg: Any) -> NamedWeights:
    if cfg.hf_hub_id:
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ("model.safetensors", "pytorch_model.bin")
        return NamedWeights(f"timm {model}", repo=cfg.hf_hub_id, files=files)
    return NamedWeights(f"timm {model}", url=cfg.url)


def load_timm(model: str, pretrained: bool | str) -> Named:
    import timm
    from timm.data import create_transform, resolve_model_data_config
    from timm.models import get_pretrained_cfg

    if not model or not timm.is_model(model):
        raise ValueError(f"backbone timm: option model={model!r} is not a timm model; set model to one of "
                         "timm.list_models() (e.g. resnet18, convnext_tiny.fb_in1k)")
    if pretrained not in (True, False):
        raise ValueError(f"backbone timm: pretrained={pretrained!r}: use true or false (a weight tag goes "
                         "in the model name, e.g. resnet18.a1_in1k)")
    weights, note = ("", ""), RANDOM_NOTE
    if pretrained:
        cfg = get_pretrained_cfg(model)
        if cfg is None or not (cfg.hf_hub_id or cfg.url):
            raise ValueError(f"timm has no pretrained weights for {model!r}; pick a name with a tag from "
                             f"timm.list_pretrained({model.split('.')[0]!r}) or set pretrained: false")
        path = named_weights(timm_spec(model, cfg))
        net = timm.create_model(model, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        weights, note = (path.name, sha256(path)), ""
    else:
        net = timm.create_model(model, pretrained=False)
    config = resolve_model_data_config(net)
    squash = {**config, "crop_pct": 1.0, "crop_mode": "squash"}
    preprocess = LibraryPreprocess(create_transform(**config, is_training=False),
                                   create_transform(**squash, is_training=False),
                                   _jsonable(config), _jsonable(squash))
    dim = int(getattr(net, "head_hidden_size", None) or net.num_features)
    return Named(dim, preprocess, _PreLogits(net).eval(), net.get_classifier().eval(), weights, f"timm {model}", note)


# --- open_clip ----------------------------------------------------------------------------
def open_clip_spec(model: str, tag: str, cfg: dict[str, Any]) -> NamedWeights:
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    url = cfg.get("url", "")
    extra = (Path("~/.cache/clip").expanduser() / Path(url).name,) if url else ()
    if cfg.get("hf_hub"):
        repo, file = posixpath.split(cfg["hf_hub"])  # "org/name/" or "org/name/file", as open_clip reads it
        files = (file,) if file else (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME)
        return NamedWeights(f"open_clip {model} {tag}", repo=repo, files=files, extra=extra)
    return NamedWeights(f"open_clip {model} {tag}", url=url, extra=extra)


def load_open_clip(model: str, pretrained: bool | str) -> tuple[nn.Module, tuple[str, str], str, str]:
    """The whole CLIP model (both towers) in eval mode, its (file, sha256) (("", "") for random
    weights), a label (open_clip ViT-B-32 laion2b_s34b_b79k) and a note (random weights)."""
    import open_clip

    if not model or open_clip.get_model_config(model) is None:
        raise ValueError(f"open_clip: option model={model!r} is not an open_clip model; set model to one of "
                         "open_clip.list_models() (e.g. ViT-B-32)")
    if pretrained is False:
        net = open_clip.create_model(model, pretrained=None, load_weights=False,
                                     pretrained_image=False, pretrained_text=False)
        return net.eval(), ("", ""), f"open_clip {model}", RANDOM_NOTE
    tags = open_clip.list_pretrained_tags_by_model(model)
    if pretrained is True:
        raise ValueError(f"open_clip: pretrained: true names no weights; set pretrained to one of {model}'s tags "
                         f"({', '.join(tags) or 'none'}), a checkpoint file, or false")
    cfg: dict[str, Any] = {}
    if Path(pretrained).is_file():
        path = Path(pretrained)
    else:
        cfg = open_clip.get_pretrained_cfg(model, pretrained)
        if not cfg:
            raise ValueError(f"open_clip: {pretrained!r} is neither a tag of {model} ({', '.join(tags) or 'none'}) "
                             "nor a checkpoint file")
        path = named_weights(open_clip_spec(model, pretrained, cfg))
    # the tag's preprocessing and activation, as open_clip applies them when it downloads the tag itself
    net = open_clip.create_model(model, pretrained=str(path), pretrained_image=False, pretrained_text=False,
                                 force_preprocess_cfg=cfg, force_quick_gelu=bool(cfg.get("quick_gelu")))
    label = f"open_clip {model} {pretrained}" if cfg else f"open_clip {model}"
    return net.eval(), (path.name, sha256(path)), label, ""


class _ClipImage(nn.Module):
    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, embed_dim)
        return self.clip.encode_image(x)


def open_clip_image(model: str, pretrained: bool | str) -> Named:
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    net, weights, label, note = load_open_clip(model, pretrained)
    config = dict(open_clip.get_model_preprocess_cfg(net))
    squash = {**config, "resize_mode": "squash"}
    preprocess = LibraryPreprocess(image_transform_v2(PreprocessCfg(**config), is_train=False),
                                   image_transform_v2(PreprocessCfg(**squash), is_train=False),
                                   _jsonable(config), _jsonable(squash))
    dim = int(open_clip.get_model_config(model)["embed_dim"])
    return Named(dim, preprocess, _ClipImage(net).eval(), nn.Identity(), weights, f"{label}, image tower", note)


LOADERS = {"timm": load_timm, "open_clip": open_clip_image}


def load_named(backbone: str, model: str, pretrained: str | bool) -> Named:
    return LOADERS[backbone](model, parse_pretrained(pretrained) if isinstance(pretrained, str) else pretrained)
