"""Linear quantization Q(x) = round(S*x + Z) of float arrays, with zlib or zstd on top.

Inverse: x_hat = (Q - Z) / S. For x inside [lo, hi] (the range the parameters were chosen for)
the error is |x - x_hat| <= 1 / (2 S) (rounding to the nearest integer code moves at most half
a code, and one code is 1/S wide). Values outside [lo, hi] are clipped to it first, so their
error is their distance to the range plus that bound. Non-finite values are refused: clean the
data first (scan_processing does).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import zstandard

from .bounded import MAX_DECODED_BYTES, BadInput, checked_count, zlib_decompress, zstd_decompress

CODECS = ('zstd', 'zlib', 'none')
_QDTYPES = {'uint8': np.uint8, 'uint16': np.uint16}
# What a decoded array may be: a quantized array stands for real numbers.
OUT_DTYPES = ('float32', 'float64')


@dataclass
class QuantParams:
    """Scale, zero point and integer type of one quantization."""

    scale: float
    zero_point: float
    quantized_dtype: str
    max_code: int = -1  # code of the range's top (values above are clipped to it); -1 = type max

    @property
    def max_error(self) -> float:
        """Return the error bound 1/(2S) for values inside the range."""
        return 0.5 / self.scale


@dataclass
class Packed:
    """The fields of llm_agent_interfaces/CompressedArray, without the header."""

    dtype: str
    shape: Tuple[int, ...]
    quantized_dtype: str
    scale: float
    zero_point: float
    codec: str
    data: bytes


def params_for_range(lo: float, hi: float, max_error: float) -> QuantParams:
    """Choose S and Z so that [lo, hi] maps onto codes from 0 with error at most max_error."""
    if not (math.isfinite(lo) and math.isfinite(hi) and hi >= lo):
        raise ValueError(f'bad range [{lo}, {hi}]')
    if not (max_error > 0 and math.isfinite(max_error)):
        raise ValueError(f'max_error must be > 0, got {max_error}')
    scale = 0.5 / max_error
    levels = math.ceil((hi - lo) * scale)
    if levels > np.iinfo(np.uint16).max:
        # Too fine for 16 bits: coarsen the step so the range fits (the bound grows with it).
        scale = np.iinfo(np.uint16).max / (hi - lo)
        levels = np.iinfo(np.uint16).max
    qdtype = 'uint8' if levels <= np.iinfo(np.uint8).max else 'uint16'
    return QuantParams(scale=float(scale), zero_point=float(-lo * scale), quantized_dtype=qdtype,
                       max_code=int(levels))


def quantize(x: np.ndarray, p: QuantParams) -> np.ndarray:
    """Return Q(x) = round(S x + Z), clipped to the integer type; refuses non-finite input."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError('quantize() needs finite values')
    info = np.iinfo(_QDTYPES[p.quantized_dtype])
    top = info.max if p.max_code < 0 else min(p.max_code, info.max)
    q = np.rint(x * p.scale + p.zero_point)
    return np.clip(q, info.min, top).astype(_QDTYPES[p.quantized_dtype])


def dequantize(q: np.ndarray, scale: float, zero_point: float,
               dtype: str = 'float32') -> np.ndarray:
    """Return x_hat = (Q - Z) / S (inf where it overflows the type; unpack refuses those)."""
    with np.errstate(over='ignore'):
        return np.asarray(((np.asarray(q, dtype=np.float64) - zero_point) / scale).astype(dtype))


def entropy_encode(raw: bytes, codec: str, level: int = 3) -> bytes:
    """Compress bytes with zstd, zlib or nothing."""
    if codec == 'zstd':
        return zstandard.ZstdCompressor(level=level).compress(raw)
    if codec == 'zlib':
        return zlib.compress(raw, min(max(level, 0), 9))
    if codec == 'none':
        return bytes(raw)
    raise ValueError(f'unknown codec {codec!r}')


def entropy_decode(data: bytes, codec: str, max_size: int) -> bytes:
    """Decompress bytes produced by entropy_encode, refusing output larger than max_size."""
    if codec == 'zstd':
        return zstd_decompress(bytes(data), max_size)
    if codec == 'zlib':
        return zlib_decompress(bytes(data), max_size)
    if codec == 'none':
        if len(data) > max_size:
            raise BadInput(f'payload of {len(data)} bytes, more than the {max_size} allowed')
        return bytes(data)
    raise BadInput(f'unknown codec {codec!r}')


def pack(x: np.ndarray, p: QuantParams, codec: str = 'zstd', level: int = 3) -> Packed:
    """Quantize and entropy-code an array."""
    x = np.asarray(x)
    q = quantize(x, p)
    raw = q.astype(q.dtype.newbyteorder('<'), copy=False).tobytes()
    return Packed(dtype=str(x.dtype), shape=tuple(int(s) for s in x.shape),
                  quantized_dtype=p.quantized_dtype, scale=p.scale,
                  zero_point=p.zero_point, codec=codec, data=entropy_encode(raw, codec, level))


def unpack(packed: Packed) -> np.ndarray:
    """Invert pack(): check every field, decode within the shape's size, dequantize.

    Raises BadInput (a ValueError) naming the field for anything pack() could not have written.
    """
    if packed.quantized_dtype not in _QDTYPES:
        raise BadInput(f'unknown quantized_dtype {packed.quantized_dtype!r}')
    out_dtype = packed.dtype or 'float32'
    if out_dtype not in OUT_DTYPES:
        raise BadInput(f'dtype {out_dtype!r} is not one of {OUT_DTYPES}')
    if not (isinstance(packed.scale, (int, float)) and math.isfinite(packed.scale)
            and packed.scale > 0):
        raise BadInput(f'bad scale {packed.scale}')
    if not (isinstance(packed.zero_point, (int, float)) and math.isfinite(packed.zero_point)):
        raise BadInput(f'bad zero_point {packed.zero_point}')
    qtype = np.dtype(_QDTYPES[packed.quantized_dtype]).newbyteorder('<')
    shape = tuple(packed.shape)
    count = checked_count(shape, max(qtype.itemsize, np.dtype(out_dtype).itemsize),
                          MAX_DECODED_BYTES) if shape else 1
    raw = entropy_decode(packed.data, packed.codec, count * qtype.itemsize)
    if len(raw) != count * qtype.itemsize:
        raise BadInput(f'payload has {len(raw)} bytes, shape needs {count * qtype.itemsize}')
    q = np.frombuffer(raw, dtype=qtype).reshape(shape)
    x = dequantize(q, packed.scale, packed.zero_point, out_dtype)
    if not np.all(np.isfinite(x)):  # a huge zero point or a tiny scale overflows float32
        raise BadInput('scale and zero_point give non-finite values')
    return x
