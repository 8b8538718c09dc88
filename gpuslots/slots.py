"""Slots of GPU devices as lock files, and the devices this process can see.

Layout under the lock folder (default `.snakemake/gpuslots/`, beside Snakemake's own state):

    gpu{ID}.slot{S}.lock    one per slot S in 0..units-1 of device ID; held (fcntl.flock, exclusive)
                            by the job using it, for the job's life
    gpu{ID}.reserve.lock    held by a job waiting for several slots of device ID: nobody else
                            takes a slot of that device meanwhile, so the device drains for it
    alloc.lock              held for the instant of choosing slots, so two jobs never each take
                            half of one device and then wait on each other

flock belongs to the open file: the kernel drops it when the last process holding the file ends,
however it ends (SIGKILL included), so no stale lock survives a killed job and no cleanup is needed.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

LOCK_DIR = Path(".snakemake/gpuslots")


def visible_gpus(environ: dict[str, str] | None = None) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES values, found without torch.

    CUDA_VISIBLE_DEVICES when set (its entries up to the first invalid one, as CUDA reads it; ""
    or "-1" means none), else one per `/proc/driver/nvidia/gpus/*` entry, else one per line of
    `nvidia-smi -L`, else none.
    """
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        ids = []
        for entry in environ["CUDA_VISIBLE_DEVICES"].split(","):
            entry = entry.strip()
            if not entry or entry.startswith("-"):
                break
            ids.append(entry)
        return ids
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        count = len(list(proc.iterdir()))
        if count:
            return [str(k) for k in range(count)]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [str(k) for k, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def device_ids(gpus: int, environ: dict[str, str] | None = None) -> list[str]:
    """`gpus` CUDA_VISIBLE_DEVICES values: the first `gpus` visible ones, or 0..gpus-1 when fewer
    are visible (a configured count is trusted over detection, e.g. inside a container)."""
    visible = visible_gpus(environ)
    return visible[:gpus] if len(visible) >= gpus else [str(k) for k in range(gpus)]


def _safe(gpu: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", gpu)


def _try_lock(path: Path) -> int | None:
    """An open fd holding an exclusive flock on `path`, or None when someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _close(fds) -> None:
    for fd in fds:
        os.close(fd)


@dataclass
class Holding:
    """Slots of one device held by this process until `release()` (or until it exits)."""

    device: int  # index into the devices handed out
    gpu: str  # its CUDA_VISIBLE_DEVICES value
    slots: list[int]  # slot indices held, out of `units`
    units: int  # slots per device
    fds: list[int] = field(default_factory=list, repr=False)

    @property
    def share(self) -> int:
        """How many jobs holding as many slots fit on the device (DMMS_GPU_SHARE)."""
        return self.units // len(self.slots)

    def release(self) -> None:
        _close(self.fds)
        self.fds = []


class _Mutex:
    def __init__(self, lock_dir: Path):
        self.path = lock_dir / "alloc.lock"

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def _free_slots(lock_dir: Path, gpu: str, units: int) -> dict[int, int]:
    """{slot: fd} of the free slots of one device, each now locked by us."""
    free = {}
    for slot in range(units):
        fd = _try_lock(lock_dir / f"gpu{_safe(gpu)}.slot{slot}.lock")
        if fd is not None:
            free[slot] = fd
    return free


def _place(lock_dir: Path, gpus: list[str], units: int, need: int, reserved: int | None) -> Holding | None:
    """One attempt, under the mutex: `need` free slots of one device, or None.

    Best fit: the device with the fewest free slots that still fit, so whole devices stay whole
    for jobs that need them. A device reserved by another waiter is skipped; the one we reserved
    ourselves is the only one we take.
    """
    candidates = []
    for device, gpu in enumerate(gpus):
        if reserved is not None and device != reserved:
            continue
        if reserved is None:
            probe = _try_lock(lock_dir / f"gpu{_safe(gpu)}.reserve.lock")
            if probe is None:
                continue
            os.close(probe)
        free = _free_slots(lock_dir, gpu, units)
        if len(free) >= need:
            candidates.append((len(free), device, free))
        else:
            _close(free.values())
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1]))
    _, device, free = candidates[0]
    for _, _, other in candidates[1:]:
        _close(other.values())
    taken = sorted(free)[:need]
    _close(fd for slot, fd in free.items() if slot not in taken)
    return Holding(device, gpus[device], taken, units, [free[s] for s in taken])


def _reserve(lock_dir: Path, gpus: list[str], units: int) -> tuple[int, int] | None:
    """(device, fd of its reserve lock) for the unreserved device with the most free slots."""
    best = None
    for device, gpu in enumerate(gpus):
        fd = _try_lock(lock_dir / f"gpu{_safe(gpu)}.reserve.lock")
        if fd is None:
            continue
        free = _free_slots(lock_dir, gpu, units)
        _close(free.values())
        if best is None or len(free) > best[2]:
            if best is not None:
                os.close(best[1])
            best = (device, fd, len(free))
        else:
            os.close(fd)
    return None if best is None else best[:2]


def acquire(gpus: list[str], units: int, need: int, lock_dir: Path = LOCK_DIR, poll: float = 0.5,
            timeout: float | None = None) -> Holding:
    """Wait for `need` slots of one of `gpus` (each cut into `units` slots) and hold them.

    A job needing more than one slot that cannot be placed reserves the device with the most free
    slots and waits for it to drain, so single-slot jobs arriving later cannot starve it.
    Raises TimeoutError after `timeout` seconds (None: wait as long as it takes).
    """
    if not gpus:
        raise ValueError("no GPU to hand out: give at least one device (gpus >= 1)")
    if not 1 <= need <= units:
        raise ValueError(f"a job needs between 1 and {units} slots of a device, not {need}")
    lock_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    reserved = None  # (device, fd)
    try:
        while True:
            with _Mutex(lock_dir):
                holding = _place(lock_dir, gpus, units, need, None if reserved is None else reserved[0])
                if holding is None and need > 1 and reserved is None:
                    reserved = _reserve(lock_dir, gpus, units)
            if holding is not None:
                return holding
            if timeout is not None and time.monotonic() - started > timeout:
                raise TimeoutError(f"no {need} free slot(s) of one GPU within {timeout} s")
            time.sleep(poll)
    finally:
        if reserved is not None:
            os.close(reserved[1])
