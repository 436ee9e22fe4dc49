"""CycleGAN against the reference (junyanz/pytorch-CycleGAN-and-pix2pix): parameter counts
derived from the architecture, the 70x70 receptive field, block counts, losses and the pool."""

import pytest
import torch
from tiny import tiny_batch, tiny_engine

import gan_core
from gan_core.image_pool import ImagePool
from gan_core.nets.patchgan import PatchDiscriminator, receptive_field
from gan_core.nets.resnet import ResnetGenerator
from pipelines.config import load


def _count(net):
    return sum(p.numel() for p in net.parameters())


def _conv(c_in, c_out, k):  # weights + bias (instance norm without affine keeps conv biases)
    return c_in * c_out * k * k + c_out


def test_resnet9_generator_has_the_reference_parameter_count():
    expected = (
        _conv(3, 64, 7)
        + _conv(64, 128, 3)
        + _conv(128, 256, 3)  # encoder
        + 9 * 2 * _conv(256, 256, 3)  # transformer
        + _conv(256, 128, 3)
        + _conv(128, 64, 3)
        + _conv(64, 3, 7)
    )  # decoder
    assert expected == 11_378_179  # the "11.378 M" the reference prints for G_A
    assert _count(ResnetGenerator(3, 256, ngf=64, n_blocks=9)) == expected


def test_patchgan_has_the_reference_parameter_count_and_sees_70x70_patches():
    expected = (
        (3 * 64 * 16 + 64)
        + (64 * 128 * 16 + 128)
        + (128 * 256 * 16 + 256)
        + (256 * 512 * 16 + 512)
        + (512 * 1 * 16 + 1)
    )
    assert expected == 2_764_737  # the "2.765 M" the reference prints for D_A
    d = PatchDiscriminator(3, 256, ndf=64, n_layers=3)
    assert _count(d) == expected
    assert receptive_field(3) == 70
    assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_the_reference_block_counts_by_resolution():
    for resolution, blocks in ((256, 9), (128, 6), (64, 6)):
        gan = gan_core.get("cyclegan")(load("cyclegan").model, resolution, 3)
        g = gan.build_nets()["G_AB"]
        assert sum(type(m).__name__ == "ResidualBlock" for m in g.modules()) == blocks


def test_defaults_follow_the_paper():
    cfg = load("cyclegan")
    assert (cfg.optim.lr_g, cfg.optim.lr_d, cfg.optim.beta1, cfg.optim.beta2) == (2e-4, 2e-4, 0.5, 0.999)
    assert (cfg.model.lambda_a, cfg.model.lambda_b, cfg.model.lambda_identity, cfg.model.pool_size) == (10, 10, 0.5, 50)
    assert cfg.optim.lr_decay_from == 0.5 and cfg.data.batch_size == 1


def test_small_images_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="at least 24 px.*model.d_layers"):
        PatchDiscriminator(3, 16, n_layers=3)


def test_image_pool_fills_then_mixes_old_and_new_fakes():
    torch.manual_seed(0)
    pool = ImagePool(size=4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: the new fakes come straight back
    new = torch.full((200, 1, 1, 1), -1.0)
    out = pool.query(new)
    old = (out >= 0).sum().item()
    assert 0 < old <= 4 + 200  # some come from the history ...
    assert (out == -1).sum() > 50  # ... about half are the new ones
    restored = ImagePool(size=4)
    restored.load_state_dict(pool.state_dict())
    assert torch.equal(torch.cat(restored.images), torch.cat(pool.images))


def test_generator_phase_losses_include_cycle_and_identity():
    torch.manual_seed(0)
    engine = tiny_engine("cyclegan")
    logs = engine.train_step(tiny_batch("cyclegan", 0))
    assert {"G/adv", "G/cycle_A", "G/cycle_B", "G/identity", "loss/D"} <= set(logs)
    without = tiny_engine("cyclegan", ["model.lambda_identity=0"])
    assert "G/identity" not in without.train_step(tiny_batch("cyclegan", 0))
