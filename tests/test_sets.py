"""Set pooling, importance, encoders, packing and the concat baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.baseline import ConcatModel
from model.data import Batch, FeatureInfo, FeatureTable, Part, align_rows, cap_rows, pack
from model.sets import (POOLS, SetModel, attention_pool, mass_importance, segment_softmax, set_pool,
                        winner_importance)

torch.set_num_threads(1)


def ragged(counts: list[int], dim: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed elements (E, D) and segment ids (E,) in a shuffled packed order."""
    gen = torch.Generator().manual_seed(seed)
    segment = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    segment = segment[torch.randperm(len(segment), generator=gen)]
    x = torch.randn(len(segment), dim, generator=gen, dtype=torch.float64)
    return x, segment


def naive(x: torch.Tensor, segment: torch.Tensor, num_sets: int, how: str) -> torch.Tensor:
    out = torch.zeros(num_sets, x.shape[1], dtype=x.dtype)
    for s in range(num_sets):
        rows = x[segment == s]
        if len(rows):
            out[s] = {"max": lambda r: r.max(0).values, "min": lambda r: r.min(0).values,
                      "sum": lambda r: r.sum(0), "mean": lambda r: r.mean(0)}[how](rows)
    return out


COUNTS = [3, 0, 1, 7, 0, 2, 12]


@pytest.mark.parametrize("how", POOLS)
def test_set_pool_matches_naive_loop(how: str) -> None:
    for seed in range(3):
        x, segment = ragged(COUNTS, seed=seed)
        pooled, winner = set_pool(x, segment, len(COUNTS), how)
        assert pooled.shape == (len(COUNTS), x.shape[1])
        torch.testing.assert_close(pooled, naive(x, segment, len(COUNTS), how))
        assert (winner is None) == (how in ("sum", "mean"))


@pytest.mark.parametrize("how", POOLS)
def test_set_pool_permutation_invariant(how: str) -> None:
    x, segment = ragged(COUNTS, seed=4)
    pooled, _ = set_pool(x, segment, len(COUNTS), how)
    perm = torch.randperm(len(segment), generator=torch.Generator().manual_seed(1))
    shuffled, _ = set_pool(x[perm], segment[perm], len(COUNTS), how)
    torch.testing.assert_close(pooled, shuffled)


@pytest.mark.parametrize("how", POOLS)
def test_cardinality_zero_one_many(how: str) -> None:
    x = torch.tensor([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0], [2.0, 2.0]])
    segment = torch.tensor([1, 2, 2, 2])  # set 0 empty, set 1 one element, set 2 three
    pooled, winner = set_pool(x, segment, 3, how)
    assert torch.equal(pooled[0], torch.zeros(2))
    if how == "sum":
        assert torch.equal(pooled[1], x[0])
    else:
        assert torch.allclose(pooled[1], x[0])
    expected = {"max": [3.0, 4.0], "min": [-1.0, 0.5], "sum": [4.0, 6.5], "mean": [4 / 3, 6.5 / 3]}[how]
    assert torch.allclose(pooled[2], torch.tensor(expected))
    if winner is not None:
        assert torch.equal(winner[0], torch.tensor([-1, -1]))
        assert torch.equal(winner[1], torch.tensor([0, 0]))
    # all sets empty, and no elements at all
    empty, win = set_pool(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 2, how)
    assert torch.equal(empty, torch.zeros(2, 2))
    if win is not None:
        assert torch.equal(win, torch.full((2, 2), -1))


@pytest.mark.parametrize("how", ["max", "min"])
def test_winner_holds_the_extreme_value(how: str) -> None:
    x, segment = ragged(COUNTS, seed=2)
    x[0] = x[1]  # a tie is allowed: any row holding the extreme value
    pooled, winner = set_pool(x, segment, len(COUNTS), how)
    for s, count in enumerate(COUNTS):
        if count == 0:
            assert (winner[s] == -1).all()
            continue
        assert (segment[winner[s]] == s).all()
        for d in range(x.shape[1]):
            assert x[winner[s, d], d] == pooled[s, d]


