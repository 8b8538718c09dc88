"""Parts of GPU devices held through lock files shared by the whole machine; the visible devices.

A job holds `need` of a device's `units` (a part `need/units`) for its whole life. Parts are
compared as fractions, so jobs planned with different `units` (runs with another gpu_share) see
each other. Layout of the lock folder (default `/tmp/gpuslots`, one per machine; GPUSLOTS_DIR
overrides it):

    alloc.lock                  held for the instant of choosing a device: one chooser at a time
    gpu{ID}.{PID}.{N}.hold      one per holder, flock-ed by it for its life; JSON: pid, kind,
                                part [need, units], since (epoch seconds)
    gpu{ID}.reserve             flock-ed by a job waiting for more than one unit: nobody else
                                starts on that device meanwhile, so it drains for the waiter; JSON
                                as above

flock belongs to the open file: the kernel drops it when its process ends, however it ends
(SIGKILL included). A `.hold` file nobody holds is a dead job's and is ignored (and removed).

Placement: a job goes to the least-loaded device with room for it (sharing jobs spread over
every GPU). One that finds no room and needs more than one unit (or a whole device) reserves the least-loaded device
not reserved by another waiter, moves its reservation when another device becomes less loaded,
and takes whichever device has room first (so no device stays reserved while another is free).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable


def lock_dir(environ: dict[str, str] | None = None) -> Path:
    """The machine's lock folder: $GPUSLOTS_DIR, else /tmp/gpuslots."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("GPUSLOTS_DIR") or "/tmp/gpuslots")


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
    """The first `gpus` visible devices (CUDA_VISIBLE_DEVICES values); an error naming the
    visible ones when fewer are visible."""
    visible = visible_gpus(environ)
    if gpus > len(visible):
        raise ValueError(f"gpus is {gpus} but only {len(visible)} GPU(s) are visible "
                         f"({','.join(visible) or 'none'}; CUDA_VISIBLE_DEVICES or the driver): "
                         f"set gpus to at most {len(visible)}, or leave it unset to use them all")
    return visible[:gpus]


def _safe(gpu: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", gpu)


def _open(path: Path) -> int:
    """A read-only fd (flock needs no write access: folders shared by several users work)."""
    return os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)


def _try_lock(path: Path) -> int | None:
    """An open fd holding an exclusive flock on `path`, or None when someone else holds it."""
    try:
        fd = _open(path)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _write(path: Path, info: dict) -> None:
    with open(path, "w") as f:
        json.dump(info, f)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


@dataclass
class Holder:
    """A live holder (or waiter) of a device, as its lock file says."""

    gpu: str
    pid: int
    kind: str
    part: Fraction
    since: float

    def describe(self) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} ({self.kind}, {self.part} of it) since {when}"


def _holders(folder: Path, gpu: str) -> list[Holder]:
    """Live holders of one device; `.hold` files of dead jobs are removed on the way."""
    live = []
    for path in folder.glob(f"gpu{_safe(gpu)}.*.hold"):
        fd = _try_lock(path)
        if fd is not None:  # nobody holds it: its job is gone
            try:
                path.unlink()
            except OSError:
                pass  # another user's file in a sticky folder: ignored all the same
            os.close(fd)
            continue
        info = _read(path)
        need, units = info.get("part", (1, 1))
        live.append(Holder(gpu, info.get("pid", 0), info.get("kind", "?"), Fraction(need, units),
                           info.get("since", 0.0)))
    return live


def _reserver(folder: Path, gpu: str) -> Holder | None:
    """Who reserves the device (None: nobody, or a dead process)."""
    path = folder / f"gpu{_safe(gpu)}.reserve"
    fd = _try_lock(path)
    if fd is not None:
        os.close(fd)
        return None
    info = _read(path)
    need, units = info.get("part", (1, 1))
    return Holder(gpu, info.get("pid", 0), info.get("kind", "?"), Fraction(need, units), info.get("since", 0.0))


_serial = itertools.count()


@dataclass
class Holding:
    """A part of one device held by this process until `release()` (or until it exits)."""

    device: int  # index into the devices handed out
    gpu: str  # its CUDA_VISIBLE_DEVICES value
    need: int  # units held
    units: int  # units per device
    path: Path | None = field(default=None, repr=False)
    fd: int | None = field(default=None, repr=False)

    @property
    def share(self) -> int:
        """How many jobs holding as much fit on the device (DMMS_GPU_SHARE)."""
        return self.units // self.need

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


