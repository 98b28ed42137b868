"""Decoding with a bound on what it may allocate, decided before anything is allocated.

A compressed message says how big it will be once decoded; a hostile or corrupt one says too
much (a 16 KB zstd frame that claims 4 GiB, a 70-byte PNG header of 100k x 100k pixels). Every
decoder of the suite goes through these checks first, and raises only `BadInput`, saying what
was wrong. python-zstandard sizes its output from the frame's declared content size and ignores
`max_output_size` then, so a zstd frame must declare its size, at most the limit.
"""
from __future__ import annotations

import struct
import zlib
from typing import Tuple

import cv2
import numpy as np
import zstandard

# What one decoded message may take, and how many pixels an image may have: 64 MiB holds a
# 4096x4096 RGBA frame; OpenCV's own pixel limit is 2^30, far beyond what a robot sends.
MAX_DECODED_BYTES = 64 << 20
MAX_PIXELS = 4096 * 4096


class BadInput(ValueError):
    """An input message that cannot be processed (reported, never published)."""


def zstd_decompress(data: bytes, limit: int) -> bytes:
    """Decompress one zstd frame that declares a content size of at most `limit` bytes."""
    try:
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as exc:
        raise BadInput(f'not a zstd frame: {exc}') from None
    size = params.content_size
    if size in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR):
        raise BadInput('zstd frame does not declare its content size')
    if size > limit:
        raise BadInput(f'zstd frame declares {size} bytes, more than the {limit} allowed')
    try:
        out = zstandard.ZstdDecompressor().decompress(data, max_output_size=limit)
    except zstandard.ZstdError as exc:
        raise BadInput(f'zstd: {exc}') from None
    if len(out) != size:
        raise BadInput(f'zstd frame gave {len(out)} bytes, declared {size}')
    return out


def zlib_decompress(data: bytes, limit: int) -> bytes:
    """Decompress a zlib stream, refusing one that would give more than `limit` bytes."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit)
    except zlib.error as exc:
        raise BadInput(f'zlib: {exc}') from None
    if d.unconsumed_tail or not d.eof and d.decompress(b'', 1):
        raise BadInput(f'zlib stream gives more than the {limit} bytes allowed')
    if not d.eof:
        raise BadInput('zlib stream is truncated')
    return out


def checked_count(shape: Tuple[int, ...], itemsize: int, limit: int = MAX_DECODED_BYTES) -> int:
    """Elements of an array of this shape; BadInput when a dimension is < 1 or it is too big."""
    count = 1
    for n in shape:
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise BadInput(f'shape {tuple(shape)} has a dimension below 1')
        count *= int(n)
        if count * itemsize > limit:
            raise BadInput(f'shape {tuple(shape)} needs more than the {limit} bytes allowed')
    return count


_PNG_SIG = b'\x89PNG\r\n\x1a\n'
# JPEG start-of-frame markers (baseline, progressive, lossless...); not DHT/JPG/DAC.
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> Tuple[int, int]:
    """(width, height) from a PNG or JPEG header, without decoding; BadInput for anything else."""
    if data[:8] == _PNG_SIG:
        if len(data) < 24 or data[12:16] != b'IHDR':
            raise BadInput('PNG without an IHDR header')
        w, h = struct.unpack('>II', data[16:24])
        return int(w), int(h)
    if data[:2] == b'\xff\xd8':
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                raise BadInput('JPEG marker expected')
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (length,) = struct.unpack('>H', data[i + 2:i + 4])
            if marker in _SOF:
                if i + 9 > len(data):
                    break
                h, w = struct.unpack('>HH', data[i + 5:i + 9])
                return int(w), int(h)
            if length < 2:
                raise BadInput('JPEG segment of length < 2')
            i += 2 + length
        raise BadInput('JPEG without a frame header')
    raise BadInput('neither a PNG nor a JPEG file')


def imdecode(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """cv2.imdecode after checking the header's size; BadInput for anything it cannot read."""
    w, h = image_size(data)
    if w < 1 or h < 1 or w * h > max_pixels:
        raise BadInput(f'image of {w}x{h} pixels (at most {max_pixels} allowed)')
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise BadInput(f'cv2.imdecode: {str(exc).strip().splitlines()[-1][:200]}') from None
    if img is None:
        raise BadInput('cv2.imdecode could not read the data')
    return img