@pytest.mark.parametrize("how", ["max", "min"])
def test_gradients_flow_to_winners(how: str) -> None:
    x, segment = ragged(COUNTS, seed=3)
    x.requires_grad_(True)
    pooled, winner = set_pool(x, segment, len(COUNTS), how)
    pooled.sum().backward()
    expected = torch.zeros_like(x)
    for s in range(len(COUNTS)):
        for d in range(x.shape[1]):
            if winner[s, d] >= 0:
                expected[winner[s, d], d] += 1
    torch.testing.assert_close(x.grad, expected)


def test_winner_importance_sums_to_one_or_zero() -> None:
    x, segment = ragged(COUNTS, dim=16, seed=5)
    modality = torch.randint(0, 3, (len(segment),), generator=torch.Generator().manual_seed(0))
    _, winner = set_pool(x, segment, len(COUNTS), "max")
    imp = winner_importance(winner, modality, 3)  # (S, 3)
    sums = imp.sum(1)
    for s, count in enumerate(COUNTS):
        assert sums[s].item() == pytest.approx(1.0 if count else 0.0)
    # hand check: set 0 share of dims won by each modality
    won = modality[winner[0]]
    assert imp[0].tolist() == pytest.approx([(won == m).float().mean().item() for m in range(3)])


def test_mass_importance_sums_to_one_or_zero() -> None:
    x, segment = ragged(COUNTS, seed=6)
    modality = torch.arange(len(segment)) % 2
    imp = mass_importance(x.abs().sum(1), segment, modality, len(COUNTS), 2)
    for s, count in enumerate(COUNTS):
        assert imp[s].sum().item() == pytest.approx(1.0 if count else 0.0)


def test_attention_pool_invariance_and_weights() -> None:
    x, segment = ragged(COUNTS, seed=7)
    scores = torch.randn(len(segment), dtype=torch.float64)
    pooled, weights = attention_pool(x, scores, segment, len(COUNTS))
    perm = torch.randperm(len(segment))
    pooled2, _ = attention_pool(x[perm], scores[perm], segment[perm], len(COUNTS))
    torch.testing.assert_close(pooled, pooled2)
    total = torch.zeros(len(COUNTS), dtype=torch.float64).index_add(0, segment, weights)
    assert total.tolist() == pytest.approx([1.0 if c else 0.0 for c in COUNTS])
    for s, count in enumerate(COUNTS):  # naive softmax per set
        rows = segment == s
        if count:
            w = torch.softmax(scores[rows], 0)
            torch.testing.assert_close(pooled[s], (w[:, None] * x[rows]).sum(0))
        else:
            assert (pooled[s] == 0).all()
    big = segment_softmax(torch.tensor([1000.0, 1001.0]), torch.tensor([0, 0]), 1)  # stable
    assert torch.isfinite(big).all()


# ---------------------------------------------------------------------------------------------
# models on packed batches

INFOS = [FeatureInfo("a", "dense", 4), FeatureInfo("b", "dense", 3), FeatureInfo("tags", "index", 6)]


def tables(seed: int = 0) -> list[FeatureTable]:
    """5 samples; sample 2 has no element at all; sample 4 lacks `a`."""
    gen = torch.Generator().manual_seed(seed)
    counts = {"a": [1, 2, 0, 1, 0], "b": [0, 3, 0, 1, 2], "tags": [2, 0, 0, 1, 3]}
    out = []
    for info in INFOS:
        c = torch.tensor(counts[info.name])
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(c, 0)])
        values = (torch.randint(0, 6, (int(c.sum()),), generator=gen) if info.kind == "index"
                  else torch.randn(int(c.sum()), info.input_dim, generator=gen))
        out.append(FeatureTable(info, offsets, values))
    return out


