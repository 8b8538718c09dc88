"""model/networks.py: set pooling, importance, encoders, packing, set per modality and the concat baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.inputs import FeatureInfo, FeatureTable
from model.networks import (CNN_WIDTHS, CNNTextEncoder, ModalityModel, PaddedModel, SetModel, attention_pool,
                            block_importance, build_model, element_rank, mass_importance, padding_slots,
                            segment_softmax, set_pool, winner_importance)
from model.options import REDUCTIONS, parse_options
from tests.builders import StoreBuilder, pack

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


@pytest.mark.parametrize("how", REDUCTIONS)
def test_set_pool_matches_naive_loop(how: str) -> None:
    for seed in range(3):
        x, segment = ragged(COUNTS, seed=seed)
        pooled, winner = set_pool(x, segment, len(COUNTS), how)
        assert pooled.shape == (len(COUNTS), x.shape[1])
        torch.testing.assert_close(pooled, naive(x, segment, len(COUNTS), how))
        assert (winner is None) == (how in ("sum", "mean"))


@pytest.mark.parametrize("how", REDUCTIONS)
def test_set_pool_permutation_invariant(how: str) -> None:
    x, segment = ragged(COUNTS, seed=4)
    pooled, _ = set_pool(x, segment, len(COUNTS), how)
    perm = torch.randperm(len(segment), generator=torch.Generator().manual_seed(1))
    shuffled, _ = set_pool(x[perm], segment[perm], len(COUNTS), how)
    torch.testing.assert_close(pooled, shuffled)


@pytest.mark.parametrize("how", REDUCTIONS)
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


def test_concat_mean_handles_absent_modalities() -> None:
    torch.manual_seed(0)
    model = build_model("concat_mean", INFOS, 2, parse_options(["dim=4", "hidden=8", "dropout=0"])).eval()
    assert isinstance(model, ModalityModel) and model.pool == "mean"
    tabs = tables()
    batch = pack(tabs, torch.arange(5))
    with torch.no_grad():
        logits, imp = model(batch, with_importance=True)
        assert torch.isfinite(logits).all() and imp.shape == (5, 3)
        assert imp.sum(1).tolist() == pytest.approx([1, 1, 0, 1, 1], abs=1e-5)
        assert imp[2].tolist() == [0, 0, 0] and imp[4, 0] == 0  # nothing at all; no `a`
        assert imp[1, 2] == 0  # sample 1 has no tags
        # sample 2 has nothing: the head sees zeros
        torch.testing.assert_close(logits[2], model.head(torch.zeros(12)))
        # sample 4 lacks `a`: first D inputs are zeros, the others per-modality means
        enc_b = model.encoders[1](tabs[1].values[tabs[1].offsets[4]:tabs[1].offsets[5]]).mean(0)
        enc_t = model.encoders[2](tabs[2].values[tabs[2].offsets[4]:tabs[2].offsets[5]],
                                  torch.tensor([0]))[0]
        torch.testing.assert_close(logits[4], model.head(torch.cat([torch.zeros(4), enc_b, enc_t])))


@pytest.mark.parametrize("how", ["max", "min", "sum", "attention"])
def test_set_per_modality_pools_each_modality_alone(how: str) -> None:
    """`HOW_per_modality`: modality m's elements pooled by HOW on their own, the pooled vectors
    concatenated in modality order; the same per sample in any batch order."""
    torch.manual_seed(2)
    model = build_model(f"{how}_per_modality", INFOS, 3, parse_options(["dim=4", "hidden=8", "dropout=0"])).eval()
    if how == "attention":  # a scorer that departs from the mean
        torch.nn.init.normal_(model.scorer.weight)
    tabs = tables()
    batch = pack(tabs, torch.arange(5))
    with torch.no_grad():
        logits, imp = model(batch, with_importance=True)
        blocks = []
        for m, (x, part) in enumerate(zip(model.encode_parts(batch), batch.parts)):
            if how == "attention":
                pooled, _ = attention_pool(x, model.scorer(x).squeeze(1), part.segment, 5)
            else:
                pooled = naive(x, part.segment, 5, how)
            blocks.append(pooled)
        torch.testing.assert_close(logits, model.head(torch.cat(blocks, 1)), rtol=1e-5, atol=1e-5)
        assert imp.sum(1).tolist() == pytest.approx([1, 1, 0, 1, 1], abs=1e-5) and imp[4, 0] == 0
        again, imp2 = model(pack(tabs, torch.tensor([3, 1, 4, 0, 2])), with_importance=True)
        torch.testing.assert_close(again, logits[[3, 1, 4, 0, 2]])
        torch.testing.assert_close(imp2, imp[[3, 1, 4, 0, 2]])
    with pytest.raises(ValueError, match="choose one of"):
        build_model("mean_per_modality", INFOS, 3, parse_options([]))  # that model is concat_mean


def padded_by_hand(model, tabs, slots) -> torch.Tensor:
    """The head's input of `concat_padded` for the 5 samples of `tables()`, one sample at a time."""
    enc = [model.encoders[m](t.values, None if t.info.kind == "dense" else torch.tensor([0, 2, 3]))
           for m, t in enumerate(tabs)]  # every row of a and b; the three tag bags
    starts = np.cumsum([0] + [4 * s for s in slots])
    want = torch.zeros(5, int(starts[-1]))
    for m, table in enumerate(tabs[:2]):
        for sample in range(5):
            rows = range(int(table.offsets[sample]), int(table.offsets[sample + 1]))
            for k, row in enumerate(list(rows)[:slots[m]]):  # occurrences past the cap dropped
                want[sample, starts[m] + 4 * k:starts[m] + 4 * k + 4] = enc[m][row]
    for bag, sample in enumerate((0, 3, 4)):
        want[sample, starts[2]:starts[2] + 4] = enc[2][bag]
    return want


