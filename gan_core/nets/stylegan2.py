"""StyleGAN2's generator and discriminator (Karras et al. 2020; NVlabs stylegan2-ada-pytorch),
config-F form, at any power-of-two resolution, in plain PyTorch.

Generator: z -> pixel norm -> 8-layer mapping network (lr multiplier 0.01) -> w, broadcast
to one w per layer (style mixing swaps the tail for another latent's). Synthesis starts from
a learned 4x4 constant; each layer modulates its 3x3 conv weights by a style (an affine of
w), demodulates them, adds per-pixel noise with a learned strength, then bias and leaky ReLU.
Each resolution adds its toRGB output to the upsampled image so far (skip architecture).
Discriminator: residual blocks with FIR downsampling, minibatch standard deviation, and two
fully connected layers. Widths: min(channel_base / resolution, channel_max).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_core.nets.dcgan import check_resolution
from gan_core.nets.equalized import LRELU_GAIN, EqualConv2d, EqualLinear, bias_lrelu
from gan_core.nets.precision import fp16_resolution
from gan_core.nets.resample import blur, fir_kernel, upsample2d


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // resolution, channel_max)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    w_avg: torch.Tensor  # a buffer

    def __init__(
        self, z_dim: int, w_dim: int, num_ws: int, layers: int = 8, lr_mul: float = 0.01, w_avg_beta: float = 0.995
    ):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.fcs = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul, activation=True) for a, b in zip(dims, dims[1:]))
        self.num_ws, self.w_avg_beta = num_ws, w_avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))  # the centre truncation pulls towards

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, update_w_avg: bool = False) -> torch.Tensor:
        x = normalize_2nd_moment(z)
        for fc in self.fcs:
            x = fc(x)
        if update_w_avg:
            self.w_avg.copy_(x.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1:
            x = self.w_avg.to(x.dtype).lerp(x, truncation_psi)
        return x.unsqueeze(1).expand(-1, self.num_ws, -1)


def demodulation(styles: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(N, out) coefficients that renormalise each sample's modulated weights: in the styles'
    and weights' float32, whatever the block computes in. |W_o * s|^2 = sum_i s_i^2 *
    sum_k W_oik^2: one (N, in) x (in, out) product, never the per-sample weights."""
    return (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()


class ModulatedConv2d(nn.Module):
    fir: torch.Tensor  # a buffer
    """A conv whose weights are scaled per sample by a style, then (optionally) renormalised
    so each output feature map has unit expected variance.

    Computed as NVlabs train it (``fused_modconv=False``): scale the input channels by the
    style, run one ordinary conv over the whole batch, scale the output channels by the
    demodulation coefficients. That equals convolving each sample with its own modulated
    weights, but a batch-wide conv is what cuDNN and oneDNN are fast at; the per-sample
    weights as one grouped conv (groups = batch) made StyleGAN's step at 64 px about 3x
    slower on an H100 (1,079 against 375 ms at batch 32).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate, self.up, self.padding = demodulate, up, kernel // 2
        self.register_buffer("fir", fir_kernel(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # (N, in): w and so the styles stay float32 under the precision policy
        weight = self.weight * self.scale  # (out, in, k, k)
        if self.demodulate and x.dtype == torch.float16:
            # NVlabs' pre-normalisation against fp16 overflow; demodulation cancels it exactly.
            weight = weight * (self.scale / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
            styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
        x = x * styles.to(x.dtype)[:, :, None, None]
        if self.up:  # transposed stride-2 conv, then the FIR filter (pad 1: 2h+1 -> 2h)
            x = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)
            x = blur(x, self.fir, pad=1, gain=4.0)
        else:
            x = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            x = x * demodulation(styles, weight).to(x.dtype)[:, :, None, None]
        return x


class StyledConv(nn.Module):
    noise_const: torch.Tensor  # a buffer

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.clamp: float | None = None  # NVlabs' conv_clamp, set under the precision policy
        self.register_buffer("noise_const", torch.randn(resolution, resolution))  # for repeatable samples

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        x = self.conv(x, w)
        if noise_mode == "random":
            x = (
                x
                + torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
                * self.noise_strength
            )
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        return bias_lrelu(x, self.bias, clamp=self.clamp)


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, img_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.clamp: float | None = None

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y = self.conv(x, w) + self.bias.view(1, -1, 1, 1).to(x.dtype)
        return y.clamp(-self.clamp, self.clamp) if self.clamp is not None else y


class SynthesisBlock(nn.Module):
    """One resolution: (const | 2x up conv), conv, toRGB. Uses ``num_ws`` = convs + 1 styles,
    the last shared with the next block's first conv (as NVlabs counts them)."""

    fir: torch.Tensor  # a buffer
    convs: nn.ModuleList

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, img_channels: int, use_fp16: bool):
        super().__init__()
        self.first = resolution == 4
        self.use_fp16, self.compute_dtype = use_fp16, torch.float32  # precision.py sets it per phase
        if self.first:
            self.const = nn.Parameter(torch.randn(out_ch, 4, 4))
            self.convs = nn.ModuleList([StyledConv(out_ch, out_ch, w_dim, resolution)])
        else:
            self.convs = nn.ModuleList(
                [StyledConv(in_ch, out_ch, w_dim, resolution, up=True), StyledConv(out_ch, out_ch, w_dim, resolution)]
            )
        self.torgb = ToRGB(out_ch, img_channels, w_dim)
        self.register_buffer("fir", fir_kernel(), persistent=False)

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str):
        if self.first:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        x = x.to(self.compute_dtype)
        for i, conv in enumerate(self.convs):
            x = conv(x, ws[:, i], noise_mode)
        y = self.torgb(x, ws[:, len(self.convs)]).float()  # the image sum stays float32
        return x, (y if img is None else upsample2d(img, self.fir) + y)


