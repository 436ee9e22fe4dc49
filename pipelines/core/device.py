"""The fast path's settings for a device, from ``train.*``: on by default on CUDA where they
are safe (bf16 autocast, channels-last, TF32, cuDNN autotuning); off by default on CPU, where
they seldom pay off for these small convolutional nets (each can still be asked for)."""

from __future__ import annotations

import torch

from pipelines.config.schema import TrainConfig


def amp_mode(train: TrainConfig, device: torch.device) -> str:
    """off, bf16 or fp16. auto: bf16 on a GPU that has it (Ampere and newer); older GPUs
    keep float32 unless fp16 (with its loss scaler) is asked for."""
    if train.amp != "auto":
        return train.amp
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "off"


def channels_last(train: TrainConfig, device: torch.device) -> bool:
    return train.channels_last == "on" or (train.channels_last == "auto" and device.type == "cuda")


def tf32(train: TrainConfig, gan_default: bool) -> bool:
    return train.tf32 == "on" or (train.tf32 == "auto" and gan_default)


def configure_device(train: TrainConfig, device: torch.device, gan_tf32: bool = True) -> None:
    """Process-wide switches, set once per worker before the nets are built; ``gan_tf32``:
    the GAN's own TF32 default (``GAN.tf32``), which ``train.tf32=auto`` follows."""
    if device.type != "cuda":
        return
    if device.index is not None:  # a bare "cuda" means the current device
        torch.cuda.set_device(device)
    allowed = tf32(train, gan_tf32)
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed
    torch.backends.cudnn.benchmark = True  # fixed input shapes: autotuned convolutions pay off from step 2
