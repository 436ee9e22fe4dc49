"""What Ray Train costs, on this machine, side by side in one run:

* overhead: steady-state images/second of the ganforge loop under Ray Train with 1 worker
  against the same loop in a plain single process (no Ray, no MLflow), same threads, batch
  and data loader (target: ratio >= 0.95 for every GAN). On a small machine one pair of
  runs moves by more than the 5% in question, so the two are interleaved (plain, Ray, Ray,
  plain, ...) for ``--repeats`` rounds and compared by their medians; each plain loop runs
  in a fresh process, as each Ray Train worker does;
* scaling: 2 workers x 1 thread against 1 worker x 1 thread at the same per-worker batch
  (target: ratio >= 1.7);
* start-up: seconds from `ganforge train` to the first optimizer step on local Ray.

Each GAN runs its demo config (pipelines/configs/demo) at its demo size.

    python benchmarks/ray_overhead.py [--gans lsgan,discogan] [--steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEMO_SIZE, GANS, ROOT, shards_for, steady_rate, table

QUIET = [
    "train.log_every=10",
    "train.sample_every=1000000",
    "train.checkpoint_every=1000000",
    "eval.every=0",
    "train.threads_per_worker=1",
]


def config(gan: str, steps: int, workers: int, store: Path):
    """The demo config at the demo's batch per worker (its global batch is for 2 workers):
    data.batch_size is global, so it grows with the workers here."""
    from pipelines.config import load

    demo = [str(ROOT / "pipelines" / "configs" / "demo" / f"{gan}.yaml")]
    per_worker = load(gan, demo).data.batch_size // 2
    return load(
        gan,
        demo,
        [
            f"data.path={shards_for(gan, DEMO_SIZE[gan])}",
            f"data.batch_size={per_worker * workers}",
            f"train.steps={steps}",
            f"train.workers={workers}",
            *QUIET,
            f"tracking.uri=sqlite:///{store / 'mlflow.db'}",
            f"tracking.artifact_root={(store / 'art').as_uri()}",
            f"train.storage_path={store / 'ray'}",
        ],
    )


def plain_rate(cfg) -> float:
    """The same loop, engine and data stream in this process, with no Ray and no tracking."""
    import torch

    from pipelines.core import loop
    from pipelines.data.manifest import read_dataset
    from pipelines.train.build import build_batches, build_engine

    torch.set_num_threads(cfg.train.threads_per_worker)
    dataset = read_dataset(cfg.data.path)
    engine = build_engine(cfg, dataset, torch.device("cpu"))
    data = build_batches(cfg, dataset, engine)
    hooks = loop.CollectingHooks()
    loop.run(cfg, engine, data, hooks)
    return steady_rate(hooks.logs)


def ray_rate(cfg) -> float:
    """Images/second (all workers) as the Ray Train job's rank 0 logged them to MLflow."""
    from mlflow import MlflowClient

    from pipelines.train.launch import train

    outcome = train(cfg, progress=False)
    history = MlflowClient(outcome.tracking.uri).get_metric_history(outcome.run_id, "perf/images_per_sec")
    return steady_rate([(m.step, {"perf/images_per_sec": m.value}) for m in sorted(history, key=lambda m: m.step)])


def plain_rate_fresh(gan: str, steps: int) -> float:
    """``plain_rate`` in a new process of this script (a fork of this Ray driver could not
    run DataLoader processes cleanly, and a fresh process is what a Ray worker is)."""
    done = subprocess.run(
        [sys.executable, __file__, "--plain", gan, "--steps", str(steps)], check=True, capture_output=True, text=True
    )
    return float(done.stdout.split()[-1])


def interleaved(gan: str, steps: int, repeats: int, store: Path) -> tuple[list[float], list[float]]:
    """(plain rates, Ray rates), alternating which goes first so that a drift of the machine
    weighs on both alike."""
    plain, ray = [], []
    runs = [
        lambda: plain.append(plain_rate_fresh(gan, steps)),
        lambda: ray.append(ray_rate(config(gan, steps, 1, store))),
    ]
    for round_ in range(repeats):
        for run in runs if round_ % 2 == 0 else runs[::-1]:
            run()
    return plain, ray


def startup_seconds(gan: str, store: Path) -> float:
    """From launching `ganforge train` (a fresh process, its own local Ray) to rank 0's first
    optimizer step, read from the timestamp of the step-1 loss in the MLflow store."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{store / 'startup.db'}"
    command = [
        str(Path(sys.executable).with_name("ganforge")),
        "train",
        gan,
        "--data",
        str(shards_for(gan, DEMO_SIZE[gan])),
        "--workers",
        "1",
        "--steps",
        "5",
        "--no-progress",
        "--set",
        "train.log_every=1",
        "--set",
        f"tracking.uri={uri}",
        "--set",
        f"tracking.artifact_root={(store / 'art-startup').as_uri()}",
        "--set",
        f"train.storage_path={store / 'ray-startup'}",
    ]
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = MlflowClient(uri)
    run = client.search_runs(
        [client.get_experiment_by_name(f"ganforge-{gan}").experiment_id],
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    first = min(m.timestamp for m in client.get_metric_history(run.info.run_id, "loss/G") if m.step == 1)
    return first / 1000 - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gans", default=",".join(GANS))
    parser.add_argument("--steps", type=int, default=150, help="steps per run (the first 20 are warm-up)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of plain loop and Ray Train")
    parser.add_argument("--plain", metavar="GAN", help=argparse.SUPPRESS)  # one plain loop; prints its rate
    args = parser.parse_args()
    if args.plain:
        with tempfile.TemporaryDirectory(prefix="ganforge-bench-") as folder:
            print(plain_rate(config(args.plain, args.steps, 1, Path(folder))))
        return
    from cluster.connect import connect

    gans = args.gans.split(",")
    rows, scaling = [], []
    with tempfile.TemporaryDirectory(prefix="ganforge-bench-") as folder:
        store = Path(folder)
        startup = startup_seconds("lsgan", store)  # a process of its own, with its own Ray
        connect(num_cpus=os.cpu_count())
        for gan in gans:
            plain, ray = interleaved(gan, args.steps, args.repeats, store)
            ray2 = ray_rate(config(gan, args.steps, 2, store))
            mid_plain, mid_ray = statistics.median(plain), statistics.median(ray)
            pairs = [r / p for p, r in zip(plain, ray)]
            rows.append(
                [
                    gan,
                    f"{DEMO_SIZE[gan]} px, batch {config(gan, 1, 1, store).data.batch_size}",
                    mid_plain,
                    mid_ray,
                    mid_ray / mid_plain,
                    f"{min(pairs):.2f}-{max(pairs):.2f}",
                ]
            )
            scaling.append([gan, mid_ray, ray2, ray2 / mid_ray])
    table(
        f"Ray Train overhead: images/s, 1 worker x 1 thread, medians of {args.repeats} interleaved runs "
        "(target ratio >= 0.95)",
        ["GAN", "input", "plain loop", "Ray Train", "ratio", "ratio per round"],
        rows,
    )
    table(
        "DDP scaling on CPU: images/s, same batch per worker (target ratio >= 1.7)",
        ["GAN", "1 worker", "2 workers", "ratio"],
        scaling,
    )
    table("Start-up", ["what", "seconds"], [["`ganforge train lsgan` to the first optimizer step, local Ray", startup]])


if __name__ == "__main__":
    main()