class SynthesisNetwork(nn.Module):
    def __init__(
        self,
        w_dim: int,
        resolution: int,
        img_channels: int,
        channel_base: int,
        channel_max: int,
        num_fp16_res: int = 0,
    ):
        super().__init__()
        check_resolution(resolution, minimum=8)
        resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        reduced_from = fp16_resolution(resolution, num_fp16_res) if num_fp16_res else resolution * 2
        blocks = [
            SynthesisBlock(
                channels_at(res // 2, channel_base, channel_max) if res > 4 else 0,
                channels_at(res, channel_base, channel_max),
                w_dim,
                res,
                img_channels,
                use_fp16=res >= reduced_from,
            )
            for res in resolutions
        ]
        self.blocks = nn.ModuleList(blocks)
        self.convs_per_block = [len(b.convs) for b in blocks]
        self.num_ws = sum(self.convs_per_block) + 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = img = None
        index = 0
        for block, n in zip(self.blocks, self.convs_per_block):
            x, img = block(x, img, ws[:, index : index + n + 1], noise_mode)
            index += n
        assert img is not None  # every resolution adds its toRGB output
        return img


class StyleGenerator(nn.Module):
    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        mapping_layers: int = 8,
        mapping_lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
        num_fp16_res: int = 0,
    ):
        super().__init__()
        self.z_dim = z_dim
        self.synthesis = SynthesisNetwork(w_dim, resolution, img_channels, channel_base, channel_max, num_fp16_res)
        self.mapping = MappingNetwork(z_dim, w_dim, self.synthesis.num_ws, mapping_layers, mapping_lr_mul, w_avg_beta)

    def mix_styles(self, z: torch.Tensor, ws: torch.Tensor, prob: float) -> torch.Tensor:
        """Style mixing regularisation: with probability ``prob`` the layers from a random
        cutoff on take their style from a second latent (one cutoff per batch, as NVlabs).
        The choice stays on the device, as a mask: no value is read back to Python, so a GPU
        step does not wait on it and ``torch.compile`` traces it without a graph break. Like
        NVlabs, the second latent is mapped on every call."""
        if prob <= 0:
            return ws
        num_ws = ws.shape[1]
        cutoff = torch.randint(1, num_ws, (), device=ws.device)
        cutoff = torch.where(torch.rand((), device=ws.device) < prob, cutoff, torch.full_like(cutoff, num_ws))
        other = self.mapping(torch.randn_like(z))
        later = torch.arange(num_ws, device=ws.device) >= cutoff
        return torch.where(later[None, :, None], other, ws)

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        mixing: float = 0.0,
        noise_mode: str | None = None,
        return_ws: bool = False,
    ):
        """Images in about [-1, 1]. Noise is random in training and fixed in eval mode, so
        sample grids of fixed latents are comparable across steps."""
        # w_avg follows every training-mode forward (NVlabs updates it in D's phase only; the
        # average it converges to is the same).
        ws = self.mapping(z, truncation_psi, update_w_avg=self.training)
        ws = self.mix_styles(z, ws, mixing) if self.training else ws
        img = self.synthesis(ws, noise_mode or ("random" if self.training else "const"))
        return (img, ws) if return_ws else img


class MinibatchStd(nn.Module):
    """Appends the std of features across a group of samples: lets D see a lack of variety."""

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = max(d for d in range(1, min(self.group_size, n) + 1) if n % d == 0)  # groups must tile the batch
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w).float()
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y.to(x.dtype)], dim=1)


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, use_fp16: bool = False):
        super().__init__()
        self.conv0 = EqualConv2d(in_ch, in_ch, 3)
        self.conv1 = EqualConv2d(in_ch, out_ch, 3, down=True, gain=math.sqrt(0.5))
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False, activation=False, down=True, gain=math.sqrt(0.5))
        self.use_fp16, self.compute_dtype = use_fp16, torch.float32  # precision.py sets it per phase

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.compute_dtype)
        return self.skip(x) + self.conv1(self.conv0(x))


class StyleDiscriminator(nn.Module):
    def __init__(
        self,
        resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        mbstd_group: int = 4,
        num_fp16_res: int = 0,
    ):
        super().__init__()
        check_resolution(resolution, minimum=8)
        ch = lambda r: channels_at(r, channel_base, channel_max)  # noqa: E731
        self.from_rgb = EqualConv2d(img_channels, ch(resolution), 1)
        resolutions = [2**i for i in range(int(math.log2(resolution)), 2, -1)]
        reduced_from = fp16_resolution(resolution, num_fp16_res) if num_fp16_res else resolution * 2
        self.blocks = nn.Sequential(*(DiscriminatorBlock(ch(r), ch(r // 2), r >= reduced_from) for r in resolutions))
        self.mbstd = MinibatchStd(mbstd_group)
        self.conv = EqualConv2d(ch(4) + 1, ch(4), 3)
        self.fc = EqualLinear(ch(4) * 16, ch(4), activation=True)
        self.out = EqualLinear(ch(4), 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        top: DiscriminatorBlock = self.blocks[0]  # type: ignore[assignment]
        x = self.from_rgb(img.to(top.compute_dtype))  # NVlabs: part of the top block
        x = self.blocks(x).float()  # the epilogue (4 x 4) is float32
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1))).flatten()


__all__ = ["LRELU_GAIN", "StyleDiscriminator", "StyleGenerator", "channels_at"]
