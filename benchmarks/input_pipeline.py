"""Is input ever the bottleneck? At 64 px, for each GAN and its reference batch: the images
per second the WebDataset loader delivers to a worker (shard reading, decoding in the
DataLoader process, then the h-flip and scaling the worker does; the same loader processes
as training), against the rate the GAN's step consumes them on one thread (target: >= 5x),
and against a plain folder-of-PNG DataLoader with as many processes.

    python benchmarks/input_pipeline.py [--gans lsgan,cyclegan] [--batches 60]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import CACHE, GANS, ONE_DOMAIN, shards_for, table

SIZE = 64


def webdataset_rate(gan: str, batch: int, loader_workers: int, batches: int) -> float:
    import torch

    import gan_core
    from pipelines.core.tensors import to_model_batch
    from pipelines.data.batches import Batches, resolve_domains
    from pipelines.data.loader import StreamSpec
    from pipelines.data.manifest import read_dataset

    dataset = read_dataset(shards_for(gan, SIZE))
    domains = resolve_domains(dataset, gan, gan_core.get(gan).domains)
    data = Batches(dataset, domains, StreamSpec(loader_workers=loader_workers), batch)
    stream = (to_model_batch(raw, torch.device("cpu"), hflip=True) for raw in _forever(data))
    return _rate(stream, batch * len(domains), batches)


def _forever(data):
    for epoch in itertools.count():
        yield from data.epoch(epoch)


class PngFolder:
    """The baseline: one PNG file per sample, decoded with PIL in the DataLoader processes."""

    def __init__(self, files: list[Path], channels: str):
        self.files, self.channels = files, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        from PIL import Image

        with Image.open(self.files[index]) as image:
            return np.array(image.convert(self.channels).resize((SIZE, SIZE)))  # a writable copy


def png_rate(gan: str, batch: int, loader_workers: int, batches: int) -> float:
    import torch
    from torch.utils.data import DataLoader

    from pipelines.core.tensors import to_model_batch

    two = gan not in ONE_DOMAIN
    folder = CACHE / (f"digits-mnistm-{SIZE}-png" if two else f"digits-{SIZE}-png")
    shards_for(gan, SIZE)  # writes the PNG folders too
    loaders = [
        DataLoader(
            PngFolder(
                sorted((folder / d).rglob("*.png")) if two else sorted(folder.rglob("*.png")), "RGB" if two else "L"
            ),
            batch_size=batch,
            shuffle=True,
            drop_last=True,
            num_workers=loader_workers,
            persistent_workers=loader_workers > 0,
        )
        for d in (("A", "B") if two else ("",))
    ]

    def stream():
        iterators = [_cycle(loader) for loader in loaders]
        while True:  # the same scaling and flips as the WebDataset path, on NCHW batches
            yield [
                to_model_batch({"images": {"x": _nchw(next(it))}}, torch.device("cpu"), hflip=True) for it in iterators
            ]

    return _rate(stream(), batch * len(loaders), batches)


def _nchw(images):
    """A collated PNG batch, (N, H, W) or (N, H, W, C), in the loader's (N, C, H, W) layout."""
    return images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)


def _cycle(loader):
    while True:
        yield from loader


def _rate(stream, images_per_item: int, items: int) -> float:
    for _ in range(3):  # loader processes start, shuffle buffers fill
        next(stream)
    start = time.perf_counter()
    for _ in range(items):
        next(stream)
    return images_per_item * items / (time.perf_counter() - start)


def consumption(gan: str) -> tuple[int, float]:
    """(batch, images/s) of the GAN's training step at 64 px on one thread, with the batch
    step_time.py uses on CPU."""
    import json

    from step_time import cpu_batch

    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("step_time.py")),
            "--one",
            f"{gan}:{SIZE}:{cpu_batch(gan, SIZE)}",
            "--steps",
            "3",
            "--warmup",
            "1",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["batch"], result["images_per_sec"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gans", default=",".join(GANS))
    parser.add_argument("--batches", type=int, default=40, help="batches timed per loader")
    parser.add_argument("--loader-workers", type=int, default=1, help="DataLoader processes (data.loader_workers)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # what a training worker has
    rows = []
    for gan in args.gans.split(","):
        batch, consumed = consumption(gan)
        wds = webdataset_rate(gan, batch, args.loader_workers, args.batches)
        png = png_rate(gan, batch, args.loader_workers, args.batches)
        rows.append([gan, batch, consumed, wds, wds / consumed, png])
    table(
        f"Input at {SIZE} px, {args.loader_workers} loader process(es): images/s "
        "(target: WebDataset >= 5x the step's rate)",
        ["GAN", "batch", "step consumes", "WebDataset loader", "headroom", "PNG folder loader"],
        rows,
    )


if __name__ == "__main__":
    main()
