"""Per GAN and image size: training step time, images/second and peak memory of one worker,
for each GAN's reference config (pipelines/configs/<gan>.yaml). Needs only torch (and
PyYAML), so it runs on a bare GPU machine: `benchmarks/gpu.sh` calls it there.

Every case runs in a fresh process, so its peak memory is its own: peak RSS on CPU, peak
allocated CUDA memory on GPU. Inputs are random images of the right shape (the data
loader's rate is benchmarks/input_pipeline.py's business).

    python benchmarks/step_time.py                          # CPU: all GANs at 64 and 256 px
    python benchmarks/step_time.py --device cuda --amp bf16 --channels-last --steps 50
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import GANS, ONE_DOMAIN, peak_rss_mib, table

CPU_BATCH = 4  # on a CPU core, StyleGAN's reference batch (and every batch at 256 px) takes minutes per step


def cpu_batch(gan: str, size: int) -> int:
    """The batch a CPU benchmark uses: the reference config's (0), or CPU_BATCH where that
    would take minutes per step. CycleGAN's reference batch is 1 anyway."""
    if gan == "cyclegan":
        return 0
    return CPU_BATCH if gan == "stylegan" or size >= 256 else 0


def case_config(gan: str, batch: int, args: argparse.Namespace):
    from pipelines.config import load

    overrides = [
        f"train.amp={args.amp}",
        f"train.use_gpu={args.device == 'cuda'}",
        f"train.channels_last={args.channels_last}",
        f"train.compile={args.compile}",
        f"train.compile_mode={args.compile_mode}",
    ]
    return load(gan, config_files=args.config, overrides=overrides + ([f"data.batch_size={batch}"] if batch else []))


def measure(gan: str, size: int, batch: int, args: argparse.Namespace) -> dict:
    """Time ``args.steps`` steps after ``args.warmup`` in this process."""
    import torch

    import gan_core
    from pipelines.core.device import amp_mode, channels_last, configure_device
    from pipelines.core.engine import Engine
    from pipelines.core.tensors import to_model_batch

    cfg = case_config(gan, batch, args)
    device = torch.device(args.device)
    configure_device(cfg.train, device, gan_core.get(gan).tf32)
    torch.set_num_threads(args.threads)
    channels = 1 if gan in ONE_DOMAIN else 3  # the demo data's: grey digits, RGB pairs
    engine = Engine.for_config(cfg, size, channels, device)
    shape = (cfg.data.batch_size, channels, size, size)
    raw = {"images": {key: torch.randint(0, 256, shape, dtype=torch.uint8) for key in engine.gan.domains}}

    def step() -> dict[str, torch.Tensor]:
        return engine.train_step(to_model_batch(raw, device, hflip=True))

    compile_start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    warmup_s = time.perf_counter() - compile_start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        logs = step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib()
    if args.profile:
        write_profile(step, sync, device, f"{args.profile}-{gan}-{size}.txt")
    images = cfg.data.batch_size * len(engine.gan.domains)  # a translation GAN reads one batch per domain
    return {
        "gan": gan,
        "size": size,
        "batch": cfg.data.batch_size,
        "step_ms": 1e3 * seconds,
        "images_per_sec": images / seconds,
        "peak_mib": peak,
        "amp": amp_mode(cfg.train, device),
        "channels_last": channels_last(cfg.train, device),
        "warmup_s": warmup_s,
        # reduced precision is only a speed-up if training still makes numbers
        "finite": all(bool(torch.isfinite(v).all()) for v in logs.values()),
    }


def write_profile(step, sync, device, path: str, steps: int = 3) -> None:
    """The ops that take the time over a few steps (after the timed ones, so the profiler's
    own cost stays out of the figures): where a slow GAN's step goes."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync()
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    with open(path, "w") as f:
        f.write(prof.key_averages().table(sort_by=key, row_limit=40, max_name_column_width=80))


def run_isolated(gan: str, size: int, batch: int, args: argparse.Namespace) -> dict:
    """One case in a child process. A case that fails or runs past ``--case-timeout`` becomes
    a row with its reason, so one broken setting does not cost the other figures."""
    settings = [
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--amp",
        args.amp,
        "--channels-last",
        args.channels_last,
        *(["--compile"] if args.compile else []),
        "--compile-mode",
        args.compile_mode,
        *(["--profile", args.profile] if args.profile else []),
        *[arg for path in args.config for arg in ("--config", path)],
    ]
    command = [sys.executable, __file__, "--one", f"{gan}:{size}:{batch}", *settings]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.case_timeout)
    except subprocess.TimeoutExpired:
        return {"gan": gan, "size": size, "error": f"over {args.case_timeout} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"gan": gan, "size": size, "error": last[:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(r: dict) -> list:
    if "error" in r:
        return [r["gan"], r["size"], "-", "-", "-", "-", "-", "-", "-", "failed: " + r["error"]]
    return [
        r["gan"],
        r["size"],
        r["batch"],
        r["amp"],
        "NHWC" if r["channels_last"] else "NCHW",
        r["step_ms"],
        r["images_per_sec"],
        r["peak_mib"],
        r["warmup_s"],
        "ok" if r["finite"] else "NON-FINITE losses",
    ]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gans", default=",".join(GANS))
    parser.add_argument("--sizes", default="64,256")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a ganforge worker's default: 1)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "off", "bf16", "fp16"],
        help="autocast (train.amp; auto = bf16 on a GPU that has it, else off)",
    )
    parser.add_argument(
        "--channels-last",
        default="auto",
        choices=["auto", "on", "off"],
        help="NHWC nets and batches (train.channels_last; auto = on with CUDA)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile every net")
    parser.add_argument(
        "--compile-mode",
        default="default",
        help="torch.compile's mode with --compile (train.compile_mode): reduce-overhead replays CUDA graphs",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help=f"batch per step; 0 = the config's (on CPU: {CPU_BATCH} for StyleGAN and at 256 px)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="a YAML config over the GAN's reference one (repeatable), e.g. a preset",
    )
    parser.add_argument("--profile", help="write each case's top ops (torch.profiler) to PREFIX-GAN-SIZE.txt")
    parser.add_argument("--case-timeout", type=float, default=None, help="seconds one case may take")
    parser.add_argument("--jsonl", help="append each case's figures to this file as it finishes")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # GAN:SIZE:BATCH, run in a child process
    return parser.parse_args()


def main() -> None:
    args = parse()
    if args.one:
        gan, size, batch = args.one.split(":")
        print(json.dumps(measure(gan, int(size), int(batch), args)))
        return
    rows = []
    for size in map(int, args.sizes.split(",")):
        for gan in args.gans.split(","):
            batch = args.batch or (cpu_batch(gan, size) if args.device == "cpu" else 0)
            r = run_isolated(gan, size, batch, args)
            print(json.dumps(r), file=sys.stderr, flush=True)  # progress, and figures kept if the run is cut
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps({**r, "compiled": args.compile, "compile_mode": args.compile_mode}) + "\n")
            rows.append(row(r))
    memory = "peak CUDA MiB" if args.device == "cuda" else "peak RSS MiB"
    where = torch_device_name(args.device) + (f", {args.threads} thread(s)" if args.device == "cpu" else "")
    table(
        f"Training step per GAN ({where}{f', compiled ({args.compile_mode})' if args.compile else ''})",
        ["GAN", "px", "batch", "amp", "layout", "step ms", "images/s", memory, "warm-up s", "losses"],
        rows,
    )


def torch_device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name() if device == "cuda" else "CPU"


if __name__ == "__main__":
    main()
