"""The paper's concat late-fusion baseline (pool name `concat`).

Per modality, the mean of its encoded elements (zeros when the modality is absent), the M means
concatenated into one (B, M * D) vector, then the same head as the set model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor

from model.sets import FusionModel, set_pool

if TYPE_CHECKING:  # pragma: no cover
    from model.data import Batch, FeatureInfo


def block_importance(weight: Tensor, blocks: Tensor) -> Tensor:
    """Share of each input block in the L1 mass of a linear layer's pre-activation.

    `weight` (H, M * D) of the layer, `blocks` (B, M, D) its input cut into M blocks. Block m of
    sample b contributes the vector W_m x_bm (H,); its mass is |W_m x_bm| summed over the H
    units. Returns (B, M): masses over their total, rows summing to 1, zeros for a sample whose
    input is all zeros (the bias is nobody's contribution)."""
    size, modalities, dim = blocks.shape
    per_block = weight.view(weight.shape[0], modalities, dim)  # (H, M, D)
    mass = torch.einsum("bmd,hmd->bmh", blocks, per_block).abs().sum(2)  # (B, M)
    norm = mass.sum(1, keepdim=True)  # (B, 1)
    return torch.where(norm > 0, mass / norm.clamp(min=1e-30), torch.zeros_like(mass))


class ConcatModel(FusionModel):
    """Late fusion by concatenation.

    Importance (`with_importance=True`), (B, M): each modality's share of the L1 mass of the first
    head layer's pre-activation contributions, |W_m x_m| summed over that layer's units, over
    the sum for all modalities (`block_importance`). An absent modality (a zero block) gets 0; a
    sample with no modality at all gets a row of zeros."""

    pool = "concat"

    def __init__(self, features: Sequence["FeatureInfo"], num_classes: int, dim: int = 32,
                 hidden: Sequence[int] = (32,), dropout: float = 0.25,
                 encoders: dict[str, str] | None = None) -> None:
        super().__init__(features, num_classes, dim, hidden, dropout, head_in=dim * len(features),
                         encoders=encoders)

    def forward(self, batch: "Batch", with_importance: bool = False):
        parts = self.encode_parts(batch)  # list of (E_i, D)
        means = [set_pool(x, part.segment, batch.size, "mean")[0]  # (B, D), zeros when absent
                 for x, part in zip(parts, batch.parts)]
        fused = torch.cat(means, dim=1)  # (B, M * D)
        logits = self.head(fused)  # (B, C)
        if not with_importance:
            return logits
        first = self.head[0]  # the first Linear of the head (the last one without hidden layers)
        blocks = fused.detach().view(batch.size, self.num_modalities, self.dim)  # (B, M, D)
        return logits, block_importance(first.weight.detach().float(), blocks)
