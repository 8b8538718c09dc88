"""Does max-pool importance follow the demo's planted cues?

    python bench/importance_vs_cues.py results/demo/runs/all/max resources/composed/demo/cues.csv
    python bench/importance_vs_cues.py RUNS CUES --out bench/results/importance_vs_cues_demo.json

Mean importance of a modality on test samples where its cue was planted vs. where it was not
(OCR text: a tagline on the poster; OCR words: a cue word in the tagline; faces: a star's face
(the cue of a set-only genre, data/demo_assets.py STARS), and any face at all; text: an
informative plot), over the test samples of every run (seed) of the cell. Prints one line per
cue; `--out` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import command, write_result  # noqa: E402
from model.runfiles import read_importance  # noqa: E402

CUES = [  # (modality, cue column, test that the cue is present)
    ("ocr_text", "tagline", lambda c: c != ""),
    ("ocr_words", "tagline_cue", lambda c: c != ""),  # a cue word among the tagline's words
    ("faces", "star_genres", lambda c: c != ""),  # a star's face among the faces
    ("faces", "n_faces", lambda c: c.astype(int) > 0),
    ("text", "plot_informative", lambda c: c == "1"),
]


def importance_vs_cues(runs: Path, cues_csv: Path) -> tuple[list[dict], int]:
    """(one dict per cue of a modality the runs have: mean importance where present and absent,
    with counts; the number of runs read)."""
    cues = pd.read_csv(cues_csv, dtype=str, keep_default_na=False).set_index("id")
    frames = []
    for path in sorted(Path(runs).glob("*/importance.h5")):
        ids, importance, modalities = read_importance(path.parent)
        frames.append(pd.DataFrame(importance, index=ids, columns=modalities))
    if not frames:
        raise SystemExit(f"no */importance.h5 under {runs}")
    imp = pd.concat(frames)
    rows = []
    for modality, column, present in CUES:
        if modality not in imp:
            continue
        mask = present(cues.loc[imp.index, column]).to_numpy()
        rows.append({"modality": modality, "cue": column,
                     "present": round(float(imp[modality][mask].mean()), 3), "n_present": int(mask.sum()),
                     "absent": round(float(imp[modality][~mask].mean()), 3), "n_absent": int((~mask).sum())})
    return rows, len(frames)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, help="a cell folder holding seed*/importance.h5 (results/demo/runs/all/max)")
    p.add_argument("cues", type=Path, help="the composer's cues.csv (resources/composed/demo/cues.csv)")
    p.add_argument("--note", default="", help="free text recorded in the JSON (e.g. which run made the folders)")
    p.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = p.parse_args()
    rows, n_runs = importance_vs_cues(args.runs, args.cues)
    for r in rows:
        print(f"{r['modality']:<9} cue {r['cue']:<17} present {r['present']:.3f} (n={r['n_present']})  "
              f"absent {r['absent']:.3f} (n={r['n_absent']})")
    if args.out:
        write_result({"benchmark": "importance_vs_cues", "command": command(), "runs": str(args.runs),
                      "cues": str(args.cues), "run_folders": n_runs, "note": args.note,
                      "importance_vs_cues": rows}, args.out, echo=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
