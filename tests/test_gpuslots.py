"""GPU device slots without a GPU: a fake device count, real file locks, real Snakemake plans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from gpuslots import Plan, acquire, plan, visible_gpus
from tests.snakemake_run import ROOT, snakemake

OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 139.8 GiB total)"


def wrapper(lock_dir: Path, *args: str, script: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """`python -m gpuslots run ARGS -- sh -c SCRIPT`, as a rule's shell command runs it."""
    cmd = [sys.executable, "-m", "gpuslots", "run", "--dir", str(lock_dir), *args, "--", "sh", "-c", script]
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.Popen(cmd, env=full_env, text=True, **popen)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" in status.read_text()
    except FileNotFoundError:
        return True


def test_plan_sizes():
    p = Plan(2, {"extract_shard": 1, "train": 8})
    assert (p.units, p.total, p.need("extract_shard"), p.need("train")) == (8, 16, 8, 1)
    assert Plan(1, {"extract_shard": 3, "train": 8}).units == 24  # every share divides the units
    assert "--gpus 2 --share 8 --units 8 --" in p.prefix("train")
    with pytest.raises(KeyError, match="gpu_share: {predict: N}"):
        p.need("predict")
    with pytest.raises(ValueError, match=">= 1"):
        Plan(1, {"train": 0})
    shares = {"extract_shard": 1, "train": "4"}  # --config passes nested values as strings
    assert plan("cuda", 2, shares).need("extract_shard") == 4
    assert plan("cpu", 2, shares) is None and plan("cuda", 0, shares) is None
    assert plan("cuda", None, shares, environ={"CUDA_VISIBLE_DEVICES": ""}) is None
    assert plan("cuda", None, shares, environ={"CUDA_VISIBLE_DEVICES": "2,3"}).total == 8


def test_visible_gpus_follows_cuda_visible_devices():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-1a2b,-1,4"}) == ["GPU-1a2b"]  # CUDA stops at -1
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []


def test_eight_jobs_eight_slots_ninth_waits_killed_slot_reclaimed(tmp_path):
    """2 devices x 4 slots: 8 concurrent jobs get 8 distinct (device, slot) pairs, a 9th waits,
    and when one holder is SIGKILLed its command stops and the 9th gets the freed slot."""
    locks, out = tmp_path / "locks", tmp_path / "out"
    out.mkdir()
    script = 'echo "$CUDA_VISIBLE_DEVICES $DMMS_GPU_SLOT $DMMS_GPU_SHARE $$" > "$OUT/$JOB"; exec sleep 60'
    procs = []
    try:
        for job in range(8):
            procs.append(wrapper(locks, "--kind", "train", "--gpus", "2", "--share", "4", script=script,
                                 env={"OUT": str(out), "JOB": str(job)}, stderr=subprocess.PIPE))
        wait_for(lambda: len(list(out.iterdir())) == 8, 30, "8 jobs to start")
        seen = {job: (out / str(job)).read_text().split() for job in range(8)}
        pairs = {(gpu, slot) for gpu, slot, _, _ in seen.values()}
        assert pairs == {(g, f"{g}:{s}") for g in "01" for s in "0123"}
        assert {share for _, _, share, _ in seen.values()} == {"4"}

        procs.append(wrapper(locks, "--kind", "train", "--gpus", "2", "--share", "4", script=script,
                             env={"OUT": str(out), "JOB": "8"}, stderr=subprocess.PIPE))
        time.sleep(1.5)
        assert not (out / "8").exists() and procs[8].poll() is None  # waiting, not failed

        victim = 3
        procs[victim].send_signal(signal.SIGKILL)  # the wrapper only: no cleanup code runs
        wait_for(lambda: gone(int(seen[victim][3])), 10, "the killed job's command to stop")
        wait_for(lambda: (out / "8").exists() and (out / "8").read_text().strip(), 10, "the 9th job")
        assert (out / "8").read_text().split()[:2] == seen[victim][:2]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    stderr = procs[0].stderr.read()
    gpu, slot = seen[0][0], seen[0][1].split(":")[1]  # the 8 jobs race for slots: job 0's own pair
    assert f"train on GPU {gpu} (CUDA_VISIBLE_DEVICES={gpu}), slot(s) {slot} of 4" in stderr


def test_best_fit_and_whole_device_waiter_is_not_starved(tmp_path):
    gpus = ["0", "1"]
    a = acquire(gpus, 4, 1, tmp_path)
    b = acquire(gpus, 4, 1, tmp_path)
    assert (a.gpu, b.gpu) == ("0", "0")  # packed onto one device...
    whole = acquire(gpus, 4, 4, tmp_path, timeout=1)
    assert whole.gpu == "1" and whole.slots == [0, 1, 2, 3]  # ...so another stays whole
    got = []
    waiter = threading.Thread(target=lambda: got.append(acquire(gpus, 4, 4, tmp_path, poll=0.05)))
    waiter.start()
    time.sleep(0.3)
    # the waiter has reserved device 0 (2 of 4 free): a single-slot job may not take it meanwhile
    with pytest.raises(TimeoutError, match="no 1 free slot"):
        acquire(gpus, 4, 1, tmp_path, poll=0.05, timeout=0.5)
    a.release()
    b.release()
    waiter.join(10)
    assert got and got[0].gpu == "0" and got[0].share == 1
    for h in (got[0], whole):
        h.release()
    assert acquire(gpus, 4, 1, tmp_path, timeout=1).gpu == "0"


