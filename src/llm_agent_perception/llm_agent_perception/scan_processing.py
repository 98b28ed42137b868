"""LaserScan clean-up: non-finite values, clamping, median filter, angular downsampling."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .image_codec import BadInput

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class ScanMeta:
    """The geometry of a scan (LaserScan's fields other than the arrays)."""

    angle_min: float
    angle_max: float
    angle_increment: float
    range_min: float
    range_max: float


@dataclass
class FilteredScan:
    """A cleaned scan: its geometry, ranges and how many beams were not finite on input."""

    meta: ScanMeta
    ranges: np.ndarray
    nonfinite_in: int


def check_meta(meta: ScanMeta, n: int) -> None:
    """Raise BadInput when the scan's geometry cannot describe n beams."""
    values = (meta.angle_min, meta.angle_max, meta.angle_increment, meta.range_min, meta.range_max)
    if not all(math.isfinite(v) for v in values):
        raise BadInput('scan geometry has non-finite fields')
    if n == 0:
        raise BadInput('scan has no ranges')
    if meta.angle_increment == 0.0:
        raise BadInput('scan angle_increment is 0')
    if not 0.0 <= meta.range_min < meta.range_max:
        raise BadInput(f'scan range_min {meta.range_min} / range_max {meta.range_max} invalid')
    if meta.range_max > FLOAT32_MAX:   # ranges are float32 (LaserScan): it would read as inf
        raise BadInput(f'scan range_max {meta.range_max} exceeds float32')


def sanitize(ranges: np.ndarray, range_min: float, range_max: float) -> np.ndarray:
    """Map +inf (no return) to range_max, -inf (too close) to range_min; leave NaN; clamp."""
    r = np.asarray(ranges, dtype=np.float32).copy()
    r[np.isposinf(r)] = range_max
    r[np.isneginf(r)] = range_min
    finite = np.isfinite(r)
    r[finite] = np.clip(r[finite], range_min, range_max)
    return r


def median_filter(r: np.ndarray, window: int) -> np.ndarray:
    """Median over a centred window (edges repeat the end beams), ignoring NaN; all-NaN -> NaN."""
    if window <= 1:
        return r.copy()
    half = window // 2
    padded = np.pad(r, half, mode='edge')
    # One sort of every window (NaN sorts last), then the middle of each window's valid values:
    # np.nanmedian over the windows went through masked arrays, 0.4 ms a 360-beam scan here.
    windows = np.sort(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)
    valid = window - np.count_nonzero(np.isnan(windows), axis=1)
    rows = np.arange(r.size)
    # In float64: the middle pair of two ranges near float32's maximum summed to inf in float32
    # (hypothesis found it).
    low = windows[rows, np.maximum(valid - 1, 0) // 2].astype(np.float64)
    high = windows[rows, valid // 2].astype(np.float64)
    out = ((low + high) / 2.0).astype(np.float32)
    out[valid == 0] = np.nan
    return out


def downsample(r: np.ndarray, factor: int) -> np.ndarray:
    """Keep the nearest range of each group of `factor` beams (never hides an obstacle)."""
    if factor <= 1:
        return r.copy()
    n_out = int(math.ceil(r.size / factor))
    padded = np.full(n_out * factor, np.inf, dtype=np.float32)
    padded[:r.size] = r
    return np.min(padded.reshape(n_out, factor), axis=1)


def filter_scan(ranges, meta: ScanMeta, median_window: int = 5, downsample_factor: int = 1,
                nan_as_clear: bool = True) -> FilteredScan:
    """Clean one scan; the result holds only finite ranges in [range_min, range_max]."""
    r = np.asarray(ranges, dtype=np.float32)
    check_meta(meta, r.size)
    nonfinite = int(np.count_nonzero(~np.isfinite(r)))
    if np.all(np.isnan(r)):
        raise BadInput('every range of the scan is NaN')
    r = sanitize(r, meta.range_min, meta.range_max)
    filtered = median_filter(r, median_window)
    # A NaN beam whose whole window is NaN has no evidence: call it clear (or closest, if asked).
    filtered[np.isnan(filtered)] = meta.range_max if nan_as_clear else meta.range_min
    out = downsample(filtered, downsample_factor)
    inc = meta.angle_increment * max(downsample_factor, 1)
    new_meta = ScanMeta(angle_min=meta.angle_min,
                        angle_max=meta.angle_min + inc * (out.size - 1),
                        angle_increment=inc, range_min=meta.range_min, range_max=meta.range_max)
    return FilteredScan(meta=new_meta, ranges=out.astype(np.float32), nonfinite_in=nonfinite)
