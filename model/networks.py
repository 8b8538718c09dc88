"""The networks: set pooling, the feature encoders and the head, and the models a pool name
builds (`build_model`, model/options.py names the pools); `infer` scores samples with one.

Elements of all sets of a batch are packed together: `x` (E, D) with `segment` (E,) giving the
set (sample) of each element and `modality` (E,) giving the feature it came from. Nothing here
loops over sets or samples in Python.

- `SetModel`: Deep Multi-Modal Sets, every element of every modality in one set, one pool.
- `ModalityModel`: each modality's set pooled on its own, the M pooled (B, D) vectors
  concatenated into (B, M * D), then the head. With max/min/sum/attention it is `set per
  modality`; with `mean` it is `concat mean` (per modality the mean of its encoded rows, zeros
  when absent). Not the paper's baseline: the paper pools nothing before concatenating.
- `PaddedModel`: `concat padded`, the paper's Sec. 3.1 baseline as written: "a concatenated
  feature is formed by appending all features into a single vector", each occurrence encoded to D
  first ("encoding each modality individually before concatenating"), "a placeholder, such as
  zeros" for a missing modality, and for several occurrences "perhaps you pad with the maximum
  number of occurrences". Modality m gets `slots[m]` blocks of D, the most occurrences a training
  sample has (recorded in the run as `slots`); a sample's k-th occurrence (store order) fills
  block k, blocks past its occurrences are zeros, occurrences past the cap are dropped.

Importance (`with_importance=True`), (B, M): for `SetModel` the share of the D pooled dimensions
each modality won (max/min), or of the mass (sum, mean, attention); for the two concatenating
models each modality's share of the L1 mass of the first head layer's pre-activation
contributions (`block_importance`). An absent modality (a zero block) gets 0; a sample with no
modality at all gets a row of zeros.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from model.inputs import Batch, Batches, FeatureInfo, FeatureTable
from model.options import (CONCAT_MEAN, CONCAT_PADDED, ENCODERS, PER_MODALITY, REDUCTIONS, SET_POOLS, TrainOptions,
                           check_pool)
PRIOR = 0.01  # pi of the last-layer bias initialisation -log((1 - pi) / pi)
CNN_WIDTHS = (3, 4, 5)  # CNN-text kernel widths (Kim 2014), ascending
CNN_CHANNELS = 100  # CNN-text feature maps per width (Kim 2014)
CNN_EMBED = 300  # CNN-text embedding width at most (Kim 2014's word vectors); min(D, this)


# ---------------------------------------------------------------------------------------------
# pooling


def set_pool(x: Tensor, segment: Tensor, num_sets: int, how: str) -> tuple[Tensor, Tensor | None]:
    """Pool the packed elements `x` (E, D) of `num_sets` sets; `segment` (E,) int64 set ids.

    Returns `(pooled (num_sets, D), winner)`. For `max`/`min`, `winner` (num_sets, D) int64 is
    the row of `x` that supplied each extreme value (the lowest such row on ties), -1 for an
    empty set; it is None for `sum`/`mean`. Empty sets pool to zeros. Gradients flow to the
    winning rows for max/min and to every row for sum/mean.
    """
    if x.dim() != 2 or segment.shape != (x.shape[0],):
        raise ValueError(f"set_pool wants x (E, D) and segment (E,), got {tuple(x.shape)} and "
                         f"{tuple(segment.shape)}")
    num_rows, dim = x.shape
    segment = segment.long()
    if how in ("sum", "mean"):
        pooled = x.new_zeros(num_sets, dim).index_add(0, segment, x)  # (S, D)
        if how == "mean":
            # index_add, not bincount: bincount sizes its output from the data (a device sync)
            ones = torch.ones(num_rows, device=x.device)
            counts = torch.zeros(num_sets, device=x.device).index_add(0, segment, ones).clamp(min=1)  # (S,)
            pooled = pooled / counts.unsqueeze(1).to(x.dtype)
        return pooled, None
    if how not in ("max", "min"):
        raise ValueError(f"unknown pooling {how!r}; set_pool supports {', '.join(REDUCTIONS)}")

    index = segment.unsqueeze(1).expand(num_rows, dim)  # (E, D)
    with torch.no_grad():
        extreme = x.new_zeros(num_sets, dim).scatter_reduce(
            0, index, x.detach(), reduce="amax" if how == "max" else "amin", include_self=False)
        rows = torch.arange(num_rows, device=x.device).unsqueeze(1)  # (E, 1)
        holds = x.detach() == extreme[segment]  # (E, D) rows holding their set's extreme
        candidate = torch.where(holds, rows, num_rows)  # (E, D)
        winner = torch.full((num_sets, dim), num_rows, dtype=torch.long, device=x.device)
        winner = winner.scatter_reduce(0, index, candidate, reduce="amin", include_self=True)
        empty = winner == num_rows  # (S, D): only for sets with no element
        winner = winner.masked_fill(empty, -1)
    if num_rows == 0:
        return x.new_zeros(num_sets, dim), winner
    pooled = x.gather(0, winner.clamp(min=0))  # (S, D) differentiable w.r.t. the winners
    pooled = pooled.masked_fill(empty, 0.0)
    return pooled, winner


def segment_softmax(scores: Tensor, segment: Tensor, num_sets: int) -> Tensor:
    """Softmax of `scores` (E,) within each set; returns weights (E,) summing to 1 per set."""
    segment = segment.long()
    with torch.no_grad():
        top = scores.new_full((num_sets,), -math.inf).scatter_reduce(
            0, segment, scores.detach(), reduce="amax", include_self=True)  # (S,)
    exp = torch.exp(scores - top[segment])  # (E,)
    total = exp.new_zeros(num_sets).index_add(0, segment, exp)  # (S,)
    return exp / total[segment]


def attention_pool(x: Tensor, scores: Tensor, segment: Tensor, num_sets: int) -> tuple[Tensor, Tensor]:
    """Weighted sum of each set's elements with softmax(scores) weights.

    `x` (E, D), `scores` (E,). Returns `(pooled (num_sets, D), weights (E,))`; empty sets pool
    to zeros.
    """
    weights = segment_softmax(scores, segment, num_sets)  # (E,)
    pooled = x.new_zeros(num_sets, x.shape[1]).index_add(0, segment.long(), x * weights.unsqueeze(1))
    return pooled, weights


# ---------------------------------------------------------------------------------------------
# importance


def winner_importance(winner: Tensor, modality: Tensor, num_modalities: int) -> Tensor:
    """Share of the D dimensions each modality wins: (S, M), rows sum to 1, zeros when empty.

    `winner` (S, D) from `set_pool` (max/min), `modality` (E,) modality id of each element.
    """
    num_sets, dim = winner.shape
    won = winner >= 0  # (S, D)
    mod = modality.long()[winner.clamp(min=0)] if modality.numel() else torch.zeros_like(winner)
    counts = torch.zeros(num_sets, num_modalities, device=winner.device)
    counts.scatter_add_(1, mod, won.float())  # (S, M)
    return counts / max(dim, 1)


def mass_importance(mass: Tensor, segment: Tensor, modality: Tensor, num_sets: int,
                    num_modalities: int) -> Tensor:
    """Share of a non-negative per-element `mass` (E,) held by each modality of each set.

    Returns (S, M) rows summing to 1 for sets with positive mass, zeros otherwise.
    """
    cell = segment.long() * num_modalities + modality.long()  # (E,)
    total = mass.new_zeros(num_sets * num_modalities).index_add(0, cell, mass)
    total = total.view(num_sets, num_modalities)  # (S, M)
    norm = total.sum(1, keepdim=True)  # (S, 1)
    return torch.where(norm > 0, total / norm.clamp(min=1e-30), torch.zeros_like(total))


def block_importance(weight: Tensor, fused: Tensor, widths: Sequence[int]) -> Tensor:
    """Share of each input block in the L1 mass of a linear layer's pre-activation.

    `weight` (H, W) of the layer, `fused` (B, W) its input, cut into M blocks of `widths`
    columns (summing to W). Block m of sample b contributes W_m x_bm (H,); its mass is |W_m x_bm|
    summed over the H units. Returns (B, M): masses over their total, rows summing to 1, zeros
    for a sample whose input is all zeros (the bias is nobody's contribution)."""
    widths = list(widths)
    masses = [(x @ w.t()).abs().sum(1)  # (B, H) -> (B,)
              for x, w in zip(fused.split(widths, 1), weight.split(widths, 1))]
    mass = torch.stack(masses, 1)  # (B, M)
    norm = mass.sum(1, keepdim=True)  # (B, 1)
    return torch.where(norm > 0, mass / norm.clamp(min=1e-30), torch.zeros_like(mass))


# ---------------------------------------------------------------------------------------------
# encoders and head


class DenseEncoder(nn.Module):
    """phi_i for a dense feature: Linear(M_i -> D) -> ELU -> Dropout; one element per row."""

    def __init__(self, in_dim: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, dim), nn.ELU(), nn.Dropout(dropout))

    def forward(self, values: Tensor, bags: Tensor | None = None) -> Tensor:
        return self.net(values)  # (E_i, M_i) -> (E_i, D)


