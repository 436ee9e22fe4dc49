#!/usr/bin/env bash
# All four GANs on one GPU for a fixed number of steps: step time, images/second and peak
# CUDA memory at 64 and 256 px with the GPU defaults (bf16 autocast where the GPU has it,
# channels-last, TF32, cuDNN autotuning). Then StyleGAN at 256 px in StyleGAN2-ADA's own
# one-GPU config (the preset NVlabs publish 48 images/s on a V100 for), with and without
# the defaults and with its ops profiled; the fp16 path with its loss scaler; torch.compile,
# and CycleGAN's launch-bound batch of 1 replayed as CUDA graphs (compile's reduce-overhead).
# Every case reports whether its losses stayed finite. Needs only torch with CUDA and PyYAML.
#   benchmarks/gpu.sh [PYTHON]      RESULTS=FILE keeps every case as a JSON line;
#                                   PROFILE=PREFIX is where the op profiles go
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
RESULTS=${RESULTS:-/dev/null}
PROFILE=${PROFILE:-/tmp/ganforge-profile}
ADA=(--gans stylegan --sizes 256 --config pipelines/configs/presets/stylegan-ada256.yaml)
run() { "$PY" benchmarks/step_time.py --device cuda --steps 30 --warmup 17 --jsonl "$RESULTS" "$@"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'
run "${ADA[@]}" --profile "$PROFILE"                        # the target: beat 48 images/s (V100)
run --sizes 64,256                                          # every GAN, reference configs
run "${ADA[@]}" --amp off --channels-last off               # what the defaults gain
run --gans lsgan,cyclegan,discogan --sizes 64,256 --amp off # autocast stays only where it is faster
run --gans lsgan,stylegan --sizes 64 --amp fp16             # fp16 with the loss scaler
run "${ADA[@]}" --compile --case-timeout 240                # compiled (warm-up includes the compile)
run --gans cyclegan --sizes 64 --compile --case-timeout 240  # batch 1: fused kernels...
run --gans cyclegan --sizes 64 --compile --compile-mode reduce-overhead --case-timeout 240  # ...and CUDA graphs
