"""Does discriminator augmentation help on a small dataset? StyleGAN and LSGAN trained on 200
of the demo digits (16 px), with ``aug.kind=ada`` and without, for the same number of steps
and over several seeds; each run's final SWD is measured against the 1,597 digits it never
saw. Prints one row per GAN and augmentation (mean, std and every seed's value).

    python benchmarks/ada_small_data.py [--steps 3000] [--seeds 3] [--processes 2]
    python benchmarks/ada_small_data.py --gans lsgan --seeds 1 --steps 9000 --eval-every 750
    python benchmarks/ada_small_data.py --data mnistm --gans lsgan --ada-kimg 500 --eval-every 500

``--data mnistm`` gives every digit its own crop of a photograph as texture (the two-domain
demo's B side, in colour): 200 images with detail a discriminator can memorise, where the
plain digits have little.

With ``--eval-every`` each run also prints its SWD trajectory, with D's real sign (ADA's
overfitting heuristic, measured with or without augmentation) and p where ADA runs: whether
D overfits, and whether that ever costs G anything.

ADA's controller moves p by batch x interval / (aug.kimg x 1000) per adjustment. NVlabs'
500 kimg is 2% of their 25,000 kimg runs; runs this short keep that share (--ada-share): p
can go from 0 to 1 within 2% of the images a run sees. ``--ada-kimg`` sets aug.kimg itself
instead (500 is NVlabs' speed in images, whatever the run's length)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import ROOT  # also puts the checkout on sys.path
from PIL import Image

TRAIN_IMAGES, SIZE = 200, 16
DEMO_CONFIG = ROOT / "pipelines" / "configs" / "demo"


def shards(folder: Path, kind: str) -> Path:
    """The demo digits with all but 200 held out: the small training set and its reference.
    ``mnistm`` textures every digit with its own crop of a photograph (the two-domain demo's
    B side), so each training image carries detail a discriminator can memorise."""
    from pipelines.data.demo import digit_images, mnist_m, write_digits
    from pipelines.data.shard import ShardOptions, write_shards

    if kind == "mnistm":
        images, channels = mnist_m(digit_images(SIZE)[0]), "RGB"
        (folder / "images").mkdir()
        for index, image in enumerate(images):
            Image.fromarray(image, channels).save(folder / "images" / f"{index:05d}.png")
        count = len(images)
    else:
        count, channels = write_digits(folder / "images", size=SIZE), "L"
    out = folder / "shards"
    options = ShardOptions(size=SIZE, channels=channels, shard_size=100, holdout=count - TRAIN_IMAGES, progress=False)
    write_shards({"image": folder / "images"}, out, options)
    return out


def run(
    gan: str, aug: str, seed: int, data: str, steps: int, ada_kimg: float, ada_share: float, eval_every: int
) -> float:
    """One single-process run (no Ray: the same engine and loop); its final eval/swd."""
    import torch

    from pipelines.config import load
    from pipelines.core import loop
    from pipelines.data.manifest import read_dataset
    from pipelines.eval.evaluator import make_evaluator
    from pipelines.train.build import build_batches, build_engine

    torch.set_num_threads(1)
    overrides = [
        f"data.path={data}",
        f"train.steps={steps}",
        f"train.seed={seed}",
        f"aug.kind={aug}",
        f"eval.every={eval_every or steps}",
        "eval.samples=1024",
        "data.loader_workers=0",
        "train.log_every=100",
        "train.sample_every=1000000",
        "train.checkpoint_every=1000000",
    ]
    cfg = load(gan, [str(DEMO_CONFIG / f"{gan}.yaml")], overrides)
    # NVlabs' speed as given, or the share of the run NVlabs' 500 kimg is of their 25,000
    kimg = ada_kimg or steps * cfg.data.batch_size * ada_share / 1000
    cfg = load(gan, [str(DEMO_CONFIG / f"{gan}.yaml")], [*overrides, f"aug.kimg={kimg}"])
    dataset = read_dataset(data)
    engine = build_engine(cfg, dataset, torch.device("cpu"))
    batches = build_batches(cfg, dataset, engine)
    evaluator = make_evaluator(cfg, engine.gan, dataset, batches.domains, torch.device("cpu"))
    hooks = loop.CollectingHooks()
    loop.run(cfg, engine, batches, hooks, evaluator=evaluator)
    if eval_every:
        print(trajectory(f"{gan} {aug} seed {seed}", hooks), flush=True)
    p = [m["aug/p"] for _, m in hooks.logs if "aug/p" in m]
    print(
        f"  {gan} {aug} seed {seed}: swd {hooks.evals[-1][1]['eval/swd']:.2f}"
        + (f", final p {p[-1]:.2f}" if p else ""),
        flush=True,
    )
    return hooks.evals[-1][1]["eval/swd"]


def trajectory(name: str, hooks) -> str:
    """One line per evaluation: SWD, and the last logged real sign (and p) before it."""
    lines = [f"  {name}: step, swd, D/real_sign, aug/p"]
    for step, evaluated in hooks.evals:
        logged = [m for at, m in hooks.logs if at <= step]
        last = logged[-1] if logged else {}
        p = f" {last['aug/p']:.2f}" if "aug/p" in last else ""
        lines.append(f"    {step:6d} {evaluated['eval/swd']:6.2f} {last.get('D/real_sign', float('nan')):5.2f}{p}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--gans", nargs="+", default=["lsgan", "stylegan"])
    parser.add_argument("--ada-share", type=float, default=0.02)
    parser.add_argument("--ada-kimg", type=float, default=0, help="aug.kimg itself (NVlabs': 500), over --ada-share")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--data", choices=["digits", "mnistm"], default="digits", help="plain or photo-textured digits")
    parser.add_argument(
        "--eval-every", type=int, default=0, help="also evaluate every N steps and print each trajectory"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ganforge-ada-") as folder:
        data = str(shards(Path(folder), args.data))
        cases = [(gan, aug, seed) for gan in args.gans for aug in ("none", "ada") for seed in range(args.seeds)]
        with ProcessPoolExecutor(args.processes) as pool:
            futures = {
                case: pool.submit(run, *case, data, args.steps, args.ada_kimg, args.ada_share, args.eval_every)
                for case in cases
            }
            results = {case: future.result() for case, future in futures.items()}
    print(
        f"\n{TRAIN_IMAGES} training images, {args.steps} steps, final SWD against the held-out digits (lower is better)"
    )
    print(f"{'GAN':10s} {'aug':5s} {'mean':>8s} {'std':>7s}  seeds")
    for gan in args.gans:
        for aug in ("none", "ada"):
            values = [results[(gan, aug, seed)] for seed in range(args.seeds)]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            each = " ".join(f"{v:.2f}" for v in values)
            print(f"{gan:10s} {aug:5s} {statistics.mean(values):8.2f} {spread:7.2f}  {each}")


if __name__ == "__main__":
    main()