class IndexEncoder(nn.Module):
    """phi_i for an index feature: a learned |V| x D table; a sample's indices are averaged into
    ONE element (bag of embeddings, fastText style), then ELU -> Dropout like a dense encoder."""

    def __init__(self, vocab_size: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.table = nn.EmbeddingBag(vocab_size, dim, mode="mean")
        self.post = nn.Sequential(nn.ELU(), nn.Dropout(dropout))

    def forward(self, values: Tensor, bags: Tensor | None = None) -> Tensor:
        # values (L,) int64 indices of all bags; bags (E_i,) start of each bag -> (E_i, D)
        if bags is None:
            raise ValueError("IndexEncoder needs the bag offsets of its indices")
        return self.post(self.table(values, bags))


class CNNTextEncoder(nn.Module):
    """phi_i for an index feature read as a SEQUENCE (Kim 2014, the paper's CNN-text): a learned
    |V| x min(D, CNN_EMBED) embedding, 1-d convolutions of widths 3, 4 and 5 (CNN_CHANNELS maps
    each) with ReLU, max over positions, then Linear(3 * CNN_CHANNELS -> D) -> ELU -> Dropout;
    ONE element per bag.

    Vectorised over the batch: the bags stay concatenated, with CNN_WIDTHS[-1] - 1 zero padding
    tokens before each bag and after the last, so that every window sees one bag only, and a bag
    of any length >= 1 (also shorter than a kernel) gets the windows of a padded ("wide")
    convolution; windows of padding only are left out of the max. A bag's output therefore does
    not depend on the other bags of the batch.
    """

    def __init__(self, vocab_size: int, dim: int, dropout: float, channels: int | None = None) -> None:
        super().__init__()
        channels = channels or CNN_CHANNELS
        self.pad = vocab_size  # an extra, zero and frozen embedding row
        width = min(dim, CNN_EMBED)
        self.table = nn.Embedding(vocab_size + 1, width, padding_idx=self.pad)
        self.convs = nn.ModuleList(nn.Conv1d(width, channels, size) for size in CNN_WIDTHS)
        self.post = nn.Sequential(nn.Linear(channels * len(CNN_WIDTHS), dim), nn.ELU(), nn.Dropout(dropout))

    def forward(self, values: Tensor, bags: Tensor | None = None) -> Tensor:
        # values (L,) int64 indices of all bags in order; bags (E,) start of each bag -> (E, D)
        if bags is None:
            raise ValueError("CNNTextEncoder needs the bag offsets of its indices")
        num_bags, length, gap = len(bags), len(values), CNN_WIDTHS[-1] - 1
        if num_bags == 0:
            return self.post[0].weight.new_zeros(0, self.post[0].out_features)
        steps = torch.arange(length, device=values.device)
        owner = torch.searchsorted(bags, steps, right=True) - 1  # (L,) bag of each index
        where = steps + gap * (owner + 1)  # (L,) position in the padded sequence
        total = length + gap * (num_bags + 1)
        sequence = values.new_full((total,), self.pad).index_copy(0, where, values)  # (T,)
        bag_of = owner.new_full((total,), -1).index_copy(0, where, owner)  # (T,) -1 = padding
        embedded = self.table(sequence).t().unsqueeze(0)  # (1, min(D, CNN_EMBED), T)
        pooled = []
        for width, conv in zip(CNN_WIDTHS, self.convs):
            maps = torch.relu(conv(embedded)[0].t())  # (T - width + 1, C), >= 0
            window_bag = bag_of.unfold(0, width, 1).amax(1)  # (T - width + 1,) -1: padding only
            maps = maps.masked_fill((window_bag < 0).unsqueeze(1), -1.0)  # never a max
            pooled.append(set_pool(maps, window_bag.clamp(min=0), num_bags, "max")[0])  # (E, C)
        return self.post(torch.cat(pooled, dim=1))


def make_encoder(info: "FeatureInfo", dim: int, dropout: float, kind: str = "bag") -> nn.Module:
    """The encoder of one feature; `kind` (bag | cnn) applies to index features only."""
    if kind not in ENCODERS:
        raise ValueError(f"encoder.{info.name}={kind}: use one of {', '.join(ENCODERS)}")
    if info.kind == "index":
        return (CNNTextEncoder if kind == "cnn" else IndexEncoder)(info.input_dim, dim, dropout)
    if kind != "bag":
        raise ValueError(f"encoder.{info.name}={kind}: {info.name} is a dense feature; the cnn encoder "
                         "reads index features (class indices, tokens) only")
    return DenseEncoder(info.input_dim, dim, dropout)


def make_head(in_dim: int, hidden: Sequence[int], num_classes: int, dropout: float,
              prior: float = PRIOR) -> nn.Sequential:
    """rho: Linear -> ELU -> Dropout per hidden size, then Linear to the classes; the last bias
    starts at -log((1 - prior) / prior) so that initial predictions are `prior`."""
    layers: list[nn.Module] = []
    width = in_dim
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ELU(), nn.Dropout(dropout)]
        width = size
    last = nn.Linear(width, num_classes)
    nn.init.constant_(last.bias, -math.log((1.0 - prior) / prior))
    layers.append(last)
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# the models


