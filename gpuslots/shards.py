"""How many shards each feature store is extracted in (`shards: auto`): by its per-item cost.

Extraction costs differ by 14x per item (Faster R-CNN vs the image network), so a fixed shard
count leaves one GPU working on the slow store long after the others are idle. With `auto` a
feature gets shards in proportion to its cost: every shard costs at most 1/WAVES of one GPU's
share of the whole extraction (total cost / gpus), so GPUs finish within about a shard of each
other however the stores' costs differ. Without local GPUs the costliest store gets CPU_SHARDS
shards and the others shards in proportion to their cost (at least one): a cheap store is not split
into jobs that each pay a process start and a model load for seconds of work (the demo: 7 shard
jobs instead of 12). The count depends on the config only, so a dry run, the run and a cluster's
job processes agree.
"""

from __future__ import annotations

import math

# Milliseconds per item on one H200 (BENCHMARKS.md, the previous version's GPU figures; random
# weights of the paper's models). ocr is not measured on a GPU: EasyOCR's detector + recogniser,
# estimated at twice the faces pipeline. index only reads another store.
COST_MS = {"image": 5.0, "text": 12.0, "faces": 20.0, "objects": 72.0, "boxes": 25.0, "ocr": 40.0,
           "index": 0.1}
WAVES = 4
CPU_SHARDS = 2  # `auto` without GPUs: shards of the costliest store (parallel CPU jobs)


def cost_ms(extractor: str) -> float:
    """Per-item cost of an extractor; unknown ones (new backends) count as the image network."""
    return COST_MS.get(extractor, COST_MS["image"])


def shard_counts(extractors: dict[str, str], gpus: int, waves: int = WAVES) -> dict[str, int]:
    """{feature: shards} for {feature: extractor name} extracted on `gpus` devices (0: CPU)."""
    costs = {name: cost_ms(kind) for name, kind in extractors.items()}
    if gpus < 1:
        top = max(costs.values(), default=1.0)
        return {name: max(1, math.ceil(CPU_SHARDS * cost / top - 1e-9)) for name, cost in costs.items()}
    target = sum(costs.values()) / (gpus * waves)  # the most one shard may cost
    return {name: max(1, math.ceil(cost / target - 1e-9)) for name, cost in costs.items()}


def chain_costs(features: dict[str, tuple[str, str | None]]) -> dict[str, float]:
    """{feature: ms per item of it and of the longest chain of features that read it} for
    {feature: (extractor, the feature it reads or None)}: objects -> boxes is the longest
    path of MM-IMDb's extraction, so objects goes first (the rules' priority)."""
    readers: dict[str, list[str]] = {}
    for name, (_, source) in features.items():
        if source:
            readers.setdefault(source, []).append(name)

    def chain(name: str) -> float:
        return cost_ms(features[name][0]) + max((chain(r) for r in readers.get(name, [])), default=0.0)

    return {name: chain(name) for name in features}
