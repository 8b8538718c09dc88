"""Train and evaluate one (features, pool, seed) run and write its run folder.

AdamW; lr warmed up linearly from 0 over `warmup_epochs` (per step), then cosine decay to 0;
sigmoid cross-entropy for binary and multi-label; model selection on dev by `select_metric`;
test metrics, predictions and importance at the best dev epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TextIO

import numpy as np
import torch
from torch import Tensor, nn

from model import runfiles
from model.baseline import ConcatModel
from model.data import FeatureInfo, FeatureSpec, FeatureTable, load_features, pack
from model.manifest import class_names, read_manifest, select_splits, target_matrix
from model.metrics import DEFAULT_SELECT, evaluate, metric_names
from model.options import TrainOptions
from model.sets import SET_POOLS, FusionModel, SetModel

POOL_CHOICES = SET_POOLS + ("concat",)


def build_model(pool: str, features: Sequence[FeatureInfo], num_classes: int,
                options: TrainOptions) -> FusionModel:
    kwargs = dict(dim=options.dim, hidden=options.hidden_sizes(), dropout=options.dropout)
    if pool == "concat":
        return ConcatModel(features, num_classes, **kwargs)
    if pool not in SET_POOLS:
        raise ValueError(f"--pool {pool}: choose one of {', '.join(POOL_CHOICES)}")
    return SetModel(features, num_classes, pool=pool, **kwargs)


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


@contextlib.contextmanager
def deterministic(seed: int, cpu: bool):
    """Seed everything. CPU kernels used here (index_add, scatter_reduce, matmul) are
    deterministic for a fixed thread count; `torch.use_deterministic_algorithms` is not switched
    on because merely calling it imports torch's compiler stack (~2.5 s per training job)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    yield


def element_counts(tables: Sequence[FeatureTable]) -> Tensor:
    """(N,) number of set elements per sample (an index feature gives at most one)."""
    total = torch.zeros_like(tables[0].counts)
    for table in tables:
        counts = table.counts
        total += counts.clamp(max=1) if table.info.kind == "index" else counts
    return total


