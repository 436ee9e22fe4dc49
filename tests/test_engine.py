"""The shared training step: exact checkpoint round trips, EMA, lazy-regularisation rescaling,
and DDP keeping every rank's weights identical (two real gloo processes)."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import gan_core
from gan_core.interface import Phase
from pipelines.config import load, to_dict
from pipelines.train.checkpoint import load_checkpoint, save_checkpoint
from pipelines.train.engine import Engine, lazy_ratio
from pipelines.train.loop import checkpoint_state

OVERRIDES = ["model.ngf=8", "model.ndf=8", "model.latent_dim=16"]


def _engine(extra=()):
    cfg = load("lsgan", overrides=[*OVERRIDES, *extra])
    return Engine(gan_core.get("lsgan")(cfg.model, 16, 1), cfg.optim, cfg.train, torch.device("cpu"), 8), cfg


def _batch(seed):
    return {"image": torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1}


def _flat_state(engine):
    state = engine.state_dict()
    tensors = {}

    def walk(prefix, node):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(f"{prefix}/{i}", v)
        elif isinstance(node, torch.Tensor):
            tensors[prefix] = node
    walk("", state)
    return state["step"], tensors


def test_checkpoint_round_trip_is_bitwise_and_training_continues_identically(tmp_path):
    torch.manual_seed(0)
    a, cfg = _engine(["train.ema_half_life_kimg=0.01"])
    for i in range(3):
        a.train_step(_batch(i))
    save_checkpoint(tmp_path / "ck", checkpoint_state(a, epoch=2, cfg_tree=to_dict(cfg)))
    state = load_checkpoint(tmp_path / "ck")  # weights_only=True inside
    assert state["epoch"] == 2 and state["config"]["gan"] == "lsgan"

    torch.manual_seed(123)
    b, _ = _engine(["train.ema_half_life_kimg=0.01"])
    b.load_state_dict(state["engine"])
    step_a, tensors_a = _flat_state(a)
    step_b, tensors_b = _flat_state(b)
    assert step_a == step_b == 3
    assert tensors_a.keys() == tensors_b.keys() and len(tensors_a) > 20
    assert all(torch.equal(tensors_a[k], tensors_b[k]) for k in tensors_a)

    for engine in (a, b):  # same noise from here on: identical next step
        torch.manual_seed(7)
        engine.train_step(_batch(9))
    assert all(torch.equal(x, y) for x, y in zip(a.raw["G"].parameters(), b.raw["G"].parameters()))


def test_ema_trails_the_generator():
    torch.manual_seed(0)
    engine, _ = _engine(["train.ema_half_life_kimg=0.001"])  # beta = 0.5 ** (8 / 1) ~ 0.004: fast
    start = [p.clone() for p in engine.ema["G"].parameters()]
    for i in range(3):
        engine.train_step(_batch(i))
    moved = [not torch.equal(p, s) for p, s in zip(engine.ema["G"].parameters(), start)]
    assert any(moved)
    assert engine.sampling_nets()["G"] is engine.ema["G"]
    assert all(not p.requires_grad for p in engine.ema["G"].parameters())


def test_lazy_regulariser_rescales_its_group():
    phases = (Phase("D", "D"), Phase("D_reg", "D", every=16, lazy=True), Phase("G", "G"))
    assert lazy_ratio(phases, "D") == pytest.approx(16 / 17)
    assert lazy_ratio(phases, "G") == 1.0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(100 + rank)  # different init per rank: DDP must broadcast rank 0's
    engine, _ = _engine()
    for i in range(4):
        engine.train_step(_batch(10 * rank + i))  # different data per rank
    flat = torch.cat([p.detach().flatten() for net in engine.raw.values() for p in net.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        torch.save({"same": all(torch.equal(gathered[0], g) for g in gathered), "norm": flat.norm()}, out)
    dist.destroy_process_group()


def test_ddp_keeps_ranks_identical_across_phases(tmp_path):
    out = tmp_path / "result.pt"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    result = torch.load(out, weights_only=True)
    assert result["same"], "ranks diverged: gradients were not all-reduced in some phase"