def test_concat_padded_places_each_occurrence_in_its_block() -> None:
    """The paper's Sec. 3.1 baseline: occurrence k of modality m in block k of m's slots, zeros
    for fewer occurrences and absent modalities, occurrences past the cap dropped."""
    torch.manual_seed(3)
    tabs = tables()
    slots = padding_slots(tabs, [0, 1, 2, 3])  # a: 2 (sample 1), b: 3 (sample 1), tags: one bag
    assert slots == [2, 3, 1] and padding_slots(tabs, [2]) == [1, 1, 1]  # at least one block each
    options = parse_options(["dim=4", "hidden=8", "dropout=0"])
    batch = pack(tabs, torch.arange(5))
    for chosen in (slots, [2, 1, 1]):  # [2, 1, 1]: sample 1's 2nd and 3rd rows of b are dropped
        model = build_model("concat_padded", INFOS, 2, options, chosen).eval()
        assert isinstance(model, PaddedModel) and model.head[0].in_features == 4 * sum(chosen)
        with torch.no_grad():
            logits, imp = model(batch, with_importance=True)
            torch.testing.assert_close(logits, model.head(padded_by_hand(model, tabs, chosen)), rtol=1e-5, atol=1e-5)
        assert imp.sum(1).tolist() == pytest.approx([1, 1, 0, 1, 1], abs=1e-5) and imp[4, 0] == 0
    assert element_rank(torch.tensor([0, 0, 2, 2, 2, 3]), 4).tolist() == [0, 1, 0, 1, 2, 0]
    with pytest.raises(ValueError, match="slots"):
        build_model("concat_padded", INFOS, 2, options)


def test_block_importance_is_the_l1_share_of_the_first_layer() -> None:
    torch.manual_seed(1)
    model = build_model("concat_mean", INFOS, 2, parse_options(["dim=4", "hidden=8", "dropout=0"])).eval()
    batch = pack(tables(), torch.arange(5))
    with torch.no_grad():
        _, imp = model(batch, with_importance=True)
        means = torch.cat([set_pool(x, p.segment, 5, "mean")[0]
                           for x, p in zip(model.encode_parts(batch), batch.parts)], dim=1)  # (5, 12)
    weight = model.head[0].weight  # (8, 12)
    for b in range(5):  # by hand: |W_m x_m| summed over the 8 units, per modality
        mass = torch.stack([(weight[:, 4 * m:4 * m + 4] @ means[b, 4 * m:4 * m + 4]).abs().sum()
                            for m in range(3)])
        expected = mass / mass.sum() if mass.sum() > 0 else mass
        torch.testing.assert_close(imp[b], expected.detach())
    # without hidden layers the first layer is the output layer
    flat = build_model("concat_mean", INFOS, 2, parse_options(["dim=4", "hidden=", "dropout=0"])).eval()
    with torch.no_grad():
        _, imp = flat(batch, with_importance=True)
    assert imp.sum(1).tolist() == pytest.approx([1, 1, 0, 1, 1], abs=1e-5)
    fused = torch.zeros(2, 12)
    fused[0, 4:10] = 1.0  # the second block only (blocks of 4, 6 and 2 columns) -> all of the mass
    assert block_importance(torch.randn(8, 12), fused, [4, 6, 2]).tolist() == [[0, 1, 0], [0, 0, 0]]


# ---------------------------------------------------------------------------------------------
# CNN-text encoder