class _Mutex:
    def __init__(self, folder: Path):
        self.path = folder / "alloc.lock"

    def __enter__(self):
        self.fd = _open(self.path)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


@dataclass
class _Device:
    index: int
    gpu: str
    holders: list[Holder]
    reserver: Holder | None  # another process's reservation

    @property
    def used(self) -> Fraction:
        return sum((h.part for h in self.holders), Fraction(0))


def _survey(folder: Path, gpus: list[str], mine: int | None) -> list[_Device]:
    """Every device's holders and reservation; the one we reserve ourselves (`mine`) counts as
    not reserved."""
    return [_Device(k, gpu, _holders(folder, gpu), None if k == mine else _reserver(folder, gpu))
            for k, gpu in enumerate(gpus)]


def _hold(folder: Path, device: _Device, need: int, units: int, kind: str) -> Holding:
    path = folder / f"gpu{_safe(device.gpu)}.{os.getpid()}.{next(_serial)}.hold"
    _write(path, {"pid": os.getpid(), "kind": kind, "part": [need, units], "since": time.time()})
    fd = _try_lock(path)  # nobody else looks before we release the mutex
    return Holding(device.index, device.gpu, need, units, path, fd)


def _reserve(folder: Path, device: _Device, need: int, units: int, kind: str) -> int | None:
    path = folder / f"gpu{_safe(device.gpu)}.reserve"
    fd = _try_lock(path)
    if fd is not None:
        _write(path, {"pid": os.getpid(), "kind": kind, "part": [need, units], "since": time.time()})
    return fd


def _least_loaded(devices: list[_Device]) -> _Device | None:
    return min(devices, key=lambda d: (d.used, d.index), default=None)


def who_holds(devices: list[_Device]) -> str:
    parts = []
    for d in devices:
        who = "; ".join(h.describe() for h in d.holders) or "nobody"
        reserved = f"; reserved by {d.reserver.describe()}" if d.reserver else ""
        parts.append(f"GPU {d.gpu}: {who}{reserved}")
    return " | ".join(parts)


def acquire(gpus: list[str], units: int, need: int, folder: Path | None = None, kind: str = "job",
            poll: float = 0.5, timeout: float | None = None, report_every: float = 60.0,
            say: Callable[[str], None] | None = None) -> Holding:
    """Wait for `need` of the `units` of one of `gpus` and hold them.

    Every `report_every` seconds of waiting, `say` is told who holds the devices (pid, kind,
    since when). Raises TimeoutError after `timeout` seconds (None: wait as long as it takes).
    """
    if not gpus:
        raise ValueError("no GPU to hand out: give at least one device (gpus >= 1)")
    if not 1 <= need <= units:
        raise ValueError(f"a job needs between 1 and {units} units of a device, not {need}")
    folder = lock_dir() if folder is None else folder
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            folder.chmod(0o1777)  # one folder for every user of the machine
        except OSError:
            pass
    part = Fraction(need, units)
    started = time.monotonic()
    next_report = started + report_every
    reserved: tuple[int, int] | None = None  # (device index, fd of its reserve file)
    try:
        while True:
            with _Mutex(folder):
                devices = _survey(folder, gpus, None if reserved is None else reserved[0])
                free = [d for d in devices if d.reserver is None and d.used + part <= 1]
                best = _least_loaded(free)
                if best is not None:
                    return _hold(folder, best, need, units, kind)
                if need > 1 or need == units:  # more than the smallest part: reserve
                    target = _least_loaded([d for d in devices if d.reserver is None])
                    if target is not None and (reserved is None or
                                               target.used < devices[reserved[0]].used):
                        fd = _reserve(folder, target, need, units, kind)
                        if fd is not None:
                            if reserved is not None:
                                os.close(reserved[1])
                            reserved = (target.index, fd)
            now = time.monotonic()
            if timeout is not None and now - started > timeout:
                raise TimeoutError(f"no {part} of a GPU free within {timeout} s: {who_holds(devices)}")
            if say is not None and now >= next_report:
                say(f"{kind} has waited {now - started:.0f} s for {part} of a GPU: {who_holds(devices)}")
                next_report = now + report_every
            time.sleep(poll)
    finally:
        if reserved is not None:
            os.close(reserved[1])
