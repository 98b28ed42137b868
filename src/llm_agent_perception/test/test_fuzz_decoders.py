"""Fuzz every decoder of perception (hypothesis, seeded): random and mutated messages give a
valid result or BadInput, never another exception, a hang or an unbounded allocation."""
import math
import struct

import cv2
import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from llm_agent_perception.bounded import MAX_DECODED_BYTES, BadInput

from llm_agent_perception import depth_codec, features, image_codec, quantize, scan_processing

# Seeded and bounded: a case that runs 10 s is a hang, not a speed figure.
FUZZ = settings(max_examples=400, derandomize=True, database=None, deadline=10_000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_IMG = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
JPEG = cv2.imencode('.jpg', _IMG)[1].tobytes()
PNG = cv2.imencode('.png', _IMG)[1].tobytes()
DEPTH_PNG = depth_codec.encode(np.full((12, 16), 1500, np.uint16), '16UC1', 'png')
DEPTH_ZSTD = depth_codec.encode(np.linspace(0.5, 9, 192, dtype=np.float32).reshape(12, 16),
                                '32FC1', 'zstd')
FORMATS = ['bgr8; jpeg compressed bgr8', 'rgb8; png compressed bgr8', 'mono8; png compressed mono8',
           'bgr8; jpeg', '16UC1; compressedDepth png', '32FC1; compressedDepth zstd',
           '16UC1; compressedDepth', 'bgr8; compressedDepth zstd']


def mutated(base: bytes):
    """The base message with a few bytes overwritten, cut, or grown."""
    return st.tuples(st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)),
                              max_size=8),
                     st.integers(0, len(base)), st.binary(max_size=64)).map(
        lambda t: _apply(base, *t))


def _apply(base, edits, cut, tail):
    b = bytearray(base)
    for i, v in edits:
        b[i] = v
    return bytes(b[:cut]) + tail


def _ok_or_bad(fn, *args):
    try:
        out = fn(*args)
    except BadInput:
        return None
    arr = out[0] if isinstance(out, tuple) else out
    assert isinstance(arr, np.ndarray) and arr.nbytes <= MAX_DECODED_BYTES
    return arr


@FUZZ
@given(st.sampled_from(FORMATS), st.one_of(st.binary(max_size=256), mutated(JPEG), mutated(PNG)))
def test_image_decode(fmt, data):
    _ok_or_bad(image_codec.decode, fmt, data)


@FUZZ
@given(st.sampled_from(FORMATS), st.one_of(st.binary(max_size=256), mutated(DEPTH_PNG.data),
                                           mutated(DEPTH_ZSTD.data)))
def test_depth_decode(fmt, data):
    _ok_or_bad(depth_codec.decode, fmt, data)


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(-2**70, 2**70))


@FUZZ
@given(st.sampled_from(['float32', 'float64', 'int8', 'object', '', 'uint8']),
       st.lists(st.integers(-3, 1 << 40), max_size=4),
       st.sampled_from(['uint8', 'uint16', 'int32', '']), numbers, numbers,
       st.sampled_from(['zstd', 'zlib', 'none', 'lz4']), st.binary(max_size=128))
def test_quantize_unpack(dtype, shape, qdtype, scale, zero_point, codec, data):
    arr = _ok_or_bad(quantize.unpack, quantize.Packed(dtype, tuple(shape), qdtype, scale,
                                                      zero_point, codec, data))
    if arr is not None:
        assert np.all(np.isfinite(arr))


scan_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                        st.floats(0, 10, width=32))


@FUZZ
@given(st.lists(scan_values, max_size=400), numbers, numbers, numbers, numbers)
def test_sector_ranges_are_finite_or_blocked(ranges, angle_min, inc, rmin, rmax):
    s = features.sector_ranges(ranges, angle_min, inc, rmin, rmax)
    assert set(s) == set(features.SECTOR_NAMES)
    assert all(math.isfinite(v) and v >= 0 for v in s.values())


@FUZZ
@given(st.lists(scan_values, min_size=1, max_size=200), numbers, numbers, numbers, numbers,
       st.integers(1, 9), st.integers(1, 4))
# Found in CI: numpy's median averaged two ranges near float32's maximum into inf.
@example([1.7014118346046923e+38], 0.0, 1.0, 0.0, 1.7014117838986683e+38, 2, 1)
def test_filter_scan(ranges, angle_min, inc, rmin, rmax, window, down):
    meta = scan_processing.ScanMeta(angle_min=angle_min, angle_max=angle_min, angle_increment=inc,
                                    range_min=rmin, range_max=rmax)
    try:
        out = scan_processing.filter_scan(ranges, meta, window | 1, down)
    except (BadInput, ValueError):
        return
    assert np.all(np.isfinite(out.ranges))


@FUZZ
@given(st.lists(st.one_of(st.floats(width=32), st.just(float('nan'))), min_size=1, max_size=60),
       st.integers(0, 4))
@example([3.4028234663852886e+38, 3.4028234663852886e+38], 1)
def test_median_filter_is_the_nan_median_of_each_window(ranges, half):
    """The one-sort median (no masked arrays) against numpy's nanmedian, window by window."""
    r = np.array(ranges, np.float32)
    window = 2 * half + 1
    padded = np.pad(r, half, mode='edge')
    want = np.full(r.size, np.nan, np.float32)
    for i in range(r.size):
        w = padded[i:i + window].astype(np.float64)
        if not np.all(np.isnan(w)):
            want[i] = np.nanmedian(w)
    assert np.array_equal(scan_processing.median_filter(r, window), want, equal_nan=True)


def test_a_corrupt_frame_header_cannot_claim_a_huge_image():
    huge = bytearray(PNG)
    huge[16:24] = struct.pack('>II', 1 << 20, 1 << 20)
    try:
        image_codec.decode(FORMATS[1], bytes(huge))
        raise AssertionError('decoded a 2^40-pixel image')
    except BadInput as exc:
        assert 'pixels' in str(exc)
