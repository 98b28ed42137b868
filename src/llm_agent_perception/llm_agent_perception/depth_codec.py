"""Depth frames in compressed_depth_image_transport's layout, plus a faster zstd option (no rclpy).

Stock layout ("compressedDepth png"): `format` = "<encoding>; compressedDepth png"; `data` = a
12-byte ConfigHeader (int32 format = 0 for INV_DEPTH, float32 depthParam[2], little-endian)
followed by a 16-bit PNG. 16UC1 (mm) travels as is, with pixels above depth_max zeroed and the
two params left 0. 32FC1 (m) is quantized to inverse depth: A = q (q + 1), B = 1 - A / depth_max,
code = A / d + B (0 for d >= depth_max or not a number), and decoded as d = A / (code - B).

Our option ("compressedDepth zstd"): the same 12-byte header, then uint32 cols, uint32 rows, then
zstd of the 16-bit codes after a left-neighbour delta and a split into high and low byte planes.
The stock plugin does NOT read it (it logs "Unsupported image format"): use our
image_decompressor or decode() below.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np
import zstandard

from .bounded import MAX_PIXELS, BadInput, imdecode, zstd_decompress

HEADER = struct.Struct('<iff')  # ConfigHeader: compressionFormat (enum, int), float depthParam[2]
INV_DEPTH = 0
DEPTH_FORMATS = ('png', 'zstd')
# PNG row filters; 'adaptive' is libpng's per-row choice among all five. Depth rows are much
# like the row above: 'up' encoded the world's frames 2.9x faster than 'adaptive' at level 1
# for 24 % more bytes (1.6 vs 4.7 ms, 7.3 vs 5.9 kB); every filter is stock-readable.
PNG_FILTERS = {'adaptive': None, 'none': cv2.IMWRITE_PNG_FILTER_NONE,
               'sub': cv2.IMWRITE_PNG_FILTER_SUB, 'up': cv2.IMWRITE_PNG_FILTER_UP,
               'paeth': cv2.IMWRITE_PNG_FILTER_PAETH}
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_FILTER_UP = 2
_PNG_MEM_LEVEL = 4
ENCODINGS_16 = ('16UC1', 'mono16')
ENCODINGS_32 = ('32FC1',)


@dataclass
class EncodedDepth:
    """One compressed depth frame: `format` string and bytes."""

    format: str
    data: bytes


def depth_to_array(encoding: str, width: int, height: int, step: int, data,
                   is_bigendian: int = 0) -> np.ndarray:
    """View sensor_msgs/Image depth fields as HxW uint16 or float32; raise BadInput if invalid."""
    if encoding in ENCODINGS_16:
        base = np.dtype(np.uint16)
    elif encoding in ENCODINGS_32:
        base = np.dtype(np.float32)
    else:
        raise BadInput(f'depth needs 16UC1, mono16 or 32FC1, got {encoding!r}')
    dtype = base.newbyteorder('>' if is_bigendian else '<')
    if width <= 0 or height <= 0:
        raise BadInput(f'empty image {width}x{height}')
    if step < width * dtype.itemsize:
        raise BadInput(f'step {step} < width*{dtype.itemsize}')
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size < step * height:
        raise BadInput(f'data has {buf.size} bytes, step*height is {step * height}')
    rows = buf[:step * height].reshape(height, step)[:, :width * dtype.itemsize]
    return np.ascontiguousarray(rows).view(dtype).reshape(height, width).astype(base)


def inverse_depth_params(depth_max: float, depth_quantization: float) -> Tuple[float, float]:
    """Return the plugin's (A, B) in float32 arithmetic, as its C++ computes them."""
    z0 = np.float32(depth_quantization)
    a = np.float32(z0 * (z0 + np.float32(1.0)))
    b = np.float32(np.float32(1.0) - a / np.float32(depth_max))
    return float(a), float(b)


def quantize_inverse_depth(depth_m: np.ndarray, depth_max: float,
                           depth_quantization: float) -> Tuple[np.ndarray, float, float]:
    """Map metres to 16-bit inverse-depth codes like the plugin (0 = invalid or too far)."""
    a, b = inverse_depth_params(depth_max, depth_quantization)
    d = depth_m.astype(np.float32)
    valid = np.isfinite(d) & (d > 0) & (d < np.float32(depth_max))
    with np.errstate(divide='ignore', invalid='ignore'):
        code = np.float32(a) / np.where(valid, d, np.float32(1)) + np.float32(b)
    # C++ converts float to unsigned short by truncation; clip so near-zero depths saturate.
    code = np.clip(np.trunc(code), 0, 65535)
    return np.where(valid, code, 0).astype(np.uint16), a, b


def dequantize_inverse_depth(code: np.ndarray, a: float, b: float) -> np.ndarray:
    """Map inverse-depth codes back to metres (NaN where the code is 0)."""
    c = code.astype(np.float32)
    with np.errstate(divide='ignore', invalid='ignore'):
        d = np.float32(a) / (c - np.float32(b))
    return np.where(code == 0, np.float32(np.nan), d).astype(np.float32)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))


