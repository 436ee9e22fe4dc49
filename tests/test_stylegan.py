"""StyleGAN2 against NVlabs' definition: config-F parameter counts, resolutions 16-1024,
equalised learning rate, demodulation, noise, truncation, the lazy phases and R1's gamma."""

import math

import pytest
import torch
import torch.nn.functional as F
from tiny import tiny_batch, tiny_engine

import gan_core
from gan_core.nets.resample import blur, downsample2d, fir_kernel, upsample2d
from gan_core.nets.stylegan2 import ModulatedConv2d, StyleDiscriminator, StyleGenerator
from pipelines.config import load


def _count(net):
    return sum(p.numel() for p in net.parameters())


def _modconv(c_in, c_out, k, w_dim=512):  # weight + affine (w_dim -> c_in, with bias)
    return c_out * c_in * k * k + w_dim * c_in + c_in


def _config_f_generator_params(res=1024, w=512):
    ch = lambda r: min(32768 // r, 512)  # noqa: E731
    mapping = 8 * (w * w + w)
    total = mapping + ch(4) * 16  # constant input
    total += _modconv(ch(4), ch(4), 3) + ch(4) + 1  # conv + bias + noise strength
    total += _modconv(ch(4), 3, 1) + 3  # toRGB + bias
    r = 8
    while r <= res:
        total += _modconv(ch(r // 2), ch(r), 3) + ch(r) + 1
        total += _modconv(ch(r), ch(r), 3) + ch(r) + 1
        total += _modconv(ch(r), 3, 1) + 3
        r *= 2
    return total


def test_config_f_generator_matches_the_architecture_count():
    expected = _config_f_generator_params()
    assert expected == 30_370_060  # what NVlabs' summary prints for the 1024-px config-F G
    assert _count(StyleGenerator(512, 512, 1024, 3)) == expected


def test_config_f_discriminator_matches_the_architecture_count():
    ch = lambda r: min(32768 // r, 512)  # noqa: E731
    expected = 3 * ch(1024) + ch(1024)  # fromRGB 1x1
    r = 1024
    while r > 4:
        expected += ch(r) * ch(r) * 9 + ch(r)  # conv0
        expected += ch(r) * ch(r // 2) * 9 + ch(r // 2)  # conv1 (down)
        expected += ch(r) * ch(r // 2)  # skip 1x1, no bias
        r //= 2
    expected += (ch(4) + 1) * ch(4) * 9 + ch(4)  # conv after minibatch std
    expected += ch(4) * 16 * ch(4) + ch(4) + ch(4) + 1  # fc, out
    assert _count(StyleDiscriminator(1024, 3)) == expected


@pytest.mark.parametrize("resolution", [16, 32, 64, 128, 256, 512, 1024])
def test_any_power_of_two_resolution_builds(resolution):
    g = StyleGenerator(32, 32, resolution, 3, channel_base=1024, channel_max=16)
    assert g.synthesis.num_ws == 2 * int(math.log2(resolution)) - 2
    if resolution <= 64:
        img = g(torch.randn(2, 32))
        assert img.shape == (2, 3, resolution, resolution)
        assert StyleDiscriminator(resolution, 3, 1024, 16)(img).shape == (2,)


def test_equalised_lr_and_mapping_multiplier():
    g = StyleGenerator(512, 512, 16, 3, channel_base=512, channel_max=64)
    fc = g.mapping.fcs[0]
    assert len(g.mapping.fcs) == 8 and fc.lr_mul == 0.01
    assert fc.scale == pytest.approx(0.01 / math.sqrt(512))
    assert fc.weight.std().item() == pytest.approx(100, rel=0.05)  # stored N(0, 1/lr_mul^2)


def test_demodulation_gives_unit_variance_outputs():
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 64, 3, w_dim=16)
    x = torch.randn(8, 64, 16, 16)
    y = conv(x, torch.randn(8, 16) * 3)  # large styles: demodulation must undo their scale
    assert y[:, :, 2:-2, 2:-2].std().item() == pytest.approx(1.0, abs=0.1)


def test_fir_resampling_is_the_1331_filter():
    k = fir_kernel()
    assert torch.allclose(k, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    x = torch.randn(1, 2, 8, 8)
    inner = slice(1, -1)  # away from the border, [1,3,3,1] up/down equal bilinear resampling
    up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(upsample2d(x, k)[..., inner, inner], up[..., inner, inner], atol=1e-5)
    down = F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
    assert torch.allclose(downsample2d(x, k)[..., inner, inner], down[..., inner, inner], atol=1e-5)


def test_noise_is_random_in_training_and_fixed_in_eval():
    torch.manual_seed(0)
    g = StyleGenerator(32, 32, 16, 1, channel_base=256, channel_max=32)
    for module in g.modules():
        if hasattr(module, "noise_strength"):
            module.noise_strength.data.fill_(1.0)
    z = torch.randn(2, 32)
    g.train()
    assert not torch.equal(g(z), g(z))
    g.eval()
    assert torch.equal(g(z), g(z))


def test_truncation_zero_gives_the_average_image():
    torch.manual_seed(0)
    g = StyleGenerator(32, 32, 16, 1, channel_base=256, channel_max=32).eval()
    g.mapping.w_avg.normal_()
    images = g(torch.randn(3, 32), truncation_psi=0.0)
    assert torch.allclose(images[0], images[1], atol=1e-5) and torch.allclose(images[0], images[2], atol=1e-5)


def test_training_tracks_the_average_w():
    engine = tiny_engine("stylegan")
    engine.train_step(tiny_batch("stylegan", 0))
    assert engine.raw["G"].mapping.w_avg.abs().sum() > 0


def test_lazy_phases_follow_the_config():
    cfg = load("stylegan")
    gan = gan_core.get("stylegan")(cfg.model, 16, 3)
    assert [(p.name, p.every, p.lazy) for p in gan.phases] == [
        ("Gmain", 1, False),
        ("Gpl", 4, True),
        ("Dmain", 1, False),
        ("Dr1", 16, True),
    ]
    no_pl = gan_core.get("stylegan")(load("stylegan", overrides=["model.pl_weight=0"]).model, 16, 3)
    assert [p.name for p in no_pl.phases] == ["Gmain", "Dmain", "Dr1"]


def test_r1_gamma_auto_rule():
    auto = gan_core.get("stylegan")(load("stylegan", overrides=["model.r1_gamma=-1"]).model, 256, 3)
    assert auto.r1_gamma(32) == pytest.approx(0.0002 * 256**2 / 32)
    assert gan_core.get("stylegan")(load("stylegan").model, 256, 3).r1_gamma(32) == 10  # config F's


@pytest.mark.parametrize("up, demodulate", [(False, True), (True, True), (False, False)])
def test_modulated_conv_equals_a_conv_per_sample_with_its_own_modulated_weights(up, demodulate):
    """The batch-wide form (modulate inputs, demodulate outputs) is the paper's operation:
    each sample convolved with W * style, renormalised per output channel."""
    torch.manual_seed(0)
    kernel = 3 if demodulate else 1
    conv = ModulatedConv2d(6, 5, kernel, w_dim=8, demodulate=demodulate, up=up).double()
    x, w = torch.randn(3, 6, 8, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    styles = conv.affine(w)
    expected = []
    for i in range(3):
        weight = conv.weight * conv.scale * styles[i][None, :, None, None]  # (out, in, k, k)
        if demodulate:
            weight = weight / weight.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
        if up:
            y = F.conv_transpose2d(x[i : i + 1], weight.transpose(0, 1), stride=2)
            y = blur(y, conv.fir, pad=1, gain=4.0)
        else:
            y = F.conv2d(x[i : i + 1], weight, padding=kernel // 2)
        expected.append(y)
    assert torch.allclose(conv(x, w), torch.cat(expected), atol=1e-10)


def test_style_mixing_takes_the_later_layers_from_a_second_latent_at_the_set_rate():
    torch.manual_seed(0)
    g = StyleGenerator(16, 16, 16, 1, channel_base=256, channel_max=16)
    z = torch.randn(4, 16)
    ws = g.mapping(z)
    assert torch.equal(g.mix_styles(z, ws, 0.0), ws)
    switched = []
    for _ in range(200):
        mixed = g.mix_styles(z, ws, 0.5)
        same = [torch.equal(mixed[:, i], ws[:, i]) for i in range(ws.shape[1])]
        cut = same.index(False) if False in same else len(same)
        assert same[0] and all(same[:cut]) and not any(same[cut:])  # one cutoff for the batch, after layer 0
        switched.append(cut < len(same))
    assert 0.4 < sum(switched) / len(switched) < 0.6
