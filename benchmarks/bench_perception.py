"""Perception codecs side by side: bytes per frame and encode/decode time on real photographs.

Baselines are measured in the same run: compressed_image_transport's default (JPEG quality 95),
compressed_depth_image_transport's default (PNG level 9), raw float32 for scans. Ratios, not
absolute times, are what carry over to another machine.
Run: .venv/bin/python benchmarks/bench_perception.py
"""
from __future__ import annotations

import os
import sys
import time
import zlib

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'src', 'llm_agent_perception', 'test'))

from llm_agent_perception.scan_processing import ScanMeta, filter_scan  # noqa: E402
from perception_photos import NAMES, motorcycle_depth_mm, sized  # noqa: E402

from llm_agent_perception import depth_codec, image_codec, quantize  # noqa: E402

REPEATS = 3
cv2.setNumThreads(1)  # one core per codec: fair between OpenCV and zstd, and the machine is shared


def timed(fn, repeats=REPEATS):
    """Return (result, median milliseconds) of fn()."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(1000.0 * (time.perf_counter() - t0))
    return result, float(np.median(times))


def bench_images() -> None:
    configs = [('jpeg', 95), ('jpeg', 90), ('jpeg', 75), ('jpeg', 50), ('jpeg', 30),
               ('png', 1), ('png', 3), ('png', 9)]
    for width, height in ((640, 480), (1280, 720)):
        frames = [sized(n, width, height) for n in NAMES]
        raw = width * height * 3
        rows = {}
        for fmt, level in configs:
            sizes, enc_ms, dec_ms, psnrs = [], [], [], []
            for img in frames:
                enc, t_enc = timed(lambda: image_codec.encode(
                    img, 'bgr8', fmt, jpeg_quality=level, png_level=level))
                buf = np.frombuffer(enc.data, np.uint8)
                out, t_dec = timed(lambda: cv2.imdecode(buf, cv2.IMREAD_COLOR))
                sizes.append(len(enc.data))
                enc_ms.append(t_enc)
                dec_ms.append(t_dec)
                psnrs.append(image_codec.psnr(img, out))
            rows[(fmt, level)] = (np.mean(sizes), np.mean(enc_ms), np.mean(dec_ms),
                                  np.mean([p for p in psnrs if np.isfinite(p)] or [np.inf]))
        base = rows[('jpeg', 95)]
        print(f'\n== images {width}x{height}, {len(frames)} scikit-image photos, raw {raw} B/frame; '
              f'baseline = stock default jpeg q95 ==')
        print(f'{"codec":<10}{"bytes/frame":>12}{"x raw":>8}{"bytes/base":>11}{"enc ms":>8}'
              f'{"enc/base":>9}{"dec ms":>8}{"dec/base":>9}{"PSNR dB":>9}')
        for (fmt, level), (b, e, d, p) in rows.items():
            name = f'{fmt} {"q" if fmt == "jpeg" else "l"}{level}'
            print(f'{name:<10}{b:>12.0f}{raw / b:>8.1f}{b / base[0]:>11.2f}{e:>8.2f}'
                  f'{e / base[1]:>9.2f}{d:>8.2f}{d / base[2]:>9.2f}'
                  f'{"lossless" if not np.isfinite(p) else f"{p:.1f}":>9}')


def bench_depth() -> None:
    depth_full = motorcycle_depth_mm()
    configs = [('png', 9, 0), ('png', 1, 0), ('zstd', 0, 1), ('zstd', 0, 3)]
    for width, height in ((640, 480), (1280, 720)):
        d16 = cv2.resize(depth_full, (width, height), interpolation=cv2.INTER_NEAREST)
        d32 = d16.astype(np.float32) / 1000.0
        d32[d16 == 0] = np.nan
        for encoding, data, raw in (('16UC1', d16, d16.nbytes), ('32FC1', d32, d32.nbytes)):
            rows = {}
            for fmt, png_level, zstd_level in configs:
                enc, t_enc = timed(lambda: depth_codec.encode(
                    data, encoding, fmt, png_level=png_level, zstd_level=zstd_level or 1))
                _, t_dec = timed(lambda: depth_codec.decode(enc.format, enc.data))
                rows[(fmt, png_level or zstd_level)] = (len(enc.data), t_enc, t_dec)
            base = rows[('png', 9)]
            print(f'\n== depth {encoding} {width}x{height} (Middlebury motorcycle disparity as '
                  f'depth), raw {raw} B; baseline = stock compressedDepth png level 9 ==')
            print(f'{"codec":<10}{"bytes":>9}{"x raw":>8}{"bytes/base":>11}{"enc ms":>8}'
                  f'{"enc/base":>9}{"dec ms":>8}{"dec/base":>9}')
            for (fmt, level), (b, e, d) in rows.items():
                name = f'{fmt} l{level}'
                print(f'{name:<10}{b:>9}{raw / b:>8.1f}{b / base[0]:>11.2f}{e:>8.2f}'
                      f'{e / base[1]:>9.2f}{d:>8.2f}{d / base[2]:>9.2f}')


def room_scan(n: int = 720, seed: int = 0) -> np.ndarray:
    """A room-like scan: two walls, a box, sensor noise, a few dropouts."""
    rng = np.random.default_rng(seed)
    a = np.linspace(-np.pi, np.pi, n, endpoint=False)
    r = np.minimum(4.0 / np.maximum(np.abs(np.cos(a)), 1e-3), 3.0 / np.maximum(np.abs(np.sin(a)), 1e-3))
    r[(a > 0.3) & (a < 0.6)] = 1.2
    r = np.minimum(r, 12.0) + rng.normal(0, 0.01, n)
    r[rng.choice(n, 10, replace=False)] = np.nan
    return r.astype(np.float32)


def bench_scan() -> None:
    scan = room_scan()
    meta = ScanMeta(-np.pi, np.pi - 2 * np.pi / 720, 2 * np.pi / 720, 0.1, 12.0)
    filtered = filter_scan(scan, meta, 5, 1).ranges
    raw = filtered.nbytes
    print(f'\n== scan 720 beams (room-like, 1 cm noise), raw float32 {raw} B; baseline = raw ==')
    print(f'{"encoding":<28}{"bytes":>7}{"x raw":>8}{"max err m":>11}{"enc ms":>8}')
    b, t = timed(lambda: zlib.compress(filtered.tobytes(), 6), 20)
    print(f'{"float32 + zlib (lossless)":<28}{len(b):>7}{raw / len(b):>8.1f}{0.0:>11.4f}{t:>8.3f}')
    for max_err in (0.001, 0.005, 0.02):
        for codec in ('zstd', 'zlib'):
            p = quantize.params_for_range(0.1, 12.0, max_err)
            packed, t = timed(lambda: quantize.pack(filtered, p, codec), 20)
            err = float(np.max(np.abs(quantize.unpack(packed) - filtered)))
            name = f'Q {p.quantized_dtype} {1000 * max_err:g} mm + {codec}'
            print(f'{name:<28}{len(packed.data):>7}{raw / len(packed.data):>8.1f}{err:>11.4f}{t:>8.3f}')
    _, t = timed(lambda: filter_scan(scan, meta, 5, 2), 20)
    print(f'scan_filter (median 5, downsample 2): {t:.3f} ms per scan')


def main() -> int:
    """Run every section and print the tables."""
    print(f'OpenCV {cv2.__version__}, numpy {np.__version__}, median of {REPEATS} runs, '
          f'cv2 threads 1')
    bench_images()
    bench_depth()
    bench_scan()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