def png16_up(codes: np.ndarray, level: int) -> bytes:
    """A 16-bit greyscale PNG of `codes` with every row 'up'-filtered, written here: numpy
    filters the rows in one call and zlib deflates them. OpenCV's libpng path took 1.45 ms for a
    640x480 depth frame of the world at level 1 against 0.9 ms here (AMD EPYC), 5 % fewer bytes;
    any PNG decoder reads it (the stock plugin's cv::imdecode among them)."""
    height, width = codes.shape
    big_endian = codes.astype('>u2', copy=False).view(np.uint8).reshape(height, 2 * width)
    rows = np.empty((height, 2 * width + 1), np.uint8)
    rows[:, 0] = _PNG_FILTER_UP
    rows[0, 1:] = big_endian[0]             # the row above the first is zeros
    np.subtract(big_endian[1:], big_endian[:-1], out=rows[1:, 1:])   # bytewise, modulo 256
    header = struct.pack('>IIBBBBB', width, height, 16, 0, 0, 0, 0)  # 16-bit grey, no interlace
    # memLevel 4 (zlib's default 8): a smaller match table that stays in cache, 0.83 against
    # 0.98 ms on the world's frames for 4 % fewer bytes.
    deflate = zlib.compressobj(level, zlib.DEFLATED, 15, _PNG_MEM_LEVEL)
    idat = deflate.compress(rows) + deflate.flush()
    return b''.join((_PNG_SIGNATURE, _png_chunk(b'IHDR', header), _png_chunk(b'IDAT', idat),
                     _png_chunk(b'IEND', b'')))


def _zstd_pack(codes: np.ndarray, level: int) -> bytes:
    delta = np.diff(codes.astype(np.int32), axis=1, prepend=0).astype(np.uint16)
    planes = np.concatenate([(delta >> 8).astype(np.uint8).ravel(),
                             (delta & 0xFF).astype(np.uint8).ravel()])
    rows, cols = codes.shape
    return struct.pack('<II', cols, rows) + zstandard.ZstdCompressor(level=level).compress(
        planes.tobytes())


def _zstd_unpack(payload: bytes) -> np.ndarray:
    if len(payload) < 8:
        raise BadInput('zstd depth payload too short')
    cols, rows = struct.unpack_from('<II', payload)
    n = int(cols) * int(rows)
    if n == 0 or n > MAX_PIXELS:
        raise BadInput(f'zstd depth payload announces {cols}x{rows} pixels')
    planes = zstd_decompress(payload[8:], 2 * n)
    if len(planes) != 2 * n:
        raise BadInput('zstd depth payload has the wrong size')
    p = np.frombuffer(planes, dtype=np.uint8)
    delta = ((p[:n].astype(np.uint16) << 8) | p[n:]).reshape(rows, cols)
    return np.cumsum(delta, axis=1, dtype=np.uint16)


def encode(depth: np.ndarray, encoding: str, fmt: str = 'png', depth_max: float = 10.0,
           depth_quantization: float = 100.0, png_level: int = 9,
           zstd_level: int = 1, png_filter: str = 'adaptive') -> EncodedDepth:
    """Compress a depth array; png is the stock plugin's layout, zstd is ours."""
    if fmt not in DEPTH_FORMATS:
        raise ValueError(f'unknown depth format {fmt!r}, expected one of {DEPTH_FORMATS}')
    if png_filter not in PNG_FILTERS:
        raise ValueError(f'unknown PNG filter {png_filter!r}, expected one of {tuple(PNG_FILTERS)}')
    if encoding in ENCODINGS_32:
        codes, a, b = quantize_inverse_depth(depth, depth_max, depth_quantization)
        header = HEADER.pack(INV_DEPTH, a, b)
    elif encoding in ENCODINGS_16:
        codes = depth.astype(np.uint16, copy=True)
        codes[codes > np.uint16(min(int(depth_max * 1000.0), 65535))] = 0
        header = HEADER.pack(INV_DEPTH, 0.0, 0.0)
    else:
        raise BadInput(f'depth needs 16UC1, mono16 or 32FC1, got {encoding!r}')
    if fmt == 'png' and png_filter == 'up':
        payload = png16_up(codes, int(png_level))
    elif fmt == 'png':
        flags = [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)]
        if PNG_FILTERS[png_filter] is not None:
            flags += [cv2.IMWRITE_PNG_FILTER, PNG_FILTERS[png_filter]]
        ok, buf = cv2.imencode('.png', codes, flags)
        if not ok:
            raise BadInput('cv2.imencode (png) failed')
        payload = buf.tobytes()
    else:
        payload = _zstd_pack(codes, zstd_level)
    return EncodedDepth(format=f'{encoding}; compressedDepth {fmt}', data=header + payload)


def decode(fmt: str, data) -> Tuple[np.ndarray, str]:
    """Decode a compressedDepth message to (array, encoding)."""
    encoding, sep, tail = fmt.partition(';')
    encoding = encoding.strip()
    words = tail.split()
    if not sep or 'compressedDepth' not in words:
        raise BadInput(f'not a compressedDepth format: {fmt!r}')
    at = words.index('compressedDepth')
    codec = words[at + 1] if at + 1 < len(words) else 'png'
    raw = bytes(data)
    if len(raw) <= HEADER.size:
        raise BadInput('compressedDepth data shorter than its header')
    _fmt, a, b = HEADER.unpack_from(raw)
    payload = raw[HEADER.size:]
    if codec == 'png':
        codes = imdecode(payload)
        if codes.dtype != np.uint16 or codes.ndim != 2:
            raise BadInput('payload is not a 16-bit single-channel PNG')
    elif codec == 'zstd':
        codes = _zstd_unpack(payload)
    else:
        raise BadInput(f'unsupported compressedDepth codec {codec!r}')
    if encoding in ENCODINGS_32:
        if not (np.isfinite(a) and np.isfinite(b) and a > 0):
            raise BadInput(f'inverse-depth parameters A={a}, B={b} are not usable')
        return dequantize_inverse_depth(codes, a, b), encoding
    if encoding in ENCODINGS_16:
        return codes, encoding
    raise BadInput(f'unsupported depth encoding {encoding!r}')
