"""Test helper: a tiny byte-level BPE and random-weight RoBERTa folders, built offline.

One BPE serves both toolkits: GPT-2 style `encoder.json` + `vocab.bpe` (fairseq's BPE, token ->
BPE id) with a fairseq `dict.txt` listing BPE ids in order (fairseq index = BPE id + 4), and a
transformers `vocab.json` mapping each token straight to that fairseq index, so the embedding rows
of both models are the same rows.
"""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    "The night is dark and full of terrors.", "A detective hunts a killer through the city.",
    "Two friends travel across the country in an old car.", "Fear the night, love the day.",
    "She sings, he dances, and the whole town falls in love.", "Aliens land on a quiet farm.",
    "Buy one get one free at your local store today!", "The quick brown fox jumps over the lazy dog.",
    "Don't drink and drive. Save lives. 0123456789 %$#@!?",
]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def train_bpe(vocab_size: int = 400) -> tuple[dict[str, int], list[str]]:
    """A byte-level BPE without special tokens: (token -> id, merges as 'a b' strings)."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 4, vocab_size=vocab_size, min_frequency=1, show_progress=False)
    model = json.loads(bpe._tokenizer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def hf_vocab(encoder: dict[str, int]) -> dict[str, int]:
    """transformers vocab: specials 0..3, BPE id b -> b + 4, <mask> last (fairseq's order)."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    vocab.update({tok: b + len(SPECIALS) for tok, b in encoder.items()})
    vocab["<mask>"] = len(vocab)
    return vocab


def save_hf_tokenizer(folder: Path, encoder: dict[str, int], merges: list[str]) -> None:
    from transformers import RobertaTokenizer

    RobertaTokenizer(vocab=hf_vocab(encoder), merges=[tuple(m.split(" ")) for m in merges]).save_pretrained(str(folder))


def save_fairseq_vocab(folder: Path, encoder: dict[str, int], merges: list[str]) -> None:
    """encoder.json, vocab.bpe (GPT-2 BPE files) and dict.txt (fairseq dictionary)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "encoder.json").write_text(json.dumps(encoder))
    (folder / "vocab.bpe").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    ids = sorted(encoder.values())
    assert ids == list(range(len(ids)))
    (folder / "dict.txt").write_text("".join(f"{b} {1000 - b % 1000}\n" for b in ids))


def save_hf_roberta(folder: Path, vocab_size: int, layers: int = 2, seed: int = 0,
                    state_dict: dict | None = None) -> None:
    """A random (or given) RobertaModel with roberta-base's layout at `folder` (config + weights)."""
    import torch
    from transformers import RobertaConfig, RobertaModel

    config = RobertaConfig(vocab_size=vocab_size, max_position_embeddings=514, type_vocab_size=1,
                           layer_norm_eps=1e-5, num_hidden_layers=layers, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2)
    torch.manual_seed(seed)
    model = RobertaModel(config, add_pooling_layer=False)
    if state_dict is not None:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        assert not unexpected and not missing, (missing, unexpected)
    model.save_pretrained(str(folder))