@torch.no_grad()
def predict(model: FusionModel, tables: Sequence[FeatureTable], positions: Tensor, batch_size: int,
            autocast: Callable[[], contextlib.AbstractContextManager]) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities (n, C) and importance (n, M) (None for concat) for samples `positions`."""
    model.eval()
    probs, importance = [], []
    for start in range(0, len(positions), batch_size):
        batch = pack(tables, positions[start:start + batch_size])
        with autocast():
            logits, imp = model(batch, with_importance=True)
        probs.append(torch.sigmoid(logits.float()).cpu())
        if imp is not None:
            importance.append(imp.float().cpu())
    num_classes = model.head[-1].out_features
    prob = torch.cat(probs).numpy() if probs else np.zeros((0, num_classes), np.float32)
    imp = torch.cat(importance).numpy() if importance else None
    if imp is None and not isinstance(model, ConcatModel):
        imp = np.zeros((0, model.num_modalities), np.float32)
    return prob, imp


def _log(stream: TextIO | None, text: str) -> None:
    if stream is not None:
        print(text, file=stream, flush=True)


def train(manifest: str | Path, specs: Sequence[FeatureSpec], pool: str, seed: int, out: str | Path,
          device: str = "cpu", options: TrainOptions | None = None,
          log: TextIO | None = sys.stderr) -> dict:
    """Run one training; writes the run folder `out` and returns the metrics written."""
    options = (options or TrainOptions()).validate()
    if pool not in POOL_CHOICES:
        raise ValueError(f"--pool {pool}: choose one of {', '.join(POOL_CHOICES)}")
    if not specs:
        raise ValueError("give at least one --feature NAME=STORE.h5")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no GPU; use --device cpu")
    dev = torch.device(device)
    with deterministic(seed, cpu=dev.type == "cpu"):
        return _train(manifest, specs, pool, seed, Path(out), dev, options, log)


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


def load_run_data(manifest: str | Path, specs: Sequence[FeatureSpec], options: TrainOptions,
                  seed: int, dev: torch.device) -> RunData:
    frame = read_manifest(manifest)
    classes = class_names(frame["labels"], options.classes)
    task = options.task if options.task != "auto" else ("binary" if len(classes) == 1 else "multilabel")
    if task == "binary" and len(classes) != 1:
        raise ValueError(f"task=binary needs exactly one (positive) class, the manifest gives {classes}; "
                         "fix it with --set classes=NAME")
    select = DEFAULT_SELECT[task] if options.select_metric == "auto" else options.select_metric
    if select not in metric_names(task) and not (task == "binary" and select.startswith("accuracy_")):
        raise ValueError(f"select_metric={select}: use one of {', '.join(metric_names(task))}")
    splits = select_splits(frame["split"], options.fold, source=str(manifest))
    for name in ("train", "test"):
        if len(splits[name]) == 0:
            raise ValueError(f"manifest {manifest} has no {name} samples for this split/fold")
    ids = frame["id"].tolist()
    tables = load_features(specs, ids, options.max_elements, seed, options.max_elements_by, dev)
    fine = frame["fine"].to_numpy() if "fine" in frame.columns and task == "binary" else None
    return RunData(ids, classes, task, select, target_matrix(frame["labels"], classes), fine, splits, tables)


def _train(manifest: str | Path, specs: Sequence[FeatureSpec], pool: str, seed: int, out: Path,
           dev: torch.device, options: TrainOptions, log: TextIO | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    data = load_run_data(manifest, specs, options, seed, dev)
    ids, classes, task, select, fine = data.ids, data.classes, data.task, data.select, data.fine
    targets_np, splits, tables = data.targets, data.splits, data.tables
    infos = [t.info for t in tables]
    targets = torch.from_numpy(targets_np).to(dev)  # (N, C)
    position = {name: torch.from_numpy(idx).to(dev) for name, idx in splits.items()}
    _log(log, f"{len(ids)} samples (train {len(splits['train'])}, dev {len(splits['dev'])}, "
              f"test {len(splits['test'])}), {len(classes)} classes, task {task}, features "
              + ", ".join(f"{i.name} ({i.kind}, {i.input_dim})" for i in infos))

    # --- model and optimisation ---------------------------------------------------------------
    model = build_model(pool, infos, len(classes), options).to(dev)
    optimiser = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    steps = math.ceil(len(splits["train"]) / options.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, warmup_cosine(round(options.warmup_epochs * steps), options.epochs * steps))
    weight = class_weight_vector(targets_np[splits["train"]], options.class_weights)
    criterion = nn.BCEWithLogitsLoss(weight=None if weight is None else weight.to(dev))
    use_amp = options.amp and dev.type == "cuda"

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    generator = torch.Generator().manual_seed(seed)
    history, best, best_state, best_dev = [], -math.inf, None, {}
    best_epoch = 0
    for epoch in range(1, options.epochs + 1):
        began = time.perf_counter()
        model.train()
        order = position["train"][torch.randperm(len(splits["train"]), generator=generator).to(dev)]
        loss_sum = torch.zeros((), device=dev)
        for start in range(0, len(order), options.batch_size):
            index = order[start:start + options.batch_size]  # (B,)
            with autocast():
                logits = model(pack(tables, index))  # (B, C)
            loss = criterion(logits.float(), targets[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            loss_sum += loss.detach() * len(index)
        dev_metrics: dict[str, float] = {}
        if len(splits["dev"]):
            probs, _ = predict(model, tables, position["dev"], options.eval_batch_size, autocast)
            dev_metrics = evaluate(task, targets_np[splits["dev"]], probs, options.threshold,
                                   None if fine is None else fine[splits["dev"]])
        seconds = time.perf_counter() - began
        score = dev_metrics.get(select, math.nan) if dev_metrics else epoch  # no dev: last epoch
        if best_state is None or (not math.isnan(score) and score > best):
            best, best_epoch, best_dev = score, epoch, dev_metrics
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        row = {"epoch": epoch, "loss": float(loss_sum) / len(order),
               "lr": optimiser.param_groups[0]["lr"], "seconds": seconds}
        row.update({f"dev_{k}": v for k, v in dev_metrics.items()})
        history.append(row)
        _log(log, f"epoch {epoch}/{options.epochs} loss {row['loss']:.4f} lr {row['lr']:.2e} "
                  f"dev {select} {dev_metrics.get(select, math.nan):.4f} "
                  f"(best {best_dev.get(select, math.nan):.4f} @ {best_epoch}) {seconds:.2f}s")

    # --- test at the best dev epoch ---------------------------------------------------------
    model.load_state_dict(best_state)
    test = splits["test"]
    probs, importance = predict(model, tables, position["test"], options.eval_batch_size, autocast)
    test_metrics = evaluate(task, targets_np[test], probs, options.threshold,
                            None if fine is None else fine[test])
    test_ids = [ids[i] for i in test]
    names = [i.name for i in infos]
    runfiles.write_predictions(out, test_ids, probs, targets_np[test], classes, task)
    if importance is not None:
        elements = element_counts(tables)[position["test"]].cpu().numpy()
        runfiles.write_importance(out, test_ids, importance, elements, names, pool)
    else:
        (out / runfiles.IMPORTANCE).unlink(missing_ok=True)
    runfiles.write_history(out, history)
    torch.save({"state_dict": best_state, "config": options.to_dict(), "pool": pool,
                "features": [dataclasses.asdict(i) for i in infos], "classes": classes,
                "task": task, "seed": seed}, out / runfiles.MODEL)
    metrics = dict(test_metrics)
    metrics.update({
        "metric_names": list(test_metrics), "task": task, "method": "concat" if pool == "concat" else "set",
        "pool": pool, "seed": seed, "features": names,
        "feature_stores": {s.name: str(s.path) + (f":{s.column}" if s.column else "") for s in specs},
        "feature_kinds": {i.name: i.kind for i in infos}, "classes": classes,
        "best_epoch": best_epoch, "select_metric": select, "dev_metric": best_dev.get(select),
        "dev": best_dev, "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])),
        "n_train": len(splits["train"]), "n_dev": len(splits["dev"]), "n_test": len(test),
        "fold": options.fold, "device": str(dev), "manifest": str(manifest),
        "config": options.to_dict(),
    })
    runfiles.write_metrics(out, metrics)
    _log(log, f"test at epoch {best_epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in test_metrics.items()))
    return metrics
