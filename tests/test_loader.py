"""The WebDataset loader on real shards: exact epochs read every sample once across ranks and
DataLoader workers, every rank gets the same number of batches, and broken data is skipped
and counted."""

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter

import pytest
import torch
from conftest import add_member

from pipelines.config import ConfigError, load
from pipelines.core.loop import Position, resumed_position
from pipelines.data.batches import Batches, resolve_domains
from pipelines.data.demo import write_digits
from pipelines.data.loader import RankBatches, StreamSpec, auto_loader_workers, loader_processes
from pipelines.data.manifest import DataError, read_dataset
from pipelines.data.shard import ShardOptions, write_shards
from pipelines.train.preflight import check_data


def _epoch(shards, rank, world, mode="exact", epoch=0, workers=2, batch=50, epoch_batches=0):
    ds = read_dataset(shards)
    spec = StreamSpec(rank=rank, world=world, mode=mode, seed=3, shuffle_buffer=100, loader_workers=workers)
    batches = list(RankBatches(ds.domain("image"), spec, ds.resolution, ds.channels, batch, epoch_batches).epoch(epoch))
    assert all(b["images"].shape == (batch, 1, 16, 16) for b in batches)
    return batches


def _keys(batches):
    return [k for b in batches for k in b["keys"]]


@pytest.fixture(scope="module")
def even_shards(tmp_path_factory):
    """1,600 digits in 16 shards of 100: divides evenly over 2 ranks x 2 workers x batch 50."""
    root = tmp_path_factory.mktemp("even")
    write_digits(root / "images", size=16, limit=1600)
    write_shards(
        {"image": root / "images"}, root / "shards", ShardOptions(size=16, channels="L", shard_size=100, progress=False)
    )
    return root / "shards"


@pytest.mark.parametrize("epoch", [0, 1])
def test_exact_epoch_reads_every_sample_once_across_ranks_and_workers(even_shards, epoch):
    per_rank = [_keys(_epoch(even_shards, rank, 2, epoch=epoch)) for rank in range(2)]
    everything = per_rank[0] + per_rank[1]
    assert len(per_rank[0]) == len(per_rank[1]) == 800
    assert len(everything) == len(set(everything)) == 1600  # no duplicates, nothing missing
    shards_of = [{k.split("#")[0] for k in keys} for keys in per_rank]
    assert not shards_of[0] & shards_of[1]  # no shard read by two ranks


def test_exact_epochs_reshuffle_the_shard_assignment(even_shards):
    assert {k.split("#")[0] for k in _keys(_epoch(even_shards, 0, 2, epoch=0))} != {
        k.split("#")[0] for k in _keys(_epoch(even_shards, 0, 2, epoch=1))
    }


