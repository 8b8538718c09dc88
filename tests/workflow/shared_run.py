"""One Snakemake run shared by the end-to-end tests: the tiny demo (tests/config/test.yaml), a
user's own table with a predict dataset, and the Ads fixture, built by one `snakemake` call in one
working folder so their jobs share the cores and one startup (each test module used to run its own).
tests/conftest.py starts it in the background at the session's first test and runs its readers
last, so the rest of the suite runs beside it; tests/workflow/conftest.py `shared_run` waits for it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image
from skimage import data as photos

from tests.workflow.snakemake_run import ROOT, start_snakemake

DEMO_CONFIG = ROOT / "tests/config/test.yaml"
OWN_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "coins", "camera")
OWN_TEXT = {"astronaut": "a woman in a space suit", "chelsea": "a cat on a sofa",
            "coffee": "a cup of coffee", "rocket": "a rocket before launch",
            "coins": "old coins on a table", "camera": "a man with a camera"}
OWN_LABELS = {"astronaut": "space|people", "chelsea": "animal", "coffee": "food",
              "rocket": "space", "coins": "money", "camera": "people"}


def write_table(folder: Path, n: int, labelled: bool, seed: int) -> Path:
    """`n` rows over scikit-image's photos (jittered crops), image paths relative to the table."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    rows = []
    for k in range(n):
        name = OWN_PHOTOS[k % len(OWN_PHOTOS)]
        photo = np.asarray(getattr(photos, name)())
        if photo.ndim == 2:
            photo = np.stack([photo] * 3, axis=-1)
        h, w = photo.shape[:2]
        top, left = rng.integers(0, h // 5), rng.integers(0, w // 5)
        Image.fromarray(photo[top:top + h * 4 // 5, left:left + w * 4 // 5]).resize((96, 96)).save(
            folder / "images" / f"{k}.jpg")
        rows.append({"id": f"s{k:03d}", "image": f"images/{k}.jpg",
                     "text": "" if k % 7 == 3 else OWN_TEXT[name],
                     "labels": OWN_LABELS[name] if labelled else ""})
    rows[5]["image"] = "images/does-not-exist.jpg"  # a missing file keeps the row's text
    table = folder / "table.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return table


def own_datasets(root: Path) -> dict:
    """`mine`: a labelled table without a split column; `new`: an unlabeled one scored by mine's run."""
    train_table = write_table(root / "mine", 48, labelled=True, seed=0)
    new_table = write_table(root / "new", 12, labelled=False, seed=1)
    features = {"image": {"extractor": "image", "backend": "mobilenet_v2", "options": {"batch_size": 8}},
                "text": {"extractor": "text", "backend": "minilm"}}
    return {
        "mine": {"format": "table", "table": str(train_table), "split": {"ratios": [0.6, 0.2, 0.2], "seed": 0},
                 "features": features,
                 "experiments": {"seeds": [0], "pools": ["max"],
                                 "train": {"dim": 16, "hidden": "16", "epochs": 8, "batch_size": 8, "lr": 0.01},
                                 "importance_samples": 1,
                                 "combinations": {"image_text": {"features": ["image", "text"], "pools": ["max"]}}}},
        "new": {"format": "table", "table": str(new_table), "predict": {"model": "mine/image_text/max/seed0"}},
    }


def ads_config(root: Path) -> Path:
    """tests/config/ads.yaml over a copy of the fixture CSV, with real photos as ads (ad_005's left
    missing)."""
    folder = root / "annotations"
    (folder / "images").mkdir(parents=True)
    csv = folder / "annotations.csv"
    shutil.copy(ROOT / "tests/fixtures/ads/annotations.csv", csv)
    pictures = [photos.coffee(), photos.chelsea(), photos.rocket(), photos.astronaut()]
    for k, row in pd.read_csv(csv, dtype=str, keep_default_na=False).iterrows():
        if row["image"] and row["id"] != "ad_005":
            img = Image.fromarray(pictures[k % 4]).resize((96, 64))
            Image.fromarray(np.asarray(img)[:, ::-1] if k % 2 else np.asarray(img)).save(folder / row["image"])
    config = root / "ads.yaml"
    config.write_text((ROOT / "tests/config/ads.yaml").read_text().replace("ANNOTATIONS", str(csv)))
    return config


@dataclass
class SharedRun:
    """The run in progress: its working folder, its process, its output log and the Ads config."""

    work: Path
    process: subprocess.Popen
    log: Path
    ads: Path

    def wait(self, timeout: int = 1800) -> tuple[Path, subprocess.CompletedProcess, Path]:
        """(working folder, the finished run, the Ads config) once it succeeded."""
        returncode = self.process.wait(timeout=timeout)
        output = self.log.read_text(errors="replace")
        assert returncode == 0, f"{self.log}:\n{output[-8000:]}"
        return self.work, subprocess.CompletedProcess(self.process.args, returncode, output, ""), self.ads

    def stop(self) -> None:
        """End the run if the session ends before it did (a failure with -x, Ctrl-C)."""
        if self.process.poll() is None:
            self.process.terminate()  # Snakemake ends its running jobs
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start(root: Path) -> SharedRun:
    """`rule all` of the demo, mine and new, and the Ads table, in one call started in `root`. The
    Ads and demo configs are each one part of the shared config, so a later call with either alone
    sees the same jobs (nothing to rerun)."""
    ads = ads_config(root)
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    ads_part = yaml.safe_load(ads.read_text())
    assert config["shards"] == ads_part["shards"]  # one setting for all three
    config["datasets"] |= ads_part["datasets"] | own_datasets(root)
    config["targets"] = ["demo", "mine", "new"]
    shared = root / "shared.yaml"
    shared.write_text(yaml.safe_dump(config))
    work = root / "work"
    # it starts before any test's own empty weights folders (tests/conftest.py): its own ones, so no
    # file in the user's caches or the checkout's resources/ takes part
    caches = {name: str(root / "caches" / folder) for name, folder in (
        ("DMMS_WEIGHTS", "weights"), ("TORCH_HOME", "torch"), ("EASYOCR_MODULE_PATH", "easyocr"), ("HF_HOME", "hf"))}
    process = start_snakemake(work, "--cores", "2", "all", "results/ads_table.csv", log=root / "snakemake.log",
                              configfile=shared, replace=True, env=caches)
    return SharedRun(work, process, root / "snakemake.log", ads)