class FusionModel(nn.Module):
    """Shared parts: one encoder per feature (modality) and the head. Subclasses fuse."""

    def __init__(self, features: Sequence["FeatureInfo"], num_classes: int, dim: int,
                 hidden: Sequence[int], dropout: float, head_in: int,
                 encoders: dict[str, str] | None = None) -> None:
        super().__init__()
        self.feature_names = [f.name for f in features]
        self.dim = dim
        encoders = encoders or {}
        unknown = sorted(set(encoders) - set(self.feature_names))
        if unknown:
            raise ValueError(f"encoder.{unknown[0]} names no feature of this run ({self.feature_names})")
        self.encoders = nn.ModuleList(make_encoder(f, dim, dropout, encoders.get(f.name, "bag"))
                                      for f in features)
        self.head = make_head(head_in, hidden, num_classes, dropout)

    @property
    def num_modalities(self) -> int:
        return len(self.encoders)

    def encode_parts(self, batch: "Batch") -> list[Tensor]:
        """Each feature's encoded elements, float32: a list of (E_i, D)."""
        if len(batch.parts) != len(self.encoders):
            raise ValueError(f"batch has {len(batch.parts)} features, model has {len(self.encoders)}")
        return [enc(part.values, part.bags).float() for enc, part in zip(self.encoders, batch.parts)]

    def encode(self, batch: "Batch") -> tuple[Tensor, Tensor, Tensor]:
        """Packed set elements: x (E, D), segment (E,), modality (E,)."""
        parts = self.encode_parts(batch)
        x = torch.cat(parts)  # (E, D)
        segment = torch.cat([p.segment for p in batch.parts])  # (E,)
        modality = torch.cat([torch.full_like(p.segment, i) for i, p in enumerate(batch.parts)])
        return x, segment, modality

    def forward(self, batch: "Batch", with_importance: bool = False):  # pragma: no cover
        raise NotImplementedError


