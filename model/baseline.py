"""The paper's concat late-fusion baseline (pool name `concat`).

Per modality, the mean of its encoded elements (zeros when the modality is absent), the M means
concatenated into one (B, M * D) vector, then the same head as the set model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from model.sets import FusionModel, set_pool

if TYPE_CHECKING:  # pragma: no cover
    from model.data import Batch, FeatureInfo


class ConcatModel(FusionModel):
    """Late fusion by concatenation; has no feature importance (`importance` is None)."""

    pool = "concat"

    def __init__(self, features: Sequence["FeatureInfo"], num_classes: int, dim: int = 32,
                 hidden: Sequence[int] = (32,), dropout: float = 0.25) -> None:
        super().__init__(features, num_classes, dim, hidden, dropout, head_in=dim * len(features))

    def forward(self, batch: "Batch", with_importance: bool = False):
        parts = self.encode_parts(batch)  # list of (E_i, D)
        means = [set_pool(x, part.segment, batch.size, "mean")[0]  # (B, D), zeros when absent
                 for x, part in zip(parts, batch.parts)]
        logits = self.head(torch.cat(means, dim=1))  # (B, M * D) -> (B, C)
        return (logits, None) if with_importance else logits