def test_an_exact_epoch_resumed_by_another_worker_count_moves_on_instead_of_rereading(even_shards):
    read = set(_keys(_epoch(even_shards, 0, 2)[:6]) + _keys(_epoch(even_shards, 1, 2)[:6]))  # 6 of 16 batches
    state = {"epoch": 0, "batch": 6, "world": 2}
    # The hazard: 6 batches into epoch 0 as one worker deals it re-reads samples both ranks had.
    assert set(_keys(_epoch(even_shards, 0, 1)[6:])) & read
    with pytest.warns(UserWarning, match="written by 2 workers 6 batches into epoch 0.*goes on at epoch 1"):
        assert resumed_position(state, world=1, exact=True) == Position(1, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resumed_position(state, world=2, exact=True) == Position(0, 6)  # the same deal: go on
        assert resumed_position(state, world=1, exact=False) == Position(0, 6)  # resampled: drawn afresh
        assert resumed_position({"epoch": 2, "batch": 4}, world=2, exact=True) == Position(2, 4)  # older checkpoints


def test_an_elastic_exact_run_is_told_what_a_resize_does_to_its_epoch(even_shards):
    elastic = load("lsgan", overrides=[f"data.path={even_shards}", "data.mode=exact", "train.workers=1-2"])
    with pytest.warns(UserWarning, match="a resize ends the epoch it interrupts"):
        check_data(elastic)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_data(load("lsgan", overrides=[f"data.path={even_shards}", "data.mode=exact", "train.workers=2"]))


def test_uneven_shards_give_equal_batch_counts_by_padding(digit_shards):
    """9 shards (8 x 200 + 197) over 2 ranks: unequal shares, equal batch counts."""
    runs = [_epoch(digit_shards, rank, 2, batch=64) for rank in range(2)]
    assert len(runs[0]) == len(runs[1])
    keys = [_keys(r) for r in runs]
    assert set(keys[0]) | set(keys[1]) == set(_keys(_epoch(digit_shards, 0, 1, batch=1, workers=0)))
    for rank_keys, rank_batches in zip(keys, runs):
        duplicates = sum(n - 1 for n in Counter(rank_keys).values())
        assert duplicates == sum(b["padded"] for b in rank_batches)  # repeats are the counted padding
    assert not set(keys[0]) & set(keys[1])


def test_resampled_mode_gives_every_rank_the_fixed_epoch_length(digit_shards):
    runs = [_epoch(digit_shards, rank, 2, mode="resampled", batch=32, epoch_batches=7) for rank in range(2)]
    assert [len(r) for r in runs] == [7, 7]
    assert _keys(runs[0]) != _keys(runs[1])  # each rank draws its own stream


def test_exact_mode_needs_a_shard_per_reader(digit_shards):
    ds = read_dataset(digit_shards)
    with pytest.raises(
        DataError,
        match=r"needs at least 10 shards \(2 workers x 5 loader processes\) but domain "
        r"'image' has 9",
    ):
        RankBatches(ds.domain("image"), StreamSpec(world=2, mode="exact", loader_workers=5), 16, 1, 8)


def test_corrupt_samples_and_truncated_shards_are_skipped_and_counted(digit_shards, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(digit_shards, broken)
    shard0, shard1 = broken / "image-000000.tar", broken / "image-000001.tar"
    shard0.write_bytes(shard0.read_bytes()[: shard0.stat().st_size // 2 + 100])  # cut mid-member
    add_member(shard1, "zzbad.png", b"\x89PNG garbage")
    add_member(shard1, "zzlabel.txt", b"a sample with no image")
    batches = _epoch(broken, 0, 1, batch=1, workers=0)
    unique = len(set(_keys(batches)))
    assert 1797 - 200 < unique < 1797  # the readable half of shard 0 still counts
    assert sum(b["skipped"] for b in batches) >= 3  # bad png, image-less sample, truncated tail
    assert len(batches) == 1797  # the planned epoch length holds: the lost samples are padded
    assert sum(b["padded"] for b in batches) == 1797 - unique


def test_missing_or_foreign_folders_fail_clearly(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_dataset(tmp_path / "nope")
    with pytest.raises(DataError, match="no manifest.json"):
        read_dataset(tmp_path)


def test_a_shard_listed_in_the_manifest_but_missing_fails_clearly(digit_shards, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(digit_shards, copy)
    (copy / "image-000003.tar").unlink()
    with pytest.raises(
        DataError, match=r"1 shard file\(s\) listed in the manifest are missing, e.g. .*image-000003.tar"
    ):
        read_dataset(copy)


@pytest.mark.parametrize("mode", ["resampled", "exact"])
def test_shards_without_a_single_image_fail_instead_of_hanging(digit_shards, tmp_path, mode):
    garbage = tmp_path / "garbage"
    shutil.copytree(digit_shards, garbage)
    for shard in garbage.glob("*.tar"):
        shard.write_bytes(bytes(range(256)) * 12)
    with pytest.raises(DataError, match="no decodable"):
        _epoch(garbage, 0, 1, mode=mode, workers=0, batch=8)


def test_few_tiny_shards_and_a_large_shuffle_buffer_are_not_mistaken_for_garbage(tmp_path):
    """Filling a 1000-sample buffer from 1-image shards opens hundreds of shards before the
    first decode; that must not trip the reader's no-decodable-image guard."""
    write_digits(tmp_path / "images", size=16, limit=5)
    write_shards(
        {"image": tmp_path / "images"},
        tmp_path / "shards",
        ShardOptions(size=16, channels="L", shard_size=1, progress=False),
    )
    ds = read_dataset(tmp_path / "shards")
    spec = StreamSpec(mode="resampled", loader_workers=0, shuffle_buffer=1000)
    batches = list(RankBatches(ds.domain("image"), spec, 16, 1, 4, epoch_batches=3).epoch(0))
    assert len(batches) == 3 and sum(b["skipped"] for b in batches) == 0


def _domain_shards(root, counts, shard_size):
    """Two-domain shards of real digits: A and B from disjoint digits, of the given sizes."""
    write_digits(root / "digits", size=16, limit=sum(counts))
    files = sorted((root / "digits").rglob("*.png"))
    for name, chosen in (("A", files[: counts[0]]), ("B", files[counts[0] :])):
        (root / name).mkdir()
        for f in chosen:
            shutil.copy(f, root / name / f.name)
    write_shards(
        {"A": root / "A", "B": root / "B"},
        root / "shards",
        ShardOptions(size=16, channels="L", shard_size=shard_size, progress=False),
    )
    return read_dataset(root / "shards")


def test_two_domain_epochs_follow_the_larger_domain_and_cycle_the_smaller(tmp_path):
    ds = _domain_shards(tmp_path, (200, 60), shard_size=20)
    assert (ds.domain("A").count, ds.domain("B").count) == (200, 60)
    spec = StreamSpec(mode="exact", seed=1, shuffle_buffer=50, loader_workers=0)
    batches = Batches(ds, {"A": "A", "B": "B"}, spec, batch_size=20)
    epoch0 = list(batches.epoch(0))
    assert len(epoch0) == 10  # 200 A images / 20: the larger domain sets the epoch
    keys = {d: [k for b in epoch0 for k in b["keys"][d]] for d in "AB"}
    assert len(set(keys["A"])) == 200  # every A image once
    assert len(keys["B"]) == 200 and len(set(keys["B"])) == 60  # B cycles through all of its images
    assert all(b["images"]["A"].shape == b["images"]["B"].shape == (20, 1, 16, 16) for b in epoch0)


def test_domains_are_shuffled_independently(tmp_path):
    ds = _domain_shards(tmp_path, (100, 100), shard_size=25)
    spec = StreamSpec(mode="exact", seed=1, shuffle_buffer=100, loader_workers=0)
    batches = Batches(ds, {"A": "A", "B": "B"}, spec, batch_size=10)
    partners = [
        {a: b for batch in batches.epoch(e) for a, b in zip(batch["keys"]["A"], batch["keys"]["B"])} for e in (0, 1)
    ]
    same = sum(partners[0][a] == partners[1][a] for a in partners[0])
    assert same < 10, "A and B images came in the same pairs again: the domains are not unpaired"


def test_domains_are_resolved_with_clear_errors(digit_shards, tmp_path):
    two = _domain_shards(tmp_path, (20, 20), shard_size=10)
    one = read_dataset(digit_shards)
    assert resolve_domains(one, "lsgan", ("image",)) == {"image": "image"}
    assert resolve_domains(two, "stylegan", ("image",), chosen="B") == {"image": "B"}
    assert resolve_domains(two, "cyclegan", ("A", "B")) == {"A": "A", "B": "B"}
    with pytest.raises(DataError, match="two-domain shards .* choose it with --set data.domain=A"):
        resolve_domains(two, "lsgan", ("image",))
    with pytest.raises(DataError, match="cyclegan needs domains A, B .* --domain-a DIR --domain-b DIR"):
        resolve_domains(one, "cyclegan", ("A", "B"))
    with pytest.raises(DataError, match="no domain 'C' .*A, B"):
        resolve_domains(two, "lsgan", ("image",), chosen="C")
    with pytest.raises(DataError, match="discogan uses domains A, B"):
        resolve_domains(two, "discogan", ("A", "B"), chosen="A")


def test_preview_gives_the_same_first_images_every_time(digit_domain_shards):
    ds = read_dataset(digit_domain_shards)
    batches = Batches(ds, {"A": "A", "B": "B"}, StreamSpec(mode="resampled", loader_workers=0), batch_size=8)
    first, again = batches.preview(8), batches.preview(8)
    assert first["A"].shape == (8, 3, 32, 32) and first["B"].shape == (8, 3, 32, 32)
    assert all(torch.equal(first[d], again[d]) for d in "AB")
    assert not torch.equal(first["A"], first["B"])


def _loader_start_method(shards, out):
    ds = read_dataset(shards)
    loader = RankBatches(ds.domain("image"), StreamSpec(loader_workers=1), ds.resolution, ds.channels, 8)._loader()
    out.put((loader.multiprocessing_context or multiprocessing.get_context()).get_start_method())  # what it will use


def test_loader_processes_start_by_fork_even_in_a_spawned_rank(digit_shards):
    # torch.multiprocessing.spawn starts DDP ranks by spawn, whose default the rank inherits:
    # its epochs' loader processes would each start an interpreter and import torch again.
    spawn = torch.multiprocessing.get_context("spawn")
    out = spawn.Queue()
    rank = spawn.Process(target=_loader_start_method, args=(digit_shards, out))
    rank.start()
    assert out.get(timeout=120) == "fork"
    rank.join(timeout=60)


@pytest.mark.parametrize(
    "cpus, gpus, domains, expected",
    [
        (16, 1, 1, 8),  # a 16-CPU one-GPU node: capped at 8
        (16, 1, 2, 7),  # two domains share the 15 spare CPUs
        (32, 8, 1, 3),  # 4 CPUs per GPU: 3 loaders beside the training process
        (8, 8, 2, 1),  # one CPU per GPU: still one loader per domain
        (2, 0, 1, 1),  # no GPU: CPU workers' cores go to the step
    ],
)
def test_auto_loader_processes_follow_the_nodes_cpus_per_gpu(cpus, gpus, domains, expected):
    assert auto_loader_workers(cpus, gpus, domains) == expected


def test_auto_is_minus_one_and_resolves_on_this_node(tmp_path):
    assert load("lsgan", overrides=["data.loader_workers=-1"]).data.loader_workers == -1
    assert loader_processes(-1, 1) == 1 and loader_processes(3, 2) == 3  # no GPU here; a count stays
    with pytest.raises(ConfigError, match="data.loader_workers must be >= 0, or -1"):
        load("lsgan", overrides=["data.loader_workers=-2"])


KILLED_RANK = """
import os, sys, time
from pipelines.data.loader import RankBatches, StreamSpec
from pipelines.data.manifest import read_dataset

batches = RankBatches(read_dataset(sys.argv[1]).domain("A"), StreamSpec(loader_workers=1), 32, 3, 64).epoch(0)
next(batches)
me = str(os.getpid())
print(*(p for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == me), flush=True)
time.sleep(600)  # reads nothing more: the loader fills its queue to this process
"""
PPID = """
def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[1]
    except OSError:
        return None
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_ranks_loader_processes_die_with_it(digit_domain_shards):
    """A Ray Train worker killed outright (SIGKILL) never tells its loader processes to
    stop. With its queue full, a loader then never exited, and holding the worker's sockets
    it hid the death from Ray, whose run hung instead of restarting the worker group."""
    rank = subprocess.Popen(
        [sys.executable, "-c", PPID + KILLED_RANK, str(digit_domain_shards)], stdout=subprocess.PIPE, text=True
    )
    try:
        loaders = [int(pid) for pid in rank.stdout.readline().split()]
        assert loaders, "the rank started no loader process"
        time.sleep(2)  # the loader fills its queue
    finally:
        rank.kill()
        rank.wait()
    deadline = time.time() + 10
    while any(map(_running, loaders)) and time.time() < deadline:
        time.sleep(0.1)
    left = [pid for pid in loaders if _running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "the loader outlived its rank"
