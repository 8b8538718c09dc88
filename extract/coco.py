"""The 80 COCO object classes, and the mapping from COCO's 91 category ids (with gaps).

Contiguous index k in 0..79 is what every objects store holds in `labels` (detectron2 predicts
these directly). COCO category ids run 1..90 with ten unused ids; torchvision's COCO detectors
predict category ids (0 = background), so their labels go through `contiguous_from_coco`.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
NUM_CLASSES = len(CLASS_NAMES)  # 80

# COCO category ids 1..90 that no class uses
UNUSED_IDS: tuple[int, ...] = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)

# contiguous index (0..79) -> COCO category id (1..90)
COCO_IDS: np.ndarray = np.array([i for i in range(1, 91) if i not in UNUSED_IDS], dtype=np.int64)

# COCO category id (0..90) -> contiguous index, -1 for background (0) and unused ids
_TO_CONTIGUOUS = np.full(91, -1, dtype=np.int64)
_TO_CONTIGUOUS[COCO_IDS] = np.arange(NUM_CLASSES)


def contiguous_from_coco(ids: np.ndarray) -> np.ndarray:
    """COCO category ids -> 0..79; -1 where an id names no class (background, unused, out of range)."""
    ids = np.asarray(ids, dtype=np.int64)
    out = np.full(ids.shape, -1, dtype=np.int64)
    ok = (ids >= 0) & (ids < len(_TO_CONTIGUOUS))
    out[ok] = _TO_CONTIGUOUS[ids[ok]]
    return out


assert len(COCO_IDS) == NUM_CLASSES == 80
