"""16-bit grayscale PNG, the bundle's quantized heights, with zlib and numpy alone.

Blender's Python has no imaging library, and the add-on must read and write the same files
lossart does, so the codec is ours: a few lines of PNG (RFC 2083) for the one image type the
bundle uses. Writing picks, per row, whichever of the None/Sub/Up filters gives the smallest
residuals (smooth heights compress several times better than unfiltered); reading takes any
filter, since bundles written by other PNG encoders (earlier lossart bundles: Pillow) must open.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import BundleError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: zlib level: 1 is several times faster than 6 and smooth heights still compress well.
COMPRESS_LEVEL = 1
_BPP = 2  # bytes per pixel: one 16-bit sample


def _chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def encode_png16(values: np.ndarray, level: int = COMPRESS_LEVEL) -> bytes:
    """PNG bytes of a uint16 array [H, W]; array row 0 is the image's top row."""
    px = np.asarray(values)
    if px.ndim != 2 or px.shape[0] < 1 or px.shape[1] < 1:
        raise BundleError(f"16-bit PNG: expected a 2-D array, got shape {px.shape}")
    h, w = px.shape
    raw = np.ascontiguousarray(px, dtype=">u2").view(np.uint8).reshape(h, _BPP * w)
    sub = raw.copy()
    sub[:, _BPP:] -= raw[:, :-_BPP]  # uint8 arithmetic wraps modulo 256, as PNG's does
    up = raw.copy()
    up[1:] -= raw[:-1]
    candidates = np.stack([raw, sub, up])  # filter types 0, 1, 2
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)  # libpng's heuristic
    best = np.argmin(cost, axis=0)
    rows = np.empty((h, 1 + _BPP * w), dtype=np.uint8)
    rows[:, 0] = best
    rows[:, 1:] = candidates[best, np.arange(h)]
    header = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)  # 16-bit, grayscale, no interlace
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
        + _chunk(b"IEND", b"")
    )


def decode_png16(data: bytes, where: str = "PNG") -> np.ndarray:
    """uint16 [H, W] of a 16-bit grayscale PNG; BundleError (naming `where`) for anything else."""
    if not data.startswith(SIGNATURE):
        raise BundleError(f"{where}: not a PNG file")
    pos, header, idat = len(SIGNATURE), None, []
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        tag = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length) if len(body) == length else (-1,)
        if len(body) != length or zlib.crc32(tag + body) & 0xFFFFFFFF != crc:
            raise BundleError(f"{where}: truncated or corrupt PNG ({tag.decode('latin-1')} chunk)")
        pos += 12 + length
        if tag == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat.append(body)
        elif tag == b"IEND":
            break
    if header is None or not idat:
        raise BundleError(f"{where}: PNG without IHDR or IDAT chunk")
    w, h, depth, colour, _, _, interlace = header
    if depth != 16 or colour != 0:
        raise BundleError(
            f"{where}: expected a 16-bit grayscale PNG, got bit depth {depth}, colour type {colour}"
        )
    if interlace:
        raise BundleError(f"{where}: interlaced PNGs are not supported")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise BundleError(f"{where}: corrupt PNG image data ({exc})") from None
    stride = 1 + _BPP * w
    if len(raw) != h * stride:
        raise BundleError(f"{where}: PNG image data has {len(raw)} bytes, expected {h * stride}")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(h, stride)
    out = np.empty((h, _BPP * w), dtype=np.uint8)
    prev = np.zeros(_BPP * w, dtype=np.uint8)
    for r in range(h):
        kind, line = int(rows[r, 0]), rows[r, 1:]
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum along each byte lane
            cur = np.cumsum(line.reshape(w, _BPP), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            cur = line + prev
        elif kind in (3, 4):
            cur = _unfilter_sequential(kind, line, prev)
        else:
            raise BundleError(f"{where}: unknown PNG filter type {kind} in row {r}")
        out[r] = cur
        prev = out[r]
    return out.view(">u2").reshape(h, w).astype(np.uint16)


def _unfilter_sequential(kind: int, line: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Average (3) and Paeth (4) rows, byte by byte: each byte needs the decoded one before."""
    cur = bytearray(line.tobytes())
    up = prev.tobytes()
    for x in range(len(cur)):
        a = cur[x - _BPP] if x >= _BPP else 0
        b = up[x]
        if kind == 3:
            cur[x] = (cur[x] + ((a + b) >> 1)) & 0xFF
            continue
        c = up[x - _BPP] if x >= _BPP else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        cur[x] = (cur[x] + pred) & 0xFF
    return np.frombuffer(bytes(cur), dtype=np.uint8)


def read_png16(path: str | Path) -> np.ndarray:
    """The uint16 values of a 16-bit grayscale PNG file; BundleError for any other file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_png16(data, str(path))


def write_png16(path: str | Path, values: np.ndarray, level: int = COMPRESS_LEVEL) -> None:
    """A 16-bit grayscale PNG of uint16 `values`, written atomically; row 0 is the top row."""
    data = encode_png16(values, level)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
