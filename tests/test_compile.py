"""`train.compile=true`: every GAN's main phases trace into one graph each, with no graph
break (TorchDynamo's own count, on CPU); the regularizer phases, which differentiate
through gradients, are the ones the engine runs eagerly."""

import pytest
import torch
import torch._dynamo as dynamo
from tiny import TINY, tiny_batch, tiny_engine


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_main_phase_compiles_into_one_graph_without_breaks(name):
    torch.manual_seed(0)
    engine = tiny_engine(name)
    batch = tiny_batch(name, seed=0)
    main = [phase for phase in engine.gan.phases if not phase.double_backward]
    assert main
    for phase in main:
        dynamo.reset()
        explained = dynamo.explain(lambda nets, b, phase=phase: phase.compute(nets, b, 1).loss)(engine.nets, batch)
        assert (explained.graph_count, explained.graph_break_count) == (1, 0), (phase.name, explained.break_reasons)


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
