"""text: MiniLM semantics, the roberta-base path on a random tiny-vocabulary model, ocr_text via --input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from core.hashing import sha256
from extract.__main__ import main
from extract.base import Item
from extract.store import base_attrs, read_store, write_store
from extract.text import TextExtractor, TextOptions, minilm_dir
from tests.builders import StoreBuilder
from tests.tiny_roberta import hf_vocab, save_hf_roberta, save_hf_tokenizer, train_bpe

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("DMMS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def minilm() -> TextExtractor:
    return TextExtractor("minilm", CPU, TextOptions(dtype="float32"))


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("roberta")
    encoder, merges = train_bpe()
    save_hf_tokenizer(folder, encoder, merges)
    save_hf_roberta(folder, len(hf_vocab(encoder)), layers=2)
    return folder


def features(extractor: TextExtractor, texts: list[str]) -> list[np.ndarray]:
    """Each text's rows, through prepare and one batched forward, as the runner does."""
    outs = extractor.forward([extractor.prepare(Item(str(k), "", t)) for k, t in enumerate(texts)])
    return [out.rows["features"] for out in outs]


def test_minilm_puts_paraphrases_closer_than_unrelated_text(minilm):
    a, b, c = (f[0] for f in features(minilm, [
        "A man is playing the guitar on stage.",
        "Someone performs a song with a guitar in front of an audience.",
        "Interest rates rose sharply after the central bank's decision.",
    ]))
    assert a.shape == (384,)
    assert np.allclose([np.linalg.norm(a), np.linalg.norm(c)], 1, atol=1e-4)
    assert float(a @ b) > float(a @ c) + 0.2


def test_roberta_base_path_gives_first_token_features(roberta_dir):
    ex = TextExtractor("roberta-base", CPU, TextOptions(model=str(roberta_dir), dtype="float32"))
    assert ex.dim == 768 and ex.weights and ex.weights[0][0] == "model.safetensors"
    texts = ["Fear the night.", "A detective hunts a killer through the city at night."]
    got = features(ex, texts)
    assert [f.shape for f in got] == [(1, 768), (1, 768)]
    for text, feat in zip(texts, got):  # unbatched, unpadded reference: <s> of the last layer
        tok = ex.tokenizer(text, return_tensors="pt")
        assert tok["input_ids"][0, 0].item() == 0  # <s>
        with torch.inference_mode():
            want = ex.model(**tok).last_hidden_state[0, :1].numpy()
        np.testing.assert_allclose(feat, want, atol=1e-4)


def test_roberta_truncates_long_text_at_512_tokens(roberta_dir):
    ex = TextExtractor("roberta-base", CPU, TextOptions(model=str(roberta_dir), dtype="float32"))
    head = " ".join(["the night is dark"] * 300)  # ~1200 tokens, far past 512
    assert len(ex.tokenizer(head)["input_ids"]) > 1000
    long_a, long_b, empty, short = features(ex, [head + " aliens land", head + " buy one get one", "", "dog"])
    assert long_a.shape == (1, 768) and np.all(np.isfinite(long_a))
    np.testing.assert_array_equal(long_a, long_b)  # only the first 512 tokens count
    assert empty.shape == (0, 768) and short.shape == (1, 768)


def test_ocr_text_is_embedded_from_the_input_store(tmp_path, minilm):
    ids = ["1", "2", "3"]
    pd.DataFrame({"id": ids, "split": ["train"] * 3, "image": [""] * 3,
                  "text": ["plot one", "plot two", "plot three"], "labels": ["a"] * 3}
                 ).to_csv(tmp_path / "m.csv", index=False)
    builder = StoreBuilder()  # what `python -m extract ocr` writes
    for sample_id, words in zip(ids, [["FEAR", "THE NIGHT"], [], ["BUY NOW"]]):
        rows = {"words": np.array(words, dtype=object), "boxes": np.zeros((len(words), 4), np.float32),
                "scores": np.ones(len(words), np.float32)}
        builder.add(sample_id, rows, {"text": " ".join(words)})
    columns = {"words": ((), object), "boxes": ((4,), np.float32), "scores": ((), np.float32)}
    write_store(tmp_path / "ocr.h5", builder.build(base_attrs("ocr", "easyocr-en", 0, {}), columns))

    out = tmp_path / "ocr_text.h5"
    assert main(["text", "--manifest", str(tmp_path / "m.csv"), "--out", str(out), "--backend", "minilm",
                 "--input", str(tmp_path / "ocr.h5"), "--set", "dtype=float32", "--no-progress"]) == 0
    store = read_store(out)
    assert store.ids == ids and store.counts.tolist() == [1, 0, 1]  # no OCR text: no row
    want = np.concatenate(features(minilm, ["FEAR THE NIGHT", "BUY NOW"]))
    np.testing.assert_allclose(store.rows["features"], want, atol=1e-5)
    plot = features(minilm, ["plot one"])[0]
    assert not np.allclose(store.sample("1")["features"], plot, atol=1e-2)  # not the manifest text


