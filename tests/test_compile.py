"""`train.compile=true`: every GAN's main phases trace into one graph each, with no graph
break (TorchDynamo's own count, on CPU); the regularizer phases, which differentiate
through gradients, are the ones the engine runs eagerly.

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
