"""Train and evaluate one (features, pool, seed) run and write its run folder.

AdamW; lr warmed up linearly from 0 over `warmup_epochs` (per step), then cosine decay to 0;
sigmoid cross-entropy for binary and multi-label; model selection on dev by `select_metric`;
test metrics, predictions and importance at the best dev epoch.

`lr=auto` trains once per `lr_candidates` value, each from the same initial weights and batch
order, and keeps the run with the best dev score (ties: the smaller lr); `threshold=dev` scores
each epoch's dev split at its best threshold (model/metrics.py `best_threshold`), and the test
split at the kept epoch's.

The file reads top to bottom as a run goes, each step usable alone: `train` (one run; `train_runs`,
a job's runs one after another) -> load (`load_run_data`, model/inputs.py) -> build (`search_lr`:
`build_model`, model/networks.py, once per lr candidate) -> fit (`fit`: epochs, dev selection)
-> evaluate (`evaluate_split`: `infer`, model/networks.py; model/metrics.py) -> write
(`write_run`, model/runfiles.py). The epoch loop never waits for the device: batches are planned
on the host (`model.inputs.Batches`) and the loss is read once per epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TextIO

import numpy as np
import torch
from torch import Tensor, nn

from core.manifest import read_manifest
from core.progress import Progress
from model import runfiles
from model.inputs import (Batches, FeatureTable, class_names, load_features, select_splits, store_attrs, table_bytes,
                          target_matrix)
from model.metrics import DEFAULT_SELECT, best_threshold, evaluate, metric_names
from model.networks import FusionModel, build_model, infer, padding_slots
from model.options import (CONCAT_PADDED, FEATURE_DEVICES, LR_AUTO, THRESHOLD_DEV, FeatureSpec, TrainOptions,
                           check_pool, pool_method)


# ---------------------------------------------------------------------------------------------
# a job and its runs


def train_runs(manifest: str | Path, specs: Sequence[FeatureSpec], pool: str,
               runs: Sequence[tuple[int, int | None, str | Path]], device: str = "cpu",
               options: TrainOptions | None = None, log: TextIO | None = sys.stderr) -> list[dict]:
    """Several runs of one combination and pool, one after another in this process: each
    `(seed, fold, out)` is `train` with that seed (and `fold=`) writing its own run folder, exactly
    as alone. A grid cell's seeds (and folds) pay one process start (~1.7 CPU-s importing torch,
    pandas and h5py, BENCHMARKS.md) instead of one each."""
    options = (options or TrainOptions()).validate()
    results = []
    with epoch_progress(options, len(runs), log) as progress:
        for seed, fold, out in runs:
            _log(log, f"run {out}: seed {seed}" + ("" if fold is None else f", fold {fold}"))
            run_options = options if fold is None else dataclasses.replace(options, fold=fold)
            results.append(train(manifest, specs, pool, seed, out, device, run_options, log, progress))
    return results


def epoch_progress(options: TrainOptions, runs: int, log: TextIO | None) -> contextlib.AbstractContextManager:
    """One progress line counter for a training job: epochs of all its runs and lr candidates
    (`core/progress.py`; the progress view reads it from the job's log). None without a log."""
    if log is None:
        return contextlib.nullcontext()
    return Progress("train", runs * len(options.lr_values()) * options.epochs, "epochs", stream=log)


def train(manifest: str | Path, specs: Sequence[FeatureSpec], pool: str, seed: int, out: str | Path,
          device: str = "cpu", options: TrainOptions | None = None,
          log: TextIO | None = sys.stderr, progress: Progress | None = None) -> dict:
    """Run one training; writes the run folder `out` and returns the metrics written. `progress`
    counts epochs over a whole job (`train_runs`); without it, over this run's trainings."""
    options = (options or TrainOptions()).validate()
    if progress is None and log is not None:
        with epoch_progress(options, 1, log) as own:
            return train(manifest, specs, pool, seed, out, device, options, log, own)
    check_pool(pool)
    if not specs:
        raise ValueError("give at least one --feature NAME=STORE.h5")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no GPU; use --device cpu")
    dev = torch.device(device)
    with deterministic(seed):
        data = load_run_data(manifest, specs, options, seed, dev)
        _log(log, describe(data))
        check_dev(data, options, manifest)
        slots = padding_slots(data.tables, data.splits["train"]) if pool == CONCAT_PADDED else None
        model, fitted, trials = search_lr(pool, data, options, seed, dev, log, slots, progress)
        test = evaluate_split(model, data, data.splits["test"], options, fitted.threshold)
        metrics = write_run(Path(out), data, model, pool, seed, options, fitted, test, trials, slots)
    _log(log, f"test at lr {fitted.lr:g}, epoch {fitted.epoch}, threshold {fitted.threshold:g}: "
              + ", ".join(f"{k} {v:.4f}" for k, v in test.metrics.items()))
    return metrics


@contextlib.contextmanager
def deterministic(seed: int):
    """Seed everything (CPU and CUDA generators: `torch.manual_seed` seeds both). CPU kernels used here (index_add, scatter_reduce, matmul) are
    deterministic for a fixed thread count; `torch.use_deterministic_algorithms` is not switched
    on because merely calling it imports torch's compiler stack (~2.5 s per training job)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    yield


def _log(stream: TextIO | None, text: str) -> None:
    if stream is not None:
        print(text, file=stream, flush=True)


# ---------------------------------------------------------------------------------------------
# load: the manifest's targets and splits, the features' tables


@dataclass
class RunData:
    """Everything a run reads, aligned to manifest order."""

    ids: list[str]
    classes: list[str]
    task: str  # binary | multilabel
    select: str  # dev metric for model selection
    targets: np.ndarray  # (N, C) float32
    fine: np.ndarray | None  # (N,) fine class names (binary task with a `fine` column)
    splits: dict[str, np.ndarray]  # train/dev/test -> row positions
    tables: list[FeatureTable]
    manifest: str = ""
    stores: dict[str, dict] = dataclasses.field(default_factory=dict)  # feature -> store record
    host: bool = False  # tables' values in host memory (gathered and copied per batch)


def load_run_data(manifest: str | Path, specs: Sequence[FeatureSpec], options: TrainOptions,
                  seed: int, dev: torch.device) -> RunData:
    """Manifest, splits, targets and the features' tables: on `dev`, or in (pinned) host memory
    when `options.feature_device` says so or (auto) they do not fit."""
    frame = read_manifest(manifest)
    classes = class_names(frame["labels"], options.classes)
    task = options.task if options.task != "auto" else ("binary" if len(classes) == 1 else "multilabel")
    if task == "binary" and len(classes) != 1:
        raise ValueError(f"task=binary needs exactly one (positive) class, the manifest gives {classes}; "
                         "fix it with --set classes=NAME")
    select = DEFAULT_SELECT[task] if options.select_metric == "auto" else options.select_metric
    if select not in metric_names(task) and not (task == "binary" and select.startswith("accuracy_")):
        raise ValueError(f"select_metric={select}: use one of {', '.join(metric_names(task))}")
    strata = frame["fine"] if "fine" in frame.columns else frame["labels"] if task == "binary" else None
    splits = select_splits(frame["split"], options.fold, source=str(manifest),
                           dev_fraction=options.dev_fraction, strata=strata, ids=frame["id"])
    for name in ("train", "test"):
        if len(splits[name]) == 0:
            raise ValueError(f"manifest {manifest} has no {name} samples for this split/fold")
    ids = frame["id"].tolist()
    tables = load_features(specs, ids, options.max_elements, seed, options.max_elements_by, "cpu",
                           collapse=options.collapse, require_elements=True)
    host = features_on_host(options.feature_device, dev, table_bytes(tables))
    tables = [t.pinned() if host and dev.type == "cuda" else t.to(dev) for t in tables]
    fine = frame["fine"].to_numpy() if "fine" in frame.columns and task == "binary" else None
    stores = {s.name: store_record(s) for s in specs}
    return RunData(ids, classes, task, select, target_matrix(frame["labels"], classes), fine, splits, tables,
                   str(manifest), stores, host)


def store_record(spec: FeatureSpec) -> dict:
    """What `model.pt` and metrics.json record of a training store: path, column and the attrs
    that identify what produced it (`store_attrs`: extractor, backend, dim, feature, input, model,
    precision and the extractor's options)."""
    record = {"path": str(spec.path), "column": spec.column}
    record.update(store_attrs(spec.path))
    return record


DEVICE_MARGIN = 0.6  # share of this job's device memory the feature tables may take (rest: model, batches)


def device_budget(free: int, total: int, share: int) -> float:
    """Bytes of device memory the feature tables of one job may take: DEVICE_MARGIN of its part
    of the device (total / share: DMMS_GPU_SHARE jobs may share it, gpuslots/), and never more
    than DEVICE_MARGIN of what is free now."""
    return DEVICE_MARGIN * min(free, total / max(1, share))


def features_on_host(choice: str, dev: torch.device, nbytes: int, share: int | None = None) -> bool:
    """Whether the feature tables (`nbytes` in all) stay in host memory: `host`; `auto` when they
    would exceed this job's budget (`device_budget`; `share` defaults to $DMMS_GPU_SHARE, 1 when
    unset). On the CPU host == device."""
    if choice not in FEATURE_DEVICES:
        raise ValueError(f"feature_device={choice!r}: use one of {', '.join(FEATURE_DEVICES)}")
    if choice == "host":
        return True
    if choice == "device" or dev.type != "cuda":
        return False
    if share is None:
        share = int(os.environ.get("DMMS_GPU_SHARE") or 1)
    free, total = torch.cuda.mem_get_info(dev)
    return nbytes > device_budget(free, total, share)


def check_dev(data: "RunData", options: TrainOptions, manifest: str | Path) -> None:
    """`lr=auto` and `threshold=dev` choose on the dev split: refuse a run without one."""
    choices = [f"{k}={v}" for k, v in (("lr", options.lr), ("threshold", options.threshold))
               if v in (LR_AUTO, THRESHOLD_DEV)]
    if choices and not len(data.splits["dev"]):
        raise ValueError(f"{' and '.join(choices)}: chosen on the dev split, but {manifest} gives this run no "
                         "dev samples; give the manifest a dev split, or carve one from train (dev_fraction > 0), or fix the "
                         "values (e.g. --set lr=0.001 --set threshold=0.5)")


def describe(data: RunData) -> str:
    splits = data.splits
    return (f"{len(data.ids)} samples (train {len(splits['train'])}, dev {len(splits['dev'])}, "
            f"test {len(splits['test'])}), {len(data.classes)} classes, task {data.task}, features "
            + ", ".join(f"{t.info.name} ({t.info.kind}, {t.info.input_dim})" for t in data.tables)
            + (", features in host memory" if data.host else ""))


# ---------------------------------------------------------------------------------------------
# build: one model per lr candidate, each fitted; the best dev score kept


def search_lr(pool: str, data: "RunData", options: TrainOptions, seed: int, dev: torch.device,
              log: TextIO | None = None, slots: Sequence[int] | None = None, progress: Progress | None = None
              ) -> tuple[FusionModel, "Fit", list[dict]]:
    """`fit` once per peak lr of `options.lr_values()` (one unless lr=auto), each from the same
    initial weights (torch reseeded) and batch order; returns the model holding the best dev
    score's weights (ties and NaN: the smaller lr), its Fit and one row per candidate. `slots`:
    concat_padded's blocks per feature (model/networks.py).

    Per run, not once per combination: the data are loaded once, no job waits for another seed's
    choice (no extra level in the workflow), and each seed's choice is part of what its seed
    varies, so the spread over seeds includes the lr selection. Cost: one training per candidate
    (on the emoji table of BENCHMARKS.md 10-20 s a run instead of 1.4-1.9 s); pin `lr` where
    that matters (the paper datasets and the demo do)."""
    best: tuple[FusionModel, Fit] | None = None
    best_score, trials = math.nan, []
    values = options.lr_values()
    for lr in values:
        torch.manual_seed(seed)
        model = build_model(pool, [t.info for t in data.tables], len(data.classes), options, slots).to(dev)
        if len(values) > 1:
            _log(log, f"lr {lr:g} ({len(trials) + 1} of {len(values)} candidates)")
        fitted = fit(model, data, dataclasses.replace(options, lr=lr), seed, log, progress)
        score = fitted.dev.get(data.select, math.nan)
        trials.append({"lr": lr, "dev_metric": score, "best_epoch": fitted.epoch, "threshold": fitted.threshold})
        if best is None or (not math.isnan(score) and (math.isnan(best_score) or score > best_score)):
            best, best_score = (model, fitted), score
    model, fitted = best
    model.load_state_dict(fitted.state)
    if len(values) > 1:
        _log(log, f"lr {fitted.lr:g} chosen: dev {data.select} "
                  + ", ".join(f"{t['lr']:g}: {t['dev_metric']:.4f}" for t in trials))
    return model, fitted, trials


# ---------------------------------------------------------------------------------------------
# fit: epochs on the train split, the best dev epoch kept


@dataclass
class Fit:
    """What `fit` selected: the best dev epoch's weights and metrics, and every epoch's row."""

    state: dict[str, Tensor]  # state_dict at `epoch` (copies)
    epoch: int
    dev: dict[str, float]  # dev metrics at `epoch` ({} without a dev split)
    history: list[dict]  # epoch, loss, lr, seconds, dev_<metric>, dev_threshold
    lr: float  # the peak lr trained
    threshold: float  # the decision threshold at `epoch` (options.threshold, or chosen on dev)


def fit(model: FusionModel, data: RunData, options: TrainOptions, seed: int,
        log: TextIO | None = None, progress: Progress | None = None) -> Fit:
    """Train `options.epochs` epochs on the train split at one peak lr (`search_lr` runs lr=auto);
    after each, score dev and keep the weights of the best `data.select` (no dev split: the last
    epoch). `progress` counts the epochs."""
    if options.lr == LR_AUTO:
        raise ValueError("fit trains one lr; lr=auto is search_lr's (or give --set lr=RATE)")
    dev = next(model.parameters()).device
    train_rows = data.splits["train"]
    targets = torch.from_numpy(data.targets).to(dev)  # (N, C)
    optimiser = AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    steps = math.ceil(len(train_rows) / options.batch_size)
    factor = warmup_cosine(round(options.warmup_epochs * steps), options.epochs * steps)
    weight = class_weight_vector(data.targets[train_rows], options.class_weights)
    criterion = nn.BCEWithLogitsLoss(weight=None if weight is None else weight.to(dev))
    autocast = _autocast(model, options.amp)
    select = data.select

    generator = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    best, best_state, best_dev, best_epoch = -math.inf, None, {}, 0
    fixed = math.nan if options.threshold == THRESHOLD_DEV else float(options.threshold)
    best_threshold_, dev_threshold = fixed, fixed
    for epoch in range(1, options.epochs + 1):
        began = time.perf_counter()
        model.train()
        order = train_rows[torch.randperm(len(train_rows), generator=generator).numpy()]
        loss_sum = torch.zeros((), device=dev)
        for index, batch in Batches(data.tables, order, options.batch_size, dev, data.host):
            optimiser.lr = options.lr * factor(optimiser.steps)
            with autocast():
                logits = model(batch)  # (B, C)
            loss = criterion(logits.float(), targets[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            loss_sum += loss.detach() * len(index)
        dev_metrics: dict[str, float] = {}
        if len(data.splits["dev"]):
            scored = evaluate_split(model, data, data.splits["dev"], options, options.threshold)
            dev_metrics, dev_threshold = scored.metrics, scored.threshold
        mean_loss = float(loss_sum) / len(order)  # the epoch's one wait for the device
        seconds = time.perf_counter() - began
        score = dev_metrics.get(select, math.nan) if dev_metrics else epoch  # no dev: last epoch
        if best_state is None or (not math.isnan(score) and score > best):
            best, best_epoch, best_dev, best_threshold_ = score, epoch, dev_metrics, dev_threshold
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        row = {"epoch": epoch, "loss": mean_loss, "lr": options.lr * factor(optimiser.steps),
               "seconds": seconds}
        row.update({f"dev_{k}": v for k, v in dev_metrics.items()})
        if dev_metrics:
            row["dev_threshold"] = dev_threshold
        history.append(row)
        _log(log, f"epoch {epoch}/{options.epochs} loss {row['loss']:.4f} lr {row['lr']:.2e} "
                  f"dev {select} {dev_metrics.get(select, math.nan):.4f} "
                  f"(best {best_dev.get(select, math.nan):.4f} @ {best_epoch}) {seconds:.2f}s")
        if progress is not None:
            progress.update()
    return Fit(best_state, best_epoch, best_dev, history, float(options.lr), best_threshold_)


class AdamW:
    """AdamW (decoupled weight decay): the fused kernel `torch.optim.AdamW(fused=True)` runs, one
    pass over all parameters (CPU and CUDA; tests compare the two step by step).

    Own class because constructing any `torch.optim` optimizer imports torch's compiler stack
    (`torch._dynamo`, ~1.5 s per training job on the CPU). `lr` is set per step by the caller."""

    def __init__(self, params, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.step_count = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self.steps = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [k for k, p in enumerate(self.params) if p.grad is not None]
        self.steps += 1
        if not live:
            return
        counts = [self.step_count[k] for k in live]
        torch._foreach_add_(counts, 1)
        torch._fused_adamw_([self.params[k] for k in live], [self.params[k].grad for k in live],
                            [self.exp_avg[k] for k in live], [self.exp_avg_sq[k] for k in live], [], counts,
                            lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
                            weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False)


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """lr factor for step s (0-based, applied before step s+1): linear 0 -> 1 over the warm-up,
    then cosine 1 -> 0 over the remaining steps."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        rest = max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps + 1, rest) / rest))

    return factor


def class_weight_vector(train_targets: np.ndarray, how: str) -> Tensor | None:
    """inv_sqrt: per-class loss weight 1/sqrt(frequency of the class in train), scaled to mean 1
    (classes without a train positive count as one positive)."""
    if how == "none":
        return None
    counts = np.maximum(train_targets.sum(0), 1.0)  # (C,)
    weights = 1.0 / np.sqrt(counts / max(len(train_targets), 1))
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def _autocast(model: nn.Module, amp: bool) -> Callable[[], contextlib.AbstractContextManager]:
    cuda = next(model.parameters()).device.type == "cuda"
    if amp and cuda:
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


# ---------------------------------------------------------------------------------------------
# evaluate: a split scored at a threshold


@dataclass
class Evaluation:
    """A split scored by the model: probabilities, importance and metrics."""

    positions: np.ndarray  # (n,) manifest rows
    probs: np.ndarray  # (n, C)
    importance: np.ndarray | None  # (n, M); None when the model gives none
    metrics: dict[str, float]
    threshold: float  # the decision threshold `metrics` were computed at


def evaluate_split(model: FusionModel, data: RunData, positions: np.ndarray,
                   options: TrainOptions, threshold: float | str) -> Evaluation:
    """Score the samples `positions` (manifest rows) and compute the task's metrics at `threshold`,
    or (`dev`: dev samples only) at the threshold that scores best on them."""
    probs, importance = infer(model, data.tables, positions, options.eval_batch_size,
                              _autocast(model, options.amp))
    fine = None if data.fine is None else data.fine[positions]
    targets = data.targets[positions]
    threshold = (best_threshold(data.task, targets, probs, data.select) if threshold == THRESHOLD_DEV
                 else float(threshold))
    metrics = evaluate(data.task, targets, probs, threshold, fine)
    return Evaluation(positions, probs, importance, metrics, threshold)


# ---------------------------------------------------------------------------------------------
# write: the run folder


def write_run(out: str | Path, data: RunData, model: FusionModel, pool: str, seed: int,
              options: TrainOptions, fitted: Fit, test: Evaluation, trials: list[dict] | None = None,
              slots: Sequence[int] | None = None) -> dict:
    """Write the run folder (predictions.h5, importance.h5, history.csv, model.pt,
    metrics.json, in that order: metrics.json last marks a complete run); returns the metrics.
    model.pt's `config` holds the lr and threshold the kept model ran with; metrics.json's
    `config` the options as given (`lr: auto`, `threshold: dev`), `lr` and `threshold` the
    values used, `lr_search` each candidate's dev score, epoch and threshold. `slots`:
    concat_padded's blocks per feature, recorded in model.pt and metrics.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    infos = [t.info for t in data.tables]
    names = [i.name for i in infos]
    rows = test.positions
    test_ids = [data.ids[i] for i in rows]
    runfiles.write_predictions(out, test_ids, test.probs, data.targets[rows], data.classes, data.task)
    if test.importance is not None:
        elements = element_counts(data.tables)[torch.from_numpy(rows)].numpy()
        runfiles.write_importance(out, test_ids, test.importance, elements, names, pool)
    else:
        (out / runfiles.IMPORTANCE).unlink(missing_ok=True)
    runfiles.write_history(out, fitted.history)
    used = dataclasses.replace(options, lr=fitted.lr, threshold=test.threshold)
    padding = {"slots": dict(zip(names, slots))} if slots is not None else {}
    runfiles.write_model(out, {"state_dict": fitted.state, "config": used.to_dict(), "pool": pool,
                               "features": [dataclasses.asdict(i) for i in infos], "classes": data.classes,
                               "task": data.task, "seed": seed, "stores": data.stores, **padding})
    dev = next(model.parameters()).device
    metrics = dict(test.metrics)
    metrics.update({
        "metric_names": list(test.metrics), "task": data.task,
        "method": pool_method(pool), "pool": pool, "seed": seed, "features": names, **padding,
        "feature_stores": {name: s["path"] + (f":{s['column']}" if s["column"] else "")
                           for name, s in data.stores.items()},
        "stores": data.stores,
        "feature_kinds": {i.name: i.kind for i in infos}, "classes": data.classes,
        "best_epoch": fitted.epoch, "select_metric": data.select, "dev_metric": fitted.dev.get(data.select),
        "dev": fitted.dev, "seconds_per_epoch": float(np.mean([h["seconds"] for h in fitted.history])),
        "n_train": len(data.splits["train"]), "n_dev": len(data.splits["dev"]), "n_test": len(rows),
        "fold": options.fold, "device": str(dev), "feature_device": "host" if data.host else "device",
        "manifest": data.manifest, "config": options.to_dict(),
        "lr": fitted.lr, "threshold": test.threshold,
        "threshold_rule": "dev" if options.threshold == THRESHOLD_DEV else "fixed",
        "lr_search": trials or [{"lr": fitted.lr, "dev_metric": fitted.dev.get(data.select),
                                 "best_epoch": fitted.epoch, "threshold": fitted.threshold}],
    })
    runfiles.write_metrics(out, metrics)
    return metrics


def element_counts(tables: Sequence[FeatureTable]) -> Tensor:
    """(N,) number of set elements per sample on the CPU (an index feature gives at most one)."""
    total = torch.zeros_like(tables[0].counts)
    for table in tables:
        counts = table.counts
        total += counts.clamp(max=1) if table.info.kind == "index" else counts
    return total
