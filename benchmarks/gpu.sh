#!/usr/bin/env bash
# All four GANs on one GPU for a fixed number of steps: step time, images/second and peak
# CUDA memory at 64 and 256 px with the GPU defaults (bf16 autocast where the GPU has it,
# channels-last, TF32, cuDNN autotuning); then what the defaults gain (StyleGAN at 256 px
# in float32 NCHW), the fp16 path with its loss scaler, and torch.compile. Every case also
# reports whether its losses stayed finite. Needs only torch with CUDA and PyYAML.
#   benchmarks/gpu.sh [PYTHON]          RESULTS=FILE keeps every case as a JSON line
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
RESULTS=${RESULTS:-/dev/null}
run() { "$PY" benchmarks/step_time.py --device cuda --steps 30 --warmup 20 --jsonl "$RESULTS" "$@"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'
run --sizes 64,256                                                     # the defaults
run --gans stylegan --sizes 256 --amp off --channels-last off          # float32 NCHW (TF32 on)
run --gans lsgan,stylegan --sizes 64 --amp fp16                        # fp16 with the loss scaler
run --gans lsgan,stylegan --sizes 64,256 --compile --case-timeout 180  # compiled (warm-up includes the compile)
