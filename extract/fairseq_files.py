"""Where the fairseq backend's files are (torch-free: the paper_strict check reads it at parse
time): fairseq's roberta.base release folder (model.pt, dict.txt) and GPT-2's BPE files."""

from __future__ import annotations

from pathlib import Path

from extract.weights import MissingWeights, weights_dir

RELEASE = "https://dl.fbaipublicfiles.com/fairseq/models/roberta.base.tar.gz"
GPT2_BPE = "https://dl.fbaipublicfiles.com/fairseq/gpt2_bpe/"  # encoder.json, vocab.bpe


def model_folder(model: str) -> Path:
    """`model` as a folder, or resources/weights/<model>; it must hold model.pt and dict.txt."""
    for folder in (Path(model), weights_dir() / model):
        if (folder / "model.pt").is_file() and (folder / "dict.txt").is_file():
            return folder
    raise MissingWeights(
        f"fairseq RoBERTa {model!r} not found: no model.pt + dict.txt in {model} or {weights_dir() / model}. "
        f"To fix: download {RELEASE} and unpack it to {weights_dir() / 'roberta.base'}.")


def bpe_files(folder: Path) -> tuple[Path, Path]:
    """GPT-2 BPE files: in the model folder, else resources/weights/gpt2_bpe/."""
    for where in (folder, weights_dir() / "gpt2_bpe"):
        encoder, vocab = where / "encoder.json", where / "vocab.bpe"
        if encoder.is_file() and vocab.is_file():
            return encoder, vocab
    raise MissingWeights(
        f"GPT-2 BPE files encoder.json and vocab.bpe not found in {folder} or {weights_dir() / 'gpt2_bpe'}. "
        f"To fix: download {GPT2_BPE}encoder.json and {GPT2_BPE}vocab.bpe into {folder}.")
