"""Models that keep the modalities apart and concatenate them (model/options.py names them).

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

Importance (`with_importance=True`), (B, M), for both: each modality's share of the L1 mass of the
first head layer's pre-activation contributions (`block_importance`). An absent modality (a zero
block) gets 0; a sample with no modality at all gets a row of zeros.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor, nn

from model.options import SET_POOLS
from model.sets import FusionModel, attention_pool, set_pool

if TYPE_CHECKING:  # pragma: no cover
    from model.inputs import Batch, FeatureInfo, FeatureTable


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
