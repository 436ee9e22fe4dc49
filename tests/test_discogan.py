"""DiscoGAN against SKTBrain/DiscoGAN: the 64-px nets, the loss mix at the reference's image
scale, the reconstruction schedule, the initialisation and the update interval (D every 3rd
step, G on the others)."""

import math

import torch
import torch.nn.functional as F
from tiny import tiny_batch, tiny_engine

from gan_core.gans.discogan import bce, feature_matching, reconstruction
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


def test_the_generator_loss_equals_the_references_on_its_0_1_scale():
    """The reference's G loss per direction, on images in [0, 1] from a sigmoid, written from
    image_translation.py (MSELoss reconstruction, BCELoss on D's sigmoid, feature matching),
    equals ganforge's on the same images in [-1, 1]."""
    g = torch.Generator().manual_seed(0)
    real01, recon01 = torch.rand(4, 3, 16, 16, generator=g), torch.rand(4, 3, 16, 16, generator=g)
    logits = torch.randn(4, generator=g)
    feats_real = [torch.randn(4, 8, 4, 4, generator=g), torch.randn(4, 16, 2, 2, generator=g)]
    feats_fake = [torch.randn(4, 8, 4, 4, generator=g), torch.randn(4, 16, 2, 2, generator=g)]
    fm, rate = 0.9, 0.5
    fm_term = feature_matching(feats_real, feats_fake)

    reference_gan = (1 - fm) * F.binary_cross_entropy(torch.sigmoid(logits), torch.ones(4)) + fm * fm_term
    reference = (1 - rate) * reference_gan + rate * F.mse_loss(recon01, real01)
    ours_gan = (1 - fm) * bce(logits, 1.0) + fm * fm_term
    ours = (1 - rate) * ours_gan + rate * reconstruction(recon01 * 2 - 1, real01 * 2 - 1)
    assert torch.allclose(ours, reference, rtol=1e-6)
    # Unscaled, the reconstruction term would weigh 4 times the reference's.
    assert not torch.allclose((1 - rate) * ours_gan + rate * F.mse_loss(recon01 * 2 - 1, real01 * 2 - 1), reference)


def test_the_generator_ends_in_the_references_sigmoid_and_keeps_pytorchs_init():
    net = tiny_engine("discogan").raw["G_AB"]
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(net(x), torch.sigmoid(net.net[:-1](x)) * 2 - 1)
    conv = net.net[0]  # PyTorch's default: uniform within 1 / sqrt(fan_in), not N(0, 0.02)
    bound = 1 / math.sqrt(conv.weight[0].numel())
    assert conv.weight.abs().max() <= bound and conv.weight.std() > 0.8 * bound / math.sqrt(3)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