class SetModel(FusionModel):
    """Deep Multi-Modal Sets: all encoded elements of a sample form one set, pooled by `pool`,
    then the head. `forward(batch, with_importance=True)` also returns importance (B, M)."""

    def __init__(self, features: Sequence["FeatureInfo"], num_classes: int, pool: str = "max",
                 dim: int = 32, hidden: Sequence[int] = (32,), dropout: float = 0.25,
                 encoders: dict[str, str] | None = None) -> None:
        if pool not in SET_POOLS:
            raise ValueError(f"unknown pool {pool!r}; choose one of {', '.join(SET_POOLS)}")
        super().__init__(features, num_classes, dim, hidden, dropout, head_in=dim, encoders=encoders)
        self.pool = pool
        self.scorer = nn.Linear(dim, 1) if pool == "attention" else None
        if self.scorer is not None:  # start as mean pooling; learn to depart from it
            nn.init.zeros_(self.scorer.weight)
            nn.init.zeros_(self.scorer.bias)

    def forward(self, batch: "Batch", with_importance: bool = False):
        x, segment, modality = self.encode(batch)
        size = batch.size
        if self.pool == "attention":
            scores = self.scorer(x).squeeze(1).float()  # (E,)
            pooled, weights = attention_pool(x, scores, segment, size)
            importance = (mass_importance(weights.detach(), segment, modality, size,
                                          self.num_modalities) if with_importance else None)
        else:
            pooled, winner = set_pool(x, segment, size, self.pool)  # (B, D)
            importance = None
            if with_importance:
                if winner is not None:
                    importance = winner_importance(winner, modality, self.num_modalities)
                else:  # sum / mean: share of the L1 mass of the pooled contributions
                    importance = mass_importance(x.detach().abs().sum(1), segment, modality, size,
                                                 self.num_modalities)
        logits = self.head(pooled)  # (B, C)
        return (logits, importance) if with_importance else logits