def test_pack_gathers_each_samples_rows() -> None:
    tabs = tables()
    index = torch.tensor([4, 1, 2, 0])
    batch = pack(tabs, index)
    assert batch.size == 4
    a = batch.parts[0]
    expected = torch.cat([tabs[0].values[tabs[0].offsets[k]:tabs[0].offsets[k + 1]] for k in index])
    torch.testing.assert_close(a.values, expected)
    assert a.segment.tolist() == [1, 1, 3]
    tags = batch.parts[2]  # one bag per sample with indices: samples 4 (pos 0) and 0 (pos 3)
    assert tags.segment.tolist() == [0, 3]
    assert tags.bags.tolist() == [0, 3]
    assert len(tags.values) == 5


@pytest.mark.parametrize("pool", ["max", "min", "sum", "mean", "attention"])
def test_set_model_importance_and_order_invariance(pool: str) -> None:
    torch.manual_seed(0)
    model = SetModel(INFOS, num_classes=3, pool=pool, dim=8, hidden=[8], dropout=0.0).eval()
    tabs = tables()
    with torch.no_grad():
        logits, imp = model(pack(tabs, torch.arange(5)), with_importance=True)
        assert logits.shape == (5, 3) and imp.shape == (5, 3)
        assert imp.sum(1).tolist() == pytest.approx([1, 1, 0, 1, 1], abs=1e-5)
        assert imp[4, 0] == 0  # sample 4 has no `a`
        # a different batch order gives the same per-sample outputs
        again, imp2 = model(pack(tabs, torch.tensor([3, 1, 4, 0, 2])), with_importance=True)
        torch.testing.assert_close(again, logits[[3, 1, 4, 0, 2]])
        torch.testing.assert_close(imp2, imp[[3, 1, 4, 0, 2]])


def test_head_bias_starts_at_prior() -> None:
    model = SetModel(INFOS, num_classes=2, pool="max", dim=8, hidden=[16, 8])
    assert model.head[-1].bias.tolist() == pytest.approx([-np.log(99)] * 2)
    assert [m.out_features for m in model.head if isinstance(m, torch.nn.Linear)] == [16, 8, 2]


def test_concat_baseline_handles_absent_modalities() -> None:
    torch.manual_seed(0)
    model = ConcatModel(INFOS, num_classes=2, dim=4, hidden=[8], dropout=0.0).eval()
    tabs = tables()
    batch = pack(tabs, torch.arange(5))
    with torch.no_grad():
        logits, imp = model(batch, with_importance=True)
        assert imp is None and torch.isfinite(logits).all()
        # sample 2 has nothing: the head sees zeros
        torch.testing.assert_close(logits[2], model.head(torch.zeros(12)))
        # sample 4 lacks `a`: first D inputs are zeros, the others per-modality means
        enc_b = model.encoders[1](tabs[1].values[tabs[1].offsets[4]:tabs[1].offsets[5]]).mean(0)
        enc_t = model.encoders[2](tabs[2].values[tabs[2].offsets[4]:tabs[2].offsets[5]],
                                  torch.tensor([0]))[0]
        torch.testing.assert_close(logits[4], model.head(torch.cat([torch.zeros(4), enc_b, enc_t])))


# ---------------------------------------------------------------------------------------------
# alignment and sub-sampling at load time


def test_align_rows_by_id() -> None:
    store_ids = ["x", "y", "z"]
    store_offsets = np.array([0, 2, 2, 5])
    rows, offsets = align_rows(store_ids, store_offsets, ["z", "w", "x", "y"])  # w missing
    assert offsets.tolist() == [0, 3, 3, 5, 5]
    assert rows.tolist() == [2, 3, 4, 0, 1]


def test_cap_rows_keeps_a_seeded_subset() -> None:
    offsets = np.array([0, 3, 3, 20, 21])
    keep, new = cap_rows(offsets, 5, np.random.default_rng(0))
    assert new.tolist() == [0, 3, 3, 8, 9]
    assert keep[:3].tolist() == [0, 1, 2] and keep[-1] == 20
    assert all(3 <= k < 20 for k in keep[3:8]) and len(set(keep[3:8])) == 5
    assert np.all(np.diff(keep) > 0)
    again, _ = cap_rows(offsets, 5, np.random.default_rng(0))
    assert np.array_equal(keep, again)
