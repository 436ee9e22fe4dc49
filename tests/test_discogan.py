"""DiscoGAN against SKTBrain/DiscoGAN: the 64-px nets, the loss mix, the reconstruction
schedule and the update interval (D every 3rd step, G on the others)."""

import torch
from tiny import tiny_batch, tiny_engine

from gan_core.gans.discogan import feature_matching
from gan_core.nets.discogan import DiscoDiscriminator, DiscoGenerator
from pipelines.config import load


def test_64px_nets_have_the_reference_layers():
    g = DiscoGenerator(3, 64, ngf=64)
    convs = [
        (m.in_channels, m.out_channels)
        for m in g.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    assert convs == [(3, 64), (64, 128), (128, 256), (256, 512), (512, 256), (256, 128), (128, 64), (64, 3)]
    d = DiscoDiscriminator(3, 64, ndf=64)
    logit, features = d(torch.zeros(2, 3, 64, 64))
    assert logit.shape == (2,) and [f.shape[1] for f in features] == [128, 256, 512]  # relu2..relu4
    assert DiscoGenerator(3, 64, code=100)(torch.zeros(2, 3, 64, 64)).shape == (2, 3, 64, 64)


def test_defaults_follow_the_official_code():
    cfg = load("discogan")
    assert (cfg.optim.lr_g, cfg.optim.beta1, cfg.optim.beta2, cfg.optim.weight_decay) == (2e-4, 0.5, 0.999, 1e-5)
    assert cfg.model.recon_weight(0) == 0.01 and cfg.model.recon_weight(10_000) == 0.5
    assert cfg.model.fm_weight == 0.9 and cfg.model.d_every == 3 and cfg.data.batch_size == 64


def test_feature_matching_is_the_gap_between_batch_means():
    real, fake = [torch.ones(4, 2, 3, 3)], [torch.zeros(4, 2, 3, 3)]
    assert feature_matching(real, fake) == 1.0
    assert feature_matching(real, [torch.ones(4, 2, 3, 3)]) == 0.0


def test_d_steps_every_third_iteration_and_g_on_the_others():
    engine = tiny_engine("discogan")
    ran = []
    for step in range(6):
        logs = engine.train_step(tiny_batch("discogan", step))
        ran.append(("D" if "loss/D" in logs else "") + ("G" if "loss/G" in logs else ""))
    assert ran == ["D", "G", "G", "D", "G", "G"]
    both = tiny_engine("discogan", ["model.d_every=1"])
    logs = both.train_step(tiny_batch("discogan", 0))
    assert {"loss/D", "loss/G"} <= set(logs)
