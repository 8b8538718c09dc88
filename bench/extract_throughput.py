"""Extraction pipeline throughput against the bare model forward, per extractor model.

    python bench/extract_throughput.py --device cpu --quick --out bench/results/extract_throughput_cpu.json
    python bench/extract_throughput.py --device cuda --out bench-out/extract_throughput_cuda.json

For each job the pipeline runs through the real CLI (`python -m extract ...`: decoding threads,
batching, the model, the streaming store) over demo posters; its items/s (images, box or face
crops, texts) is divided by the items/s of the extractor's own network on random tensors at the
same batch size, in its fastest memory format and precision on the device (`ratio`; 1.0 means decoding and writing cost nothing; `ratio_cpu_time` compares
items per CPU second of this process instead, steadier on a machine whose cores other work
shares, but it counts reading the manifest and the store too). Pipeline and bare forward are
alternated `--repeats` times and the best rate of each is kept. The fp32-vs-autocast
cosine similarity of one real batch's features is measured through the runner's
`precision_check` (bf16 on the CPU, fp16 and bf16 on CUDA).

Weights: MobileNetV2 and MTCNN are the real ones (installed packages). timm's resnet18 (a
backbone by name, `backend: timm`) loads random weights saved where resources/weights holds
timm/resnet18.a1_in1k/model.safetensors, through the pretrained path. The paper's models whose
weights cannot be had offline (ResNeXt-101 32x16d WSL, SE-ResNet-50-256D, Faster R-CNN R50-FPN,
roberta-base) get their real architectures and random weights saved under $DMMS_WEIGHTS: their
timings are real, their features meaningless. roberta-base uses a small BPE, so the plot's token
count differs from roberta-base's tokenizer; the bare forward uses the same token count.
Box crops read a synthetic objects store (`--boxes` boxes per poster) so that only the crop
embedding is timed; the faces pipeline includes MTCNN detection, its bare forward does not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extract import registry  # noqa: E402
from extract.__main__ import main as extract_main  # noqa: E402
from bench.record import write_result  # noqa: E402
from core.options import parse_options  # noqa: E402
from extract.base import Extractor, Item  # noqa: E402
from extract.run import precision_check  # noqa: E402
from extract.store import RaggedStore, base_attrs, read_store, write_store  # noqa: E402

PLOT = ("A retired detective is pulled back into the city's underworld when a string of murders "
        "echoes the case that ended his career. As the killer's notes grow personal, he must face "
        "the partner he betrayed, the family he lost, and the night that still haunts him. ") * 3


def job_table(tmp: Path) -> dict[str, dict[str, Any]]:
    """name -> CLI arguments, what one item is, and whether `--quick` runs it."""
    weights = tmp / "weights"
    return {
        "image_mobilenet_v2": {"cli": ["image", "--backend", "mobilenet_v2"], "unit": "images", "quick": True},
        "image_resnext101_wsl": {"cli": ["image", "--backend", "resnext101_32x16d_wsl"], "unit": "images"},
        "image_timm_resnet18": {"cli": ["image", "--backend", "timm", "--set", "model=resnet18"],
                                "unit": "images", "quick": True},
        "boxes_mobilenet_v2": {"cli": ["boxes", "--input", str(tmp / "objects.h5"), "--set", "backbone=mobilenet_v2"],
                               "unit": "box crops", "quick": True, "quick_count": 16},
        "boxes_resnext101_wsl": {"cli": ["boxes", "--input", str(tmp / "objects.h5")], "unit": "box crops"},
        "faces_backbone_mobilenet": {"cli": ["faces", "--backend", "backbone", "--set", "backbone=mobilenet_v2"],
                                     "unit": "face crops", "quick": True, "quick_count": 32},
        "faces_senet50_256": {"cli": ["faces", "--backend", "senet50_256"], "unit": "face crops"},
        "text_roberta_base": {"cli": ["text", "--backend", "roberta-base", "--set", f"model={weights / 'roberta-base'}"],
                              "unit": "texts", "quick": True, "quick_count": 8,
                              "quick_sets": ["batch_size=8", "max_tokens=128"]},
        "objects_torchvision": {"cli": ["objects", "--backend", "torchvision", "--set", "score_threshold=0.0"],
                                "unit": "images"},
    }


def random_weights(folder: Path, jobs: set[str]) -> None:
    """Real architectures, random weights, under the file names the resolver looks for."""
    folder.mkdir(parents=True, exist_ok=True)
    if {"image_resnext101_wsl", "boxes_resnext101_wsl"} & jobs:
        from extract.backbones import resnext101_32x16d
        torch.save(resnext101_32x16d().state_dict(), folder / "ig_resnext101_32x16-c6f796b0.pth")
    if "image_timm_resnet18" in jobs:  # where resources/weights holds timm's resnet18.a1_in1k
        import timm
        from safetensors.torch import save_file
        path = folder / "timm" / "resnet18.a1_in1k" / "model.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(timm.create_model("resnet18", pretrained=False).state_dict(), str(path))
    if "faces_senet50_256" in jobs:
        from extract.senet import SENet50Embedding
        torch.save(SENet50Embedding().state_dict(), folder / "senet50_256.pth")
    if "objects_torchvision" in jobs:
        from torchvision.models.detection import fasterrcnn_resnet50_fpn
        torch.save(fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(),
                   folder / "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth")
    if "text_roberta_base" in jobs:
        from tests.tiny_roberta import save_hf_roberta, save_hf_tokenizer, train_bpe
        encoder, merges = train_bpe()
        save_hf_tokenizer(folder / "roberta-base", encoder, merges)
        save_hf_roberta(folder / "roberta-base", vocab_size=50265, layers=12)


def objects_store(path: Path, ids: list[str], images: list[Path], per_image: int) -> None:
    """What `python -m extract objects` writes, with `per_image` random boxes inside each poster."""
    from PIL import Image

    rng = np.random.default_rng(0)
    boxes = []
    for img in images:
        w, h = Image.open(img).size
        xy = rng.uniform(0, 0.6, size=(per_image, 2)) * [w, h]
        wh = rng.uniform(0.15, 0.4, size=(per_image, 2)) * [w, h]
        boxes.append(np.concatenate([xy, xy + wh], 1).astype(np.float32))
    rows = {"boxes": np.concatenate(boxes), "labels": rng.integers(0, 80, len(ids) * per_image),
            "scores": rng.uniform(0.5, 1, len(ids) * per_image).astype(np.float32)}
    offsets = np.arange(len(ids) + 1, dtype=np.int64) * per_image
    write_store(path, RaggedStore(ids, offsets, rows, attrs=base_attrs("objects", "torchvision", 0, {})))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(fn: Callable[[], Any], items: int, device: torch.device, min_seconds: float) -> tuple[float, float]:
    """Items per wall second and per CPU second of this process (all its threads) of `fn`: one
    warm-up call, then repeated for at least `min_seconds`. CPU seconds stay meaningful when
    other work shares the cores; wall seconds are what a dedicated machine sees."""
    fn()
    _sync(device)
    calls, started, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        fn()
        calls += 1
        _sync(device)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds and calls >= 2:
            return calls * items / elapsed, calls * items / max(1e-9, time.process_time() - cpu)


DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def bare(name: str, ext: Extractor, device: torch.device, min_seconds: float) -> dict[str, Any]:
    """The extractor's network alone on random input at the batch the pipeline uses, in every
    memory format (CNNs: contiguous and channels_last) and precision (fp32 and bf16 autocast; fp16
    too on CUDA); the fastest is the limit (`per_s`), every variant is recorded."""
    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    if name.startswith(("image", "boxes")):
        from PIL import Image
        batch = ext.batch_size if name.startswith("image") else ext.options.crop_batch
        net, side = ext.net.model, ext.net.preprocess(Image.new("RGB", (300, 300))).shape[-1]
        shape = (batch, 3, side, side)  # the backbone's own input size (timm models differ)
    elif name.startswith("faces"):
        from PIL import Image
        batch, net = ext.options.crop_batch, ext.embedder.model
        side = ext.embedder.to_tensor(Image.new("RGB", (96, 96))).shape[-1]
        shape = (batch, 3, side, side)
    elif name.startswith("text"):
        batch, net = ext.batch_size, ext.model
        tokens = len(ext.tokenizer(PLOT, truncation=True, max_length=ext.max_tokens)["input_ids"])
        ids = torch.randint(5, ext.tokenizer.vocab_size, (batch, tokens), device=device)
        x = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        formats = {"contiguous": None}
    else:
        return {}
    precisions = ("fp32", "bf16") + (("fp16",) if device.type == "cuda" else ())
    variants = []
    for fmt, memory_format in formats.items():
        if memory_format is not None:
            net.to(memory_format=memory_format)
            x = torch.randn(shape).to(device).contiguous(memory_format=memory_format)
        for prec in precisions:
            def forward() -> None:
                with torch.inference_mode(), torch.autocast(device.type, dtype=DTYPES[prec] or torch.float32,
                                                            enabled=DTYPES[prec] is not None):
                    net(**x) if isinstance(x, dict) else net(x)

            wall, cpu = rate(forward, batch, device, min_seconds)
            variants.append({"format": fmt, "precision": prec, "per_s": round(wall, 2), "per_cpu_s": round(cpu, 2)})
    if "channels_last" in formats:
        net.to(memory_format=torch.channels_last)  # as the extractors run it
    best = max(variants, key=lambda v: v["per_s"])
    return {"batch": batch, "per_s": best["per_s"], "per_cpu_s": max(v["per_cpu_s"] for v in variants),
            "fastest": f"{best['format']} {best['precision']}", "variants": variants}


def precision(name: str, ext: Extractor, items: list[Item], device: torch.device) -> dict[str, Any]:
    prepared = [p for p in (ext.prepare(it) for it in items[:ext.batch_size]) if p is not None]
    kinds = ("fp16", "bf16") if device.type == "cuda" else ("bf16",)
    return {p: precision_check(ext, prepared, p) for p in kinds}


def run_job(name: str, job: dict[str, Any], manifest: Path, items: list[Item], tmp: Path,
            device: torch.device, min_seconds: float, repeats: int) -> dict[str, Any]:
    """The CLI and the bare forward, alternated `repeats` times; the best rate of each counts
    (other work on shared cores only ever slows a run down)."""
    cli = job["cli"]
    cls = registry.get(cli[0])
    sets = [cli[i + 1] for i, a in enumerate(cli) if a == "--set"]
    backend = cli[cli.index("--backend") + 1] if "--backend" in cli else cls.backends[0]
    build = time.process_time()
    ext = cls(backend, device, parse_options(cls.options_class, sets))
    build = time.process_time() - build  # each CLI run builds the same extractor: not extraction work
    out = tmp / f"{name}.h5"
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        cpu = time.process_time()
        extract_main(cli[:1] + ["--manifest", str(manifest), "--out", str(out), "--device", device.type,
                                "--no-progress"] + cli[1:])
        cpu = time.process_time() - cpu - build
        store = read_store(out, columns=[])
        counted = len(store) if job["unit"] in ("images", "texts") else int(store.offsets[-1])
        run = {"pipeline_per_s": counted / store.attrs["seconds"], "pipeline_per_cpu_s": counted / max(1e-9, cpu)}
        base = bare(name, ext, device, min_seconds)
        if base:
            run["bare_per_s"], run["bare_per_cpu_s"] = base["per_s"], base["per_cpu_s"]
            run["bare_fastest"], run["bare_variants"] = base["fastest"], base["variants"]
        runs.append(run)
    best = {k: round(max(r[k] for r in runs), 2) for k in runs[0] if not k.startswith("bare_") or k.endswith("_s")}
    result = {"unit": job["unit"], "samples": len(store), "rows": int(store.offsets[-1]),
              "failed": len(store.failed), "batch": int(store.attrs["batch_size"]),
              "workers": int(store.attrs["workers"]), "precision": store.attrs["precision"],
              "seconds_per_sample": store.attrs["seconds_per_sample"], **best,
              "runs": [{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()} for r in runs]}
    if "bare_per_s" in best:
        result["bare_batch"] = base["batch"]
        result["bare_fastest"] = max(runs, key=lambda r: r["bare_per_s"])["bare_fastest"]
        result["ratio"] = round(best["pipeline_per_s"] / best["bare_per_s"], 3)
        result["ratio_cpu_time"] = round(best["pipeline_per_cpu_s"] / best["bare_per_cpu_s"], 3)
    if not name.startswith("objects"):
        job_items = items
        if ext.needs_input:
            input_store = read_store(tmp / "objects.h5")
            job_items = [Item(it.id, it.image, it.text, input_store.sample(it.id), from_input=True) for it in items]
        result["autocast_vs_fp32"] = precision(name, ext, job_items, device)
    del ext
    return result


def environment(device: torch.device) -> dict[str, Any]:
    import timm
    import torchvision
    import transformers
    env = {"host": platform.node(), "cpus": os.cpu_count(), "platform": platform.platform(),
           "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
           "torch": torch.__version__, "torchvision": torchvision.__version__,
           "transformers": transformers.__version__, "timm": timm.__version__}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", help="folder of posters (*.jpeg, searched recursively); default: compose demo posters")
    p.add_argument("--count", type=int, default=128,
                   help="posters used (--quick: 16 for box crops, 32 for faces, 8 texts)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true",
                   help="the small models only (MobileNetV2 jobs, timm resnet18, roberta-base)")
    p.add_argument("--only", default="", help="comma-separated job names to run")
    p.add_argument("--boxes", type=int, default=10, help="synthetic boxes per poster for the box-crop jobs")
    p.add_argument("--min-seconds", type=float, default=0.0,
                   help="time each bare forward at least this long (default: 2, 5 on CUDA)")
    p.add_argument("--repeats", type=int, default=3, help="pipeline and bare runs alternated; the best counts")
    p.add_argument("--out", help="JSON file to write")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device; run with --device cpu")
    count = args.count
    args.min_seconds = args.min_seconds or (5.0 if device.type == "cuda" else 2.0)
    results: dict[str, Any] = {
        "benchmark": "extract_throughput", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": args.device,
        "machine": environment(device), "jobs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = job_table(tmp)
        wanted = set(args.only.split(",")) if args.only else {n for n, j in table.items()
                                                              if j.get("quick") or not args.quick}
        unknown = wanted - set(table)
        if unknown:
            raise SystemExit(f"--only: unknown jobs {sorted(unknown)}; known: {', '.join(table)}")
        if args.images:
            images = sorted(Path(args.images).rglob("*.jpeg"))[:count]
        else:
            from data.demo import compose
            compose(tmp / "demo", n=max(count, 10), seed=0)
            images = sorted((tmp / "demo" / "dataset").glob("*.jpeg"))[:count]
        if not images:
            raise SystemExit(f"no *.jpeg under {args.images}")
        results["images"] = len(images)
        os.environ["DMMS_WEIGHTS"] = str(tmp / "weights")
        random_weights(tmp / "weights", wanted)
        ids = [f"{k:07d}" for k in range(len(images))]
        manifest = tmp / "manifest.csv"
        pd.DataFrame({"id": ids, "split": "test", "image": [str(i) for i in images], "text": PLOT,
                      "labels": ""}).to_csv(manifest, index=False)
        objects_store(tmp / "objects.h5", ids, images, args.boxes)
        items = [Item(i, str(img), PLOT) for i, img in zip(ids, images)]
        if device.type == "cuda":  # CUDA context and cuDNN start-up are not any extractor's cost
            torch.nn.functional.conv2d(torch.ones(1, 3, 64, 64, device="cuda"), torch.ones(8, 3, 3, 3, device="cuda"))
            _sync(device)
        for name, job in table.items():
            if name not in wanted:
                continue
            job_manifest, job_items = manifest, items
            if args.quick and "quick_count" in job:  # a slow model on the CPU: fewer samples
                job_items = items[:job["quick_count"]]
                job_manifest = tmp / f"manifest_{name}.csv"
                pd.read_csv(manifest, dtype=str).iloc[:len(job_items)].to_csv(job_manifest, index=False)
                job = {**job, "cli": job["cli"] + [v for kv in job.get("quick_sets", []) for v in ("--set", kv)]}
            try:
                results["jobs"][name] = run_job(name, job, job_manifest, job_items, tmp, device,
                                                args.min_seconds, args.repeats)
            except Exception as err:  # report and go on to the next extractor
                results["jobs"][name] = {"error": f"{type(err).__name__}: {err}"}
            print(name, json.dumps(results["jobs"][name]), flush=True)
    write_result(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
