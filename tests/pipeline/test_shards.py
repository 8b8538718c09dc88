"""pipeline/shards.py: shard counts from the per-item cost of what runs on the device that runs it
(extract/catalog.py), and the longest chain of stores first."""

from __future__ import annotations

from pathlib import Path

import yaml

from extract.catalog import entry
from pipeline.shards import chain_costs, cost_device, shard_counts

ROOT = Path(__file__).resolve().parents[2]


def features(dataset: str, config: Path = ROOT / "config/config.yaml") -> dict[str, tuple[str, str]]:
    """{feature: (extractor, backend)} of a dataset of a config file."""
    section = yaml.safe_load(config.read_text())["datasets"][dataset]["features"]
    return {name: (f["extractor"], f.get("backend", "")) for name, f in section.items()}


def test_gpu_shards_follow_per_item_cost_and_gpu_count():
    imdb = features("imdb")
    one, eight = shard_counts(imdb, "cuda", 1), shard_counts(imdb, "cuda", 8)
    assert eight["objects"] > eight["boxes"] > eight["image"] and eight["objects"] >= 13 * eight["image"]
    assert all(eight[n] >= one[n] for n in imdb) and sum(eight.values()) > 2 * sum(one.values())
    cost = {n: entry(e).gpu_seconds for n, (e, _) in imdb.items()}
    for gpus, counts in ((1, one), (8, eight)):  # no shard costs over a quarter of a GPU's share
        assert all(cost[n] / counts[n] <= sum(cost.values()) / gpus / 4 + 1e-9 for n in imdb)


def test_cpu_shards_follow_cpu_costs():
    """On a CPU the paper's boxes (WSL on every box crop, 15 s per poster) is the costliest store,
    not Faster R-CNN (6 s) as on a GPU: it gets the 2 shards."""
    imdb = features("imdb")
    cpu = shard_counts(imdb, "cpu", 0)
    assert cpu["boxes"] == 2 and cpu["objects"] == 1 and set(cpu.values()) == {1, 2}
    cost = {n: entry(e).seconds("cpu", b) for n, (e, b) in imdb.items()}
    assert all(cpu[a] >= cpu[b] for a in imdb for b in imdb if cost[a] >= cost[b])
    # a cluster that assigns GPUs itself (no local slots, device cuda): GPU costs
    cluster = shard_counts(imdb, "cuda", 0)
    assert cluster["objects"] == 2 and cluster["boxes"] == 1


def test_stand_ins_cost_what_they_run():
    """The demo's stand-ins: MobileNetV2 (0.06 s per poster), not WSL (2 s), so EasyOCR stays the
    costliest store; and a MobileNetV2 image store costs more than a MiniLM text store."""
    assert shard_counts(features("demo"), "cpu", 0) == {"image": 1, "text": 1, "faces": 1, "ocr": 2, "ocr_words": 1}
    own = {"image": ("image", "mobilenet_v2"), "text": ("text", "minilm")}
    assert shard_counts(own, "cpu", 0) == {"image": 2, "text": 1}
    assert shard_counts(own, "cuda", 0) == {"image": 1, "text": 2}  # GPU: the paper backends' figures


def test_cluster_jobs_count_the_shards_the_submitting_process_made():
    """`device: auto` with `gpus: 0`: a login node without GPUs (cpu) and a GPU node (cuda) that
    parse the workflow must plan the same shards, or a merge job waits for shards never made."""
    own = {"image": ("image", "mobilenet_v2"), "text": ("text", "minilm")}
    login, node = (shard_counts(own, cost_device("auto", resolved, 0), 0) for resolved in ("cpu", "cuda"))
    assert login == node == {"image": 1, "text": 2}
    assert cost_device("auto", "cpu", None) == "cpu"  # one machine (gpus counted here): its own device
    assert cost_device("cpu", "cpu", 0) == "cpu" and cost_device("cuda", "cuda", 0) == "cuda"


def test_longest_chain_of_stores_goes_first():
    chains = chain_costs({"objects": ("objects", None), "boxes": ("boxes", "objects"), "image": ("image", None),
                          "ocr": ("ocr", None), "ocr_text": ("text", "ocr")})
    assert chains["objects"] == 1000 * (entry("objects").gpu_seconds + entry("boxes").gpu_seconds)
    assert sorted(chains, key=chains.get, reverse=True) == ["objects", "ocr", "boxes", "ocr_text", "image"]
