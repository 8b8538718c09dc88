"""The paper's object detector: detectron2's model zoo Faster R-CNN R50-FPN 1x on COCO.

detectron2 is optional (it is not on PyPI; it is built against the local torch). The model is
the zoo config `COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml` with its checkpoint
`model_final_b275ba.pkl` found through `extract.weights`; inference follows detectron2's
`DefaultPredictor` (BGR input, the config's ResizeShortestEdge), batched over images.
"""

from __future__ import annotations

import posixpath
from typing import Any

import numpy as np
import torch
from PIL import Image

from extract.catalog import DETECTRON2_WEIGHTS
from extract.substitutes import detectron2_problem
from extract.weights import WeightFile, file_sha256, resolve

CONFIG = "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml"
# what model_zoo.get_checkpoint_url(CONFIG) returns; the spec lives in extract.catalog (no torch)
# so that the weights rule and the paper_strict check need neither detectron2 nor torch
WEIGHTS = DETECTRON2_WEIGHTS
CHECKPOINT_URL = WEIGHTS.url

TORCHVISION_HINT = "or use --backend torchvision (the same architecture and training data, torchvision's weights)"


class MissingDetectron2(ImportError):
    """detectron2's model zoo is not importable."""


def available() -> bool:
    """Whether `from detectron2 import model_zoo` works (not merely whether the package is found)."""
    return not detectron2_problem()


class Detectron2Detector:
    """PIL RGB images -> per image (boxes (n, 4) float32 xyxy in image pixels, scores (n,),
    labels (n,) contiguous COCO classes 0..79), sorted by score."""

    def __init__(self, score_threshold: float, device: torch.device, min_size: int = 800,
                 max_size: int = 1333) -> None:
        try:
            import detectron2.data.transforms as T
            from detectron2 import model_zoo
            from detectron2.checkpoint import DetectionCheckpointer
            from detectron2.config import get_cfg
            from detectron2.modeling import build_model
        except ImportError as err:
            raise MissingDetectron2(f"the objects extractor's detectron2 backend needs detectron2 "
                                    f"({type(err).__name__}: {err}): {detectron2_problem() or 'reinstall it'}; "
                                    f"{TORCHVISION_HINT}") from err
        url = model_zoo.get_checkpoint_url(CONFIG)
        path = resolve(WeightFile(posixpath.basename(url), url=url))
        cfg = get_cfg()
        cfg.merge_from_file(model_zoo.get_config_file(CONFIG))
        cfg.MODEL.WEIGHTS = str(path)
        cfg.MODEL.DEVICE = str(device)
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(score_threshold)
        cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = int(min_size), int(max_size)  # zoo: 800, 1333
        cfg.freeze()
        self.model = build_model(cfg).eval()
        DetectionCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT  # "BGR" for the zoo models
        self.weights = (path.name, file_sha256(path))
        self.note = ""  # detectron2 publishes no hash for its zoo files: recorded in `weights`, not checked
        self.name = f"detectron2 faster_rcnn_R_50_FPN_1x COCO ({path.name})"

    def prepare(self, img: Image.Image) -> dict[str, Any]:
        """One model input, as DefaultPredictor builds it (runs in the runner's threads)."""
        pixels = np.asarray(img)  # (H, W, 3) RGB uint8
        if self.input_format == "BGR":
            pixels = pixels[:, :, ::-1]
        height, width = pixels.shape[:2]
        resized = self.aug.get_transform(pixels).apply_image(np.ascontiguousarray(pixels))
        image = torch.as_tensor(np.ascontiguousarray(resized.astype("float32").transpose(2, 0, 1)))
        return {"image": image, "height": height, "width": width}

    @torch.inference_mode()
    def __call__(self, inputs: list[dict[str, Any]]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        outs = []
        for pred in self.model(inputs):  # boxes already rescaled to height x width
            inst = pred["instances"].to("cpu")
            outs.append((inst.pred_boxes.tensor.float().numpy(), inst.scores.float().numpy(),
                         inst.pred_classes.numpy().astype(np.int64)))
        return outs