def test_per_word_embeds_each_ocr_word_as_one_row(tmp_path, minilm):
    ids = ["1", "2", "3"]
    pd.DataFrame({"id": ids, "split": ["train"] * 3, "image": [""] * 3, "text": ["plot"] * 3,
                  "labels": ["a"] * 3}).to_csv(tmp_path / "m.csv", index=False)
    builder = StoreBuilder()  # EasyOCR boxes may hold several words: each word is a row
    for sample_id, words in zip(ids, [["SILENT RIVER", "GHOST"], [], ["BLUE"]]):
        rows = {"words": np.array(words, dtype=object), "boxes": np.zeros((len(words), 4), np.float32),
                "scores": np.ones(len(words), np.float32)}
        builder.add(sample_id, rows, {"text": " ".join(words)})
    columns = {"words": ((), object), "boxes": ((4,), np.float32), "scores": ((), np.float32)}
    write_store(tmp_path / "ocr.h5", builder.build(base_attrs("ocr", "easyocr-en", 0, {}), columns))

    out = tmp_path / "ocr_words.h5"
    assert main(["text", "--manifest", str(tmp_path / "m.csv"), "--out", str(out), "--backend", "minilm",
                 "--input", str(tmp_path / "ocr.h5"), "--set", "dtype=float32", "--set", "per_word=true",
                 "--no-progress"]) == 0
    store = read_store(out)
    assert store.counts.tolist() == [3, 0, 1] and store.attrs["per_word"]
    want = np.concatenate(features(minilm, ["SILENT", "RIVER", "GHOST", "BLUE"]))
    np.testing.assert_allclose(store.rows["features"], want, atol=1e-5)  # word by word, in order
    whole = features(minilm, ["SILENT RIVER GHOST"])[0]
    assert not np.allclose(store.sample("1")["features"].mean(0), whole[0], atol=1e-2)
    # each row carries its word: the box "SILENT RIVER" is two rows, matched to their words
    assert store.rows["words"].tolist() == ["SILENT", "RIVER", "GHOST", "BLUE"]
    assert store.sample("1")["words"].tolist() == ["SILENT", "RIVER", "GHOST"]
    assert store.attrs["row_unit"].startswith("word") and store.attrs["l2_normalized"]
    np.testing.assert_allclose(np.linalg.norm(store.rows["features"], axis=1), 1.0, atol=1e-5)
    assert main(["text", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "one.h5"), "--backend",
                 "minilm", "--input", str(tmp_path / "ocr.h5"), "--no-progress"]) == 0
    one = read_store(tmp_path / "one.h5")  # one row per text: no words column
    assert "words" not in one.rows and one.attrs["row_unit"] == "text"


def test_roberta_runs_in_fp32_and_says_which_model_ran(roberta_dir):
    ex = TextExtractor("roberta-base", CPU, TextOptions(model=str(roberta_dir), dtype="float32"))
    attrs = ex.extra_attrs()
    assert TextOptions().precision == "fp32" and ex.precision == "fp32"  # not `auto`: fp32 on GPUs too
    assert attrs["model"] == f"{roberta_dir.name} (transformers, model.safetensors)"  # a name, not a path
    # a folder not named roberta-base is not known to be the paper's model: said so
    assert "instead of the paper's roberta-base" in attrs["substitute"]
    with pytest.raises(ValueError, match="precision"):
        TextExtractor("roberta-base", CPU, TextOptions(model=str(roberta_dir), precision="fp8"))


def test_roberta_base_folder_is_the_paper_model_only_with_the_published_weights(roberta_dir, tmp_path, monkeypatch):
    """resources/weights/roberta-base holding random weights (in the real layout: config.json,
    tokenizer files, model.safetensors) is flagged; the same folder with the published file is not."""
    import dataclasses
    import shutil

    from extract import substitutes

    shutil.copytree(roberta_dir, tmp_path / "roberta-base")
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path))  # resources/weights/roberta-base
    ex = TextExtractor("roberta-base", CPU, TextOptions(dtype="float32"))
    attrs = ex.extra_attrs()
    assert attrs["model"] == "roberta-base (transformers, model.safetensors)"
    assert attrs["substitute"].startswith("weights model.safetensors have sha256 ")
    assert "not Hugging Face's roberta-base's 5bde1d28afb363d0" in attrs["substitute"]
    digest = sha256(tmp_path / "roberta-base" / "model.safetensors")
    assert ex.weights == [("model.safetensors", digest)]
    published = dataclasses.replace(substitutes.ROBERTA_BASE_FILES["model.safetensors"], sha256=digest)
    monkeypatch.setitem(substitutes.ROBERTA_BASE_FILES, "model.safetensors", published)  # as if it were
    assert TextExtractor("roberta-base", CPU, TextOptions(dtype="float32")).extra_attrs()["substitute"] == ""


def test_minilm_is_recorded_as_a_substitute(minilm):
    attrs = minilm.extra_attrs()
    assert "minilm" in attrs["substitute"] and "RoBERTa" in attrs["substitute"]
    assert attrs["model"] == "all-MiniLM-L6-v2 (transformers, model.safetensors)"  # not the package's path
    assert minilm.weights == [("model.safetensors", sha256(minilm_dir() / "model.safetensors"))]


def test_precision_option_autocasts(roberta_dir):
    """bf16 autocast (allowed for speed) moves the features a little; fp32 is the default."""
    texts = ["Fear the night.", "A detective hunts a killer through the city at night."]
    runs = {}
    for precision in ("fp32", "bf16"):
        ex = TextExtractor("roberta-base", CPU, TextOptions(model=str(roberta_dir), dtype="float32",
                                                            precision=precision))
        with torch.inference_mode(), ex.autocast():  # as the runner calls forward
            runs[precision] = np.concatenate(features(ex, texts))
    plain = np.concatenate(features(ex, texts))  # no autocast at all
    fp32, bf16 = runs["fp32"], runs["bf16"]
    np.testing.assert_allclose(fp32, plain, atol=1e-5)  # fp32 autocast is a no-op
    cosine = (fp32 * bf16).sum(1) / (np.linalg.norm(fp32, axis=1) * np.linalg.norm(bf16, axis=1))
    assert np.all(cosine > 0.98) and not np.allclose(fp32, bf16, atol=1e-4)
