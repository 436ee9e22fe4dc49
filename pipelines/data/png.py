"""Decode the PNGs that `ganforge data shard` writes, without PIL's per-file Python work.

A shard sample is a small, 8-bit, non-interlaced grey or RGB PNG. For these, walking the
chunks here and handing the IDAT stream to PIL's C "zip" decoder (inflate and un-filter)
skips PngImagePlugin's chunk parsing in Python: at 64 px RGB, 78 us per image against 96
(zlib's inflate alone is about 50), in a loop that does nothing else. Every IDAT chunk's CRC
is checked (2 us), so a damaged sample fails here as it would in PIL. Anything else (other
bit depths or colour types, interlacing, a truncated or odd file) goes through PIL's full
reader, which decodes what it can and names what it cannot."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (colour type, channels) -> PIL mode: grey and RGB, what `data shard` writes
_FAST_MODES = {(0, 1): "L", (2, 3): "RGB"}
_IHDR = struct.Struct(">I4sIIBBBBB")  # length, type, width, height, depth, colour, compression, filter, interlace
_CHUNK = struct.Struct(">I4s")


class Undecodable(ValueError):
    """The bytes are not a PNG image PIL can read."""


def decode(data: bytes, size: int, channels: int) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 pixels; raises Undecodable. The size is not checked here
    beyond choosing the fast path: the caller checks the shape."""
    fast = _fast_path(data, size, channels)
    try:
        if fast is not None:
            mode, idat = fast
            return np.asarray(Image.frombytes(mode, (size, size), idat, "zip", mode))  # the raw mode
        with Image.open(io.BytesIO(data), formats=("PNG",)) as image:
            return np.asarray(image)
    except Exception as exc:  # PIL raises many types for damaged data
        raise Undecodable(f"{type(exc).__name__}: {exc}") from exc


def _fast_path(data: bytes, size: int, channels: int) -> tuple[str, bytes] | None:
    """The PIL mode and concatenated IDAT payload of a PNG the fast path can take, else
    None (PIL's turn)."""
    if not data.startswith(SIGNATURE) or len(data) < len(SIGNATURE) + _IHDR.size + 4:
        return None
    length, kind, width, height, depth, colour, _, _, interlace = _IHDR.unpack_from(data, len(SIGNATURE))
    if (length, kind, width, height, depth, interlace) != (13, b"IHDR", size, size, 8, 0):
        return None
    if (colour, channels) not in _FAST_MODES:
        return None
    parts, pos = [], len(SIGNATURE) + 8 + length + 4
    while pos + _CHUNK.size <= len(data):
        length, kind = _CHUNK.unpack_from(data, pos)
        end = pos + 8 + length
        if end + 4 > len(data):
            return None  # truncated: PIL names it
        if kind == b"IDAT":
            payload = data[pos + 8 : end]
            if zlib.crc32(payload, zlib.crc32(kind)) != int.from_bytes(data[end : end + 4], "big"):
                raise Undecodable("IDAT chunk fails its CRC check")
            parts.append(payload)
        elif kind == b"IEND":
            return (_FAST_MODES[(colour, channels)], b"".join(parts)) if parts else None
        elif kind[0] & 0x20 == 0 and kind != b"IHDR":  # a critical chunk the fast path does not know (PLTE...)
            return None
        pos = end + 4
    return None
