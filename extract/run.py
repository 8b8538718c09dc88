"""Run one extractor over (a shard of) a manifest into one store."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from core.progress import Progress
from extract.base import BadInput, Extractor, Item, Output
from extract.store import RaggedStore, StoreWriter, base_attrs, read_store

log = logging.getLogger("extract")


def parse_shard(spec: str) -> tuple[int, int]:
    """`K/N` or `K-of-N`, 1 <= K <= N (as Snakemake's scatteritem)."""
    text = spec.replace("-of-", "/")
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard expects K/N (e.g. 2/4), got {spec!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard {spec}: need 1 <= K <= N")
    return k, n


def shard_slice(count: int, k: int, n: int) -> slice:
    """Contiguous, balanced shards in manifest order, so merging in order restores it."""
    return slice((k - 1) * count // n, k * count // n)


STANDARD_COLUMNS = ("id", "split", "image", "text", "labels")


def items_from(manifest: pd.DataFrame, input_store: RaggedStore | None = None) -> list[Item]:
    """One `Item` per row. `extra` is that sample's entries of the input store when there is one
    (empty when the store lacks the sample), else the row's dataset columns as strings (what
    `index` reads: every column beyond the standard ones)."""
    if input_store is not None:
        known = set(input_store.ids)
        return [Item(str(r.id), str(r.image), str(r.text),
                     input_store.sample(str(r.id)) if str(r.id) in known else {}, from_input=True)
                for r in manifest[["id", "image", "text"]].itertuples(index=False)]
    columns = [c for c in manifest.columns if c not in STANDARD_COLUMNS]
    return [Item(str(r["id"]), str(r["image"]), str(r["text"]), {c: str(r[c]) for c in columns})
            for r in manifest.to_dict("records")]


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def _safe_prepare(extractor: Extractor, item: Item) -> tuple[Item, Any, str | None]:
    try:
        return item, extractor.prepare(item), None
    except BadInput as err:
        return item, None, str(err)
    except Exception as err:  # an input we did not foresee: record it, keep the shard going
        return item, None, f"{type(err).__name__}: {err}"


def _prepared(extractor: Extractor, items: Sequence[Item], chunk: int,
              workers: int) -> Iterator[list[tuple[Item, Any, str | None]]]:
    """Decode the next chunk in threads while the caller runs the model on this one (on the CPU
    too: measured as fast as decoding between batches, 128 demo posters with MobileNetV2)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
        pending = pool.map(lambda it: _safe_prepare(extractor, it), chunks[0]) if chunks else None
        for nxt in chunks[1:] + [None]:
            current = list(pending)
            pending = pool.map(lambda it: _safe_prepare(extractor, it), nxt) if nxt else None
            yield current


def default_workers(device: torch.device) -> int:
    """Decoding threads: on CUDA every core (capped at 16) feeds the GPU; on the CPU two, since
    the model's own threads need the cores (2 measured as fast as more on the demo)."""
    cores = os.cpu_count() or 1
    return max(1, min(16, cores)) if device.type == "cuda" else min(2, cores)


def _features(outs: Sequence[Output]) -> np.ndarray | None:
    parts = [np.asarray(o.rows["features"], np.float32) for o in outs if "features" in o.rows]
    return np.concatenate(parts) if parts else None


def precision_check(extractor: Extractor, batch: list[Any], precision: str | None = None) -> dict[str, Any]:
    """Cosine similarity of the `features` rows of one batch under `precision` (default: the
    extractor's) against fp32: min and mean over rows, and the rows compared."""
    precision = precision or extractor.precision
    outs = {}
    saved = extractor.options.precision
    try:  # through the option, so that extractors with their own autocast() follow it too
        for p in ("fp32", precision):
            extractor.options.precision = p
            with torch.inference_mode(), extractor.autocast():
                outs[p] = _features(extractor.forward(batch))
    finally:
        extractor.options.precision = saved
    ref, low = outs["fp32"], outs[precision]
    if ref is None or low is None or ref.shape != low.shape or not len(ref):
        return {"precision": precision, "rows": 0,
                "note": "no comparable feature rows (none, or a different number under autocast)"}
    cos = (ref * low).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(low, axis=1), 1e-12)
    return {"precision": precision, "rows": int(len(cos)), "cosine_min": round(float(cos.min()), 6),
            "cosine_mean": round(float(cos.mean()), 6)}


def _forward(extractor: Extractor, batch: list[Any]) -> list[Output | str]:
    """One batch; if it fails, sample by sample so one bad input cannot sink the others."""
    try:
        with torch.inference_mode(), extractor.autocast():
            outs = extractor.forward(batch)
        if len(outs) != len(batch):
            raise RuntimeError(f"{extractor.name}.forward returned {len(outs)} outputs for {len(batch)} inputs")
        return list(outs)
    except Exception:
        if len(batch) == 1:
            err = traceback.format_exc(limit=1).strip().splitlines()[-1]
            return [f"model failed on this input: {err}"]
        return [r for one in batch for r in _forward(extractor, [one])]


def extract(extractor: Extractor, items: Sequence[Item], out: str | Path, workers: int = 0,
            progress: bool = True, compression: str | None = None, upstream: str = "",
            attrs: dict[str, Any] | None = None) -> Path:
    """Run `extractor` over `items` into the store `out`, appending each batch's samples as they
    finish (memory: a few batches, whatever the number of items). `workers` decoding threads
    (0: `default_workers`). Under fp16/bf16 the first batch also runs in fp32 and the cosine
    similarity of its features is recorded in the attrs (`precision_check`). `upstream`: what the
    input store differs from the paper in (`extract.substitutes.upstream`), added to `substitute`.
    `attrs` are added to the store's (what it was built from: `feature`, `input`)."""
    size = extractor.batch_size
    workers = workers or default_workers(extractor.device)
    check: dict[str, Any] = {}
    check_seconds = 0.0
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        counter = stack.enter_context(Progress(extractor.name, len(items))) if progress else None
        writer = stack.enter_context(StoreWriter(out, extractor.row_columns(), compression))
        for chunk in _prepared(extractor, items, size, workers):
            good = [(item, prep) for item, prep, err in chunk if err is None]
            if good and not check and extractor.precision != "fp32":
                t = time.perf_counter()
                try:
                    check = precision_check(extractor, [prep for _, prep in good])
                except Exception as err:  # the batch itself is retried (and recorded) below
                    check = {"precision": extractor.precision, "rows": 0, "note": f"check failed: {err}"}
                check_seconds = time.perf_counter() - t
            outs = _forward(extractor, [prep for _, prep in good]) if good else []
            result = {item.id: out for (item, _), out in zip(good, outs)}
            for item, _, err in chunk:
                out = result.get(item.id, err)
                if isinstance(out, Output):
                    writer.add(item.id, out.rows, out.samples)
                else:
                    log.warning("%s: sample %s failed: %s", extractor.name, item.id, out)
                    writer.fail(item.id, str(out))
            if counter is not None:
                counter.update(len(chunk))
        if counter is not None:
            counter.close()
        seconds = time.perf_counter() - started - check_seconds
        extra = attrs or {}
        attrs = base_attrs(extractor.name, extractor.backend, extractor.dim, extractor.config(),
                           extractor.weights)
        attrs.update(extra)
        attrs.update({"device": str(extractor.device), "precision": extractor.precision,
                      "batch_size": size, "workers": workers, "seconds": round(seconds, 3),
                      "seconds_per_sample": round(seconds / max(1, len(items)), 5)})
        attrs.update(extractor.extra_attrs())  # an extractor knows best what it computed in
        if upstream:
            attrs["substitute"] = "; ".join(p for p in (attrs.get("substitute", ""), upstream) if p)
        if check:
            attrs["precision_check"] = json.dumps(check)
        log.info("%s: %d samples, %d rows, %d failed, %.1f s (batch %d, %d workers, %s%s)", extractor.name,
                 writer.samples, writer.rows, writer.failures, seconds, size, workers, extractor.precision,
                 f", cosine vs fp32 >= {check['cosine_min']}" if "cosine_min" in check else "")
        return writer.finish(attrs)


def load_input(path: str | None) -> RaggedStore | None:
    return read_store(path) if path else None
