#!/usr/bin/env bash
# The device benchmarks in one run: extraction (pipeline vs bare forward, autocast cosine), then
# training and the training grid. JSON goes to $OUT (default bench-out/).
#
#   bash bench/gpu_check.sh                    # a GPU box: DEVICE=cuda when nvidia-smi answers
#   DEVICE=cpu bash bench/gpu_check.sh --quick # the CPU path with small counts (checks it runs)
#
# Needs the project's packages (`make venv`, or PYTHON=/path/to/python with them installed); sets
# DMMS_OFFLINE so that nothing is downloaded (random weights stand in for the paper's models).
# Exit status: 0 when every benchmark ran, 1 otherwise (each still writes what it measured).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-out}
QUICK=""
[ "${1:-}" = "--quick" ] && QUICK="--quick"
if [ -z "${DEVICE:-}" ]; then
  DEVICE=cpu
  nvidia-smi >/dev/null 2>&1 && DEVICE=cuda
fi
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 DMMS_OFFLINE=1 HF_HUB_OFFLINE=1
# a device box without the venv: packages it lacks (facenet_pytorch, the MobileNetV2 weights
# package, ...) can be carried in .gpu/site
[ -d .gpu/site ] && PYTHONPATH="$PYTHONPATH:$PWD/.gpu/site"
mkdir -p "$OUT"
status=0
run() {  # run NAME TIMEOUT_S COMMAND...: one benchmark; a failure is reported, the others still run
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*"
  local started=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - started)) s"
  [ "$rc" = 0 ] || status=1
}

echo "device $DEVICE, python $PYTHON, out $OUT"
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c "import torch, torchvision, transformers; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"

# ---- extraction: bench/extract_throughput.py ---------------------------------------------------
run extract "${EXTRACT_TIMEOUT:-1200}" "$PYTHON" bench/extract_throughput.py --device "$DEVICE" $QUICK \
  --out "$OUT/extract_throughput_$DEVICE.json"

# ---- training: bench/train_throughput.py (MM-IMDb scale; target <= 0.2 s/epoch on an H200) --------
if [ -n "$QUICK" ]; then
  run train "${TRAIN_TIMEOUT:-600}" "$PYTHON" bench/train_throughput.py --device "$DEVICE" --samples 2000 \
    --epochs 1 --width-divisor 8 --pools max --out "$OUT/train_throughput_$DEVICE.json"
else
  run train "${TRAIN_TIMEOUT:-240}" "$PYTHON" bench/train_throughput.py --device "$DEVICE" --samples 25959 \
    --epochs 3 --amp --data "$OUT/train-data" --out "$OUT/train_throughput_$DEVICE.json"
  run train_host "${TRAIN_TIMEOUT:-240}" "$PYTHON" bench/train_throughput.py --device "$DEVICE" --samples 25959 \
    --epochs 3 --amp --feature-device host --pools max --data "$OUT/train-data" \
    --out "$OUT/train_throughput_${DEVICE}_host.json"
fi

# ---- training grid: bench/grid_throughput.py (8 runs per GPU vs one at a time; target >= 4x) -------
if [ -n "$QUICK" ]; then
  run grid "${GRID_TIMEOUT:-1200}" "$PYTHON" bench/grid_throughput.py --device "$DEVICE" --quick \
    --out "$OUT/grid_throughput_$DEVICE.json"
else
  run grid "${GRID_TIMEOUT:-420}" "$PYTHON" bench/grid_throughput.py --device "$DEVICE" --grids imdb \
    --out "$OUT/grid_throughput_$DEVICE.json"
fi

echo "results in $OUT:"
ls -l "$OUT"
exit $status
