"""Reading image files robustly: every odd input is decoded to RGB or rejected with a reason."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps

from extract.base import BadInput

# Posters and photos are small; anything past this is a decompression bomb, not a picture.
Image.MAX_IMAGE_PIXELS = 250_000_000
MAX_SIDE = 4096  # decode large JPEGs at reduced size; nothing downstream needs more
MAX_ASPECT = 4.0  # thinner images are padded so that a shorter-side resize stays bounded


def load_rgb(path: str | Path) -> Image.Image:
    """An RGB PIL image; `BadInput` names the problem for missing, empty, truncated or non-images."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"image file {path} does not exist")
    if path.stat().st_size == 0:
        raise BadInput(f"image file {path} is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            img.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG only: decode at reduced scale
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except Image.DecompressionBombError as err:
        raise BadInput(f"image file {path} is too large to decode: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for truncated / unknown data
        raise BadInput(f"image file {path} cannot be decoded: {err}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Grayscale, 16-bit, CMYK, palette and alpha images become plain RGB (alpha over white)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v * (1 / 256)).convert("L")
    elif img.mode == "F":
        img = img.convert("L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    img = img.convert("RGB")
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
    return bound_aspect(img)


def bound_aspect(img: Image.Image, limit: float = MAX_ASPECT) -> Image.Image:
    """Pad (centred, mid-grey) an extremely thin image to aspect `limit`; others unchanged."""
    w, h = img.size
    if max(w, h) <= limit * min(w, h):
        return img
    size = (w, max(h, int(w / limit + 0.5))) if w > h else (max(w, int(h / limit + 0.5)), h)
    canvas = Image.new("RGB", size, (124, 116, 104))
    canvas.paste(img, ((size[0] - w) // 2, (size[1] - h) // 2))
    return canvas
