"""`train.compile=true`: every GAN's main phases trace into one graph each, with no graph
break (TorchDynamo's own count, on CPU); the regularizer phases, which differentiate
through gradients, are the ones the engine runs eagerly; and a compiled run resumed from a
checkpoint in a fresh process continues bitwise as the uninterrupted compiled run does.

TorchDynamo traces in a process of its own, so that its global state (caches, config,
patched frames) never reaches the Ray Train runs that later tests start from this process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import TINY, tiny_engine

TRACE = """
import json, sys
import torch, torch._dynamo as dynamo
from tiny import tiny_batch, tiny_engine

found = {}
for name in sys.argv[1:]:
    torch.manual_seed(0)
    engine, batch = tiny_engine(name), tiny_batch(name, seed=0)
    for phase in (p for p in engine.gan.phases if not p.double_backward):
        dynamo.reset()
        explained = dynamo.explain(lambda nets, b, phase=phase: phase.compute(nets, b, 1).loss)(engine.nets, batch)
        reasons = [str(r.reason).splitlines()[0] for r in explained.break_reasons]
        found[f"{name}.{phase.name}"] = [explained.graph_count, explained.graph_break_count, reasons]
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def traced() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", TRACE, *sorted(TINY)],
        cwd=Path(__file__).parent,  # tests/: tiny.py
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_main_phase_compiles_into_one_graph_without_breaks(name, traced):
    phases = {key: value for key, value in traced.items() if key.startswith(f"{name}.")}
    assert phases  # every GAN has main phases
    for phase, (graphs, breaks, reasons) in phases.items():
        assert (graphs, breaks) == (1, 0), (phase, reasons)


def test_the_regularizer_phases_are_the_ones_that_run_eagerly():
    """R1 and path length call torch.autograd.grad with create_graph: TorchDynamo breaks the
    graph there, and a compiled graph could not be differentiated twice anyway."""
    gan = tiny_engine("stylegan").gan
    assert {p.name for p in gan.phases if p.double_backward} == {"Gpl", "Dr1"}
    assert all(
        not p.double_backward
        for gan_name in ("lsgan", "cyclegan", "discogan")
        for p in tiny_engine(gan_name).gan.phases
    )


RESUME = """
import sys
from pathlib import Path
import torch
from tiny import tiny_batch, tiny_engine
from pipelines.config import load
from pipelines.core.checkpoint import load_checkpoint, save_checkpoint
from pipelines.core.loop import Position, checkpoint_state, seed_rank

mode, folder, names = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
for name in names:
    extra = EXTRA.get(name, []) + ["train.compile=true", "train.ema_half_life_kimg=0.01"]
    torch.manual_seed(0 if mode == "full" else 123)  # the resumed run's own weights are overwritten
    engine = tiny_engine(name, extra)
    if mode == "resumed":
        engine.load_state_dict(load_checkpoint(folder / name)["engine"])
    ps = []  # ADA's p at each step
    while engine.step < STEPS:
        if mode == "full" and engine.step == AT:
            save_checkpoint(folder / name, checkpoint_state(engine, Position(), load(name)))
        seed_rank(0, 0, engine.step)  # as the loop does before every step
        ps.append(engine.augment.p if engine.augment is not None else 0.0)
        engine.train_step(tiny_batch(name, engine.step))
    torch.save({"state": engine.state_dict(), "p": ps}, folder / f"{name}-{mode}.pt")
"""
# StyleGAN's R1 and path-length phases (run eagerly) come due after the checkpoint, and ADA's
# p, which the checkpoint carries, moves between 0 (no augmentation) and more, in big steps.
RESUME_SETTINGS = {"STEPS": 8, "AT": 3}
RESUME_EXTRA = {"stylegan": ["model.r1_every=4", "model.pl_every=4", "aug.kind=ada", "aug.kimg=0.01"]}


def _compiled_run(mode: str, folder: Path) -> None:
    header = f"EXTRA = {RESUME_EXTRA!r}\n" + "".join(f"{k} = {v}\n" for k, v in RESUME_SETTINGS.items())
    done = subprocess.run(
        [sys.executable, "-c", header + RESUME, mode, str(folder), *sorted(TINY)],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_a_resumed_compiled_run_continues_bitwise(tmp_path):
    """Each run compiles in a process of its own, as a resumed job's workers do: the run
    resumed from step 3 ends at step 8 with the uninterrupted run's every tensor (nets, EMA,
    optimizer moments, GAN and augmentation state)."""
    import torch

    _compiled_run("full", tmp_path)
    _compiled_run("resumed", tmp_path)
    for name in sorted(TINY):
        full, resumed = (torch.load(tmp_path / f"{name}-{mode}.pt", weights_only=True) for mode in ("full", "resumed"))
        ours, theirs = _flat(full["state"]), _flat(resumed["state"])
        assert ours.keys() == theirs.keys(), name
        differ = [key for key in ours if not _equal(ours[key], theirs[key])]
        assert not differ, (name, differ[:5])
        assert ours["/step"] == RESUME_SETTINGS["STEPS"]
        assert full["p"][RESUME_SETTINGS["AT"] :] == resumed["p"]
    p = full["p"]  # StyleGAN's: D saw both ADA's identity (p = 0) and augmented images
    assert 0 in p and any(value > 0 for value in p), p


def _flat(node, prefix=""):
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}/{key}").items()}
    if isinstance(node, (list, tuple)):
        return {k: v for i, value in enumerate(node) for k, v in _flat(value, f"{prefix}/{i}").items()}
    return {prefix: node}


def _equal(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


CUDA_GRAPHS_MODE = """
import torch
from tiny import tiny_batch, tiny_engine

engine = tiny_engine("cyclegan", ["train.compile=true", "train.compile_mode=reduce-overhead"])
before = [p.detach().clone() for p in engine.raw["G_AB"].parameters()]
for step in range(3):
    logs = engine.train_step(tiny_batch("cyclegan", step))
    assert all(torch.isfinite(v) for v in logs.values()), logs
assert any(not torch.equal(a, b) for a, b in zip(before, engine.raw["G_AB"].parameters()))
print(engine.cuda_graphs)
"""


@pytest.mark.slow
def test_the_cuda_graphs_mode_trains_and_leaves_cpu_runs_without_graphs():
    """`train.compile_mode=reduce-overhead` (CUDA graphs, for CycleGAN's launch-bound batch
    of 1 on a GPU) compiles and trains; on the CPU there is no graph to replay, and the
    engine marks no graph steps. Its speed is measured by benchmarks/gpu.sh."""
    done = subprocess.run(
        [sys.executable, "-c", CUDA_GRAPHS_MODE],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
