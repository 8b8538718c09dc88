"""What a training run is given on the command line: its pool (`--pool`, one of the pool names
below), its features (`--feature NAME=STORE.h5[:COLUMN]`, `FeatureSpec`) and its options
(`--set KEY=VALUE`, `TrainOptions`). Torch-free: Snakemake, pipeline/ and the reports import it.

A pool name is also the run's folder (`runs/{combination}/{pool}/`) and decides its table row;
these are the one list of pools (config/schema.yaml holds a copy of it that tests pin):

| pools | Method | model |
|---|---|---|
| `max`, `min`, `sum`, `mean`, `attention` | `set` | the paper's joint pooling: every element of every modality in one set, one pool (model/networks.py `SetModel`) |
| `max_per_modality`, ... (not `mean`) | `set per modality` | each modality's set pooled on its own by the same pool, the M vectors concatenated (`ModalityModel`) |
| `concat_mean` | `concat mean` | per modality the mean of its encoded rows, concatenated (a mean per modality) |
| `concat_padded` | `concat padded` | the paper's Sec. 3.1 baseline: every occurrence concatenated, zero-padded to a cap per modality (`PaddedModel`) |
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from core import options as core_options

# ---------------------------------------------------------------------------------------------
# pools (`--pool`)

REDUCTIONS = ("max", "min", "sum", "mean")  # set_pool reductions (the paper's, plus mean)
SET_POOLS = REDUCTIONS + ("attention",)  # what SetModel accepts; attention is our learned addition
PER_MODALITY = "_per_modality"  # suffix: that pool applied to each modality's set on its own
# mean per modality is `concat_mean`, so it has no per-modality name of its own
MODALITY_POOLS = tuple(p + PER_MODALITY for p in SET_POOLS if p != "mean")
CONCAT_MEAN, CONCAT_PADDED = "concat_mean", "concat_padded"
BASELINES = (CONCAT_MEAN, CONCAT_PADDED)  # late-fusion baselines (model/networks.py)
GRID_POOLS = SET_POOLS + MODALITY_POOLS  # what a combination's `pools:` may list (config/schema.yaml)
ALL_POOLS = GRID_POOLS + BASELINES
METHODS = ("set", "set per modality", "concat mean", "concat padded")  # the tables' Method values
RENAMED = {"concat": "the pool `concat` was renamed: `concat_mean` is that model (per modality the mean of "
                     "its encoded rows, concatenated); `concat_padded` is the paper's Sec. 3.1 baseline "
                     "(every occurrence concatenated, zero-padded); retrain old concat runs under one of them"}


def pool_wildcard() -> str:
    """Regex for the `{pool}` wildcard of run folders: any of ALL_POOLS."""
    return "|".join(ALL_POOLS)


def check_pool(pool: str) -> str:
    if pool in RENAMED:
        raise ValueError(f"pool {pool}: {RENAMED[pool]}")
    if pool not in ALL_POOLS:
        raise ValueError(f"pool {pool}: choose one of {', '.join(ALL_POOLS)}")
    return pool


def pool_method(pool: str) -> str:
    """The table's Method of a run trained with `pool`."""
    pool = check_pool(pool)
    if pool in BASELINES:
        return pool.replace("_", " ")
    return "set per modality" if pool.endswith(PER_MODALITY) else "set"


def pool_reduction(pool: str) -> str:
    """The table's Pool: the set pool inside (`max_per_modality` -> `max`, `concat_mean` -> `mean`;
    `concat_padded` pools nothing: `-`)."""
    pool = check_pool(pool)
    if pool == CONCAT_PADDED:
        return "-"
    return "mean" if pool == CONCAT_MEAN else pool.removesuffix(PER_MODALITY)


def pool_label(pool: str) -> str:
    """How comparisons and figures name the pool: `max`, `max per modality`, `concat mean`."""
    return check_pool(pool).replace("_", " ")


# ---------------------------------------------------------------------------------------------
# features (`--feature`): the one parser of a feature's store, for the command line and for what
# metrics.json records (`feature_stores`)


@dataclass(frozen=True)
class FeatureSpec:
    """`NAME=STORE.h5[:COLUMN]` from the command line; COLUMN picks a row column of the store
    (default `features`, or `labels` for an index store)."""

    name: str
    path: Path
    column: str | None = None

    @classmethod
    def parse(cls, text: str) -> "FeatureSpec":
        name, sep, rest = text.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise ValueError(f"--feature {text!r}: write NAME=STORE.h5 (or NAME=STORE.h5:COLUMN)")
        path, column = rest, None
        if ":" in rest and not rest.endswith(".h5"):
            path, _, column = rest.rpartition(":")
        return cls(name.strip(), Path(path), column or None)


# ---------------------------------------------------------------------------------------------
# training options (`--set`)

CLASS_WEIGHTS = ("none", "inv_sqrt")
TASKS = ("auto", "binary", "multilabel")
FEATURE_DEVICES = ("auto", "device", "host")
ENCODERS = ("bag", "cnn")  # index-feature encoders: bag of embeddings, CNN-text (model/networks.py)
COLLAPSE = ("mean",)  # `collapse.NAME=mean`: a dense feature's set replaced by its mean row (model/inputs.py)
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
    dev_fraction: float = 0.1  # folds, or named splits without dev rows: share of train carved out as dev (0 = none)

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
        if not 0 <= self.dev_fraction <= 0.5:  # checked here only (model/inputs.py trusts it)
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
