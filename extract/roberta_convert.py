"""RoBERTa encoder state dicts: fairseq <-> transformers (`RobertaModel`, no pooler, no LM head).

fairseq keys live under `encoder.sentence_encoder.` (older checkpoints: `decoder.sentence_encoder.`);
transformers keys are `RobertaModel`'s (`embeddings.*`, `encoder.layer.N.*`). The vocabularies
must agree row for row (as roberta-base's do: transformers index = fairseq index). fairseq has no
token-type embedding: converting to transformers adds a zero one (type_vocab_size=1); converting
back folds it into the position embeddings, which is exact because every token has type 0.
Both the LM head and any classification heads are left out.

Released fairseq checkpoints (roberta.base among them) hold each layer's attention input
projection fused: `layers.N.self_attn.in_proj_weight` (3H, H) and `in_proj_bias` (3H,), the
query, key and value rows stacked in that order (fairseq's own loader splits them the same way,
`MultiheadAttention.upgrade_state_dict_named`); later checkpoints hold `q_proj`, `k_proj`,
`v_proj` separately. Both are accepted.
"""

from __future__ import annotations

import re

import torch

PREFIXES = ("encoder.sentence_encoder.", "decoder.sentence_encoder.")
EMBEDDINGS = {
    "embed_tokens.weight": "embeddings.word_embeddings.weight",
    "embed_positions.weight": "embeddings.position_embeddings.weight",
    "layernorm_embedding.weight": "embeddings.LayerNorm.weight",
    "layernorm_embedding.bias": "embeddings.LayerNorm.bias",
}
OLD_NAMES = {"emb_layer_norm.": "layernorm_embedding."}  # fairseq before 0.10
LAYER = {  # inside layers.N. -> inside encoder.layer.N.
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.output.LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "final_layer_norm": "output.LayerNorm",
}
TOKEN_TYPE = "embeddings.token_type_embeddings.weight"


def _encoder_part(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The sentence encoder's tensors with the prefix removed (and old names updated)."""
    out = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            if key.startswith(prefix):
                name = key[len(prefix):]
                for old, new in OLD_NAMES.items():
                    name = name.replace(old, new)
                out[name] = value
    if not out:
        raise ValueError("no 'encoder.sentence_encoder.*' tensors: not a fairseq RoBERTa state dict")
    return out


FUSED = re.compile(r"(layers\.\d+\.self_attn\.)in_proj_(weight|bias)")


def split_in_proj(encoder: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fused `self_attn.in_proj_{weight,bias}` (3H, ...) -> q_proj, k_proj, v_proj thirds, in
    that order; other tensors unchanged."""
    out = {}
    for name, value in encoder.items():
        match = FUSED.fullmatch(name)
        if match is None:
            out.setdefault(name, value)
            continue
        prefix, kind = match.groups()
        if value.shape[0] % 3:
            raise ValueError(f"fairseq tensor {name!r} has {value.shape[0]} rows, not 3 x hidden: "
                             "not a fused q, k, v projection")
        for part, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
            key = f"{prefix}{part}.{kind}"
            if key in encoder:
                raise ValueError(f"fairseq state dict holds both {name!r} and {key!r}; keep one form")
            out[key] = chunk.clone()
    return out


def fairseq_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A fairseq RoBERTa state dict (checkpoint['model']) -> `transformers.RobertaModel` state dict.
    Fused attention input projections (released checkpoints) are split into q, k, v."""
    out: dict[str, torch.Tensor] = {}
    for name, value in split_in_proj(_encoder_part(state)).items():
        if name in EMBEDDINGS:
            out[EMBEDDINGS[name]] = value
            continue
        match = re.fullmatch(r"layers\.(\d+)\.(.+)\.(weight|bias)", name)
        if match and match.group(2) in LAYER:
            layer, module, kind = match.groups()
            out[f"encoder.layer.{layer}.{LAYER[module]}.{kind}"] = value
        elif not name.endswith("version") and name != "embed_positions._float_tensor":
            raise ValueError(f"fairseq tensor {name!r} has no transformers counterpart")
    hidden = out["embeddings.word_embeddings.weight"].shape[1]
    out[TOKEN_TYPE] = torch.zeros(1, hidden, dtype=out["embeddings.word_embeddings.weight"].dtype)
    return out


def hf_to_fairseq(state: dict[str, torch.Tensor], prefix: str = PREFIXES[0]) -> dict[str, torch.Tensor]:
    """A `transformers.RobertaModel` state dict (a `roberta.` prefix is stripped) -> fairseq
    encoder tensors; add the LM head yourself if fairseq must load the result strictly."""
    state = {k.removeprefix("roberta."): v for k, v in state.items()}
    back_emb = {v: k for k, v in EMBEDDINGS.items()}
    back_layer = {v: k for k, v in LAYER.items()}
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if name in back_emb:
            out[prefix + back_emb[name]] = value
            continue
        match = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)", name)
        if match and match.group(2) in back_layer:
            layer, module, kind = match.groups()
            out[f"{prefix}layers.{layer}.{back_layer[module]}.{kind}"] = value
        elif name not in (TOKEN_TYPE, "embeddings.position_ids", "embeddings.token_type_ids") \
                and not name.startswith(("pooler.", "lm_head.")):
            raise ValueError(f"transformers tensor {name!r} has no fairseq counterpart")
    if TOKEN_TYPE in state:
        key = prefix + "embed_positions.weight"
        out[key] = out[key] + state[TOKEN_TYPE][0]  # (P, H) + (H,): type 0 for every token
    return out
