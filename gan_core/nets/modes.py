"""Switching nets to eval mode for sampling and evaluation, and back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from torch import nn


@contextlib.contextmanager
def eval_mode(nets: Mapping[str, nn.Module]) -> Iterator[Mapping[str, nn.Module]]:
    """The nets in eval mode for the block, each back in the mode it had afterwards (a net left
    in eval mode would train with BatchNorm's running statistics)."""
    modes = {name: net.training for name, net in nets.items()}
    for net in nets.values():
        net.eval()
    try:
        yield nets
    finally:
        for name, net in nets.items():
            net.train(modes[name])