def padding_slots(tables: Sequence["FeatureTable"], rows) -> list[int]:
    """`concat padded`'s blocks per modality: the most elements one sample of `rows` (the
    training split's manifest positions) has, at least 1 (an index feature is one element)."""
    index = torch.as_tensor(rows, dtype=torch.long)
    slots = []
    for table in tables:
        counts = table.counts[index]  # (n,)
        if table.info.kind == "index":
            counts = counts.clamp(max=1)
        slots.append(max(int(counts.max()) if len(counts) else 0, 1))
    return slots


class ModalityModel(FusionModel):
    """Each modality pooled alone by `pool` (one of SET_POOLS), concatenated, then the head."""

    def __init__(self, features: Sequence["FeatureInfo"], num_classes: int, pool: str = "mean",
                 dim: int = 32, hidden: Sequence[int] = (32,), dropout: float = 0.25,
                 encoders: dict[str, str] | None = None) -> None:
        if pool not in SET_POOLS:
            raise ValueError(f"unknown pool {pool!r} per modality; choose one of {', '.join(SET_POOLS)}")
        super().__init__(features, num_classes, dim, hidden, dropout, head_in=dim * len(features),
                         encoders=encoders)
        self.pool = pool
        self.scorer = nn.Linear(dim, 1) if pool == "attention" else None
        if self.scorer is not None:  # start as mean pooling, as the joint attention pool
            nn.init.zeros_(self.scorer.weight)
            nn.init.zeros_(self.scorer.bias)

    def forward(self, batch: "Batch", with_importance: bool = False):
        x, segment, modality = self.encode(batch)  # (E, D), (E,), (E,)
        size, count = batch.size, self.num_modalities
        cell = segment * count + modality  # (E,) one set per (sample, modality)
        if self.scorer is not None:
            pooled, _ = attention_pool(x, self.scorer(x).squeeze(1).float(), cell, size * count)
        else:
            pooled, _ = set_pool(x, cell, size * count, self.pool)  # (B * M, D), zeros when absent
        fused = pooled.view(size, count * self.dim)  # (B, M * D), modality blocks in order
        logits = self.head(fused)  # (B, C)
        if not with_importance:
            return logits
        first = self.head[0]  # the first Linear of the head (the last one without hidden layers)
        return logits, block_importance(first.weight.detach().float(), fused.detach(), [self.dim] * count)


def element_rank(segment: Tensor, num_sets: int) -> Tensor:
    """(E,) rank of each element among its set's elements, for `segment` (E,) grouped by set (each
    set's elements contiguous and in ascending set order, as `model.inputs.materialise` gives them)."""
    ones = torch.ones_like(segment)
    counts = torch.zeros(num_sets, dtype=segment.dtype, device=segment.device).index_add(0, segment, ones)
    starts = torch.cumsum(counts, 0) - counts  # (S,) first element of each set
    return torch.arange(len(segment), device=segment.device) - starts[segment]


