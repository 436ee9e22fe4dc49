"""The non-finite guard: a planted NaN skips that optimizer step (weights and Adam state
untouched) and is counted; K in a row end the run as diverged; no checkpoint is written
from non-finite weights; under DDP a NaN on one rank makes every rank skip."""

import dataclasses

import pytest
import torch
import torch.distributed as dist
from spawn_helpers import spawn_gloo
from tiny import tiny_batch, tiny_engine

from pipelines.config import load
from pipelines.core.guard import Diverged
from pipelines.core.loop import Position, checkpoint_state


def _plant_nan(engine, phase_name, steps):
    """The phase's loss turns NaN at ``steps``."""

    def poisoned(compute):
        def run(nets, batch, step):
            result = compute(nets, batch, step)
            if step in steps:
                result.loss = result.loss * float("nan")
            return result

        return run

    engine.gan.phases = tuple(
        dataclasses.replace(p, compute=poisoned(p.compute)) if p.name == phase_name else p for p in engine.gan.phases
    )


@pytest.mark.parametrize("name", ["lsgan", "stylegan"])
def test_a_nan_loss_skips_only_that_step_and_is_counted(name):
    torch.manual_seed(0)
    engine = tiny_engine(name)
    _plant_nan(engine, "D" if name == "lsgan" else "Dmain", steps={0})
    d_before = [p.clone() for p in engine.raw["D"].parameters()]
    g_before = [p.clone() for p in engine.raw["G"].parameters()]
    engine.train_step(tiny_batch(name, 0))
    d_group = engine.groups["D"].optimizer
    if name == "lsgan":  # D's only phase was skipped: untouched weights, no Adam state
        assert all(torch.equal(a, b) for a, b in zip(d_before, engine.raw["D"].parameters()))
        assert not d_group.state
    assert any(not torch.equal(a, b) for a, b in zip(g_before, engine.raw["G"].parameters()))  # G trained
    assert engine.guard.skipped == 1 and engine.guard.streak == 0  # the G phase after it was finite
    engine.train_step(tiny_batch(name, 1))
    assert engine.guard.skipped == 1 and engine.weights_finite()


def test_k_non_finite_steps_in_a_row_end_the_run_as_diverged():
    engine = tiny_engine("lsgan", ["train.max_nonfinite_steps=3"])
    engine.gan.phases = engine.gan.phases[:1]  # D only, so nothing finite breaks the streak
    _plant_nan(engine, "D", steps=set(range(100)))
    engine.train_step(tiny_batch("lsgan", 0))
    engine.train_step(tiny_batch("lsgan", 1))
    with pytest.raises(Diverged, match="3 optimizer steps in a row .* phase D at step 2"):
        engine.train_step(tiny_batch("lsgan", 2))


def test_no_checkpoint_from_non_finite_weights():
    engine = tiny_engine("lsgan")
    cfg = load("lsgan")
    assert checkpoint_state(engine, Position(), cfg)["engine"]["step"] == 0
    with torch.no_grad():
        next(engine.raw["G"].parameters())[0] = float("inf")
    with pytest.raises(Diverged, match="non-finite weights at step 0; no checkpoint written"):
        checkpoint_state(engine, Position(), cfg)


def _rank(rank, world, out):
    torch.manual_seed(0)
    engine = tiny_engine("lsgan")
    if rank == 1:
        _plant_nan(engine, "D", steps={1})  # only rank 1 sees a NaN
    for step in range(3):
        engine.train_step(tiny_batch("lsgan", 10 * rank + step))
    flat = torch.cat([p.detach().flatten() for net in engine.raw.values() for p in net.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    torch.save(
        {
            "skipped": engine.guard.skipped,
            "same": torch.equal(gathered[0], gathered[1]),
            "finite": bool(torch.isfinite(flat).all()),
        },
        f"{out}-{rank}.pt",
    )


def test_under_ddp_a_nan_on_one_rank_makes_every_rank_skip(tmp_path):
    spawn_gloo(_rank, 2, tmp_path, str(tmp_path / "r"))
    results = [torch.load(tmp_path / f"r-{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["skipped"] for r in results] == [1, 1]
    assert all(r["same"] and r["finite"] for r in results)
