"""What every extractor is: options, a per-sample `prepare`, a batched `forward`.

Options tell the truth: a field declared with `for_backends(default, *backends)` applies to those
backends only; another backend refuses a value other than its default and leaves the field out of
`config()`, the options recorded in the store. An extractor that always runs in float32 (no
autocast: detection, OCR, index lookups) sets `precisions = ("fp32",)` and refuses the others.

The runner (`extract/run.py`) calls `prepare(item)` for each sample (decoding, cleaning; may raise
`BadInput`, which records the sample as failed and goes on), groups prepared samples into batches
of `batch_size` (per device: `options.batch_size` on the CPU, `options.cuda_batch_size` on CUDA),
and calls `forward(batch)` once per batch under `torch.inference_mode` and `autocast()`.
`forward` returns one `Output` per prepared sample, in order. `to_device` moves a batch to the
model's device (pinned memory and a non-blocking copy on CUDA).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch


class BadInput(Exception):
    """The sample's input cannot be used (unreadable image, ...): recorded, never fatal."""


@dataclass
class Item:
    """One manifest row, plus that sample's entries of an input store when the rule gives one."""

    id: str
    image: str = ""
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    from_input: bool = False  # True when `extra` comes from an input store (`--input`)


@dataclass
class Output:
    """One sample's result: row columns (all of equal length) and sample columns."""

    rows: dict[str, np.ndarray] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)


PRECISIONS = ("auto", "fp32", "fp16", "bf16")
CUDA_BATCH_SCALE = 4  # default CUDA batch: this many CPU batches (GPUs want more work per call)


def for_backends(default: Any, *backends: str) -> Any:
    """A dataclass field that applies to `backends` only (see the module docstring)."""
    return field(default=default, metadata={"backends": backends})


def applies(f: dataclasses.Field, backend: str) -> bool:
    """Whether option field `f` applies to `backend`."""
    return backend in f.metadata.get("backends", (backend,))


@dataclass
class Options:
    """Options common to all extractors; each extractor subclasses this dataclass."""

    batch_size: int = 16  # samples per forward on the CPU
    cuda_batch_size: int = 0  # samples per forward on CUDA; 0: CUDA_BATCH_SCALE x batch_size
    precision: str = "auto"  # autocast: fp32, fp16 or bf16; auto: fp16 on CUDA, fp32 on the CPU


class Extractor:
    """Base class; subclasses register themselves with `extract.registry.register`."""

    name: ClassVar[str]
    backends: ClassVar[tuple[str, ...]]
    options_class: ClassVar[type[Options]] = Options
    needs_input: ClassVar[bool] = False  # True when it reads another store (`--input`)
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS  # ("fp32",): it never autocasts

    def __init__(self, backend: str, device: torch.device, options: Options) -> None:
        if backend not in self.backends:
            raise ValueError(f"extractor {self.name!r} has no backend {backend!r}; "
                             f"choose one of {', '.join(self.backends)}")
        if options.precision not in PRECISIONS:
            raise ValueError(f"precision {options.precision!r} is unknown; use --set precision=X with X one of "
                             f"{', '.join(PRECISIONS)}")
        if options.precision not in self.precisions:
            raise ValueError(f"extractor {self.name!r} always runs in float32 (no autocast), so precision "
                             f"{options.precision!r} would not be applied; drop the option or set precision=fp32")
        for f in dataclasses.fields(options):
            if not applies(f, backend) and getattr(options, f.name) != f.default:
                raise ValueError(f"{self.name} option {f.name} is for backend {' or '.join(f.metadata['backends'])}, "
                                 f"not {backend}, which would ignore it; drop the option or set that backend")
        if options.batch_size < 1 or options.cuda_batch_size < 0:
            raise ValueError("batch_size must be >= 1 and cuda_batch_size >= 0 (0: "
                             f"{CUDA_BATCH_SCALE} x batch_size)")
        self.backend = backend
        self.device = device
        self.options = options
        self.weights: list[tuple[str, str]] = []  # (file name, sha256) of every weight file used

    # --- what a subclass provides -------------------------------------------------------
    @property
    def dim(self) -> int:
        raise NotImplementedError

    def row_columns(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        """Row column name -> (trailing shape, dtype); used for stores with zero rows."""
        return {"features": ((self.dim,), np.float16)}

    def extra_attrs(self) -> dict[str, Any]:
        return {}

    def prepare(self, item: Item) -> Any:
        raise NotImplementedError

    def forward(self, batch: list[Any]) -> list[Output]:
        raise NotImplementedError

    # --- shared helpers -------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The options as the store records them: those that apply to this backend."""
        return {f.name: getattr(self.options, f.name) for f in dataclasses.fields(self.options)
                if applies(f, self.backend)}

    @property
    def batch_size(self) -> int:
        """Samples per `forward` on this extractor's device."""
        if self.device.type == "cuda":
            return self.options.cuda_batch_size or CUDA_BATCH_SCALE * self.options.batch_size
        return self.options.batch_size

    @property
    def precision(self) -> str:
        """fp32, fp16 or bf16: what `autocast()` runs the models in."""
        if self.options.precision == "auto":
            return "fp16" if self.device.type == "cuda" else "fp32"
        return self.options.precision

    def autocast(self):
        """Autocast to `self.precision`; fp32 is a no-op context."""
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def to_device(self, batch: torch.Tensor | list[torch.Tensor], channels_last: bool = False) -> torch.Tensor:
        """A batch (a tensor, or same-shape tensors to stack) on the device. On CUDA the batch is
        stacked into pinned memory and copied without blocking; `channels_last` for CNN inputs
        (their networks run channels_last on every device)."""
        return to_device(batch, self.device, channels_last)


def to_device(batch: torch.Tensor | list[torch.Tensor], device: torch.device,
              channels_last: bool = False) -> torch.Tensor:
    """See `Extractor.to_device`; on the CPU a list is stacked (and made channels_last)."""
    if device.type != "cuda":
        x = torch.stack(batch) if isinstance(batch, (list, tuple)) else batch
        return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
    if isinstance(batch, (list, tuple)):
        pinned = torch.empty((len(batch), *batch[0].shape), dtype=batch[0].dtype, pin_memory=True)
        torch.stack(batch, out=pinned)
    else:
        pinned = batch if batch.is_pinned() else batch.pin_memory()
    x = pinned.to(device, non_blocking=True)  # ordered before the model's kernels on the stream
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
