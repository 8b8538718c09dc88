"""Does max-pool importance follow the demo's planted cues?

    python bench/importance_vs_cues.py results/demo/runs/all/max resources/composed/demo/cues.csv

Mean importance of a modality on test samples where its cue was planted vs. where it was not
(OCR text: a tagline on the poster; OCR words: a cue word in the tagline; faces: a star's face
(the cue of a set-only genre, data/demo_assets.py STARS), and any face at all; text: an
informative plot).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.runfiles import read_importance  # noqa: E402

CUES = [  # (modality, cue column, test that the cue is present)
    ("ocr_text", "tagline", lambda c: c != ""),
    ("ocr_words", "tagline_cue", lambda c: c != ""),  # a cue word among the tagline's words
    ("faces", "star_genres", lambda c: c != ""),  # a star's face among the faces
    ("faces", "n_faces", lambda c: c.astype(int) > 0),
    ("text", "plot_informative", lambda c: c == "1"),
]


def main(runs: str, cues_csv: str) -> int:
    cues = pd.read_csv(cues_csv, dtype=str, keep_default_na=False).set_index("id")
    frames = []
    for path in sorted(Path(runs).glob("*/importance.h5")):
        ids, importance, modalities = read_importance(path.parent)
        frames.append(pd.DataFrame(importance, index=ids, columns=modalities))
    if not frames:
        raise SystemExit(f"no */importance.h5 under {runs}")
    imp = pd.concat(frames)
    for modality, column, present in CUES:
        if modality not in imp:
            continue
        mask = present(cues.loc[imp.index, column]).to_numpy()
        print(f"{modality:<9} cue {column:<17} present {imp[modality][mask].mean():.3f} (n={mask.sum()})  "
              f"absent {imp[modality][~mask].mean():.3f} (n={(~mask).sum()})")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
