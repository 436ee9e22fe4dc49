"""``ganforge data shard`` and ``ganforge data demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.data.demo import DEMO_SIZE, write_digit_domains, write_digits
from pipelines.data.manifest import DataError


def add(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="prepare datasets").add_subparsers(
        dest="data_command", required=True, metavar="ACTION"
    )

    shard = data.add_parser("shard", help="image folder(s) -> WebDataset tar shards + manifest.json")
    shard.add_argument("--src", type=Path, help="folder of images (searched recursively; png/jpg/webp)")
    shard.add_argument("--domain-a", type=Path, help="unpaired translation: folder of domain A")
    shard.add_argument("--domain-b", type=Path, help="unpaired translation: folder of domain B")
    shard.add_argument("--out", type=Path, required=True, help="output folder (must not exist unless --overwrite)")
    shard.add_argument("--size", type=int, default=64, help="side of the square images (default 64)")
    shard.add_argument(
        "--load-size",
        type=int,
        default=0,
        help="store the images at this side and train on random --size crops of them (plus flips with "
        "data.hflip): CycleGAN's jitter is 286 for 256, size x 286 / 256 at other sizes (default: --size)",
    )
    shard.add_argument("--channels", choices=["RGB", "L"], default="RGB", help="RGB or L (grayscale)")
    shard.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    shard.add_argument("--workers", type=int, default=0, help="processes preparing images (default: all cores)")
    shard.add_argument("--seed", type=int, default=0, help="seed of the order shuffle")
    shard.add_argument(
        "--holdout",
        type=int,
        default=0,
        help="images per domain kept out of training for evaluation (paired domains keep the same names)",
    )
    shard.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    shard.set_defaults(func=run_shard)

    demo = data.add_parser("demo", help="write the demo images (scikit-learn's handwritten digits) as PNGs")
    demo.add_argument("--out", type=Path, required=True)
    demo.add_argument("--size", type=int, default=DEMO_SIZE)
    demo.add_argument(
        "--two-domain",
        action="store_true",
        help="unpaired domains for translation GANs: OUT/A digits, OUT/B MNIST-M-style digits",
    )
    demo.set_defaults(func=run_demo)


def _sources(args: argparse.Namespace) -> dict[str, Path]:
    pair = (args.domain_a, args.domain_b)
    if args.src and any(pair):
        raise DataError("give either --src or --domain-a/--domain-b, not both")
    if any(pair) and not all(pair):
        raise DataError("two-domain data needs both --domain-a and --domain-b")
    if args.src:
        return {"image": args.src}
    if all(pair):
        return {"A": args.domain_a, "B": args.domain_b}
    raise DataError("give --src (one domain) or --domain-a and --domain-b (unpaired two domains)")


def run_shard(args: argparse.Namespace) -> None:
    from pipelines.data.shard import ShardOptions, write_shards

    opts = ShardOptions(
        size=args.size,
        load_size=args.load_size,
        channels=args.channels,
        shard_size=args.shard_size,
        workers=args.workers,
        seed=args.seed,
        holdout=args.holdout,
        overwrite=args.overwrite,
    )
    manifest = write_shards(_sources(args), args.out, opts)
    for name, domain in manifest["domains"].items():
        held = f", {domain['holdout']['count']} held out" if domain["holdout"]["count"] else ""
        print(
            f"{name}: {domain['count']} images in {len(domain['shards'])} shard(s){held}, "
            f"{domain['skipped_count']} skipped"
        )
        for entry in domain["skipped"][:5]:
            print(f"  skipped {entry['file']}: {entry['reason']}")
        if domain["skipped_count"] > 5:
            print(f"  ... and {domain['skipped_count'] - 5} more (listed in manifest.json)")
    print(f"wrote {args.out}/manifest.json")


def run_demo(args: argparse.Namespace) -> None:
    if args.two_domain:
        counts = write_digit_domains(args.out, size=args.size)
        print(f"wrote {counts['A']} digits to {args.out}/A and {counts['B']} MNIST-M-style digits to {args.out}/B")
        return
    count = write_digits(args.out, size=args.size)
    print(f"wrote {count} digit images to {args.out}")