class PaddedModel(FusionModel):
    """`concat padded`: modality m's occurrences in `slots[m]` zero-padded blocks of D, all
    blocks concatenated (B, sum(slots) * D), then the head."""

    def __init__(self, features: Sequence["FeatureInfo"], num_classes: int, slots: Sequence[int],
                 dim: int = 32, hidden: Sequence[int] = (32,), dropout: float = 0.25,
                 encoders: dict[str, str] | None = None) -> None:
        slots = [int(s) for s in slots]
        if len(slots) != len(features) or min(slots, default=0) < 1:
            raise ValueError(f"concat_padded needs a slot count >= 1 per feature ({len(features)}), got {slots}")
        super().__init__(features, num_classes, dim, hidden, dropout, head_in=dim * sum(slots), encoders=encoders)
        self.slots = slots

    def forward(self, batch: "Batch", with_importance: bool = False):
        parts = self.encode_parts(batch)  # list of (E_i, D)
        size, blocks = batch.size, []
        for x, part, cap in zip(parts, batch.parts, self.slots):
            segment = part.segment.long()
            rank = element_rank(segment, size)  # (E_i,) occurrence number within its sample
            keep = rank < cap
            block = x.new_zeros(size, cap, self.dim).index_put((segment[keep], rank[keep]), x[keep])
            blocks.append(block.view(size, cap * self.dim))  # (B, cap * D)
        fused = torch.cat(blocks, dim=1)  # (B, sum(slots) * D)
        logits = self.head(fused)  # (B, C)
        if not with_importance:
            return logits
        first = self.head[0]
        widths = [cap * self.dim for cap in self.slots]
        return logits, block_importance(first.weight.detach().float(), fused.detach(), widths)


# ---------------------------------------------------------------------------------------------
# building and scoring


def build_model(pool: str, features: Sequence[FeatureInfo], num_classes: int,
                options: TrainOptions, slots: Sequence[int] | None = None) -> FusionModel:
    """The model of `pool` (model/options.py); `slots` (one per feature): `concat_padded`'s blocks."""
    kwargs = dict(dim=options.dim, hidden=options.hidden_sizes(), dropout=options.dropout,
                  encoders=options.encoders)
    if check_pool(pool) == CONCAT_PADDED:
        if slots is None:
            raise ValueError("concat_padded needs its slots per feature (from the training split)")
        return PaddedModel(features, num_classes, slots, **kwargs)
    if pool == CONCAT_MEAN:
        return ModalityModel(features, num_classes, pool="mean", **kwargs)
    if pool.endswith(PER_MODALITY):
        return ModalityModel(features, num_classes, pool=pool.removesuffix(PER_MODALITY), **kwargs)
    return SetModel(features, num_classes, pool=pool, **kwargs)


@torch.no_grad()
def infer(model: FusionModel, tables: Sequence[FeatureTable], positions: Tensor | np.ndarray | None = None,
          batch_size: int = 1024,
          autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
          ) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities (n, C) and importance (n, M) (None for a model that gives none) for the
    samples `positions` of `tables` (None: all of them).

    Results stay on the device until the end: one transfer (and one sync) per call."""
    model.eval()
    device = next(model.parameters()).device
    host = any(t.values.device != device for t in tables)
    if positions is None:
        positions = np.arange(len(tables[0].counts))
    positions = positions.cpu().numpy() if isinstance(positions, Tensor) else np.asarray(positions)
    probs, importance = [], []
    for _, batch in Batches(tables, positions.astype(np.int64), batch_size, device, host):
        with autocast():
            logits, imp = model(batch, with_importance=True)
        probs.append(torch.sigmoid(logits.float()))
        if imp is not None:
            importance.append(imp.float())
    num_classes = model.head[-1].out_features
    prob = torch.cat(probs).cpu().numpy() if probs else np.zeros((0, num_classes), np.float32)
    imp = torch.cat(importance).cpu().numpy() if importance else None
    if imp is None:
        imp = np.zeros((0, model.num_modalities), np.float32)
    return prob, imp
