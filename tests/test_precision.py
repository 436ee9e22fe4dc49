"""The precision policy, checked on the CPU with bf16: StyleGAN computes in reduced precision
only in its blocks of the ``num_fp16_res`` highest resolutions (NVlabs' rule), with clamped
activations, while the mapping network, styles, demodulation, the image sum, D's epilogue and
the R1 and path-length phases stay float32; the other GANs run under autocast. TF32 follows
each GAN's official default."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch
from tiny import tiny_engine

import gan_core
import gan_core.nets.stylegan2 as stylegan2
from gan_core.nets.precision import fp16_resolution
from pipelines.config import load
from pipelines.core.device import tf32

SIZE = 32  # blocks 4, 8, 16, 32; num_fp16_res=2 puts 16 and 32 in reduced precision
BF16, F32 = torch.bfloat16, torch.float32


def _stylegan(extra=()):
    overrides = [
        "train.amp=bf16",
        "model.num_fp16_res=2",
        "model.z_dim=32",
        "model.w_dim=32",
        "model.channel_base=512",
        "model.channel_max=32",
        "model.style_mixing=0",
        "data.batch_size=4",
        *extra,
    ]
    from pipelines.core.engine import Engine

    return Engine.for_config(load("stylegan", overrides=overrides), SIZE, 3, torch.device("cpu"))


def _record(engine, phase_name: str, monkeypatch) -> dict[str, set]:
    """The dtype each layer output (and each demodulation) had in one phase."""
    seen: dict[str, set] = defaultdict(set)
    handles = []
    for net_name, net in engine.raw.items():
        for name, module in net.named_modules():

            def hook(module, args, out, key=f"{net_name}.{name}"):
                for value in out if isinstance(out, tuple) else (out,):
                    if isinstance(value, torch.Tensor):
                        seen[key].add(value.dtype)

            handles.append(module.register_forward_hook(hook))
    real = stylegan2.demodulation
    monkeypatch.setattr(
        stylegan2, "demodulation", lambda s, w: seen["demodulation"].add(real(s, w).dtype) or real(s, w)
    )
    phase = next(p for p in engine.gan.phases if p.name == phase_name)
    batch = {"image": torch.rand(4, 3, SIZE, SIZE) * 2 - 1}
    torch.manual_seed(0)
    with engine._precision(phase):
        result = phase.compute(engine.nets, batch, 0)
    for handle in handles:
        handle.remove()
    assert torch.isfinite(result.loss)
    return seen


def test_nvlabs_fp16_resolution_rule():
    assert [fp16_resolution(r, 4) for r in (16, 64, 256, 1024)] == [8, 8, 32, 128]
    assert fp16_resolution(SIZE, 2) == 16


def test_main_phases_reduce_only_the_top_resolutions(monkeypatch):
    engine = _stylegan()
    g = _record(engine, "Gmain", monkeypatch)
    blocks = {i: g[f"G.synthesis.blocks.{i}.convs.0"] for i in range(4)}  # 4, 8, 16, 32 px
    assert blocks == {0: {F32}, 1: {F32}, 2: {BF16}, 3: {BF16}}
    assert g["G.mapping"] == {F32} and g["G.synthesis.blocks.3.convs.0.conv.affine"] == {F32}  # styles
    assert g["demodulation"] == {F32}
    assert g["G.synthesis.blocks.3.torgb"] == {BF16} and g["G.synthesis"] == {F32}  # the image sum
    d = _record(engine, "Dmain", monkeypatch)
    assert d["D.blocks.0"] == {BF16} and d["D.blocks.1"] == {BF16} and d["D.from_rgb"] == {BF16}  # 32, 16 px
    assert d["D.blocks.2"] == {F32} and d["D.mbstd"] == {F32} and d["D.out"] == {F32}  # 8 px, the epilogue
    # Nothing is left in reduced precision after the phase: sampling and EMA run float32.
    assert {b.compute_dtype for b in engine.raw["G"].synthesis.blocks} == {F32}


@pytest.mark.parametrize("phase", ["Dr1", "Gpl"])
def test_regularisers_run_in_float32(phase, monkeypatch):
    seen = _record(_stylegan(), phase, monkeypatch)
    assert set().union(*seen.values()) == {F32}


def test_activations_are_clamped_under_the_policy_only(monkeypatch):
    engine = _stylegan(["model.conv_clamp=2"])
    top = engine.raw["G"].synthesis.blocks[3].convs[1]
    outputs = []
    top.register_forward_hook(lambda m, a, out: outputs.append(out.detach().float().abs().max().item()))
    with torch.no_grad():
        for p in top.parameters():
            p.mul_(50)
    phase = next(p for p in engine.gan.phases if p.name == "Gmain")
    with engine._precision(phase):
        phase.compute(engine.nets, {"image": torch.zeros(4, 3, SIZE, SIZE)}, 0)
    engine.raw["G"].eval()
    with torch.no_grad():
        engine.raw["G"](torch.randn(4, 32))
    clamped, free = outputs
    assert clamped <= 2 * 1.01 and free > 2  # clamped at conv_clamp in the phase, not when sampling


def test_the_other_gans_autocast_and_a_bf16_step_is_finite():
    engine = tiny_engine("lsgan", extra=["train.amp=bf16"])
    seen = set()
    engine.raw["D"].register_forward_hook(lambda m, a, out: seen.add(out.dtype))
    logs = engine.train_step({"image": torch.rand(4, 1, 16, 16) * 2 - 1})
    assert seen == {BF16} and all(torch.isfinite(v) for v in logs.values())
    styled = _stylegan()
    logs = styled.train_step({"image": torch.rand(4, 3, SIZE, SIZE) * 2 - 1})
    assert all(torch.isfinite(v) for v in logs.values())


def test_tf32_follows_each_gans_official_default():
    auto = load("stylegan").train
    assert auto.tf32 == "auto"
    assert tf32(auto, gan_core.get("stylegan").tf32) is False  # NVlabs: --allow-tf32 false
    assert tf32(auto, gan_core.get("cyclegan").tf32) is True
    assert tf32(load("stylegan", overrides=["train.tf32=on"]).train, False) is True
    assert load("lsgan", overrides=["train.tf32=true"]).train.tf32 == "on"  # YAML booleans still read
