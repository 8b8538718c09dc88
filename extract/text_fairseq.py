"""The `fairseq` backend of `text`: RoBERTa through fairseq's hub interface, as the paper ran it.

Optional: fairseq lives in its own environment (`pip install -r requirements-fairseq.txt`, or
`envs/fairseq.yaml`). The model folder is fairseq's roberta.base release (model.pt, dict.txt)
plus GPT-2's BPE files (encoder.json, vocab.bpe), all local: nothing is downloaded at run time.
Features: `roberta.encode(text)` (<s> BPE </s>, cut to `max_tokens` keeping </s>), the last
layer of `extract_features`, first token; (B, 768) for roberta.base.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np
import torch

from core.hashing import sha256
from extract.fairseq_files import bpe_files, model_folder

def import_roberta():
    try:
        from fairseq.models.roberta import RobertaModel
    except ImportError as err:
        raise ImportError(
            f"the text extractor's fairseq backend needs fairseq, which is not importable here ({err}). "
            "Install it in a separate environment: python -m venv .venv-fairseq && "
            ".venv-fairseq/bin/pip install -r requirements-fairseq.txt (or conda env create -f "
            "envs/fairseq.yaml), or use --backend roberta-base (transformers).") from None
    return RobertaModel


@contextlib.contextmanager
def full_unpickling():
    """fairseq checkpoints are full pickles (argparse / omegaconf objects beside the tensors), which
    torch >= 2.6 refuses by default; fairseq calls torch.load without `weights_only`. Allow it for
    this load only: use checkpoints you trust (the official release, or your own)."""
    key = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


class FairseqRoberta:
    """`encode(texts) -> (B, dim)` first-token features of fairseq RoBERTa's last layer."""

    def __init__(self, model: str, device: torch.device, max_tokens: int = 512) -> None:
        RobertaModel = import_roberta()
        folder = model_folder(model)
        self.folder = folder
        encoder_json, vocab_bpe = bpe_files(folder)
        logging.getLogger("fairseq").setLevel(max(logging.WARNING, logging.getLogger("fairseq").level))
        with full_unpickling():
            self.hub = RobertaModel.from_pretrained(
                str(folder.resolve()), checkpoint_file="model.pt", data_name_or_path=str(folder.resolve()),
                bpe="gpt2", gpt2_encoder_json=str(encoder_json.resolve()), gpt2_vocab_bpe=str(vocab_bpe.resolve()))
        self.hub.eval().to(device)
        self.device = device
        self.max_tokens = min(max_tokens, int(self.hub.model.max_positions()))
        self.pad = self.hub.task.source_dictionary.pad()
        self.dim = int(self.hub.model.encoder.sentence_encoder.embed_tokens.embedding_dim)
        self.weights = [(p.name, sha256(p)) for p in (folder / "model.pt", folder / "dict.txt",
                                                      encoder_json, vocab_bpe)]

    def tokens(self, text: str) -> torch.Tensor:
        """<s> BPE </s> as fairseq indices, at most `max_tokens` (the end kept as </s>). (T,)"""
        ids = self.hub.encode(text)
        if len(ids) > self.max_tokens:
            ids = torch.cat([ids[:self.max_tokens - 1], ids[-1:]])
        return ids

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        from fairseq.data.data_utils import collate_tokens

        batch = collate_tokens([self.tokens(t) for t in texts], pad_idx=self.pad)  # (B, T), right-padded
        hidden = self.hub.extract_features(batch.to(self.device))  # (B, T, dim), last layer
        return hidden[:, 0].float().cpu().numpy()
