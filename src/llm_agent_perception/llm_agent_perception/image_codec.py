"""Encode and decode camera frames the way ROS's compressed_image_transport does (no rclpy).

Wire format (what the stock plugin writes and its subscriber parses): `format` is
"<input encoding>; <jpeg|png> compressed <target encoding>", and `data` is the bare JPEG or PNG
file that `cv::imdecode` reads. Colour frames go out as bgr8, grey frames as mono8.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from .bounded import BadInput, imdecode

FORMATS = ('jpeg', 'png')
# Input encodings we accept: channels and the conversion to the wire's target encoding.
_COLOR_TO_BGR = {'bgr8': None, 'rgb8': cv2.COLOR_RGB2BGR, 'bgra8': cv2.COLOR_BGRA2BGR,
                 'rgba8': cv2.COLOR_RGBA2BGR}
_CHANNELS = {'bgr8': 3, 'rgb8': 3, 'bgra8': 4, 'rgba8': 4, 'mono8': 1}


@dataclass
class Encoded:
    """One compressed frame: the CompressedImage `format` string and bytes."""

    format: str
    data: bytes


def image_to_array(encoding: str, width: int, height: int, step: int, data,
                   is_bigendian: int = 0) -> np.ndarray:
    """View sensor_msgs/Image fields as an HxW(xC) uint8 array; raise BadInput when invalid."""
    if encoding not in _CHANNELS:
        raise BadInput(f'unsupported encoding {encoding!r} (supported: {sorted(_CHANNELS)})')
    channels = _CHANNELS[encoding]
    if width <= 0 or height <= 0:
        raise BadInput(f'empty image {width}x{height}')
    if step < width * channels:
        raise BadInput(f'step {step} < width*channels {width * channels}')
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size < step * height:
        raise BadInput(f'data has {buf.size} bytes, step*height is {step * height}')
    rows = buf[:step * height].reshape(height, step)[:, :width * channels]
    return rows.reshape(height, width, channels) if channels > 1 else rows.reshape(height, width)


def to_wire(img: np.ndarray, encoding: str) -> Tuple[np.ndarray, str]:
    """Convert to the stock plugin's target encoding: bgr8 for colour, mono8 for grey."""
    if encoding == 'mono8':
        return img, 'mono8'
    code = _COLOR_TO_BGR.get(encoding)
    return (img if code is None else cv2.cvtColor(img, code)), 'bgr8'


def to_bgr8(img: np.ndarray, encoding: str) -> np.ndarray:
    """Any accepted frame as 3-channel bgr8 (grey repeated), what a video encoder takes."""
    wire, target = to_wire(img, encoding)
    return cv2.cvtColor(wire, cv2.COLOR_GRAY2BGR) if target == 'mono8' else wire


def crop_and_scale(img: np.ndarray, roi: Optional[Sequence[int]] = None,
                   downscale: float = 1.0) -> np.ndarray:
    """Cut the region of interest (x, y, w, h; w or h 0 = to the edge), then resize by downscale."""
    if roi is not None:
        x, y, w, h = (int(v) for v in roi)
        H, W = img.shape[:2]
        x0, y0 = min(max(x, 0), W - 1), min(max(y, 0), H - 1)
        x1 = W if w <= 0 else min(x0 + w, W)
        y1 = H if h <= 0 else min(y0 + h, H)
        img = img[y0:y1, x0:x1]
    if downscale < 1.0:
        H, W = img.shape[:2]
        size = (max(1, int(round(W * downscale))), max(1, int(round(H * downscale))))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return img


def encode(img: np.ndarray, input_encoding: str, fmt: str = 'jpeg', jpeg_quality: int = 95,
           png_level: int = 3) -> Encoded:
    """Compress a wire-ready array (bgr8 or mono8) into the stock plugin's message layout."""
    wire, target = to_wire(img, input_encoding)
    if fmt == 'jpeg':
        ok, buf = cv2.imencode('.jpg', wire, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    elif fmt == 'png':
        ok, buf = cv2.imencode('.png', wire, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    else:
        raise ValueError(f'unknown format {fmt!r}, expected one of {FORMATS}')
    if not ok:
        raise BadInput(f'cv2.imencode failed for {fmt}')
    return Encoded(format=f'{input_encoding}; {fmt} compressed {target}', data=buf.tobytes())


def parse_format(fmt: str) -> Tuple[str, str, str]:
    """Split '<enc>; <codec> compressed <target>' into (enc, codec, target)."""
    head, sep, tail = fmt.partition(';')
    words = tail.split()
    if not sep or len(words) < 2 or words[1] != 'compressed' or words[0] not in FORMATS:
        raise BadInput(f'not a compressed_image_transport format: {fmt!r}')
    target = words[2] if len(words) > 2 else ''
    return head.strip(), words[0], target


def decode(fmt: str, data) -> Tuple[np.ndarray, str]:
    """Decode a compressed frame to (array, encoding), like the stock subscriber."""
    enc, _codec, target = parse_format(fmt)
    raw = bytes(data)
    if not raw:
        raise BadInput('empty compressed data')
    img = imdecode(raw)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or img.ndim == 3 and img.shape[2] not in (3, 4):
        raise BadInput(f'not an 8-bit grey or colour image: {img.dtype} {img.shape}')
    if img.ndim == 2:
        return img, 'mono8'
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    # The stock subscriber hands colour out in the original encoding when it was rgb8.
    if enc == 'rgb8':
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), 'rgb8'
    return img, 'bgr8' if target in ('bgr8', '') else target


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Return the peak signal-to-noise ratio of two uint8 images in dB."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float('inf') if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)
