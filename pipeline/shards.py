"""How many shards each feature store is extracted in (`shards: auto`), and which stores go first,
from the per-item costs of extract/catalog.py: shard counts from the cost of the configured
backend on the run's device, the order from GPU costs (`chain_costs`).

Extraction costs differ by 14x per item on a GPU (Faster R-CNN vs the image network), so a fixed
shard count leaves one GPU working on the slow store long after the others are idle. With `auto` a
feature gets shards in proportion to its cost: every shard costs at most 1/WAVES of one GPU's
share of the whole extraction (total cost / gpus), so GPUs finish within about a shard of each
other however the stores' costs differ. Without local GPU slots (a CPU, or a cluster that assigns
the GPUs) the costliest store gets TOP_SHARDS shards and the others shards in proportion to their
cost (at least one): a cheap store is not split into jobs that each pay a process start and a
model load for seconds of work (the demo: 6 shard jobs for its 5 stores, OCR's 2 among them). The
count depends on the config only, so a dry run, the run and a cluster's job processes agree: with
`device: auto` and `gpus: 0` (jobs run on machines the submitting one cannot see) the costs are
GPU costs wherever the workflow is parsed (`cost_device`), never this machine's resolved device.
"""

from __future__ import annotations

import math
from typing import Mapping

from extract.catalog import entry

WAVES = 4
TOP_SHARDS = 2  # `auto` without local GPU slots: shards of the costliest store (parallel jobs)


def cost_device(setting: str, resolved: str, gpus_setting: int | None) -> str:
    """The device whose per-item costs size the shards: the configured one; under `device: auto`
    the one resolved here, except with `gpus: 0`, where the jobs may run on other machines (a GPU
    node resolves cuda, a login node without GPUs cpu) and their merge jobs must expect the shards
    the submitting process made: then GPU costs, as a cluster that assigns GPUs runs them."""
    if setting == "auto" and gpus_setting == 0:
        return "cuda"
    return resolved


def shard_counts(features: Mapping[str, tuple[str, str]], device: str, gpus: int,
                 waves: int = WAVES) -> dict[str, int]:
    """{feature: shards} for {feature: (extractor, backend)} extracted on `device` (cpu or cuda)
    with `gpus` local GPU slots (0: none)."""
    costs = {name: entry(extractor).seconds(device, backend) for name, (extractor, backend) in features.items()}
    if gpus < 1:
        top = max(costs.values(), default=1.0)
        return {name: max(1, math.ceil(TOP_SHARDS * cost / top - 1e-9)) for name, cost in costs.items()}
    target = sum(costs.values()) / (gpus * waves)  # the most one shard may cost
    return {name: max(1, math.ceil(cost / target - 1e-9)) for name, cost in costs.items()}


def chain_costs(features: Mapping[str, tuple[str, str | None]]) -> dict[str, float]:
    """{feature: GPU ms per item of it and of the longest chain of features that read it} for
    {feature: (extractor, the feature it reads or None)}: objects -> boxes is the longest
    path of MM-IMDb's extraction, so objects goes first (the rules' priority)."""
    readers: dict[str, list[str]] = {}
    for name, (_, source) in features.items():
        if source:
            readers.setdefault(source, []).append(name)

    def chain(name: str) -> float:
        own = 1000 * entry(features[name][0]).gpu_seconds
        return own + max((chain(r) for r in readers.get(name, [])), default=0.0)

    return {name: chain(name) for name in features}
