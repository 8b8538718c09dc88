"""fairseq <-> transformers RoBERTa: the state-dict converter, and both text backends agreeing.

The backend comparison needs fairseq, which lives in its own venv (.venv-fairseq, from
requirements-fairseq.txt); in an environment without it that test is skipped with the reason.
The converter tests need only torch and transformers and run everywhere.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from extract.base import Item
from extract.roberta_convert import TOKEN_TYPE, fairseq_to_hf, hf_to_fairseq
from tests.tiny_roberta import hf_vocab, save_fairseq_vocab, save_hf_roberta, save_hf_tokenizer, train_bpe

TEXTS = [
    "Fear the night.",
    "A detective hunts a killer through the city at night. Don't drink and drive!",
    "",  # no text: no row, in both backends
    "Aliens land on a quiet farm; 0123456789 %$#@!?",
    " ".join(["the night is dark and full of terrors"] * 120),  # far past 512 tokens
]


def fairseq_or_skip():
    try:
        import fairseq  # noqa: F401
        from fairseq.models.roberta import RobertaModel  # noqa: F401
    except Exception as err:  # ImportError, or fairseq 0.12.2's dataclass errors on Python 3.11
        if os.environ.get("DMMS_REQUIRE_FAIRSEQ", "") not in ("", "0"):  # the fairseq venv's CI run
            pytest.fail(f"DMMS_REQUIRE_FAIRSEQ is set but fairseq does not import: {type(err).__name__}: {err}")
        pytest.skip(f"fairseq is not importable here ({type(err).__name__}: {err}); this test runs in "
                    ".venv-fairseq: python3 -m venv .venv-fairseq && .venv-fairseq/bin/pip install "
                    "-r requirements-fairseq.txt")


def jitter(state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Every tensor moved off its init (layer norms included), so a swapped mapping shows."""
    gen = torch.Generator().manual_seed(seed)
    return {k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
            for k, v in state.items()}


def test_hf_fairseq_round_trip_keeps_outputs(tmp_path):
    from transformers import RobertaModel

    save_hf_roberta(tmp_path, vocab_size=60, layers=2)
    model = RobertaModel.from_pretrained(str(tmp_path), add_pooling_layer=False).eval()
    state = jitter(model.state_dict())
    model.load_state_dict(state)
    fs = hf_to_fairseq(state)
    assert all(k.startswith("encoder.sentence_encoder.") for k in fs)
    assert "encoder.sentence_encoder.layers.1.self_attn.q_proj.weight" in fs
    back = fairseq_to_hf(fs)
    assert torch.count_nonzero(back[TOKEN_TYPE]) == 0  # folded into the positions
    again = RobertaModel.from_pretrained(str(tmp_path), add_pooling_layer=False).eval()
    missing, unexpected = again.load_state_dict(back, strict=False)
    assert not unexpected and set(missing) <= {"embeddings.position_ids", "embeddings.token_type_ids"}
    ids = torch.tensor([[0, 5, 9, 33, 2, 1, 1], [0, 7, 7, 7, 8, 12, 2]])
    mask = (ids != 1).long()
    with torch.inference_mode():
        want = model(input_ids=ids, attention_mask=mask).last_hidden_state
        got = again(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got * mask[..., None], want * mask[..., None], atol=1e-5, rtol=1e-5)


