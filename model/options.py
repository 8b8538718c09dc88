"""Training options, set on the command line with `--set KEY=VALUE`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

from core import options as core_options

CLASS_WEIGHTS = ("none", "inv_sqrt")
TASKS = ("auto", "binary", "multilabel")
FEATURE_DEVICES = ("auto", "device", "host")
ENCODERS = ("bag", "cnn")  # index-feature encoders: bag of embeddings, CNN-text (model/sets.py)
COLLAPSE = ("mean",)  # `collapse.NAME=mean`: a dense feature's set replaced by its mean row (model/data.py)
LR_AUTO = "auto"  # `lr=auto`: one training per `lr_candidates`, the best dev score kept (model/train.py)
THRESHOLD_DEV = "dev"  # `threshold=dev`: the decision threshold with the best dev score (model/metrics.py)


@dataclass
class TrainOptions:
    dim: int = 128  # D, the common element dimension (paper: 32 Ads, 1024 IMDb; BENCHMARKS.md for 128)
    hidden: str = "128"  # head hidden sizes, comma-separated ("256,128" for IMDb; "" = none)
    dropout: float = 0.25
    epochs: int = 40
    batch_size: int = 64
    eval_batch_size: int = 1024
    lr: float | str = LR_AUTO  # peak learning rate, or auto: chosen among lr_candidates on dev
    lr_candidates: str = "3e-4,1e-3,3e-3,1e-2,3e-2"  # comma-separated peak rates tried by lr=auto
    warmup_epochs: float = 5.0  # linear warm-up from 0, then cosine decay to 0
    weight_decay: float = 0.01  # AdamW (decoupled)
    class_weights: str = "none"  # none | inv_sqrt (per-class loss weight 1/sqrt(train frequency))
    select_metric: str = "auto"  # dev metric for model selection; auto: f1_micro / accuracy
    max_elements: int = 10  # rows kept per sample of a dense feature (0 = all)
    max_elements_by: dict[str, int] = field(default_factory=dict)  # `max_elements.NAME=N`
    encoders: dict[str, str] = field(default_factory=dict)  # `encoder.NAME=bag|cnn` (index features)
    collapse: dict[str, str] = field(default_factory=dict)  # `collapse.NAME=mean`: each sample's mean row instead of its set
    fold: int | None = None  # test fold of integer-fold manifests (train = the other folds less a dev carve of dev_fraction)
    classes: str = ""  # `|`-joined class order; default by descending frequency then name
    threshold: float | str = THRESHOLD_DEV  # on probabilities, or dev: one value chosen on dev per run
    task: str = "auto"  # auto | binary | multilabel
    amp: bool = False  # bf16 autocast on CUDA
    feature_device: str = "auto"  # auto | device | host: where feature tables live (auto: device if they fit)
    dev_fraction: float = 0.1  # cross-validated manifests: share of train carved out as dev (0 = none)

    def hidden_sizes(self) -> list[int]:
        try:
            return [int(h) for h in self.hidden.replace(" ", "").split(",") if h]
        except ValueError:
            raise ValueError(f"hidden={self.hidden!r}: write comma-separated sizes like 256,128") from None

    def lr_values(self) -> list[float]:
        """The peak learning rates to train, ascending: `lr`, or every `lr_candidates` for auto."""
        if self.lr != LR_AUTO:
            return [float(self.lr)]
        try:
            values = sorted({float(v) for v in self.lr_candidates.replace(" ", "").split(",") if v})
        except ValueError:
            raise ValueError(f"lr_candidates={self.lr_candidates!r}: write comma-separated rates like "
                             "3e-4,1e-3,3e-3") from None
        if not values or min(values) <= 0:
            raise ValueError(f"lr_candidates={self.lr_candidates!r}: give at least one positive rate")
        return values

    def validate(self) -> "TrainOptions":
        self.lr = _number_or(self.lr, LR_AUTO, "lr", "a peak rate such as 0.001")
        self.threshold = _number_or(self.threshold, THRESHOLD_DEV, "threshold", "a probability such as 0.5")
        if self.lr != LR_AUTO and self.lr <= 0:
            raise ValueError(f"lr={self.lr}: use a positive rate or {LR_AUTO}")
        if self.threshold != THRESHOLD_DEV and not 0 < self.threshold < 1:
            raise ValueError(f"threshold={self.threshold}: use a probability in (0, 1) or {THRESHOLD_DEV}")
        self.lr_values()
        if self.class_weights not in CLASS_WEIGHTS:
            raise ValueError(f"class_weights={self.class_weights!r}: use one of {', '.join(CLASS_WEIGHTS)}")
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r}: use one of {', '.join(TASKS)}")
        for name in ("dim", "epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if self.feature_device not in FEATURE_DEVICES:
            raise ValueError(f"feature_device={self.feature_device!r}: use one of {', '.join(FEATURE_DEVICES)}")
        if not 0 <= self.dev_fraction <= 0.5:  # checked here only (model/manifest.py trusts it)
            raise ValueError(f"dev_fraction={self.dev_fraction}: use a share in [0, 0.5] (0 = no dev set)")
        for name, kind in self.encoders.items():
            if kind not in ENCODERS:
                raise ValueError(f"encoder.{name}={kind}: use one of {', '.join(ENCODERS)}")
        for name, how in self.collapse.items():
            if how not in COLLAPSE:
                raise ValueError(f"collapse.{name}={how}: use one of {', '.join(COLLAPSE)}")
        if any(h < 1 for h in self.hidden_sizes()):
            raise ValueError(f"hidden={self.hidden!r}: sizes must be positive")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _number_or(value: float | str, word: str, key: str, example: str) -> float | str:
    """`value` as a float, or `word` itself (`--set` gives text, YAML numbers)."""
    if isinstance(value, str) and value.strip().lower() == word:
        return word
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}={value!r}: use {word} or {example}") from None


PER_FEATURE = {"max_elements": "max_elements_by", "encoder": "encoders", "collapse": "collapse"}  # KEY.NAME=VALUE


def parse_options(pairs: Sequence[str], base: TrainOptions | None = None) -> TrainOptions:
    """Apply `KEY=VALUE` pairs (core/options.py) to a copy of `base`, then validate."""
    return core_options.parse_options(TrainOptions, pairs, base, PER_FEATURE).validate()
