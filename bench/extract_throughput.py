"""Per-image time of each extractor through the real CLI (`python -m extract ...`).

    python bench/extract_throughput.py --images FOLDER --device cuda --out extract.json

Weights: MobileNetV2 and MTCNN are the real ones (installed packages). The paper's models whose
weights cannot be had offline (ResNeXt-101 32x16d WSL, SE-ResNet-50-256D, Faster R-CNN R50-FPN,
roberta-base) are built with their real architectures and random weights saved under
$DMMS_WEIGHTS: their timings are real, their features meaningless. RoBERTa uses a small BPE, so
its token counts differ from roberta-base's tokenizer (plots are padded to the batch's longest).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extract.__main__ import main as extract_main  # noqa: E402
from extract.store import read_store  # noqa: E402

PLOT = ("A retired detective is pulled back into the city's underworld when a string of murders "
        "echoes the case that ended his career. As the killer's notes grow personal, he must face "
        "the partner he betrayed, the family he lost, and the night that still haunts him. ") * 3


def random_weights(folder: Path) -> None:
    """Real architectures, random weights, under the file names the resolver looks for."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    from extract.backbones import resnext101_32x16d
    from extract.senet import SENet50Embedding
    from tests.tiny_roberta import save_hf_roberta, save_hf_tokenizer, train_bpe

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(resnext101_32x16d().state_dict(), folder / "ig_resnext101_32x16-c6f796b0.pth")
    torch.save(SENet50Embedding().state_dict(), folder / "senet50_256.pth")
    torch.save(fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(),
               folder / "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth")
    encoder, merges = train_bpe()
    save_hf_tokenizer(folder / "roberta-base", encoder, merges)
    save_hf_roberta(folder / "roberta-base", vocab_size=50265, layers=12)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", required=True, help="folder of posters (*.jpeg)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", default="", help="comma-separated job names to run")
    p.add_argument("--out")
    args = p.parse_args()
    images = sorted(Path(args.images).glob("*.jpeg"))
    results: dict[str, dict] = {"device": args.device, "images": len(images)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["DMMS_WEIGHTS"] = str(tmp / "weights")
        random_weights(tmp / "weights")
        manifest = tmp / "manifest.csv"
        pd.DataFrame({"id": [f"{k:07d}" for k in range(len(images))], "split": "test",
                      "image": [str(i) for i in images], "text": PLOT, "labels": ""}).to_csv(manifest, index=False)
        jobs = {
            "image_mobilenet_v2": ["image", "--backend", "mobilenet_v2"],
            "image_resnext101_wsl": ["image", "--backend", "resnext101_32x16d_wsl"],
            "faces_backbone_mobilenet": ["faces", "--backend", "backbone", "--set", "backbone=mobilenet_v2"],
            "faces_senet50_256": ["faces", "--backend", "senet50_256"],
            "objects_torchvision": ["objects", "--backend", "torchvision", "--set", "score_threshold=0.0"],
            "boxes_resnext101_wsl": ["boxes", "--input", str(tmp / "objects_torchvision.h5")],
            "text_roberta_base": ["text", "--backend", "roberta-base", "--set", f"model={tmp / 'weights/roberta-base'}"],
        }
        wanted = set(args.only.split(",")) if args.only else set(jobs)
        if args.device == "cuda":  # CUDA context and cuDNN start-up are not any extractor's cost
            torch.nn.functional.conv2d(torch.ones(1, 3, 64, 64, device="cuda"), torch.ones(8, 3, 3, 3, device="cuda"))
            torch.cuda.synchronize()
        for name, cli in jobs.items():
            if name not in wanted:
                continue
            out = tmp / f"{name}.h5"
            try:
                extract_main(cli[:1] + ["--manifest", str(manifest), "--out", str(out), "--device", args.device,
                                        "--no-progress"] + cli[1:])
                store = read_store(out, columns=[])
                results[name] = {"seconds_per_image": store.attrs["seconds_per_sample"],
                                 "rows": int(store.offsets[-1]), "failed": len(store.failed)}
            except Exception as err:  # report and go on to the next extractor
                results[name] = {"error": f"{type(err).__name__}: {err}"}
            print(name, results[name], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
