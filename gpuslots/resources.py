"""What the workflow asks of Snakemake for device slots: resource sizes and the wrapper prefix.

Snakemake limits concurrent jobs by summing a resource over running jobs. Every device is cut
into `units` = lcm(gpu_share values) slots; a rule whose jobs may share a device `share` ways asks
for units // share of the resource `gpu_slots`. With gpu_share {extract_shard: 1, train: 8}:
units 8; an extraction shard asks for 8 (a whole device), a training job for 1, and 2 GPUs hold 16
units (`total`): 2 shards, or 16 training jobs, or 1 shard and 8 training jobs.

Snakemake refills each freed unit with a ready job that fits, so with one limit a whole-device
job (8 units) would wait until every ready sharing job (1 unit) had run: 8 units are never free
at once. So `gpu_slots` is limited one device's units above the devices (`limit`), and jobs that
share a device also ask for the same units of `gpu_shared`, limited to the devices (`total`):
sharing jobs can never take the spare device's worth, so a whole-device job is started as soon
as it is ready, reserves a device in gpuslots and takes it when that device drains (the sharing
jobs started meanwhile wait in gpuslots for room).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from gpuslots.slots import visible_gpus


@dataclass(frozen=True)
class SlotResources:
    """A run's device slots: units per device, the limits of the resources `gpu_slots` and
    `gpu_shared`, what one job of a kind asks of each, and the wrapper prefix of its command."""

    gpus: int  # devices handed out
    shares: dict[str, int]  # rule kind -> jobs of that kind per device

    def __post_init__(self):
        if self.gpus < 1:
            raise ValueError(f"gpus must be >= 1 when slots are on, not {self.gpus}")
        bad = {k: v for k, v in self.shares.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"gpu_share values must be integers >= 1: {bad}")

    @property
    def units(self) -> int:
        """Slots per device: every share divides it."""
        return math.lcm(*self.shares.values()) if self.shares else 1

    @property
    def total(self) -> int:
        """Units of all devices together."""
        return self.gpus * self.units

    @property
    def limit(self) -> int:
        """The global limit of the `gpu_slots` resource: the devices plus one waiting device."""
        return self.total + self.units

    def share(self, kind: str) -> int:
        if kind not in self.shares:
            raise KeyError(f"no gpu_share for {kind!r}: add `gpu_share: {{{kind}: N}}` to the config "
                           f"(known: {sorted(self.shares)})")
        return self.shares[kind]

    def need(self, kind: str) -> int:
        """`gpu_slots` one job of this kind asks for."""
        return self.units // self.share(kind)

    def shared(self, kind: str) -> int:
        """`gpu_shared` one job of this kind asks for: its units when it shares a device, else 0."""
        need = self.need(kind)
        return need if need < self.units else 0

    def prefix(self, kind: str, job: str = "") -> str:
        """Shell words that run a command bound to a device slot (ends with a space); `job` (the
        job's output) names it in the messages of jobs waiting for its GPU."""
        args = ["python", "-m", "gpuslots", "run", "--kind", kind, "--gpus", self.gpus,
                "--share", self.share(kind), "--units", self.units, *(["--job", job] if job else []), "--"]
        return " ".join(shlex.quote(str(a)) for a in args) + " "


def resolve_device(device: str, environ=None) -> str:
    """`auto`: cuda when a GPU is visible (counted without torch), else cpu; cpu|cuda as given."""
    if device == "auto":
        return "cuda" if visible_gpus(environ) else "cpu"
    return device


def slot_resources(device: str, gpus: int | None, shares: dict[str, int], environ=None) -> SlotResources | None:
    """The slot resources of a run, or None when slots are off: device cpu, `gpus: 0` (the SLURM
    profile: the scheduler assigns devices) or no GPU visible and `gpus` not set. More `gpus`
    than are visible is an error (CUDA_VISIBLE_DEVICES would hand out devices that are not there)."""
    if device != "cuda":
        return None
    visible = visible_gpus(environ)
    if gpus is None:
        gpus = len(visible)
    if gpus == 0:
        return None
    if gpus > len(visible):
        raise ValueError(f"gpus: {gpus}, but {len(visible)} GPU(s) are visible "
                         f"({','.join(visible) or 'none'}, from CUDA_VISIBLE_DEVICES or the driver): "
                         f"set --config gpus={len(visible)} or fewer, or leave gpus unset")
    # `--config gpu_share={train: 4}` passes nested values as strings; the schema allows digits.
    return SlotResources(gpus, {kind: int(share) for kind, share in shares.items()})
