"""Every registered GAN through the shared engine: each phase trains only its own nets, losses
stay finite, checkpoints round-trip bitwise (GAN state included), sample grids and
generation/translation have the documented shapes, and DDP keeps two real gloo ranks identical."""

import pytest
import torch
import torch.distributed as dist
from spawn_helpers import spawn_gloo
from tiny import TINY, tiny_batch, tiny_engine

import gan_core
from pipelines.config import load
from pipelines.core import loop
from pipelines.core.checkpoint import load_checkpoint, save_checkpoint
from pipelines.core.loop import Position, checkpoint_state

GANS = sorted(TINY)


def test_the_registry_holds_the_four_families():
    assert set(gan_core.available()) >= {"lsgan", "stylegan", "cyclegan", "discogan"}


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("name", GANS)
def test_each_phase_changes_only_the_nets_it_trains(name):
    for phase in tiny_engine(name).gan.phases:
        torch.manual_seed(0)
        engine = tiny_engine(name)
        before = {n: _snapshot(net) for n, net in engine.raw.items()}
        logs = engine._run_phase(phase, tiny_batch(name, 0))
        trained = set(engine.gan.groups[phase.trains].nets)
        for net_name, net in engine.raw.items():
            assert _changed(before[net_name], net) == (net_name in trained), (phase.name, net_name)
        assert logs and all(torch.isfinite(v) for v in logs.values()), (phase.name, logs)


@pytest.mark.parametrize("name", GANS)
def test_losses_stay_finite_over_steps_with_every_phase(name):
    torch.manual_seed(0)
    engine = tiny_engine(name)
    seen = set()
    for step in range(17):  # covers StyleGAN's R1 interval
        logs = engine.train_step(tiny_batch(name, step))
        seen |= set(logs)
        assert all(torch.isfinite(v) for v in logs.values()), (step, logs)
    assert {"loss/G", "loss/D"} <= seen


def _tensors(node, prefix=""):
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _tensors(value, f"{prefix}/{key}").items()}
    if isinstance(node, (list, tuple)):
        return {k: v for i, value in enumerate(node) for k, v in _tensors(value, f"{prefix}/{i}").items()}
    return {prefix: node} if isinstance(node, torch.Tensor) else {}


@pytest.mark.parametrize("name", GANS)
def test_checkpoint_round_trip_is_exact_and_training_continues_identically(name, tmp_path):
    ema = ["train.ema_half_life_kimg=0.01"]
    torch.manual_seed(0)
    a = tiny_engine(name, ema)
    for i in range(5):
        a.train_step(tiny_batch(name, i))
    cfg = load(name, overrides=TINY[name][0])
    save_checkpoint(tmp_path / "ck", checkpoint_state(a, Position(1, 3), cfg))

    torch.manual_seed(123)
    b = tiny_engine(name, ema)
    state = load_checkpoint(tmp_path / "ck")
    assert (state["epoch"], state["batch"], state["world"]) == (1, 3, 1)  # the stream position, and for how many
    b.load_state_dict(state["engine"])
    ta, tb = _tensors(a.state_dict()), _tensors(b.state_dict())
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert a.step == b.step == 5

    for engine in (a, b):  # same noise from here on: identical next steps
        torch.manual_seed(7)
        for i in range(3):
            engine.train_step(tiny_batch(name, 10 + i))
    for net in a.raw:
        assert all(torch.equal(x, y) for x, y in zip(a.raw[net].parameters(), b.raw[net].parameters())), net


@pytest.mark.parametrize("name", GANS)
def test_sample_grid_shapes(name):
    engine = tiny_engine(name)
    _, res, ch = TINY[name]
    reals = tiny_batch(name, 0, batch_size=10)
    grid = engine.sample_grid(engine.gan.fixed_inputs(10, torch.Generator().manual_seed(0), reals))
    assert grid.dim() == 5 and grid.shape[2:] == (ch, res, res) and torch.isfinite(grid).all()
    if engine.gan.domains == ("A", "B"):
        assert grid.shape[:2] == (8, 6)  # 8 examples: real A | fake B | rec A | real B | fake A | rec B
    elif name == "stylegan":
        assert grid.shape[:2] == (3 + 1, 4)  # 10 samples, 4 wide, 3 rows; then the truncation row


class _CountingPreview:
    """The loop's view of the data for sample grids: records how many reals it was asked for."""

    def __init__(self, name, domains):
        self.name, self.domains, self.asked = name, domains, []

    def preview(self, n):
        self.asked.append(n)
        _, res, ch = TINY[self.name]
        return {d: torch.randint(0, 256, (n, ch, res, res), dtype=torch.uint8) for d in self.domains}


@pytest.mark.parametrize("name", GANS)
def test_fixed_inputs_read_only_the_reals_a_grid_shows(name):
    engine = tiny_engine(name)
    data = _CountingPreview(name, engine.gan.domains)
    inputs = loop.fixed_inputs(engine, data, 36, seed=0)
    if engine.gan.domains == ("A", "B"):  # the grid's 8 rows of reals, not the 36 samples asked for
        assert data.asked == [8] and all(v.shape[0] == 8 and v.min() >= -1 for v in inputs.values())
    else:  # noise only: reading a shard (maybe remote) for nothing is what this avoids
        assert data.asked == [] and inputs["z"].shape[0] == 36


@pytest.mark.parametrize("name", GANS)
def test_generate_or_translate(name):
    engine = tiny_engine(name)
    gan, nets = engine.gan, engine.sampling_nets()
    _, res, ch = TINY[name]
    if gan.domains == ("image",):
        images = gan.generate(nets, 3, torch.Generator().manual_seed(0))
        assert images.shape == (3, ch, res, res)
        with pytest.raises(NotImplementedError, match="does not translate"):
            gan.translate(nets, images, "AtoB")
    else:
        images = tiny_batch(name, 0)["A"]
        assert gan.translate(nets, images, "AtoB").shape == images.shape
        assert gan.translate(nets, images, "BtoA").shape == images.shape
        with pytest.raises(ValueError, match="direction"):
            gan.translate(nets, images, "sideways")
        with pytest.raises(NotImplementedError, match="does not sample"):
            gan.generate(nets, 3, torch.Generator())


def _ddp_worker(rank, world, name, out):
    torch.manual_seed(100 + rank)  # different init per rank: DDP must broadcast rank 0's
    engine = tiny_engine(name)
    for i in range(5):  # step 0 runs every phase, lazy regularisers included
        engine.train_step(tiny_batch(name, 10 * rank + i))  # different data per rank
    flat = torch.cat([p.detach().flatten() for net in engine.raw.values() for p in net.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        torch.save({"same": all(torch.equal(gathered[0], g) for g in gathered)}, out)


@pytest.mark.parametrize("name", GANS)
def test_ddp_keeps_ranks_identical_through_every_phase(name, tmp_path):
    out = tmp_path / "result.pt"
    spawn_gloo(_ddp_worker, 2, tmp_path, name, str(out))
    assert torch.load(out, weights_only=True)["same"], "ranks diverged: some phase skipped the all-reduce"