def test_out_of_memory_while_sharing_says_lower_the_share(tmp_path):
    script = f'echo "{OOM}" >&2; exit 1'
    run = wrapper(tmp_path, "--kind", "train", "--gpus", "1", "--share", "8", "--no-retry-alone",
                  script=script, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == 1
    assert OOM in stderr  # the child's own output still reaches the log
    assert "lower gpu_share.train (now 8)" in stderr and "gpu_share={train: 4}" in stderr


def test_out_of_memory_retried_once_alone(tmp_path):
    """The retry holds all 8 slots of the device (DMMS_GPU_SHARE=1); this child only fits alone."""
    script = f'if [ "$DMMS_GPU_SHARE" != 1 ]; then echo "{OOM}" >&2; exit 1; fi; echo "alone on $DMMS_GPU_SLOT"'
    run = wrapper(tmp_path, "--kind", "train", "--gpus", "1", "--share", "8", script=script,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = run.communicate(timeout=30)
    assert run.returncode == 0, stderr
    assert stdout.strip() == "alone on 0:0,1,2,3,4,5,6,7"
    assert "running it once more alone" in stderr and "lower gpu_share.train" in stderr


def test_other_failures_pass_through_unchanged(tmp_path):
    run = wrapper(tmp_path, "--kind", "train", "--gpus", "1", "--share", "8",
                  script='echo "ValueError: bad store" >&2; exit 3', stderr=subprocess.PIPE)
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == 3 and "ValueError: bad store" in stderr
    assert "out of GPU memory" not in stderr and "once more" not in stderr


def test_inside_slurm_job_the_wrapper_stays_out_of_the_way(tmp_path):
    run = wrapper(tmp_path, "--kind", "train", "--gpus", "2", "--share", "8", script='echo "$CUDA_VISIBLE_DEVICES"',
                  env={"SLURM_JOB_ID": "123", "CUDA_VISIBLE_DEVICES": "5"}, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    stdout, stderr = run.communicate(timeout=30)
    assert run.returncode == 0 and stdout.strip() == "5"
    assert "no slot binding (SLURM job 123" in stderr and not (tmp_path / "alloc.lock").exists()


def resources(output: str) -> dict[str, set[str]]:
    """{rule: the set of `resources:` lines of its jobs} from a printed plan."""
    found, rule = {}, None
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("resources:") and rule:
            found.setdefault(rule, set()).add(line.split("resources:")[1].strip())
    return found


def test_dry_run_with_two_gpus_requests_slots(tmp_path):
    plan_run = snakemake(tmp_path / "work", "-n", "--config", "device=cuda", "gpus=2",
                         "--", "results/demo_table.csv", timeout=300)
    assert plan_run.returncode == 0, plan_run.stdout[-3000:] + plan_run.stderr[-3000:]
    res = resources(plan_run.stdout)
    assert all("gpu=1, gpu_slots=8" in r for r in res["extract_shard"])  # a whole device
    assert all("gpu=1, gpu_slots=1" in r for r in res["train"])  # 8 per device
    assert not any("gpu_slots" in r for r in res["merge_shards"] | res["manifest"])
    shells = [line.removeprefix("Shell command: ") for line in plan_run.stdout.splitlines()
              if "python -m model train" in line]
    assert shells and all(s.startswith("python -m gpuslots run --kind train --gpus 2 --share 8 --units 8 -- "
                                       "python -m model train") for s in shells)


def test_cpu_plan_is_unchanged(tmp_path):
    plan_run = snakemake(tmp_path / "work", "-n", "--", "results/demo_table.csv", timeout=300)
    assert plan_run.returncode == 0, plan_run.stdout[-3000:] + plan_run.stderr[-3000:]
    assert "gpuslots" not in plan_run.stdout and "python -m model train" in plan_run.stdout
    assert all("gpu=0, gpu_slots=0" in r for r in resources(plan_run.stdout)["train"])


def test_run_sets_the_global_slot_limit(tmp_path):
    """A real (touch) run: the workflow itself provides gpu_slots = gpus x units, no --resources."""
    run = snakemake(tmp_path / "work", "--touch", "--cores", "1", "--config", "device=cuda", "gpus=2",
                    "gpu_share={train: 4}", "--", "results/demo_table.csv", timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout + run.stderr
    assert 'gpu_slots=Resource("gpu_slots", 8)' in out  # 2 GPUs x lcm(1, 4) units
    res = resources(out)
    assert all("gpu_slots=4" in r.split(", ") for r in res["extract_shard"])
    assert all("gpu_slots=1" in r.split(", ") for r in res["train"])


def test_slurm_profile_requests_gpus_not_slots(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"demo": {"compose": {"n": 12, "seed": 3}}}}))
    plan_run = snakemake(tmp_path / "work", "-n", "--profile", str(ROOT / "profiles/slurm"),
                         "results/demo_table.csv", configfile=config, timeout=300)
    assert plan_run.returncode == 0, plan_run.stdout[-3000:] + plan_run.stderr[-3000:]
    res = resources(plan_run.stdout)
    assert res["train"] and all("gpu=1" in r and "gpu_slots=0" in r for r in res["train"])
    assert "gpuslots" not in plan_run.stdout