def bags_of(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated indices (L,) and bag starts (E,) of non-empty index sequences."""
    values = torch.tensor([i for seq in sequences for i in seq], dtype=torch.long)
    starts = torch.tensor([0] + [len(s) for s in sequences[:-1]]).cumsum(0)
    return values, starts


def naive_cnn(encoder: CNNTextEncoder, sequence: list[int]) -> torch.Tensor:
    """One bag alone, zero-padded by width - 1 on both sides per kernel (Kim's wide convolution)."""
    embedded = encoder.table(torch.tensor(sequence)).t().unsqueeze(0)  # (1, D, n)
    pooled = []
    for width, conv in zip(CNN_WIDTHS, encoder.convs):
        padded = torch.nn.functional.pad(embedded, (width - 1, width - 1))
        pooled.append(torch.relu(conv(padded))[0].max(1).values)  # (C,)
    return encoder.post(torch.cat(pooled))


def test_cnn_text_shapes_and_padding_invariance() -> None:
    torch.manual_seed(0)
    encoder = CNNTextEncoder(vocab_size=9, dim=6, dropout=0.0, channels=5).eval()
    sequences = [[1], [2, 3, 4, 5, 6, 7, 8], [0, 0], [8, 7, 1, 2], [3, 3, 3, 3, 3]]  # 1 and 2 < width 5
    values, starts = bags_of(sequences)
    with torch.no_grad():
        out = encoder(values, starts)
        assert out.shape == (5, 6) and torch.isfinite(out).all()
        for k, seq in enumerate(sequences):  # alone, and in another batch, the same output
            torch.testing.assert_close(out[k], naive_cnn(encoder, seq), rtol=1e-5, atol=1e-5)
            alone = encoder(*bags_of([seq]))
            torch.testing.assert_close(out[k:k + 1], alone, rtol=1e-5, atol=1e-5)
        mixed = encoder(*bags_of([[5, 5, 5, 5, 5, 5, 5, 5], sequences[0], [4]]))
        torch.testing.assert_close(mixed[1], out[0], rtol=1e-5, atol=1e-5)
        assert encoder(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)).shape == (0, 6)
        # order matters (a bag of embeddings could not tell these apart)
        ab, ba = encoder(*bags_of([[1, 2, 3], [3, 2, 1]]))
        assert not torch.allclose(ab, ba)


def test_cnn_text_gradients_flow() -> None:
    torch.manual_seed(0)
    encoder = CNNTextEncoder(vocab_size=9, dim=6, dropout=0.0, channels=5)
    encoder(*bags_of([[1, 2], [3, 4, 5, 6, 7, 8, 1]])).sum().backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert encoder.table.weight.grad[9].abs().sum() == 0  # the padding row stays zero
    assert encoder.table.weight[9].abs().sum() == 0


def test_encoder_option_reaches_the_model() -> None:
    infos = [FeatureInfo("image", "dense", 4), FeatureInfo("objects", "index", 7)]
    options = parse_options(["encoder.objects=cnn", "dim=8"])
    assert options.encoders == {"objects": "cnn"} and options.to_dict()["encoders"] == {"objects": "cnn"}
    for pool in ("max", "max_per_modality", "concat_mean"):
        model = build_model(pool, infos, 2, options)
        assert isinstance(model.encoders[1], CNNTextEncoder)
    with pytest.raises(ValueError, match="use one of bag, cnn"):
        parse_options(["encoder.objects=lstm"])
    with pytest.raises(ValueError, match="dense feature"):
        build_model("max", infos, 2, parse_options(["encoder.image=cnn"]))
    with pytest.raises(ValueError, match="names no feature"):
        build_model("max", infos, 2, parse_options(["encoder.boxes=cnn"]))


def order_cue_data(root, n: int = 240, seed: int = 0):
    """Binary task whose only cue is the ORDER of two indices: `1 2` -> positive, `2 1` ->
    negative, amid 0-3 filler indices (3..7) on each side; both classes hold the same multiset."""
    import pandas as pd

    from extract.store import base_attrs, write_store
    from model.options import FeatureSpec

    rng = np.random.default_rng(seed)
    builder, labels = StoreBuilder(), []
    ids = [f"{k:04d}" for k in range(n)]
    for sample in ids:
        positive = rng.random() < 0.5
        left, right = rng.integers(3, 8, rng.integers(0, 4)), rng.integers(3, 8, rng.integers(0, 4))
        seq = np.concatenate([left, [1, 2] if positive else [2, 1], right]).astype(np.int64)
        builder.add(sample, {"labels": seq})
        labels.append("pos" if positive else "")
    split = ["train" if k % 6 < 4 else "dev" if k % 6 == 4 else "test" for k in range(n)]
    manifest = root / "manifest.csv"
    pd.DataFrame({"id": ids, "split": split, "image": "", "text": "", "labels": labels}).to_csv(manifest, index=False)
    attrs = base_attrs("toy-index", "toy", 8, {})
    attrs["vocab_size"] = 8
    write_store(root / "seq.h5", builder.build(attrs, {"labels": ((), np.int64)}))
    return manifest, [FeatureSpec("seq", root / "seq.h5")]


def test_cnn_text_learns_an_order_cue_a_bag_cannot(tmp_path) -> None:
    import json

    from model.train import train

    manifest, specs = order_cue_data(tmp_path)
    fast = ["epochs=25", "batch_size=32", "dim=16", "hidden=16", "warmup_epochs=2", "lr=0.01", "dropout=0"]
    scores = {}
    for kind in ("bag", "cnn"):
        options = parse_options(fast + [f"encoder.seq={kind}"])
        scores[kind] = train(manifest, specs, "max", 0, tmp_path / kind, options=options, log=None)["accuracy"]
    assert scores["cnn"] > 0.95, scores
    assert scores["bag"] < 0.7, scores  # the mean of the same multiset: chance
    config = json.loads((tmp_path / "cnn" / "metrics.json").read_text())["config"]
    assert config["encoders"] == {"seq": "cnn"}
