#!/usr/bin/env bash
# One time-boxed session on an offline CUDA machine: the GPU figures that docs/benchmarks.md,
# docs/bench/scale.md, docs/bench/foundation.md and docs/demo.md ask for.
#
#   bash benchmarks/gpu_session.sh [OUTDIR]          # from the repository root
#
# The machine's python3 must hold torch, transformers, accelerate, peft, safetensors, tokenizers,
# matplotlib, numpy, pyyaml, pandas, pyarrow and rich. Wheels of what it lacks (rasterio, pyproj, affine, cligj,
# click-plugins, shapely, pydantic and its dependencies; pycocotools optionally; docs/demo.md lists them) go in .whl/ and are installed to /tmp/site first:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
#       rasterio pyproj affine cligj click-plugins shapely pydantic pydantic_core annotated-types typing-inspection
# Each section has its own time box so that one failure cannot eat the others' time; SMOKE=1 runs
# the same sections with tiny settings on CPU (to check the script before spending device time).
set -u
OUT=${1:-${OUT:-/tmp/sarvlm_gpu}}
mkdir -p "$OUT"
ROOT=$(pwd)
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 SARVLM_NO_PROGRESS=1 TOKENIZERS_PARALLELISM=false
SITE=""
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >"$OUT/install.log" 2>&1
  SITE=/tmp/site:
fi
export PYTHONPATH="$SITE$ROOT/src"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  echo "cores $(nproc)"
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  git -C "$ROOT" rev-parse HEAD 2>/dev/null
} >"$OUT/hardware.txt" 2>&1
section() { # name seconds command...
  local name=$1 secs=$2
  shift 2
  local t0=$SECONDS
  timeout -k 5 "$secs" "$@" >"$OUT/$name.log" 2>&1
  echo "$name rc=$? $((SECONDS - t0))s" | tee -a "$OUT/hardware.txt"
}
if [ -n "${SMOKE:-}" ]; then
  section train_data 300 "$PY" benchmarks/bench_gpu_train.py --device cpu --model tiny-qwen2.5-vl --steps 3 --warmup 1 \
    --images 16 --json "$OUT/train_data.json"
  section klip_step 120 "$PY" benchmarks/bench_foundation.py --config tiny-klip --device cpu --step-only --steps 2
else
  # issue 14: steps/s, data share and GPU utilisation, old loader vs new defaults vs + image cache (~60 s)
  section train_data 100 "$PY" benchmarks/bench_gpu_train.py --device cuda --json "$OUT/train_data.json"
  # issue 15: base-klip step time and peak memory (bf16, 224², batch 32)
  section klip_step 70 "$PY" benchmarks/bench_foundation.py --config base-klip --device cuda --step-only --steps 20
  # issue 18: the demo's GPU preset; an interrupted run resumes when run again with the same --out
  section demo "${DEMO_SECS:-380}" "$PY" -m sarvlm.cli.main demo --preset gpu --out /tmp/demo-gpu
  (cd /tmp && tar czf "$OUT/demo-gpu.tgz" demo-gpu/report.md demo-gpu/metrics.json demo-gpu/*.png \
    demo-gpu/evaluation/predictions demo-gpu/evaluation/test.jsonl 2>/dev/null)
fi
nvidia-smi --query-gpu=memory.used --format=csv >>"$OUT/hardware.txt" 2>&1 || true
ls -la "$OUT" >>"$OUT/hardware.txt"
