#!/usr/bin/env bash
# All four GANs on one GPU for a fixed number of steps: step time, images/second and peak
# CUDA memory at 64 and 256 px with the GPU defaults (bf16 autocast where the GPU has it,
# channels-last, TF32, cuDNN autotuning), then StyleGAN at 256 px as float32 NCHW (what the
# defaults gain) and compiled. Needs only torch with CUDA and PyYAML.
#   benchmarks/gpu.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'
"$PY" benchmarks/step_time.py --device cuda --sizes 64,256 --steps 50 --warmup 10
"$PY" benchmarks/step_time.py --device cuda --gans stylegan --sizes 256 --steps 50 --warmup 10 --amp off --channels-last off
"$PY" benchmarks/step_time.py --device cuda --gans stylegan --sizes 256 --steps 50 --warmup 20 --compile
