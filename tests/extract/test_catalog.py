"""extract/catalog.py: one entry per extractor, every one true of the class it names, the schema's
extractor names the catalogue's, and an extractor it lacks refused with one message everywhere."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from extract import registry
from extract.catalog import CATALOG, ROBERTA_BASE_FILES, entry

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = "unknown extractor 'audio': extract/catalog.py has no entry for it"


def test_each_entry_is_true_of_the_class_its_module_defines():
    for name, spec in CATALOG.items():
        cls = registry.get(name)
        assert spec.name == cls.name == name and cls.__module__ == spec.module, name
        assert spec.default_backend == cls.backends[0], name  # the default is the class's first backend
        assert set(spec.paper_backends) <= set(cls.backends), name
        assert set(spec.cpu_seconds_of) <= set(cls.backends), name
        fields = {f.name for f in dataclasses.fields(cls.options_class)}
        assert set(spec.weight_options) <= fields, (name, set(spec.weight_options) - fields)
        assert 0 < spec.gpu_seconds and 0 < spec.cpu_seconds and spec.peak_mb >= 1000, name
        assert all(0 < s for s in spec.cpu_seconds_of.values()), name


def test_the_schema_lists_the_catalogued_extractors():
    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())
    assert schema["$defs"]["feature"]["properties"]["extractor"]["enum"] == list(CATALOG)


def test_weight_files_are_the_ones_the_extractors_load():
    """Each paper weight file is written once: the loaders use the entries' own objects."""
    from extract import backbones, detectron, faces, ocr, text

    assert backbones.WEIGHTS["resnext101_32x16d_wsl"] is entry("image").weights[0] is entry("boxes").weights[0]
    assert detectron.WEIGHTS is entry("objects").weights[0]
    assert faces.SENET50_256 is entry("faces").weights[0]
    assert text.ROBERTA_BASE_FILES is ROBERTA_BASE_FILES and entry("text").weights == tuple(ROBERTA_BASE_FILES.values())
    assert (ocr.DETECTOR, ocr.RECOGNIZER) == tuple(f.file for f in entry("ocr").weights)
    assert [n for n, e in CATALOG.items() if e.weightless] == ["index"]  # no fetch_weights job


def test_an_uncatalogued_extractor_is_refused_with_one_message():
    from extract.substitutes import strict_problems, substitution
    from pipeline.plan import Plan
    from pipeline.shards import chain_costs, shard_counts

    with pytest.raises(ValueError, match=UNKNOWN) as refused:
        entry("audio")
    assert "\n" not in str(refused.value)
    for call in (lambda: registry.get("audio"), lambda: substitution("audio"),
                 lambda: strict_problems({"a": {"extractor": "audio"}}),
                 lambda: shard_counts({"a": ("audio", ""), "b": ("image", "")}, "cuda", 1),  # not the image's cost
                 lambda: shard_counts({"a": ("audio", "")}, "cpu", 0),
                 lambda: chain_costs({"a": ("audio", None)}),
                 lambda: Plan.weights_key({"extractor": "audio", "backend": "", "options": {}})):
        with pytest.raises(ValueError, match=UNKNOWN):
            call()


def test_a_module_that_registers_nothing_is_named(monkeypatch):
    monkeypatch.setitem(CATALOG, "audio", dataclasses.replace(CATALOG["index"], name="audio", module="extract.crops"))
    with pytest.raises(ValueError, match="names extract.crops for extractor 'audio', but importing it registered no"):
        registry.get("audio")


def test_costs_by_device_and_backend():
    image = entry("image")
    assert image.seconds("cuda") == image.seconds("cuda", "mobilenet_v2") == 0.005
    assert image.seconds("cpu") == image.seconds("cpu", "resnext101_32x16d_wsl") == 2.0
    assert image.seconds("cpu", "mobilenet_v2") == 0.06  # what runs: the stand-in
    assert image.seconds("cpu", "timm") == 2.0  # not measured: counted as the paper's model


def test_the_catalogue_loads_without_torch():
    code = ("import sys; import extract.catalog, extract.registry, pipeline.shards; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr + done.stdout


def test_gallery_draws_the_stores_whose_entries_say_so():
    from pipeline.plan import Plan

    features = {n: {"extractor": n, "backend": "", "input": "", "options": {}} for n in CATALOG}
    config = {"datasets": {"d": {"features": features, "experiments": {"combinations": {}, "seeds": [0], "pools": ["max"]},
                                 "folds": 0}}, "targets": []}
    stores = Plan(config, "test").gallery_inputs(SimpleNamespace(dataset="d"))["stores"]
    assert [Path(s).stem for s in stores] == [n for n, e in CATALOG.items() if e.draws_boxes] == ["faces", "objects", "ocr"]
