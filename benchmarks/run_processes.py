"""Where a Ray Train run's fixed cost goes, by process: the CPU-seconds per run of each kind
of process that a short `ganforge train` run starts or keeps busy on a local Ray instance
(Ray Train's controller and helper actors, the workers, ganforge's progress queue, the
driver, Ray's own daemons), and the run's wall time. The first run, which also warms Ray
up, is left out. Linux only: it reads /proc.

A process is sampled every 0.2 s, so one that ends between two samples loses up to 0.2 s of
CPU here; the totals are floors.

    python benchmarks/run_processes.py [--gan lsgan] [--runs 4] [--workers 1] [--steps 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from common import DEMO_SIZE, shards_for, table

TICK = os.sysconf("SC_CLK_TCK")


def _read(pid: str) -> tuple[str, float] | None:
    """(title, CPU-seconds so far) of one process; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return title, (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _kind(title: str, driver: bool) -> str:
    if driver:
        return "driver (ganforge train's process)"
    if title.startswith("ray::"):  # ray::Class, ray::Class.method or ray::IDLE
        return "ray::" + title[5:].split(".")[0].split(" ")[0]
    return "Ray's daemons (GCS, raylet, dashboard, agents)" if "ray" in title else ""


class Sampler:
    """CPU-seconds used by each kind of process between ``start`` and ``stop``."""

    def __init__(self) -> None:
        self.base: dict[str, float] = {}
        self.last: dict[str, tuple[str, float]] = {}
        self.first = True  # the first scan sets the baseline of processes already running
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _scan(self) -> None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            seen = _read(pid)
            if seen is None:
                continue
            title, cpu = seen
            self.base.setdefault(pid, cpu if self.first else 0.0)
            old = self.last.get(pid, ("", 0.0))[0]
            # Keep the most telling title: an exiting process loses its cmdline, and an idle
            # worker reads ray::IDLE before and after its actor.
            keep = title if title and (not old or "IDLE" in old or not old.startswith("ray::")) else old
            self.last[pid] = (keep, cpu)

    def _loop(self) -> None:
        while not self.done.is_set():
            self._scan()
            self.first = False
            time.sleep(0.2)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> Counter:
        self.done.set()
        self.thread.join()
        self._scan()
        totals: Counter = Counter()
        for pid, (title, cpu) in self.last.items():
            kind = _kind(title, pid == str(os.getpid()))
            if kind:
                totals[kind] += cpu - self.base[pid]
        return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gan", default="lsgan", choices=sorted(DEMO_SIZE))
    parser.add_argument("--runs", type=int, default=4, help="measured runs, after one warm-up run")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    from cluster.connect import connect
    from pipelines.config import load
    from pipelines.train.launch import train

    connect(num_cpus=os.cpu_count())
    with tempfile.TemporaryDirectory(prefix="ganforge-bench-") as folder:

        def one_run() -> float:
            cfg = load(
                args.gan,
                overrides=[
                    f"data.path={shards_for(args.gan, DEMO_SIZE[args.gan])}",
                    f"train.workers={args.workers}",
                    f"train.steps={args.steps}",
                    "eval.every=0",
                    f"tracking.uri=sqlite:///{folder}/mlflow.db",
                    f"tracking.artifact_root={Path(folder, 'art').as_uri()}",
                    f"train.storage_path={folder}/ray",
                ],
            )
            start = time.perf_counter()
            train(cfg, progress=False)
            return time.perf_counter() - start

        one_run()  # warm-up: Ray's first Train run starts session-wide actors
        sampler = Sampler()
        sampler.start()
        walls = [one_run() for _ in range(args.runs)]
        totals = sampler.stop()
    rows = [[kind, cpu / args.runs] for kind, cpu in totals.most_common() if cpu / args.runs >= 0.05]
    rows.append(["all of the above", sum(totals.values()) / args.runs])
    table(
        f"CPU-seconds per {args.steps}-step, {args.workers}-worker {args.gan} run, mean of {args.runs} runs "
        f"(wall: {sum(walls) / len(walls):.1f} s per run, {os.cpu_count()} cores)",
        ["process", "CPU-s"],
        rows,
    )


if __name__ == "__main__":
    main()
