"""Image and depth codecs, decoded the way the stock image_transport plugins decode them."""
import struct
import zlib

import cv2
import numpy as np
import pytest
from llm_agent_samples.photos import NAMES, motorcycle_depth_mm, photo

from llm_agent_perception import depth_codec, image_codec


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('quality,min_psnr', [(95, 34.0), (75, 29.0), (30, 25.0)])
def test_jpeg_decodes_with_plain_imdecode_at_good_psnr(name, quality, min_psnr):
    img = photo(name)
    enc = image_codec.encode(img, 'bgr8', 'jpeg', jpeg_quality=quality)
    assert enc.format == 'bgr8; jpeg compressed bgr8'
    out = cv2.imdecode(np.frombuffer(enc.data, np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == img.shape
    assert image_codec.psnr(img, out) >= min_psnr


def test_jpeg_psnr_and_size_grow_with_quality():
    img = photo('astronaut')
    sizes, psnrs = [], []
    for q in (20, 50, 80, 95):
        enc = image_codec.encode(img, 'bgr8', 'jpeg', jpeg_quality=q)
        out = cv2.imdecode(np.frombuffer(enc.data, np.uint8), cv2.IMREAD_COLOR)
        sizes.append(len(enc.data))
        psnrs.append(image_codec.psnr(img, out))
    assert sizes == sorted(sizes) and psnrs == sorted(psnrs)


@pytest.mark.parametrize('name', NAMES[:3])
def test_png_is_lossless_and_stock_format(name):
    img = photo(name)
    enc = image_codec.encode(img, 'bgr8', 'png', png_level=3)
    assert enc.format == 'bgr8; png compressed bgr8'
    out = cv2.imdecode(np.frombuffer(enc.data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(out, img)


def test_rgb8_goes_out_as_bgr8_and_mono8_as_mono8():
    bgr = photo('chelsea')
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    enc = image_codec.encode(rgb, 'rgb8', 'png')
    assert enc.format == 'rgb8; png compressed bgr8'
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(enc.data, np.uint8), -1), bgr)
    back, encoding = image_codec.decode(enc.format, enc.data)
    assert encoding == 'rgb8'
    np.testing.assert_array_equal(back, rgb)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    enc = image_codec.encode(grey, 'mono8', 'jpeg', 90)
    assert enc.format == 'mono8; jpeg compressed mono8'
    back, encoding = image_codec.decode(enc.format, enc.data)
    assert encoding == 'mono8' and back.shape == grey.shape


def test_image_to_array_honours_step_padding():
    img = photo('chelsea')
    h, w = img.shape[:2]
    step = w * 3 + 13
    padded = np.zeros((h, step), np.uint8)
    padded[:, :w * 3] = img.reshape(h, w * 3)
    out = image_codec.image_to_array('bgr8', w, h, step, padded.tobytes())
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize('encoding,width,height,step,size', [
    ('bgr8', 64, 48, 192, 192 * 48 - 1),     # data shorter than step*height
    ('bgr8', 64, 48, 100, 192 * 48),         # step shorter than a row
    ('yuv422', 64, 48, 128, 128 * 48),       # unknown encoding
    ('bgr8', 0, 48, 0, 0),                   # empty
])
def test_bad_images_raise_bad_input(encoding, width, height, step, size):
    with pytest.raises(image_codec.BadInput):
        image_codec.image_to_array(encoding, width, height, step, bytes(size))


def test_roi_and_downscale():
    img = photo('astronaut')
    out = image_codec.crop_and_scale(img, (100, 50, 200, 0), 0.5)
    assert out.shape == (231, 100, 3)
    np.testing.assert_array_equal(image_codec.crop_and_scale(img, (100, 50, 200, 100)),
                                  img[50:150, 100:300])


def test_decode_rejects_garbage():
    with pytest.raises(image_codec.BadInput):
        image_codec.decode('bgr8; jpeg compressed bgr8', b'not a jpeg')
    with pytest.raises(image_codec.BadInput):
        image_codec.decode('bgr8; webp compressed bgr8', b'x')


def _stock_decode_depth(fmt: str, data: bytes):
    """What compressed_depth_image_transport does: strip the 12-byte header, cv::imdecode."""
    header = data[:12]
    kind, a, b = struct.unpack('<iff', header)
    assert kind == 0  # INV_DEPTH
    codes = cv2.imdecode(np.frombuffer(data[12:], np.uint8), cv2.IMREAD_UNCHANGED)
    return codes, a, b


@pytest.mark.parametrize('png_filter', sorted(depth_codec.PNG_FILTERS))
def test_16uc1_png_round_trips_exactly_through_stock_decoder(png_filter):
    depth = motorcycle_depth_mm()
    enc = depth_codec.encode(depth, '16UC1', 'png', depth_max=10.0, png_filter=png_filter)
    assert enc.format == '16UC1; compressedDepth png'
    codes, a, b = _stock_decode_depth(enc.format, enc.data)
    assert (a, b) == (0.0, 0.0)
    assert codes.dtype == np.uint16
    np.testing.assert_array_equal(codes, depth)
    back, encoding = depth_codec.decode(enc.format, enc.data)
    np.testing.assert_array_equal(back, depth)


@pytest.mark.parametrize('shape', [(1, 1), (1, 7), (5, 1), (3, 4), (37, 53)])
@pytest.mark.parametrize('level', [0, 1, 9])
def test_our_16_bit_png_writer_is_read_exactly_by_imdecode(shape, level):
    """png16_up (the default 'up' filter's writer) against cv::imdecode, the stock plugin's
    decoder: every 16-bit value, both bytes of it, and rows of any length."""
    rng = np.random.default_rng(shape[0] * 1000 + shape[1] + level)
    codes = rng.integers(0, 65536, size=shape, dtype=np.uint16)
    codes[0, 0], codes[-1, -1] = 0, 65535
    png = depth_codec.png16_up(codes, level)
    back = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == shape
    np.testing.assert_array_equal(back, codes)
    # Every row carries filter type 2 (Up), as the parameter says.
    rows = np.frombuffer(zlib.decompress(png[8 + 25 + 8:-12 - 4]), np.uint8)
    assert np.all(rows.reshape(shape[0], 2 * shape[1] + 1)[:, 0] == 2)


def test_png_filter_is_checked():
    with pytest.raises(ValueError, match='PNG filter'):
        depth_codec.encode(motorcycle_depth_mm(), '16UC1', 'png', png_filter='best')


def test_16uc1_beyond_depth_max_becomes_zero_like_the_plugin():
    depth = motorcycle_depth_mm()
    enc = depth_codec.encode(depth, '16UC1', 'png', depth_max=2.0)
    back, _ = depth_codec.decode(enc.format, enc.data)
    np.testing.assert_array_equal(back, np.where(depth > 2000, 0, depth))


def test_32fc1_inverse_depth_matches_plugin_formula():
    depth_m = motorcycle_depth_mm().astype(np.float32) / 1000.0
    depth_m[depth_m == 0] = np.nan
    enc = depth_codec.encode(depth_m, '32FC1', 'png', depth_max=10.0, depth_quantization=100.0)
    assert enc.format == '32FC1; compressedDepth png'
    codes, a, b = _stock_decode_depth(enc.format, enc.data)
    assert a == pytest.approx(100.0 * 101.0)
    assert b == pytest.approx(1.0 - 10100.0 / 10.0)
    # The plugin's decoder: d = A / (code - B), NaN for code 0.
    stock = np.where(codes == 0, np.nan, np.float32(a) / (codes.astype(np.float32) - np.float32(b)))
    ours, _ = depth_codec.decode(enc.format, enc.data)
    np.testing.assert_allclose(ours, stock, rtol=1e-6, equal_nan=True)
    valid = np.isfinite(depth_m)
    assert np.array_equal(np.isfinite(ours), valid)
    # Inverse-depth step: one code is d^2 / A metres wide at depth d (truncation: one code).
    err = np.abs(ours[valid] - depth_m[valid])
    assert np.all(err <= depth_m[valid] ** 2 / a * 1.01 + 1e-6)


@pytest.mark.parametrize('encoding', ['16UC1', '32FC1'])
def test_zstd_option_round_trips_and_is_refused_by_stock_parser(encoding):
    depth = motorcycle_depth_mm()
    data = depth if encoding == '16UC1' else depth.astype(np.float32) / 1000.0
    enc = depth_codec.encode(data, encoding, 'zstd')
    assert enc.format == f'{encoding}; compressedDepth zstd'
    # The stock plugin accepts only "compressedDepth png", "compressedDepth rvl" or a bare
    # "compressedDepth": this format string makes it log "Unsupported image format" instead.
    tail = enc.format[enc.format.find(';'):]
    assert 'compressedDepth png' not in tail and 'compressedDepth rvl' not in tail
    back, _ = depth_codec.decode(enc.format, enc.data)
    if encoding == '16UC1':
        np.testing.assert_array_equal(back, depth)
    else:
        png = depth_codec.encode(data, encoding, 'png')
        np.testing.assert_array_equal(back, depth_codec.decode(png.format, png.data)[0])


def test_depth_wrong_encoding_and_short_data_are_bad_input():
    with pytest.raises(image_codec.BadInput):
        depth_codec.depth_to_array('bgr8', 4, 4, 12, bytes(48))
    with pytest.raises(image_codec.BadInput):
        depth_codec.depth_to_array('16UC1', 4, 4, 8, bytes(31))
    with pytest.raises(image_codec.BadInput):
        depth_codec.decode('16UC1; compressedDepth zstd', bytes(12) + b'\x04\x00\x00\x00junk')


def test_depth_to_array_big_endian():
    depth = motorcycle_depth_mm()[:10, :10]
    h, w = depth.shape
    out = depth_codec.depth_to_array('16UC1', w, h, 2 * w, depth.astype('>u2').tobytes(), 1)
    np.testing.assert_array_equal(out, depth)
