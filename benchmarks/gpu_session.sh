#!/usr/bin/env bash
# One device session on a CUDA machine (the figures in docs/benchmarks.md marked "H200").
# The machine is offline: its python3 holds torch/transformers/accelerate/peft/safetensors;
# rasterio, pyproj and pycocotools travel as wheels in .whl/ (see docs/scale.md, "GPU figures").
#   bash benchmarks/gpu_session.sh OUTDIR
# Each section is time-boxed so one failure cannot eat the others' time.
set -u
OUT=${1:-${OUT:-/tmp/gpu_out}}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SARVLM_NO_PROGRESS=1 TOKENIZERS_PARALLELISM=false
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src
fi
sarvlm() { python3 -c 'import sys; from sarvlm.cli.main import main; sys.exit(main())' "$@"; }
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
} > "$OUT/hardware.txt" 2>&1
section() {  # name, seconds, command...
  local name=$1 secs=$2; shift 2
  local t0=$SECONDS
  timeout -k 5 "$secs" "$@" > "$OUT/$name.log" 2>&1
  echo "$name rc=$? ${SECONDS}s-${t0}s" | tee -a "$OUT/hardware.txt"
}
