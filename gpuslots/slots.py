"""Parts of GPU devices held through lock files shared by the whole machine; the visible devices.

A job holds `need` of a device's `units` (a part `need/units`) for its whole life. Parts are
compared as fractions, so jobs planned with different `units` (runs with another gpu_share) see
each other. Layout of the lock folder (default `/tmp/gpuslots`, one per machine and every user of
it; GPUSLOTS_DIR overrides it; made mode 1777, like /tmp):

    alloc.lock                  held for the instant of choosing a device: one chooser at a time
    gpu{ID}.{PID}.{N}.hold      one per holder, flock-ed for the job's life; JSON: pid, kind,
                                job, part [need, units], since (epoch seconds), command (its pid)
    gpu{ID}.{PID}.{N}.reserve   one per job waiting for more than one unit, flock-ed while it
                                waits: nobody else starts on that device meanwhile, so it drains
                                for the waiter; JSON as above

Several users, one folder. Every file is made by one process under a name nobody else uses (its
pid and a serial; `O_CREAT | O_EXCL`, another name tried when a dead job's file has it), made
mode 0644 whatever the umask, and written by its maker only; `alloc.lock` is made under a private
name and linked into place. Everyone else opens a file read-only and without O_CREAT, which is
all flock needs. So no process writes, or opens with O_CREAT, a file another user owns: hosts
with `fs.protected_regular >= 1` (O_CREAT of another user's file in a sticky world-writable
folder is refused, root included) work. A user removes the files of their own dead jobs; another
user's are ignored (a sticky folder lets only their owner remove them).

A holder's lock lives as long as its command: the wrapper passes the `.hold` file's descriptor
to the command, and flock belongs to that one open file, which every process of the command's
tree shares (children inherit it). The kernel drops the lock when the last of them is gone,
however they end (SIGKILL included), and not before: SIGKILL of the wrapper alone, or of a
stopped wrapper and command, leaves the device held until the command is gone too. (A
descendant that closes the descriptors it inherits, as daemons and Python's `subprocess` do, is
not counted.) A `.hold` file nobody holds is a dead job's and is ignored (and removed).

Placement: a job goes to the least-loaded device with room for it (sharing jobs spread over
every GPU). One that finds no room and needs more than one unit (or a whole device) reserves the
least-loaded device not reserved by another waiter, moves its reservation (dropping the old one)
when another device becomes less loaded, takes whichever device has room first (so no device
stays reserved while another is free), and drops its reservation as soon as it holds a device.
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


class LockFolderError(RuntimeError):
    """The lock folder, or a file in it, cannot be used by this user; the message says how to fix it."""


def _folder_problem(folder: Path, err: OSError, what: str) -> LockFolderError:
    try:
        st = folder.stat()
        mode = f"owner uid {st.st_uid}, mode {st.st_mode & 0o7777:o}"
    except OSError:
        mode = "cannot be read"
    return LockFolderError(f"cannot {what} in the lock folder {folder} ({mode}; {err.strerror}): every user of "
                           f"the machine needs to create files there: `chmod 1777 {folder}` (as its owner), or set "
                           "GPUSLOTS_DIR to a folder of your own (then jobs of other users are not seen)")


_serial = itertools.count()


def _create(folder: Path, stem: str, suffix: str) -> tuple[Path, int]:
    """A new file of ours, `{stem}.{PID}.{N}{suffix}`, open read-write, mode 0644: O_EXCL, so a
    name that exists (another user's dead job with our pid) is never opened, another is tried."""
    while True:
        path = folder / f"{stem}.{os.getpid()}.{next(_serial)}{suffix}"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        except PermissionError as err:
            raise _folder_problem(folder, err, "create files") from None
        os.fchmod(fd, 0o644)  # readable by every user whatever the umask: flock needs an open fd
        return path, fd


def _open_shared(path: Path) -> int:
    """A read-only fd of the file every user shares (`alloc.lock`), made when missing: under a
    private name, mode 0644, then linked into place, so it is never seen unreadable and an
    existing one is never opened with O_CREAT."""
    while True:
        try:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
        except PermissionError as err:
            raise LockFolderError(f"cannot read {path} ({err.strerror}): it was made by another program or "
                                  f"an older gpuslots; its owner can `chmod 644 {path}` or remove it") from None
        private, fd = _create(path.parent, f".{path.name}", ".new")
        try:
            os.link(private, path)
        except FileExistsError:
            os.close(fd)  # another process made it first: open theirs
            fd = None
        finally:
            private.unlink()
        if fd is not None:
            return fd


def _is_held(path: Path) -> bool:
    """Whether a live process holds the lock of an existing `path` (a dead one's file is removed
    when we may)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, PermissionError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    try:
        path.unlink()  # nobody holds it: its job is gone
    except OSError:
        pass  # another user's file in a sticky folder: ignored all the same
    return False


def _write_info(fd: int, info: dict) -> None:
    """Replace a file's JSON through our own fd (written before truncating: never empty)."""
    data = json.dumps(info).encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def process_state(pid: int) -> str | None:
    """'stopped', 'running' or None (no such process, a zombie, or no /proc to ask)."""
    if pid <= 0:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state = stat.rpartition(")")[2].split()[:1]
    if not state or state[0] in ("Z", "X"):
        return None
    return "stopped" if state[0] in ("T", "t") else "running"


@dataclass
class Holder:
    """A live holder (or waiter) of a device, as its lock file says."""

    gpu: str
    pid: int  # the wrapper's
    kind: str
    part: Fraction
    since: float
    job: str = ""  # what the job makes (the rule's output), or its command
    command: int = 0  # the command's pid, once started

    @classmethod
    def from_file(cls, gpu: str, path: Path) -> "Holder":
        info = _read(path)
        need, units = info.get("part", (1, 1))
        return cls(gpu, info.get("pid", 0), info.get("kind", "?"), Fraction(need, units), info.get("since", 0.0),
                   info.get("job", ""), info.get("command", 0))

    def describe(self) -> str:
        """`train results/.../metrics.json (1/8 of it, pid 12, stopped) since 10:02:03`."""
        when = time.strftime("%H:%M:%S", time.localtime(self.since))
        wrapper, command = process_state(self.pid), process_state(self.command)
        who = f"pid {self.pid}"
        if wrapper is None and command is not None:
            who = f"pid {self.command}, its wrapper pid {self.pid} gone"
        elif wrapper is None and self.command:
            who = f"wrapper pid {self.pid} and command pid {self.command} gone, a process they started runs on"
        if "stopped" in (wrapper, command):
            who += ", stopped"
        label = f"{self.kind} {self.job}" if self.job else self.kind
        return f"{label} ({self.part} of it, {who}) since {when}"


def _live(folder: Path, gpu: str, suffix: str, skip: Path | None = None) -> list[Holder]:
    """Live holders (`.hold`) or reservers (`.reserve`) of one device, but `skip` (our own)."""
    return [Holder.from_file(gpu, path) for path in sorted(folder.glob(f"gpu{_safe(gpu)}.*{suffix}"))
            if path != skip and _is_held(path)]


@dataclass
class Holding:
    """A part of one device held by this process (and the command it passes `fd` to) until
    `release()`, or until all of them have exited."""

    device: int  # index into the devices handed out
    gpu: str  # its CUDA_VISIBLE_DEVICES value
    need: int  # units held
    units: int  # units per device
    path: Path | None = field(default=None, repr=False)
    fd: int | None = field(default=None, repr=False)
    info: dict = field(default_factory=dict, repr=False)

    @property
    def share(self) -> int:
        """How many jobs holding as much fit on the device (DMMS_GPU_SHARE)."""
        return self.units // self.need

    def note_command(self, pid: int) -> None:
        """Record the command's pid (named by waiters once the wrapper is gone)."""
        if self.fd is not None:
            self.info["command"] = pid
            _write_info(self.fd, self.info)

    def release(self) -> None:
        """Close our descriptor; the file goes when nobody holds it any more (a process of the
        command that outlived it keeps the part held)."""
        if self.fd is None:
            return
        os.close(self.fd)
        self.fd = None
        _is_held(self.path)  # removes it unless a leftover process of the command holds it


class _Mutex:
    def __init__(self, folder: Path):
        self.path = folder / "alloc.lock"

    def __enter__(self):
        self.fd = _open_shared(self.path)
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


def _survey(folder: Path, gpus: list[str], mine: Path | None) -> list[_Device]:
    """Every device's holders and reservation by another process (`mine`: our own reserve file)."""
    return [_Device(k, gpu, _live(folder, gpu, ".hold"), next(iter(_live(folder, gpu, ".reserve", mine)), None))
            for k, gpu in enumerate(gpus)]


def _locked_file(folder: Path, device: _Device, suffix: str, info: dict) -> tuple[Path, int]:
    """A new file of ours for `device`, flock-ed, holding `info`; made under the mutex, so nobody
    looks at it before it is locked."""
    path, fd = _create(folder, f"gpu{_safe(device.gpu)}", suffix)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _write_info(fd, info)
    return path, fd


@dataclass
class _Reservation:
    device: int
    path: Path
    fd: int

    def drop(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)


def _least_loaded(devices: list[_Device]) -> _Device | None:
    return min(devices, key=lambda d: (d.used, d.index), default=None)


def who_holds(devices: list[_Device]) -> str:
    parts = []
    for d in devices:
        who = "; ".join(h.describe() for h in d.holders) or "nobody"
        reserved = f"; reserved by {d.reserver.describe()}" if d.reserver else ""
        parts.append(f"GPU {d.gpu}: {who}{reserved}")
    return " | ".join(parts)


def shared_folder(folder: Path) -> None:
    """Make `folder` and every missing folder above it mode 1777 (one folder for every user:
    inside a SLURM allocation, /tmp/gpuslots holds a subfolder per allocation)."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        try:
            made.mkdir(exist_ok=True)
        except PermissionError as err:
            raise _folder_problem(made.parent, err, "make a folder") from None
        try:
            made.chmod(0o1777)
        except OSError:
            pass  # made by another user meanwhile: theirs to set


def acquire(gpus: list[str], units: int, need: int, folder: Path | None = None, kind: str = "job",
            poll: float = 0.5, timeout: float | None = None, report_every: float = 60.0,
            say: Callable[[str], None] | None = None, job: str = "") -> Holding:
    """Wait for `need` of the `units` of one of `gpus` and hold them.

    Every `report_every` seconds of waiting, `say` is told who holds the devices (their jobs,
    pids, since when, whether stopped). Raises TimeoutError after `timeout` seconds (None: wait
    as long as it takes). `job` names this job in others' messages (the rule's output).
    """
    if not gpus:
        raise ValueError("no GPU to hand out: give at least one device (gpus >= 1)")
    if not 1 <= need <= units:
        raise ValueError(f"a job needs between 1 and {units} units of a device, not {need}")
    folder = lock_dir() if folder is None else folder
    shared_folder(folder)
    part = Fraction(need, units)
    info = {"pid": os.getpid(), "kind": kind, "job": job, "part": [need, units], "since": time.time()}
    started = time.monotonic()
    next_report = started + report_every
    reservation: _Reservation | None = None
    label = f"{kind} {job}" if job else kind
    try:
        while True:
            with _Mutex(folder):
                devices = _survey(folder, gpus, None if reservation is None else reservation.path)
                free = [d for d in devices if d.reserver is None and d.used + part <= 1]
                best = _least_loaded(free)
                if best is not None:
                    path, fd = _locked_file(folder, best, ".hold", info)
                    return Holding(best.index, best.gpu, need, units, path, fd, info)
                if need > 1 or need == units:  # more than the smallest part: reserve
                    target = _least_loaded([d for d in devices if d.reserver is None])
                    if target is not None and (reservation is None or
                                               target.used < devices[reservation.device].used):
                        if reservation is not None:
                            reservation.drop()
                            reservation = None
                        path, fd = _locked_file(folder, target, ".reserve", info)
                        reservation = _Reservation(target.index, path, fd)
            now = time.monotonic()
            if timeout is not None and now - started > timeout:
                raise TimeoutError(f"no {part} of a GPU free within {timeout} s: {who_holds(devices)}")
            if say is not None and now >= next_report:
                say(f"{label} has waited {now - started:.0f} s for {part} of a GPU: {who_holds(devices)}")
                next_report = now + report_every
            time.sleep(poll)
    finally:
        if reservation is not None:
            reservation.drop()
