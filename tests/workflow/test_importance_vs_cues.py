"""bench/importance_vs_cues.py: mean importance where a planted cue is present vs absent, printed
and, with --out, written as JSON (the README's figures come from that file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from model.runfiles import write_importance

ROOT = Path(__file__).resolve().parents[2]


def test_prints_and_writes_the_figures(tmp_path):
    ids = ["a", "b", "c", "d"]
    modalities = ["image", "faces", "ocr_words"]
    # faces win where a star's face is planted (a, b), OCR words where the tagline has a cue (a, c)
    seed0 = np.array([[0.0, 0.5, 0.5], [0.5, 0.5, 0.0], [0.2, 0.0, 0.8], [1.0, 0.0, 0.0]], np.float32)
    seed1 = np.array([[0.2, 0.4, 0.4], [0.3, 0.7, 0.0], [0.4, 0.0, 0.6], [0.8, 0.0, 0.2]], np.float32)
    for name, importance in (("seed0", seed0), ("seed1", seed1)):
        write_importance(tmp_path / "cell" / name, ids, importance, np.ones(4), modalities, "max")
    (tmp_path / "cues.csv").write_text("id,tagline,tagline_cue,star_genres,n_faces,plot_informative\n"
                                       "a,x y,horror,Horror,2,1\nb,,,Thriller,1,0\nc,z w,scifi,,0,1\nd,,,,0,0\n")
    out = tmp_path / "out" / "cues.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench/importance_vs_cues.py"), str(tmp_path / "cell"),
                           str(tmp_path / "cues.csv"), "--out", str(out)],
                          capture_output=True, text=True, check=True)
    rows = {(r["modality"], r["cue"]): r for r in json.loads(out.read_text())["importance_vs_cues"]}
    assert set(rows) == {("ocr_words", "tagline_cue"), ("faces", "star_genres"), ("faces", "n_faces")}
    words = rows["ocr_words", "tagline_cue"]
    assert (words["present"], words["n_present"]) == (round((0.5 + 0.8 + 0.4 + 0.6) / 4, 3), 4)
    assert (words["absent"], words["n_absent"]) == (round((0.0 + 0.0 + 0.0 + 0.2) / 4, 3), 4)
    stars = rows["faces", "star_genres"]
    assert (stars["present"], stars["absent"]) == (round((0.5 + 0.5 + 0.4 + 0.7) / 4, 3), 0.0)
    assert "ocr_words cue tagline_cue       present 0.575 (n=4)  absent 0.050 (n=4)" in done.stdout
