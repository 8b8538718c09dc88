"""The runner: its memory stays bounded by a few batches, whatever the number of samples."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import numpy as np
import torch

from extract.base import BadInput, Extractor, Item, Options, Output
from extract.run import default_workers, extract
from extract.store import read_store

DIM = 4096


@dataclass
class WideOptions(Options):
    batch_size: int = 32


class Wide(Extractor):
    """One (1, 4096) float32 row per sample, computed from the id; ids ending in 7 are unreadable."""

    name = "wide"
    backends = ("seeded",)
    options_class = WideOptions

    @property
    def dim(self) -> int:
        return DIM

    def row_columns(self):
        return {"features": ((DIM,), np.float32)}

    def prepare(self, item: Item) -> int:
        if item.id.endswith("7"):
            raise BadInput(f"{item.id} is unreadable")
        return int(item.id)

    def forward(self, batch: list[int]) -> list[Output]:
        seeds = torch.tensor(batch, dtype=torch.float32)[:, None]  # (B, 1)
        feats = torch.sin(seeds * torch.arange(1, DIM + 1) / DIM).numpy()  # (B, DIM)
        return [Output({"features": feats[i:i + 1]}, {"tag": str(s % 3)}) for i, s in enumerate(batch)]


def test_memory_is_bounded_by_batches_not_samples(tmp_path):
    n = 3000  # 3000 x 4096 float32 = 49 MB of features
    items = [Item(f"{i:06d}") for i in range(n)]
    ext = Wide("seeded", torch.device("cpu"), WideOptions())
    tracemalloc.start()
    try:
        extract(ext, items, tmp_path / "wide.h5", progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = n * DIM * 4
    assert peak < 0.3 * size, f"extraction peaked at {peak / 2**20:.1f} MB for a {size / 2**20:.0f} MB store"
    store = read_store(tmp_path / "wide.h5")
    assert store.ids == [it.id for it in items]
    assert len(store.failed) == 300 and store.failed["000007"] == "000007 is unreadable"
    ok = [k for k, it in enumerate(items) if not it.id.endswith("7")]
    assert store.rows["features"].shape == (len(ok), DIM) and store.counts[7] == 0
    expect = np.sin(np.float32(1234) * np.arange(1, DIM + 1, dtype=np.float32) / DIM)
    np.testing.assert_allclose(store.sample("001234")["features"][0], expect, rtol=1e-5, atol=1e-6)
    assert store.samples["tag"][1234] == str(1234 % 3) and store.samples["tag"][7] == ""
    assert store.attrs["batch_size"] == 32 and store.attrs["workers"] == default_workers(torch.device("cpu"))


def test_workers_per_device():
    assert 1 <= default_workers(torch.device("cpu")) <= 2
    assert default_workers(torch.device("cuda")) >= default_workers(torch.device("cpu"))
