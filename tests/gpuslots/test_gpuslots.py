"""GPU device slots without a GPU: a fake device count, real file locks, real Snakemake plans."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from gpuslots import SlotResources, acquire, lock_dir, resolve_device, slot_resources, visible_gpus
from gpuslots.slots import device_ids
from tests.workflow.snakemake_run import ROOT, job_counts, snakemake

OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 139.8 GiB total)"


def wrapper(lock_dir: Path, *args: str, script: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """`python -m gpuslots run ARGS -- sh -c SCRIPT`, as a rule's shell command runs it (one fake GPU
    visible unless `env` says otherwise)."""
    cmd = [sys.executable, "-m", "gpuslots", "run", "--dir", str(lock_dir), *args, "--", "sh", "-c", script]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "0", **(env or {})}
    return subprocess.Popen(cmd, env=full_env, text=True, **popen)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def recorded_command(lock_dir: Path) -> int:
    """The command pid that the (one) live hold file of `lock_dir` records; 0 before the wrapper
    has written it (it does so just after starting the command, which may run first)."""
    for path in lock_dir.glob("gpu*.hold"):
        try:
            return int(json.loads(path.read_text() or "{}").get("command", 0))
        except (OSError, ValueError):
            return 0
    return 0


def gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" in status.read_text()
    except FileNotFoundError:
        return True


def test_slot_resource_sizes():
    p = SlotResources(2, {"extract_shard": 1, "train": 8})
    assert (p.units, p.total, p.limit, p.need("extract_shard"), p.need("train")) == (8, 16, 24, 8, 1)
    assert (p.shared("extract_shard"), p.shared("train")) == (0, 1)  # whole devices never count
    assert SlotResources(1, {"extract_shard": 3, "train": 8}).units == 24  # every share divides the units
    assert "--gpus 2 --share 8 --units 8 --" in p.prefix("train")
    assert p.prefix("train", job="runs/a b/metrics.json").endswith(" --units 8 --job 'runs/a b/metrics.json' -- ")
    with pytest.raises(KeyError, match="gpu_share: {predict: N}"):
        p.need("predict")
    with pytest.raises(ValueError, match=">= 1"):
        SlotResources(1, {"train": 0})
    shares = {"extract_shard": 1, "train": "4"}  # --config passes nested values as strings
    two = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert slot_resources("cuda", 2, shares, environ=two).need("extract_shard") == 4
    assert slot_resources("cpu", 2, shares, environ=two) is None
    assert slot_resources("cuda", 0, shares, environ=two) is None
    assert slot_resources("cuda", None, shares, environ={"CUDA_VISIBLE_DEVICES": ""}) is None
    assert slot_resources("cuda", None, shares, environ={"CUDA_VISIBLE_DEVICES": "2,3"}).total == 8
    with pytest.raises(ValueError, match=r"gpus: 3, but 2 GPU\(s\) are visible \(2,3"):
        slot_resources("cuda", 3, shares, environ={"CUDA_VISIBLE_DEVICES": "2,3"})


def test_device_auto_follows_the_visible_gpus():
    assert resolve_device("auto", {"CUDA_VISIBLE_DEVICES": "0,1"}) == "cuda"
    assert resolve_device("auto", {"CUDA_VISIBLE_DEVICES": ""}) == "cpu"
    assert resolve_device("cpu", {"CUDA_VISIBLE_DEVICES": "0"}) == "cpu"
    assert resolve_device("cuda", {"CUDA_VISIBLE_DEVICES": ""}) == "cuda"


def test_visible_gpus_follows_cuda_visible_devices():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-1a2b,-1,4"}) == ["GPU-1a2b"]  # CUDA stops at -1
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []


def test_gpus_never_exceed_the_visible_devices():
    assert device_ids(2, {"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert device_ids(1, {"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2"]
    with pytest.raises(ValueError, match=r"gpus is 3 but only 2 GPU\(s\) are visible \(2,3"):
        device_ids(3, {"CUDA_VISIBLE_DEVICES": "2,3"})


def test_lock_folder_is_the_machines():
    assert lock_dir({}) == Path("/tmp/gpuslots")  # not under the working directory
    assert lock_dir({"GPUSLOTS_DIR": "/x/y"}) == Path("/x/y")


def test_eight_jobs_two_gpus_spread_ninth_waits_killed_holder_reclaimed(tmp_path):
    """2 devices shared 4 ways: 8 concurrent jobs go 4 and 4, a 9th waits, and when one holder
    is SIGKILLed its command stops and the 9th takes its place."""
    locks, out = tmp_path / "locks", tmp_path / "out"
    out.mkdir()
    script = 'echo "$CUDA_VISIBLE_DEVICES $DMMS_GPU_SLOT $DMMS_GPU_SHARE $$" > "$OUT/$JOB"; exec sleep 60'
    procs = []
    two = {"CUDA_VISIBLE_DEVICES": "0,1"}
    try:
        for job in range(8):
            procs.append(wrapper(locks, "--kind", "train", "--gpus", "2", "--share", "4", "--units", "8",
                                 script=script, env={"OUT": str(out), "JOB": str(job), **two},
                                 stderr=subprocess.PIPE))
        wait_for(lambda: len(list(out.iterdir())) == 8, 30, "8 jobs to start")
        seen = {job: (out / str(job)).read_text().split() for job in range(8)}
        gpus = [gpu for gpu, _, _, _ in seen.values()]
        assert sorted(gpus) == ["0"] * 4 + ["1"] * 4
        assert {slot for _, slot, _, _ in seen.values()} == {"0:2/8", "1:2/8"}  # 2 of --units 8
        assert {share for _, _, share, _ in seen.values()} == {"4"}

        procs.append(wrapper(locks, "--kind", "train", "--gpus", "2", "--share", "4", "--units", "8",
                             script=script, env={"OUT": str(out), "JOB": "8", **two}, stderr=subprocess.PIPE))
        time.sleep(1.5)
        assert not (out / "8").exists() and procs[8].poll() is None  # waiting, not failed

        victim = 3
        procs[victim].send_signal(signal.SIGKILL)  # the wrapper only: no cleanup code runs
        wait_for(lambda: gone(int(seen[victim][3])), 10, "the killed job's command to stop")
        wait_for(lambda: (out / "8").exists() and (out / "8").read_text().strip(), 10, "the 9th job")
        assert (out / "8").read_text().split()[0] == seen[victim][0]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    stderr = procs[0].stderr.read()
    gpu = seen[0][0]
    assert f"train on GPU {gpu} (CUDA_VISIBLE_DEVICES={gpu}), 2/8 of it, shared by up to 4 job(s)" in stderr


def test_eight_sharing_jobs_on_eight_gpus_land_on_eight_gpus(tmp_path):
    """Through the CLI, as the rules run it: never packed onto one device."""
    out = tmp_path / "out"
    out.mkdir()
    eight = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, range(8)))}
    procs = [wrapper(tmp_path / "locks", "--kind", "train", "--share", "8", "--units", "8", "--timeout", "20",
                     script='echo "$CUDA_VISIBLE_DEVICES" > "$OUT/$JOB"; exec sleep 30',
                     env={"OUT": str(out), "JOB": str(job), **eight}, stderr=subprocess.DEVNULL)
             for job in range(8)]
    try:
        wait_for(lambda: sum(1 for f in out.iterdir() if f.read_text().strip()) == 8, 30, "8 jobs to start")
        assert sorted(f.read_text().strip() for f in out.iterdir()) == [str(k) for k in range(8)]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_sharing_jobs_go_to_the_least_loaded_gpu(tmp_path):
    gpus = ["0", "1", "2"]
    held = [acquire(gpus, 8, 1, tmp_path, timeout=2) for _ in range(6)]
    assert [h.gpu for h in held] == ["0", "1", "2", "0", "1", "2"]
    held[1].release()
    held[4].release()  # GPU 1 is now the emptiest
    assert acquire(gpus, 8, 1, tmp_path, timeout=2).gpu == "1"


def test_exclusive_job_never_overlaps_another_on_its_gpu(tmp_path):
    """A whole-device job (share 1 of units 8) and sharing jobs on one GPU: never together."""
    one = {"CUDA_VISIBLE_DEVICES": "0"}
    args = ("--gpus", "1", "--units", "8")
    whole = wrapper(tmp_path, "--kind", "extract_shard", "--share", "1", *args, "--job", "features/shards/a/1-of-2.h5",
                    script="echo started; exec sleep 30", env=one, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert whole.stdout.readline().strip() == "started"
        sharer = wrapper(tmp_path, "--kind", "train", "--share", "8", *args, "--timeout", "1.5",
                         script="echo ran", env=one, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = sharer.communicate(timeout=30)
        assert sharer.returncode == 75 and stdout == "", stderr  # it gave up; it never ran
        assert "train sh -c echo ran: no 1/8 of a GPU free within 1.5 s" in stderr  # its command names it
        # who holds the device: its job, as the rule named it
        assert f"GPU 0: extract_shard features/shards/a/1-of-2.h5 (1 of it, pid {whole.pid}) since " in stderr
    finally:
        whole.kill()
        whole.wait()
    # and the other way round: a running sharer keeps the whole-device job out
    sharer = acquire(["0"], 8, 1, tmp_path, timeout=2)
    with pytest.raises(TimeoutError, match="no 1 of a GPU free"):
        acquire(["0"], 8, 8, tmp_path, poll=0.05, timeout=0.5)
    sharer.release()


def test_whole_device_waiter_is_not_starved(tmp_path):
    """A waiting whole-device job reserves the device: sharing jobs arriving later do not start
    on it, and it gets the device when the sharers there finish."""
    gpus = ["0"]
    a = acquire(gpus, 4, 1, tmp_path, timeout=2)
    got = []
    waiter = threading.Thread(target=lambda: got.append(acquire(gpus, 4, 4, tmp_path, poll=0.05, timeout=10)))
    waiter.start()
    time.sleep(0.5)
    with pytest.raises(TimeoutError, match="no 1/4 of a GPU free"):
        acquire(gpus, 4, 1, tmp_path, poll=0.05, timeout=0.5)
    a.release()
    waiter.join(15)
    assert got and got[0].gpu == "0" and got[0].share == 1
    got[0].release()


def reserved_gpus(folder: Path) -> set[str]:
    """The devices a live waiter reserves (its `.reserve` file flock-ed)."""
    held = set()
    for path in folder.glob("gpu*.reserve"):
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.add(path.name[3:].split(".")[0])
        finally:
            os.close(fd)
    return held


def waiting(gpus: list[str], units: int, need: int, folder: Path) -> tuple[threading.Thread, list]:
    """acquire() in a thread (its own open files: its flocks are another holder's); [Holding] once got."""
    got = []
    thread = threading.Thread(target=lambda: got.append(acquire(gpus, units, need, folder, poll=0.05, timeout=10)))
    thread.start()
    return thread, got


def test_reservation_moves_to_the_gpu_that_drains_first(tmp_path):
    """Both devices busy; the waiter reserves one, and takes the other as soon as it is free. Then
    it holds a device and reserves none: the one it had reserved is idle, and a sharing job gets
    it at once (a kept reservation made one wait 14.1 s instead of 0.3 s)."""
    gpus = ["0", "1"]
    a = acquire(gpus, 4, 1, tmp_path, timeout=2)
    b = acquire(gpus, 4, 1, tmp_path, timeout=2)
    assert {a.gpu, b.gpu} == {"0", "1"}
    started = time.monotonic()
    waiter, got = waiting(gpus, 4, 4, tmp_path)
    wait_for(lambda: reserved_gpus(tmp_path), 5, "a reservation")
    reserved = next(h for h in (a, b) if reserved_gpus(tmp_path) == {h.gpu})
    other = b if reserved is a else a
    other.release()  # the device it did not reserve drains first
    waiter.join(15)
    assert got and got[0].gpu == other.gpu and time.monotonic() - started < 3
    assert reserved_gpus(tmp_path) == set()  # dropped once it holds a device
    reserved.release()  # the reserved device is idle now
    started = time.monotonic()
    sharer = acquire(gpus, 4, 1, tmp_path, poll=0.05, timeout=2)
    assert sharer.gpu == reserved.gpu and time.monotonic() - started < 1
    sharer.release()
    got[0].release()


def test_a_waiter_that_got_its_device_does_not_keep_it_reserved(tmp_path):
    """A job needing 2/8 reserves the busy device and gets it; sharing jobs then still join it
    (a reservation kept after getting the device kept them out while 6/8 of it were idle)."""
    whole = acquire(["0"], 8, 8, tmp_path, timeout=2)
    waiter, got = waiting(["0"], 8, 2, tmp_path)
    wait_for(lambda: reserved_gpus(tmp_path) == {"0"}, 5, "the reservation of GPU 0")
    whole.release()
    waiter.join(15)
    assert got and got[0].gpu == "0" and reserved_gpus(tmp_path) == set()
    started = time.monotonic()
    sharer = acquire(["0"], 8, 1, tmp_path, poll=0.05, timeout=2)
    assert time.monotonic() - started < 1
    sharer.release()
    got[0].release()


def test_a_moved_reservation_does_not_keep_the_old_one(tmp_path):
    """GPU 0 at 3/8, GPU 1 at 2/8: a whole-device waiter reserves GPU 1; when GPU 0 falls to 1/8
    it moves there, and GPU 1 (2/8 used) takes sharing jobs again (a kept old reservation left
    both devices reserved and the sharing job waiting)."""
    gpus = ["0", "1"]
    a1 = acquire(gpus, 8, 2, tmp_path, timeout=2)
    b = acquire(gpus, 8, 2, tmp_path, timeout=2)
    a2 = acquire(gpus, 8, 1, tmp_path, timeout=2)
    assert (a1.gpu, b.gpu, a2.gpu) == ("0", "1", "0")
    waiter, got = waiting(gpus, 8, 8, tmp_path)
    wait_for(lambda: reserved_gpus(tmp_path) == {"1"}, 5, "the reservation of GPU 1")
    a1.release()  # GPU 0 at 1/8: less loaded than the reserved GPU 1
    wait_for(lambda: reserved_gpus(tmp_path) == {"0"}, 5, "the reservation to move to GPU 0")
    sharer = acquire(gpus, 8, 1, tmp_path, poll=0.05, timeout=1)
    assert sharer.gpu == "1"
    sharer.release()
    a2.release()
    waiter.join(15)
    assert got and got[0].gpu == "0"
    got[0].release()
    b.release()


def job_script(out: Path, name: str) -> str:
    """Say it started (with its device), then run until the test writes NAME.stop."""
    return f'echo "$CUDA_VISIBLE_DEVICES" > {out}/{name}.ran; while [ ! -e {out}/{name}.stop ]; do sleep 0.05; done'


def test_a_killed_wrapper_keeps_the_gpu_until_its_command_tree_is_gone(tmp_path):
    """SIGKILL of the wrapper of `sh -c 'sleep 30 & wait'`: the sh ends (told by the dying
    wrapper), the sleep runs on, and the GPU stays held until it is gone (the next job got the GPU
    at once while the sleep still ran)."""
    out = tmp_path / "out"
    out.mkdir()
    first = wrapper(tmp_path / "locks", "--kind", "extract_shard", "--job", "features/shards/a/1-of-2.h5",
                    script=f"echo $$ > {out}/sh; sleep 30 & echo $! > {out}/sleep; wait", stderr=subprocess.DEVNULL)
    sleep = None
    try:
        wait_for(lambda: (out / "sleep").exists() and (out / "sleep").read_text().strip(), 10, "the command")
        sleep, command = int((out / "sleep").read_text()), int((out / "sh").read_text())
        wait_for(lambda: recorded_command(tmp_path / "locks") == command, 10, "the wrapper to record the command")
        first.kill()
        first.wait()
        wait_for(lambda: gone(command), 10, "the sh to end (SIGTERM from the dying wrapper)")
        assert not gone(sleep)
        second = wrapper(tmp_path / "locks", "--kind", "extract_shard", "--timeout", "1", script="echo ran",
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = second.communicate(timeout=30)
        assert second.returncode == 75 and stdout == "", stderr
        assert (f"extract_shard features/shards/a/1-of-2.h5 (1 of it, wrapper pid {first.pid} and command pid "
                in stderr and "gone, a process they started runs on)" in stderr), stderr
        os.kill(sleep, signal.SIGKILL)
        wait_for(lambda: gone(sleep), 10, "the sleep to end")
        third = wrapper(tmp_path / "locks", "--kind", "extract_shard", "--timeout", "10", script="echo ran",
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert third.communicate(timeout=30)[0].strip() == "ran" and third.returncode == 0
    finally:
        first.kill()
        first.wait()
        if sleep is not None and not gone(sleep):
            os.kill(sleep, signal.SIGKILL)


def test_a_wrapper_killed_while_stopped_with_its_command_keeps_the_gpu(tmp_path):
    """Wrapper and command stopped together (SIGSTOP to the job's process group), then the wrapper
    SIGKILLed: the stopped command still holds the GPU, and the waiter says it is stopped."""
    out = tmp_path / "out"
    out.mkdir()
    first = wrapper(tmp_path / "locks", "--kind", "extract_shard", "--job", "features/shards/b/1-of-1.h5",
                    script=f"echo $$ > {out}/sh; sleep 30; true", stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: (out / "sh").exists() and (out / "sh").read_text().strip(), 10, "the command")
        command = int((out / "sh").read_text())
        wait_for(lambda: recorded_command(tmp_path / "locks") == command, 10, "the wrapper to record the command")
        os.killpg(first.pid, signal.SIGSTOP)
        wait_for(lambda: "State:\tT" in Path(f"/proc/{command}/status").read_text(), 10, "the command to stop")
        first.kill()
        first.wait()
        second = wrapper(tmp_path / "locks", "--kind", "train", "--share", "8", "--timeout", "1", "--job", "runs/x",
                         script="echo ran", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = second.communicate(timeout=30)
        assert second.returncode == 75 and stdout == "", stderr
        assert "gpuslots: train runs/x: no 1/8 of a GPU free within 1.0 s" in stderr
        assert (f"extract_shard features/shards/b/1-of-1.h5 (1 of it, pid {command}, its wrapper pid {first.pid} "
                "gone, stopped) since ") in stderr
        os.killpg(first.pid, signal.SIGKILL)
        wait_for(lambda: gone(command), 10, "the command to end")
        third = wrapper(tmp_path / "locks", "--kind", "train", "--share", "8", "--timeout", "10", script="echo ran",
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert third.communicate(timeout=30)[0].strip() == "ran" and third.returncode == 0
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        first.wait()


USERS = (52001, 52002)  # two users of the machine (setpriv), neither owning the lock folder


def as_user(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


@pytest.fixture
def users_folder():
    """A folder every user can reach: gpuslots (standalone) and the fs.protected_regular=1 shim
    as sitecustomize on `pkg/`, `locks/` made by root mode 1777 (as /tmp), `out/` for the jobs;
    and a Python the other users may run."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run jobs as two other users (CI runs as root)")
    base = Path(tempfile.mkdtemp(prefix="gpuslots-users-", dir="/tmp"))
    try:
        base.chmod(0o755)
        shutil.copytree(ROOT / "gpuslots", base / "pkg/gpuslots", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(Path(__file__).with_name("protected_regular.py"), base / "pkg/sitecustomize.py")
        for name in ("locks", "out"):
            (base / name).mkdir()
            (base / name).chmod(0o1777)
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(base / "pkg"), "HOME": str(base / "out"),
               "CUDA_VISIBLE_DEVICES": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        probe = "import gpuslots, sitecustomize, sys; print(sys.executable)"
        for python in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
            if python and subprocess.run([*as_user(USERS[0]), python, "-c", probe], env=env,
                                         capture_output=True).returncode == 0:
                yield base, python, env
                return
        pytest.fail(f"no Python that user {USERS[0]} may run (tried {sys.executable} and python3)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_users_share_one_lock_folder(users_folder):
    """User A's job holds GPU 0 after waiting for it (A made a reservation file, as the first user
    of a machine does); user B's whole-GPU job then waits, times out with 75 naming A's job, and
    when A's job ends runs; while B waits, B's reservation keeps A's sharing job out. All under
    fs.protected_regular=1 (O_CREAT of another user's file in the sticky folder is refused); B
    crashed with PermissionError on A's gpu0.reserve, opened for writing."""
    base, python, env = users_folder
    locks, out = base / "locks", base / "out"
    a, b = USERS

    def job(uid: int, name: str, share: int, *args: str, **popen) -> subprocess.Popen:
        cmd = [*as_user(uid), python, "-m", "gpuslots", "run", "--dir", str(locks), "--kind",
               "train" if share > 1 else "extract_shard", "--share", str(share), "--units", "8", "--gpus", "1",
               "--job", name, *args, "--", "sh", "-c", job_script(out, name)]
        return subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)

    def own_reservation(uid: int) -> bool:
        return any(p.stat().st_uid == uid for p in locks.glob("gpu0*.reserve"))

    procs = []
    try:
        procs.append(a1 := job(a, "a1", 8))
        wait_for(lambda: (out / "a1.ran").exists(), 20, "a1 to start")
        procs.append(a2 := job(a, "a2", 1))
        wait_for(lambda: own_reservation(a), 20, "a2 to reserve GPU 0")
        (out / "a1.stop").touch()
        wait_for(lambda: (out / "a2.ran").exists(), 20, "a2 to take GPU 0")
        # the sticky folder now holds user A's files: B must never O_CREAT them
        alloc = locks / "alloc.lock"
        assert alloc.stat().st_uid == a
        refused = subprocess.run([*as_user(b), python, "-c", f"import os; os.open({str(alloc)!r}, os.O_RDONLY | os.O_CREAT)"],
                                 env=env, capture_output=True, text=True)
        assert refused.returncode != 0 and "PermissionError" in refused.stderr  # the semantics hold

        b1 = job(b, "b1", 1, "--timeout", "1.5")
        stdout, stderr = b1.communicate(timeout=60)
        assert b1.returncode == 75 and "Traceback" not in stderr, stderr
        assert "gpuslots: extract_shard b1: no 1 of a GPU free within 1.5 s: GPU 0: extract_shard a2 (1 of it, pid" in stderr

        procs.append(b2 := job(b, "b2", 1, "--timeout", "60"))
        wait_for(lambda: own_reservation(b), 20, "b2 to reserve GPU 0")
        a3 = job(a, "a3", 8, "--timeout", "1")  # B's reservation keeps A's sharing job out
        _, stderr = a3.communicate(timeout=60)
        assert a3.returncode == 75 and "reserved by extract_shard b2" in stderr, stderr
        (out / "a2.stop").touch()
        wait_for(lambda: (out / "b2.ran").exists(), 20, "b2 to take GPU 0")
        (out / "b2.stop").touch()
        for p in (a1, a2, b2):
            _, stderr = p.communicate(timeout=60)
            assert p.returncode == 0 and "Traceback" not in stderr, stderr
        assert not (out / "b1.ran").exists() and not (out / "a3.ran").exists()
        assert sorted(p.name for p in locks.iterdir()) == ["alloc.lock"]  # every user removed their files
    finally:
        for name in ("a1", "a2", "b2"):
            (out / f"{name}.stop").touch()
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()


def test_a_lock_folder_other_users_cannot_write_is_one_line(users_folder):
    """A folder made 0755 by its owner: another user's job says how to fix it (exit 1), no traceback."""
    base, python, env = users_folder
    closed = base / "closed"
    closed.mkdir(mode=0o755)
    done = subprocess.run([*as_user(USERS[0]), python, "-m", "gpuslots", "run", "--dir", str(closed), "--", "true"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"gpuslots: cannot create files in the lock folder {closed} (owner uid 0, mode 755; ")
    assert f"chmod 1777 {closed}" in done.stderr and "GPUSLOTS_DIR" in done.stderr


def test_runs_with_another_share_see_each_other(tmp_path):
    """Holders are parts of a device, whatever units their run cut it into."""
    half = acquire(["0"], 2, 1, tmp_path, kind="train", timeout=2)  # a run with gpu_share 2
    with pytest.raises(TimeoutError):
        acquire(["0"], 8, 5, tmp_path, poll=0.05, timeout=0.3)  # 5/8 > the 1/2 left
    quarter = acquire(["0"], 8, 2, tmp_path, timeout=2)
    quarter.release()
    half.release()
    acquire(["0"], 24, 24, tmp_path, timeout=2).release()


def test_a_waiter_says_who_holds_the_gpu(tmp_path):
    held = acquire(["0"], 8, 8, tmp_path, kind="extract_shard", timeout=2)
    said = []
    with pytest.raises(TimeoutError):
        acquire(["0"], 8, 1, tmp_path, kind="train", poll=0.05, timeout=0.8, report_every=0.3, say=said.append)
    held.release()
    assert 2 <= len(said) <= 3  # once per report_every, not at every poll
    assert said[0].startswith("train has waited 0 s for 1/8 of a GPU: GPU 0: ")
    assert f"extract_shard (1 of it, pid {os.getpid()}) since " in said[0]


def test_inside_a_slurm_allocation_jobs_bind_to_its_devices(tmp_path):
    """Snakemake run locally inside an allocation with devices 5 and 7: two whole-device jobs get
    one each (not both all of them), under a lock folder of the allocation's own."""
    out = tmp_path / "out"
    out.mkdir()
    env = {"SLURM_JOB_ID": "123", "CUDA_VISIBLE_DEVICES": "5,7", "GPUSLOTS_DIR": str(tmp_path / "locks"),
           "OUT": str(out)}
    procs = [subprocess.Popen([sys.executable, "-m", "gpuslots", "run", "--kind", "extract_shard", "--share", "1",
                               "--timeout", "20", "--", "sh", "-c", 'echo "$CUDA_VISIBLE_DEVICES" > "$OUT/$JOB"; sleep 3'],
                              env=dict(os.environ, PYTHONPATH=str(ROOT), JOB=str(k), **env), stderr=subprocess.PIPE,
                              text=True)
             for k in range(2)]
    try:
        wait_for(lambda: sum(1 for f in out.iterdir() if f.read_text().strip()) == 2, 20, "2 jobs to start")
        assert sorted(f.read_text().strip() for f in out.iterdir()) == ["5", "7"]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert (tmp_path / "locks/slurm-123").is_dir()
    # every folder made on the way is every user's: other users' allocations make theirs there
    assert [(tmp_path / f).stat().st_mode & 0o7777 for f in ("locks", "locks/slurm-123")] == [0o1777, 0o1777]


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
    assert stdout.strip() == "alone on 0:8/8"
    assert "running it once more alone" in stderr and "lower gpu_share.train" in stderr


def test_other_failures_pass_through_unchanged(tmp_path):
    run = wrapper(tmp_path, "--kind", "train", "--gpus", "1", "--share", "8",
                  script='echo "ValueError: bad store" >&2; exit 3', stderr=subprocess.PIPE)
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == 3 and "ValueError: bad store" in stderr
    assert "out of GPU memory" not in stderr and "once more" not in stderr


def resources(output: str) -> dict[str, set[str]]:
    """{rule: the set of `resources:` lines of its jobs} from a printed plan."""
    found, rule = {}, None
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("resources:") and rule:
            found.setdefault(rule, set()).add(line.split("resources:")[1].strip())
    return found


def gpu_shells(output: str) -> list[str]:
    """The shell commands of GPU jobs (extraction shards and training) in a printed plan."""
    shells = [line.removeprefix("Shell command: ") for line in output.splitlines() if line.startswith("Shell command: ")]
    return [s for s in shells if ("python -m extract" in s and " --shard " in s) or "python -m model train" in s]


def test_dry_run_with_two_gpus_visible_plans_cuda_under_gpuslots(tmp_path, monkeypatch):
    """No --config device: two visible GPUs make it cuda, every GPU job bound by gpuslots."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    plan_run = snakemake(tmp_path / "work", "-n", "results/demo_table.csv", timeout=300)
    assert plan_run.returncode == 0, plan_run.stdout[-3000:] + plan_run.stderr[-3000:]
    assert "dmms: device cuda, 2 GPU(s) shared through gpuslots" in plan_run.stdout + plan_run.stderr
    res = resources(plan_run.stdout)
    assert all("gpu=1, gpu_slots=8, gpu_shared=0" in r for r in res["extract_shard"])  # a whole device
    assert all("gpu=1, gpu_slots=1, gpu_shared=1" in r for r in res["train"])  # 8 per device
    assert not any("gpu_slots" in r for r in res["merge_shards"] | res["manifest"])
    shells = gpu_shells(plan_run.stdout)
    counts = job_counts(plan_run.stdout)
    assert len(shells) == counts["extract_shard"] + counts["train"]  # every GPU job
    assert all(s.startswith("python -m gpuslots run --kind ") and "--gpus 2 " in s and "--device cuda" in s
               for s in shells)
    # each names its job by its output, for the messages of jobs waiting for its GPU: a training
    # job by its grid cell's folder (it trains the cell's seeds), an extraction job by its shard
    assert any(s.startswith("python -m gpuslots run --kind train --gpus 2 --share 8 --units 8 --job "
                            "results/demo/runs/image/max -- python -m model train") for s in shells)
    jobs = [s.split(" --job ")[1].split(" -- ")[0] for s in shells]
    assert len(set(jobs)) == len(shells)  # one name per job
    assert any(s.startswith("python -m gpuslots run --kind extract_shard --gpus 2 --share 1 --units 8 --job "
                            "results/demo/features/shards/image/1-of-") for s in shells)


def test_dry_run_without_gpus_plans_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    plan_run = snakemake(tmp_path / "work", "-n", "--", "results/demo_table.csv", timeout=300)
    assert plan_run.returncode == 0, plan_run.stdout[-3000:] + plan_run.stderr[-3000:]
    assert "dmms: device cpu" in plan_run.stdout + plan_run.stderr
    assert "gpuslots" not in plan_run.stdout and "python -m model train" in plan_run.stdout
    assert gpu_shells(plan_run.stdout) and all("--device cpu" in s for s in gpu_shells(plan_run.stdout))
    assert all("gpu=0, gpu_slots=0, gpu_shared=0" in r for r in resources(plan_run.stdout)["train"])


def test_more_gpus_than_visible_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    plan_run = snakemake(tmp_path / "work", "-n", "results/demo_table.csv", "--config", "gpus=3", timeout=300)
    assert plan_run.returncode != 0
    assert "gpus: 3, but 2 GPU(s) are visible (2,3" in plan_run.stdout + plan_run.stderr


def test_run_sets_the_global_slot_limit(tmp_path, monkeypatch):
    """A real (touch) run: the workflow itself provides gpu_slots = (gpus + 1) x units, no --resources."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    run = snakemake(tmp_path / "work", "--touch", "--cores", "1", "--config", "gpus=2",
                    "gpu_share={train: 4}", "--", "results/demo_table.csv", timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout + run.stderr
    assert 'gpu_slots=Resource("gpu_slots", 12)' in out  # (2 GPUs + 1 waiting) x lcm(1, 4) units
    assert 'gpu_shared=Resource("gpu_shared", 8)' in out  # sharing jobs: 2 GPUs x 4 units
    res = resources(out)
    assert all({"gpu_slots=4", "gpu_shared=0"} <= set(r.split(", ")) for r in res["extract_shard"])
    assert all({"gpu_slots=1", "gpu_shared=1"} <= set(r.split(", ")) for r in res["train"])


def test_slurm_profile_requests_gpus_not_slots(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"demo": {"compose": {"n": 12, "seed": 3}}}}))
    plan_run = snakemake(tmp_path / "work", "-n", "--profile", str(ROOT / "profiles/slurm"),
                         "results/demo_table.csv", configfile=config, timeout=300)
    assert plan_run.returncode == 0, plan_run.stdout[-3000:] + plan_run.stderr[-3000:]
    res = resources(plan_run.stdout)
    assert res["train"] and all("gpu=1" in r and "gpu_slots=0" in r for r in res["train"])
    assert "gpuslots" not in plan_run.stdout


def test_on_one_gpu_extraction_does_not_wait_for_the_training_grid(tmp_path):
    """The real scheduler with the workflow's limits (gpu_slots (gpus + 1) x units, gpu_shared
    gpus x units) and priorities: 24 sharing runs fill the one GPU; an extraction job that becomes
    ready meanwhile starts as soon as the runs already on the GPU drain, not after the grid."""
    slots = SlotResources(1, {"extract_shard": 1, "train": 8})
    limit, shared = slots.limit, slots.total
    prefix = "python -m gpuslots run --kind {kind} --gpus 1 --share {share} --units 8 --timeout 60 -- "
    stamp = 'sh -c "date +%s.%N > {output}; sleep {secs}"'
    rules = ["rule all:", "    input: ['extract.done'] + [f'train{k}.done' for k in range(24)]", "",
             "rule ready:", "    output: 'ready'", "    shell: 'sleep 1.5; touch {output}'", "",
             "rule extract:", "    input: 'ready'", "    output: 'extract.done'", "    priority: 10",
             "    resources: gpu_slots=8",
             f"    shell: {(prefix.format(kind='extract_shard', share=1) + stamp.format(output='{output}', secs=1))!r}", "",
             "rule train:", "    output: 'train{k}.done'", f"    resources: gpu_slots=1, gpu_shared={slots.shared('train')}",
             f"    shell: {(prefix.format(kind='train', share=8) + stamp.format(output='{output}', secs=2))!r}", ""]
    (tmp_path / "Snakefile").write_text("\n".join(rules))
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="0", GPUSLOTS_DIR=str(tmp_path / "locks"),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    run = subprocess.run([sys.executable, "-m", "snakemake", "all", "--cores", str(limit + 2), "--resources",
                          f"gpu_slots={limit}", f"gpu_shared={shared}"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    started = {p.stem: float(p.read_text()) for p in tmp_path.glob("*.done")}
    extract = started.pop("extract")
    after = sum(1 for t in started.values() if t > extract)
    assert after >= 8, f"only {after} of 24 training runs started after the extraction job"
