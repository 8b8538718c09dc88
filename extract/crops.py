"""Cropping detections (faces, object boxes) out of an image.

Boxes are (x1, y1, x2, y2) float pixel coordinates of the image as loaded by `load_rgb`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def clip_boxes(boxes: np.ndarray, width: int, height: int, min_side: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Boxes clipped to the image (float32 (n, 4)), and a mask of those still at least
    `min_side` pixels wide and high."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_side) & ((boxes[:, 3] - boxes[:, 1]) >= min_side)
    return boxes, keep


def expand(box: np.ndarray, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer pixel box grown by `margin` x its size in total (half on each side), clipped to
    the image, never empty."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * margin / 2, (y2 - y1) * margin / 2
    left = int(np.floor(max(0.0, x1 - dx)))
    top = int(np.floor(max(0.0, y1 - dy)))
    right = int(np.ceil(min(float(width), x2 + dx)))
    bottom = int(np.ceil(min(float(height), y2 + dy)))
    left, top = min(left, width - 1), min(top, height - 1)
    return left, top, max(right, left + 1), max(bottom, top + 1)


def crop(img: Image.Image, box: np.ndarray, margin: float = 0.0) -> Image.Image:
    """The region of `box` (grown by `margin`) as a new RGB image."""
    return img.crop(expand(box, margin, *img.size))
