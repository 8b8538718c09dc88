"""`python -m model predict`: a trained run applied to new samples, and refusals of wrong stores."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from extract.store import read_store, write_store
from model import runfiles
from model.__main__ import main
from model.options import FeatureSpec, parse_options
from model.runfiles import read_metrics
from model.train import train
from tests.builders import StoreBuilder, make_toy

torch.set_num_threads(1)
FAST = ["epochs=25", "batch_size=32", "dim=16", "hidden=16", "warmup_epochs=2", "lr=0.01"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    manifest, stores = make_toy(root / "train")
    specs = [FeatureSpec(n, p) for n, p in stores.items()]
    run = root / "run"
    train(manifest, specs, "max", 0, run, options=parse_options(FAST), log=None)
    # a second, unlabeled set from the same generator with another seed: no labels, no splits
    new_manifest, new_stores = make_toy(root / "new", n=90, seed=7)
    frame = pd.read_csv(new_manifest, dtype=str, keep_default_na=False)
    truth = frame["labels"].copy()
    frame["labels"], frame["split"] = "", ""
    frame.to_csv(new_manifest, index=False)
    return run, new_manifest, new_stores, truth


def test_predict_writes_csv_and_h5_for_every_id(trained, tmp_path) -> None:
    run, manifest, stores, truth = trained
    out = tmp_path / "pred"
    args = ["predict", "--run", str(run), "--manifest", str(manifest), "--out", str(out)]
    for name, path in stores.items():
        args += ["--feature", f"{name}={path}"]
    assert main(args) == 0
    frame = pd.read_csv(out.with_suffix(".csv"), dtype={"id": str}, keep_default_na=False)
    ids = pd.read_csv(manifest, dtype=str)["id"].tolist()
    assert frame["id"].tolist() == ids
    classes = [c[2:] for c in frame.columns if c.startswith("p_")]  # the run's class order
    assert sorted(classes) == ["c0", "c1"]
    probs = frame[[f"p_{c}" for c in classes]].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    # predicted labels follow the run's threshold (chosen on its dev split, recorded in metrics.json
    # and model.pt), and the model generalises to the new set
    threshold = read_metrics(run)["threshold"]
    assert read_metrics(run)["config"]["threshold"] == "dev" and 0 < threshold < 1
    expected = ["|".join(c for c, p in zip(classes, row) if p >= threshold) for row in probs]
    assert frame["predicted"].tolist() == expected
    truth_flags = np.stack([truth.str.contains(c).to_numpy() for c in classes], axis=1)
    assert ((probs >= threshold) == truth_flags).mean() > 0.8
    with h5py.File(out.with_suffix(".h5"), "r") as h5:
        assert h5.attrs["threshold"] == threshold
        assert json.loads(h5.attrs["modalities"]) == ["signal", "noise", "tags"]
        importance, winners = h5["importance"][()], h5["winners"][()]
        assert importance.shape == (len(ids), 3) and winners.shape == (len(ids), 3)
        assert np.allclose(importance.sum(1), 1, atol=1e-5)
        assert (winners.sum(1) == 16).all()  # every one of D = 16 dimensions has a winner
        assert (h5["elements"][()][:, 2] <= 3).all()


def test_predict_equals_the_runs_own_test_predictions(trained, tmp_path) -> None:
    """Scoring the training manifest's test samples again gives the run's stored probabilities."""
    run, *_ = trained
    metrics = runfiles.read_metrics(run)
    ids, probs, _, classes, _ = runfiles.read_predictions(run)
    frame = pd.read_csv(metrics["manifest"], dtype=str, keep_default_na=False)
    test = frame[frame["id"].isin(ids)]
    manifest = tmp_path / "test.csv"
    test.to_csv(manifest, index=False)
    args = ["predict", "--run", str(run), "--manifest", str(manifest), "--out", str(tmp_path / "p")]
    for name, path in metrics["feature_stores"].items():
        args += ["--feature", f"{name}={path}"]
    assert main(args) == 0
    again = pd.read_csv(tmp_path / "p.csv", dtype={"id": str}).set_index("id").loc[ids]
    assert np.allclose(again[[f"p_{c}" for c in classes]].to_numpy(), probs, atol=1e-5)


def test_predict_refuses_a_store_from_another_extractor(trained, tmp_path, capsys) -> None:
    run, manifest, stores, _ = trained
    store = read_store(stores["noise"])
    store.attrs["backend"] = "another-backbone"
    other = tmp_path / "noise_other.h5"
    write_store(other, store)
    args = ["predict", "--run", str(run), "--manifest", str(manifest), "--out", str(tmp_path / "p"),
            "--feature", f"signal={stores['signal']}", "--feature", f"noise={other}",
            "--feature", f"tags={stores['tags']}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "noise: backend 'another-backbone'" in err and "extractor settings" in err
    assert not (tmp_path / "p.csv").exists()


def test_predict_refuses_missing_feature_and_wrong_dim(trained, tmp_path, capsys) -> None:
    run, manifest, stores, _ = trained
    base = ["predict", "--run", str(run), "--manifest", str(manifest), "--out", str(tmp_path / "p")]
    assert main(base + ["--feature", f"signal={stores['signal']}", "--feature", f"noise={stores['noise']}"]) == 2
    assert "missing --feature for ['tags']" in capsys.readouterr().err
    # the noise store in the place of the signal feature: same extractor attrs, other dim
    assert main(base + ["--feature", f"signal={stores['noise']}", "--feature", f"noise={stores['noise']}",
                        "--feature", f"tags={stores['tags']}"]) == 2
    assert "dim" in capsys.readouterr().err


def _predict_args(run, manifest, out, stores) -> list[str]:
    args = ["predict", "--run", str(run), "--manifest", str(manifest), "--out", str(out)]
    return args + [a for name, path in stores.items() for a in ("--feature", f"{name}={path}")]


def test_predict_refuses_stores_that_lack_the_manifests_ids(trained, tmp_path, capsys) -> None:
    """Stores extracted from another manifest used to give every sample the same probabilities."""
    run, manifest, stores, _ = trained
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    renamed = frame.assign(id="new-" + frame["id"])
    other = tmp_path / "other.csv"
    renamed.to_csv(other, index=False)
    out = tmp_path / "p"
    assert main(_predict_args(run, other, out, stores)) == 2
    err = capsys.readouterr().err
    assert f"signal: 90 of the manifest's 90 ids are not in {stores['signal']}" in err
    assert "'new-00000', 'new-00001', 'new-00002', ..." in err and "tags: 90 of" in err
    assert not out.with_suffix(".csv").exists()
    # two new rows beside the known ones: still refused, and only those two are named
    pd.concat([frame, renamed.head(2)]).to_csv(other, index=False)
    assert main(_predict_args(run, other, out, stores)) == 2
    assert "signal: 2 of the manifest's 92 ids are not in" in capsys.readouterr().err


def test_predict_refuses_a_store_of_another_feature(tmp_path, capsys) -> None:
    """An index store of hashed OCR words given as an index feature read from a manifest column:
    same extractor, backend and dim, but another feature and input (recorded by the CLI)."""
    from extract.__main__ import main as extract_main
    from extract.store import base_attrs

    manifest, toy = make_toy(tmp_path / "toy", n=120, seed=3)
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(0)
    frame["tagcol"] = ["|".join(map(str, rng.integers(0, 8, size=2))) for _ in range(len(frame))]
    frame.to_csv(manifest, index=False)
    tags = tmp_path / "tags.h5"
    assert extract_main(["index", "--manifest", str(manifest), "--out", str(tags), "--feature", "tags",
                         "--set", "column=tagcol", "--set", "vocab_size=8", "--no-progress"]) == 0
    ocr = StoreBuilder()
    for sid in frame["id"]:
        ocr.add(sid, {"words": np.array(["NIGHT", "fear"], dtype=object)}, {"text": "NIGHT fear"})
    ocr_path = write_store(tmp_path / "ocr.h5", ocr.build(base_attrs("ocr", "easyocr-en", 0, {}),
                                                          {"words": ((), object)}))
    words = tmp_path / "ocr_words.h5"
    assert extract_main(["index", "--manifest", str(manifest), "--out", str(words), "--feature", "ocr_words",
                         "--input", str(ocr_path), "--set", "source=words", "--set", "vocab_size=8",
                         "--no-progress"]) == 0
    assert (read_store(tags, columns=[]).attrs["input"], read_store(words, columns=[]).attrs["input"]) == \
        ("manifest", "ocr")
    run = tmp_path / "run"
    train(manifest, [FeatureSpec("signal", toy["signal"]), FeatureSpec("tags", tags)], "max", 0, run,
          options=parse_options(FAST), log=None)
    assert main(_predict_args(run, manifest, tmp_path / "ok", {"signal": toy["signal"], "tags": tags})) == 0
    out = tmp_path / "p"
    assert main(_predict_args(run, manifest, out, {"signal": toy["signal"], "tags": words})) == 2
    err = capsys.readouterr().err
    assert f"tags: feature 'ocr_words' in {words}, but the run was trained on feature 'tags'" in err
    assert "tags: input 'ocr'" in err and not out.with_suffix(".csv").exists()


def test_predict_marks_samples_whose_extraction_failed(trained, tmp_path, capsys) -> None:
    """A sample whose image could not be read is scored without it, as a missing modality, and
    the predictions say so (it used to be indistinguishable from any other row)."""

    run, manifest, stores, _ = trained
    store = read_store(stores["signal"])
    builder = StoreBuilder()
    for k, sid in enumerate(store.ids):
        if k in (3, 7):
            builder.fail(sid, f"image file {sid}.jpg cannot be decoded")
        else:
            builder.add(sid, {"features": store.rows["features"][store.offsets[k]:store.offsets[k + 1]]})
    broken = write_store(tmp_path / "signal.h5", builder.build(store.attrs, {"features": ((8,), np.float16)}))
    out = tmp_path / "p"
    assert main(_predict_args(run, manifest, out, {**stores, "signal": broken})) == 0
    err = capsys.readouterr().err
    assert "feature signal: extraction failed for 2 of 90 samples" in err and "cannot be decoded" in err
    frame = pd.read_csv(out.with_suffix(".csv"), dtype=str, keep_default_na=False)
    assert frame.loc[frame["failed"] != "", "id"].tolist() == [store.ids[3], store.ids[7]]
    assert set(frame["failed"]) == {"", "signal"}


def test_predictions_of_107_classes_raise_no_pandas_warning(tmp_path) -> None:
    """One frame built at once: a column inserted per class fragmented it (pandas
    PerformanceWarning from 100 columns on; 107 classes gave several per run)."""
    import warnings
    from types import SimpleNamespace

    from model.predict import write_pred_files

    classes = [f"class{k:03d}" for k in range(107)]
    run = SimpleNamespace(classes=classes, names=["image", "text"], pool="max", task="multilabel",
                          run_dir=tmp_path / "run", options=SimpleNamespace(threshold=0.5, dim=8))
    probs = np.random.default_rng(0).random((5, len(classes))).astype(np.float32)
    ids = [f"s{k}" for k in range(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        csv, _ = write_pred_files(tmp_path / "pred", run, ids, probs, np.full((5, 2), 0.5), np.ones((5, 2)))
    frame = pd.read_csv(csv, dtype={"id": str}, keep_default_na=False)
    assert list(frame.columns) == ["id", "predicted", "failed", *(f"p_{c}" for c in classes)]
    assert np.allclose(frame[[f"p_{c}" for c in classes]].to_numpy(), probs, atol=1e-6)
    assert frame["predicted"].iloc[0] == "|".join(c for c, p in zip(classes, probs[0]) if p >= 0.5)
