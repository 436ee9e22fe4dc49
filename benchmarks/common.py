"""What the benchmark scripts share: demo shards at any size (made once, kept in a cache
folder), a GAN's engine at a size, steady-state throughput from the loop's own logs, peak
memory and a plain-text table. Benchmarks print figures; they assert nothing."""

from __future__ import annotations

import resource
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python benchmarks/x.py` from a checkout, installed or not

CACHE = ROOT / "data" / "bench"
ONE_DOMAIN = ("lsgan", "stylegan")
GANS = ("lsgan", "stylegan", "cyclegan", "discogan")
DEMO_SIZE = {"lsgan": 16, "stylegan": 16, "cyclegan": 32, "discogan": 32}  # each GAN's demo resolution, px
WARMUP_LOGS = 2  # log intervals dropped before steady state (allocator warm-up, loader start)


def demo_shards(size: int, two_domain: bool) -> Path:
    """The package's demo digits (two-domain: digits | MNIST-M-style digits) as shards of
    ``size`` px, written on first use."""
    from pipelines.data.demo import write_digit_domains, write_digits
    from pipelines.data.shard import ShardOptions, write_shards

    name = f"{'digits-mnistm' if two_domain else 'digits'}-{size}"
    out = CACHE / f"{name}-up"  # "-up": Up-filtered PNGs (pipelines/data/png.py); older caches hold PIL's
    if (out / "manifest.json").is_file():
        return out
    images = CACHE / f"{name}-png"
    if not images.exists():
        (write_digit_domains if two_domain else write_digits)(images, size=size)
    sources = {"A": images / "A", "B": images / "B"} if two_domain else {"image": images}
    write_shards(
        sources,
        out,
        ShardOptions(size=size, channels="RGB" if two_domain else "L", shard_size=200, overwrite=True, progress=False),
    )
    return out


def shards_for(gan: str, size: int) -> Path:
    """One-domain GANs read the grey digits, translation GANs both domains."""
    return demo_shards(size, two_domain=gan not in ONE_DOMAIN)


def steady_rate(logs: list[tuple[int, dict[str, float]]]) -> float:
    """Median images/second of the log intervals after the warm-up ones."""
    rates = [m["perf/images_per_sec"] for _, m in logs if "perf/images_per_sec" in m]
    return statistics.median(rates[WARMUP_LOGS:] or rates)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header, *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print("  ".join(v.rjust(w) if j else v.ljust(w) for j, (v, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
