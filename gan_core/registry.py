"""GANs by name. A module in ``gan_core/gans/`` registers its class with ``@register``;
every module there is imported on first lookup, so a new GAN is one new file."""

from __future__ import annotations

import difflib
import importlib
import pkgutil

from gan_core.interface import GAN

_REGISTRY: dict[str, type[GAN]] = {}
_discovered = False


def register(cls: type[GAN]) -> type[GAN]:
    cls.validate()
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two GANs are registered as {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    import gan_core.gans as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    _discovered = True


def available() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get(name: str) -> type[GAN]:
    _discover()
    if name not in _REGISTRY:
        hint = difflib.get_close_matches(name, _REGISTRY, n=1)
        also = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise KeyError(f"unknown GAN {name!r}{also}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
