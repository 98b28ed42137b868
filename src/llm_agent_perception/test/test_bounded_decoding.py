"""Decompression bombs and lying headers are refused before anything big is allocated."""
import struct
import zlib

import cv2
import numpy as np
import pytest
import zstandard
from llm_agent_perception.bounded import BadInput

from llm_agent_perception import bounded, depth_codec, image_codec, quantize


def test_zstd_frame_declaring_too_much_or_nothing_is_refused():
    bomb = zstandard.ZstdCompressor().compress(bytes(256 << 20))  # ~8 KB that claims 256 MiB
    assert len(bomb) < 64 << 10
    with pytest.raises(BadInput, match='declares'):
        bounded.zstd_decompress(bomb, 1 << 20)
    silent = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(1000))
    with pytest.raises(BadInput, match='does not declare'):
        bounded.zstd_decompress(silent, 1 << 20)
    assert bounded.zstd_decompress(zstandard.ZstdCompressor().compress(b'ab' * 10), 20) == b'ab' * 10


def test_zlib_stream_past_the_limit_or_truncated_is_refused():
    bomb = zlib.compress(bytes(64 << 20))
    with pytest.raises(BadInput, match='more than'):
        bounded.zlib_decompress(bomb, 1 << 20)
    good = zlib.compress(b'x' * 100)
    assert bounded.zlib_decompress(good, 100) == b'x' * 100
    with pytest.raises(BadInput, match='truncated|zlib'):
        bounded.zlib_decompress(good[:-4], 100)


def _png_header(w, h):
    ihdr = struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + struct.pack('>I', 13) + b'IHDR' + ihdr + b'\0\0\0\0'


def test_image_headers_with_huge_sizes_are_refused_before_decoding():
    with pytest.raises(BadInput, match='pixels'):
        image_codec.decode('bgr8; png compressed bgr8', _png_header(100_000, 100_000))
    ok, jpg = cv2.imencode('.jpg', np.zeros((8, 8, 3), np.uint8))
    jpg = bytearray(jpg.tobytes())
    sof = next(i for i in range(2, len(jpg) - 1) if jpg[i] == 0xFF and jpg[i + 1] == 0xC0)
    jpg[sof + 5:sof + 9] = struct.pack('>HH', 60000, 60000)
    with pytest.raises(BadInput, match='pixels'):
        image_codec.decode('bgr8; jpeg compressed bgr8', bytes(jpg))
    with pytest.raises(BadInput):
        image_codec.decode('bgr8; jpeg compressed bgr8', b'GIF89a....')


def test_depth_payloads_that_lie_are_refused():
    header = depth_codec.HEADER.pack(0, 0.0, 0.0)
    planes = zstandard.ZstdCompressor().compress(bytes(2 * 4096 * 4096))
    bomb = header + struct.pack('<II', 40000, 40000) + planes
    with pytest.raises(BadInput, match='pixels'):
        depth_codec.decode('16UC1; compressedDepth zstd', bomb)
    liar = header + struct.pack('<II', 4, 4) + planes  # 16 pixels that decode to 32 MiB
    with pytest.raises(BadInput, match='declares'):
        depth_codec.decode('16UC1; compressedDepth zstd', liar)
    with pytest.raises(BadInput):
        depth_codec.decode('16UC1; compressedDepth', header + _png_header(50_000, 50_000))
    enc = depth_codec.encode(np.ones((4, 4), np.float32), '32FC1')
    nan_header = depth_codec.HEADER.pack(0, float('nan'), 1.0) + enc.data[depth_codec.HEADER.size:]
    with pytest.raises(BadInput, match='inverse-depth'):
        depth_codec.decode(enc.format, nan_header)


def _packed(**kw):
    p = quantize.params_for_range(0.0, 10.0, 0.01)
    good = quantize.pack(np.linspace(0, 10, 50, dtype=np.float32), p)
    fields = dict(vars(good))
    fields.update(kw)
    return quantize.Packed(**fields)


@pytest.mark.parametrize('change,match', [
    (dict(shape=(0,)), 'below 1'),
    (dict(shape=(1 << 31, 1 << 31)), 'more than'),
    (dict(shape=(-50,)), 'below 1'),
    (dict(dtype='object'), 'dtype'),
    (dict(dtype='int64'), 'dtype'),
    (dict(scale=float('nan')), 'scale'),
    (dict(zero_point=float('inf')), 'zero_point'),
    (dict(scale=1e-300), 'non-finite'),
    (dict(codec='lz4'), 'codec'),
])
def test_quantized_arrays_that_pack_could_not_have_written_are_refused(change, match):
    with pytest.raises(BadInput, match=match):
        quantize.unpack(_packed(**change))


def test_a_good_quantized_array_still_round_trips():
    x = quantize.unpack(_packed())
    assert x.dtype == np.float32 and x.shape == (50,) and np.all(np.isfinite(x))