def fuse_in_proj(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Separate q_proj / k_proj / v_proj -> fused self_attn.in_proj_{weight,bias} (q, k, v rows
    stacked in that order), the layout of the released fairseq RoBERTa checkpoints."""
    out = {}
    for key, value in state.items():
        if ".self_attn.q_proj." in key:
            head, kind = key.split(".self_attn.q_proj.")
            parts = [state[f"{head}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
            out[f"{head}.self_attn.in_proj_{kind}"] = torch.cat(parts)
        elif ".self_attn.k_proj." not in key and ".self_attn.v_proj." not in key:
            out[key] = value
    return out


def test_converter_splits_fused_in_proj_into_q_k_v(tmp_path):
    from transformers import RobertaModel

    save_hf_roberta(tmp_path, vocab_size=60, layers=2)
    model = RobertaModel.from_pretrained(str(tmp_path), add_pooling_layer=False).eval()
    state = jitter(model.state_dict(), seed=1)
    fused = fuse_in_proj(hf_to_fairseq(state))
    assert "encoder.sentence_encoder.layers.1.self_attn.in_proj_weight" in fused
    assert fused["encoder.sentence_encoder.layers.1.self_attn.in_proj_weight"].shape == (3 * 768, 768)
    assert not any("q_proj" in k for k in fused)
    back = fairseq_to_hf(fused)
    separate = fairseq_to_hf(hf_to_fairseq(state))
    assert back.keys() == separate.keys()
    for key in back:
        assert torch.equal(back[key], separate[key]), key
    torch.testing.assert_close(back["encoder.layer.1.attention.self.key.bias"],
                               state["encoder.layer.1.attention.self.key.bias"])


def test_converter_refuses_both_forms_at_once(tmp_path):
    from transformers import RobertaModel

    save_hf_roberta(tmp_path, vocab_size=60, layers=1)
    both = hf_to_fairseq(RobertaModel.from_pretrained(str(tmp_path), add_pooling_layer=False).state_dict())
    both.update({k: v for k, v in fuse_in_proj(both).items() if "in_proj" in k})
    with pytest.raises(ValueError, match="keep one form"):
        fairseq_to_hf(both)
    odd = fuse_in_proj(hf_to_fairseq(RobertaModel.from_pretrained(str(tmp_path), add_pooling_layer=False).state_dict()))
    odd["encoder.sentence_encoder.layers.0.self_attn.in_proj_bias"] = torch.zeros(10)
    with pytest.raises(ValueError, match="not 3 x hidden"):
        fairseq_to_hf(odd)


def test_converter_rejects_other_state_dicts():
    with pytest.raises(ValueError, match="not a fairseq RoBERTa"):
        fairseq_to_hf({"decoder.embed_tokens.weight": torch.zeros(2, 2)})


def build_fairseq_roberta(folder: Path, layers: int = 2, fused: bool = False) -> dict[str, torch.Tensor]:
    """A random fairseq roberta_base (layers reduced) saved as folder/model.pt, as the release is
    laid out (model.pt, dict.txt) plus GPT-2 BPE files; returns the state dict saved. `fused`:
    attention input projections fused into in_proj_weight / in_proj_bias, as in the released
    checkpoints (fairseq's loader splits them again)."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    encoder, merges = train_bpe()
    save_fairseq_vocab(folder, encoder, merges)
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(folder), "--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta_base",
        "--encoder-layers", str(layers), "--tokens-per-sample", "512", "--max-positions", "512",
        "--cpu", "--bpe", "gpt2", "--gpt2-encoder-json", str(folder / "encoder.json"),
        "--gpt2-vocab-bpe", str(folder / "vocab.bpe")])
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(0)
    model = tasks.setup_task(cfg.task).build_model(cfg.model)
    with torch.no_grad():  # parameters, not state-dict keys: the LM head shares the embedding
        for name, value in jitter(dict(model.named_parameters())).items():
            model.get_parameter(name).copy_(value)
    state = fuse_in_proj(model.state_dict()) if fused else model.state_dict()
    history = [{"criterion_name": "MaskedLmLoss", "optimizer_name": "adam", "lr_scheduler_state": {},
                "num_updates": 0}]
    torch.save({"cfg": OmegaConf.to_container(cfg), "model": state, "optimizer_history": history,
                "extra_state": {}}, folder / "model.pt")
    # Point the checkpoint's own BPE paths elsewhere: the backend must find the files itself.
    (folder / "bpe").mkdir()
    for name in ("encoder.json", "vocab.bpe"):
        (folder / name).rename(folder / "bpe" / name)
    return state


@pytest.mark.parametrize("fused", [False, True], ids=["separate_qkv", "fused_in_proj"])
def test_fairseq_and_transformers_backends_agree(tmp_path, monkeypatch, fused):
    fairseq_or_skip()
    from extract.text import TextExtractor, TextOptions

    logging.getLogger("fairseq").setLevel(logging.WARNING)
    monkeypatch.setenv("DMMS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fs_dir, hf_dir = tmp_path / "roberta.base", tmp_path / "hf"
    state = build_fairseq_roberta(fs_dir, fused=fused)
    assert any("in_proj_weight" in k for k in state) == fused
    # The release has no BPE files; they come from resources/weights/gpt2_bpe/ ($DMMS_WEIGHTS).
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    (fs_dir / "bpe").rename(tmp_path / "weights" / "gpt2_bpe")

    encoder, merges = train_bpe()
    save_hf_tokenizer(hf_dir, encoder, merges)
    save_hf_roberta(hf_dir, len(hf_vocab(encoder)), layers=2, state_dict=fairseq_to_hf(state))

    fs = TextExtractor("fairseq", torch.device("cpu"), TextOptions(model=str(fs_dir), dtype="float32"))
    hf = TextExtractor("roberta-base", torch.device("cpu"), TextOptions(model=str(hf_dir), dtype="float32"))
    assert fs.dim == hf.dim == 768
    assert [w for w, _ in fs.weights] == ["model.pt", "dict.txt", "encoder.json", "vocab.bpe"]

    for text in TEXTS[:2] + TEXTS[3:4]:  # same tokens, same indices
        assert fs.encoder.tokens(text).tolist() == hf.tokenizer(text)["input_ids"]
    assert len(fs.encoder.tokens(TEXTS[-1])) == 512 and fs.encoder.tokens(TEXTS[-1])[-1].item() == 2

    items = [Item(str(k), "", t) for k, t in enumerate(TEXTS)]
    got = [o.rows["features"] for o in fs.forward([fs.prepare(i) for i in items])]  # one padded batch
    want = [o.rows["features"] for o in hf.forward([hf.prepare(i) for i in items])]
    assert [g.shape for g in got] == [(1, 768), (1, 768), (0, 768), (1, 768), (1, 768)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-4)
    feats = np.concatenate(got)
    assert np.abs(feats[0] - feats[1]).max() > 1e-2  # the features depend on the text
