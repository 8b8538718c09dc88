"""Run one command bound to a device slot; catch a GPU out-of-memory caused by sharing.

The child gets CUDA_VISIBLE_DEVICES (its one device), DMMS_GPU_SHARE (how many jobs may share the
device with it, itself included) and DMMS_GPU_SLOT (`ID:NEED/UNITS`, its part of the device). Its stdout and stderr pass
through unchanged (into the rule's log) and are scanned for torch's out-of-memory messages. On
such a failure while sharing, the wrapper says to lower the share and, unless told not to, runs
the command once more holding the whole device.

The command holds its slot too: it inherits the descriptor of the slot's lock (gpuslots/slots.py),
so the slot is free only when the wrapper and the command's whole process tree are gone. A
killed wrapper (SIGKILL, which runs no code) cannot release the slot early, nor can it kill the
tree reliably (only its direct child is told, by PR_SET_PDEATHSIG, and a stopped child does not
act on it): the kernel's count of the lock's holders is the one record that stays true.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from gpuslots.slots import Holding, acquire, device_ids, lock_dir

# What torch prints when the caching allocator or a CUDA call cannot get device memory.
OOM_MARKERS = (b"CUDA out of memory", b"OutOfMemoryError", b"CUDA error: out of memory",
               b"CUBLAS_STATUS_ALLOC_FAILED")


def say(text: str) -> None:
    print(f"gpuslots: {text}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the wrapper dies (even by SIGKILL), so a killed job
    asks its command to end (its slot stays held until the command's whole tree is gone)."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (AttributeError, OSError):
        return  # not Linux: the child outlives a killed wrapper
    if os.getppid() != parent:
        os._exit(1)


def _pump(src, dst, seen: threading.Event) -> None:
    """Copy a pipe to `dst` as it comes; set `seen` when an out-of-memory marker passes."""
    tail = b""
    while chunk := src.read1(65536):
        dst.write(chunk)
        dst.flush()
        window = tail + chunk
        if any(m in window for m in OOM_MARKERS):
            seen.set()
        tail = window[-64:]


def run_child(command: list[str], env: dict[str, str], holding: Holding | None = None) -> tuple[int, bool]:
    """(exit status, whether it printed an out-of-memory message). Signals sent to the wrapper
    (Snakemake cancelling the job) are passed on to the child. The child inherits `holding`'s lock."""
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    keep = () if holding is None or holding.fd is None else (holding.fd,)
    try:
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 preexec_fn=preexec, pass_fds=keep)
    except OSError as err:
        say(f"cannot start {command[0]!r}: {err}")
        return 127, False
    if holding is not None:
        holding.note_command(child.pid)
    forward = {s: signal.signal(s, lambda sig, _: child.send_signal(sig))
               for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    seen = threading.Event()
    pumps = [threading.Thread(target=_pump, args=(child.stdout, sys.stdout.buffer, seen)),
             threading.Thread(target=_pump, args=(child.stderr, sys.stderr.buffer, seen))]
    for t in pumps:
        t.start()
    for t in pumps:
        t.join()
    code = child.wait()
    for s, handler in forward.items():
        signal.signal(s, handler)
    return (128 - code if code < 0 else code), seen.is_set()


def _env(holding: Holding) -> dict[str, str]:
    return dict(os.environ, CUDA_VISIBLE_DEVICES=holding.gpu, DMMS_GPU_SHARE=str(holding.share),
                DMMS_GPU_SLOT=f"{holding.gpu}:{holding.need}/{holding.units}")


def default_dir() -> Path:
    """The machine's lock folder; inside a SLURM allocation a subfolder per allocation, whose
    devices are numbered from 0 again (two allocations on one node must not block each other)."""
    job = os.environ.get("SLURM_JOB_ID")
    return lock_dir() / f"slurm-{job}" if job else lock_dir()


def _bind(gpus: list[str], units: int, need: int, kind: str, folder: Path, timeout: float | None,
          job: str) -> Holding:
    started = time.monotonic()
    holding = acquire(gpus, units, need, folder, kind=kind, timeout=timeout, say=say, job=job)
    waited = time.monotonic() - started
    say(f"{kind} on GPU {holding.gpu} (CUDA_VISIBLE_DEVICES={holding.gpu}), {need}/{units} of it, "
        f"shared by up to {holding.share} job(s); waited {waited:.1f} s")
    return holding


def job_name(command: list[str]) -> str:
    """The job as waiters name it when the rule did not (`--job`): its command, shortened."""
    text = " ".join(command)
    return text if len(text) <= 80 else text[:77] + "..."


def run(command: list[str], kind: str, gpus: int, share: int, units: int | None = None,
        folder: Path | None = None, retry_alone: bool = True, timeout: float | None = None,
        job: str = "") -> int:
    """Run `command` on a 1/`share` part of one of `gpus` devices; its exit status.

    The devices are the first `gpus` visible ones (CUDA_VISIBLE_DEVICES; inside a SLURM
    allocation, the allocation's own). No binding at all with gpus 0 (the command just runs).
    `job` names the job in other jobs' waiting messages (the rules pass their output).
    """
    if not command:
        raise ValueError("no command to run: put it after `--`")
    if gpus == 0:
        say(f"{kind}: no device binding (gpus 0)")
        code, _ = run_child(command, dict(os.environ))
        return code
    units = units or share
    if share < 1 or units % share:
        raise ValueError(f"--units ({units}) must be a multiple of --share ({share})")
    ids = device_ids(gpus)
    folder = default_dir() if folder is None else folder
    job = job or job_name(command)
    holding = _bind(ids, units, units // share, kind, folder, timeout, job)
    try:
        code, oom = run_child(command, _env(holding), holding)
    finally:
        holding.release()
    if code == 0 or not oom:
        return code
    if holding.share == 1:
        say(f"{kind} ran out of GPU memory alone on GPU {holding.gpu}: sharing is not the cause; "
            "the job itself needs less memory (smaller batch_size or max_elements)")
        return code
    advice = (f"lower gpu_share.{kind} (now {share}), e.g. snakemake ... --config "
              f"'gpu_share={{{kind}: {max(1, share // 2)}}}', or run it alone")
    if not retry_alone:
        say(f"{kind} ran out of GPU memory on GPU {holding.gpu}, which up to {holding.share} jobs "
            f"share: {advice}")
        return code
    say(f"{kind} ran out of GPU memory on GPU {holding.gpu}, which up to {holding.share} jobs "
        f"share; running it once more alone on a whole device. To avoid this: {advice}")
    holding = _bind(ids, units, units, kind, folder, timeout, job)
    try:
        code, oom = run_child(command, _env(holding), holding)
    finally:
        holding.release()
    if code != 0 and oom:
        say(f"{kind} ran out of GPU memory again, alone on GPU {holding.gpu}: the job itself needs "
            "less memory (smaller batch_size or max_elements)")
    return code
