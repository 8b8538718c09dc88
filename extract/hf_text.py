"""Text encoders named in the config, beyond the paper: any transformers encoder, or an open_clip text tower.

    backend hf         option `model`: a Hugging Face name or a local folder (config.json, tokenizer,
                       weights; also looked for under resources/weights/<name>); `pool`: cls (the
                       first token's last hidden state, as the paper takes RoBERTa's <s>) or mean
                       (attention-masked mean); "" takes the folder's sentence-transformers pooling
                       (1_Pooling/config.json) when it has one, else cls. No normalisation.
    backend open_clip  option `model` (ViT-B-32) and `pretrained` (its tag, as for the image
                       backend open_clip): `encode_text`, the CLIP text embedding (end-of-text
                       token, projected into the image tower's space, not normalised)

Max tokens (option `max_tokens` 0): the model's own: a sentence-transformers folder's
max_seq_length, else the tokenizer's model_max_length, else the config's max_position_embeddings;
open_clip: the model's context length (77 for CLIP). `pretrained: false` builds the architecture
with random weights (from the model's config), which `note` says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.offline import offline
from extract.hub import hf_cached, hub_weight_info, model_label, parse_pretrained
from extract.named_backbones import RANDOM_NOTE, load_open_clip
from extract.weights import MissingWeights, hub_model_dir, weight_info, weights_dir

POOLS = ("cls", "mean")
HUGE = 100_000  # tokenizers without a limit report model_max_length as 1e30


def _sentence_transformers(folder: str, file: str) -> dict[str, Any]:
    """A sentence-transformers side file of a folder or a cached hub model ({} when absent)."""
    path = Path(folder) / file if Path(folder).is_dir() else hf_cached(folder, file)
    if path is None or not path.is_file():
        return {}
    return json.loads(path.read_text())


def default_pool(folder: str) -> str:
    modes = _sentence_transformers(folder, "1_Pooling/config.json")
    return "mean" if modes.get("pooling_mode_mean_tokens") else "cls"


def model_max_tokens(folder: str, tokenizer: Any, config: Any) -> int:
    limit = _sentence_transformers(folder, "sentence_bert_config.json").get("max_seq_length")
    if not limit and 0 < int(getattr(tokenizer, "model_max_length", HUGE) or HUGE) < HUGE:
        limit = tokenizer.model_max_length
    return int(limit or getattr(config, "max_position_embeddings", 512))


class HFEncoder:
    """Any transformers encoder (the encoder half of an encoder-decoder) with cls or mean pooling."""

    def __init__(self, model: str, pool: str, max_tokens: int, pretrained: str, device: torch.device) -> None:
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if not model:
            raise ValueError("text backend hf needs option model: a Hugging Face model name "
                             "(sentence-transformers/all-MiniLM-L6-v2) or a local model folder")
        use = parse_pretrained(pretrained)
        if not isinstance(use, bool):
            raise ValueError(f"text backend hf: pretrained={pretrained!r}: use true or false")
        folder = hub_model_dir(model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=offline())
            if use:
                net = AutoModel.from_pretrained(folder, local_files_only=offline())
            else:
                net = AutoModel.from_config(AutoConfig.from_pretrained(folder, local_files_only=offline()))
        except OSError as err:
            raise MissingWeights(
                f"text model {model!r} not found ({err}). To fix: put the Hugging Face model folder (config.json, "
                f"tokenizer files, model.safetensors) at {weights_dir() / model} or give its path as option model, "
                "or let transformers download it into its cache (network, DMMS_OFFLINE unset); or set "
                "pretrained: false for random weights (tests, dry runs).") from None
        if getattr(net.config, "is_encoder_decoder", False):
            net = net.get_encoder()
        self.pool = pool or default_pool(folder)
        if self.pool not in POOLS:
            raise ValueError(f"text backend hf: pool={pool!r}: use one of {', '.join(POOLS)}")
        self.max_tokens = max_tokens or model_max_tokens(folder, self.tokenizer, net.config)
        self.model = net.eval().to(device)
        self.device = device
        self.dim = int(net.config.hidden_size if hasattr(net.config, "hidden_size") else net.config.d_model)
        if not use:
            self.weights: list[tuple[str, str]] = []
        else:
            self.weights = weight_info(folder) if Path(folder).is_dir() else hub_weight_info(folder)
        self.model_name = f"{model_label(model)} (transformers{'' if use else ', random weights'})"
        self.note = "" if use else RANDOM_NOTE
        self.pooling = {"cls": "first_token", "mean": "mean"}[self.pool]

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """B texts -> (B, dim) float32."""
        return pooled_hidden(self.model, self.tokenizer, texts, self.max_tokens, self.device, self.pool).cpu().numpy()


def pooled_hidden(model: torch.nn.Module, tokenizer: Any, texts: list[str], max_tokens: int,
                  device: torch.device, pool: str) -> torch.Tensor:
    """B texts -> (B, H) float32 from a transformers encoder's last hidden state: the first token
    (`cls`) or the attention-masked mean (`mean`). The one pooling of every transformers backend
    (hf here; roberta-base and minilm in extract/text.py)."""
    tok = tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt").to(device)
    hidden = model(**tok).last_hidden_state.float()  # (B, T, H)
    if pool == "cls":
        return hidden[:, 0]
    mask = tok["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


class ClipTextEncoder:
    """An open_clip model's text tower: `encode_text`, in the space of its image tower."""

    def __init__(self, model: str, pretrained: str, max_tokens: int, device: torch.device) -> None:
        import open_clip

        net, weights, label, note = load_open_clip(model, parse_pretrained(pretrained))
        context = int(open_clip.get_model_tokenize_cfg(net).get("context_length", 77))
        if max_tokens and not 0 < max_tokens <= context:
            raise ValueError(f"text backend open_clip: max_tokens={max_tokens}: {model} reads at most {context} "
                             "tokens; set max_tokens to 0 (the model's) or fewer")
        self.max_tokens = max_tokens or context
        self.tokenizer = open_clip.get_tokenizer(model, context_length=self.max_tokens)
        self.model = net.eval().to(device)
        self.device = device
        self.dim = int(open_clip.get_model_config(model)["embed_dim"])
        self.weights = [weights] if weights[1] else []
        self.model_name = f"{label}, text tower ({weights[0] or 'random weights'})"
        self.note = note
        self.pooling = "end_of_text_projected"

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """B texts -> (B, dim) float32."""
        tokens = self.tokenizer(texts).to(self.device)  # (B, max_tokens) token ids, truncated
        return self.model.encode_text(tokens).float().cpu().numpy()
