"""Section 1: what the perception codecs cost and save, on real photographs, depth and scans.

Images: bytes/frame, encode/decode ms, PSNR and SSIM per codec and quality at 640x480 and
1280x720, against the stock compressed_image_transport default (JPEG q95) and raw bgr8; plus our
budget mode holding a bytes/frame target. Video: the camera as an H.264/H.265/AV1 stream
(PyAV, the image compressor's video mode) on moving sequences against JPEG q95 per frame.
Depth: the stock compressedDepth PNG level 9 against PNG level 1 (our default) and our
`compressedDepth zstd`. Scans: quantized Q(x) + zstd against
raw float32. Every codec call is the product's own (llm_agent_perception).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .core import BenchContext, Section, Table, figure, ratio, save_plot, timed

IMAGE_SIZES = ((640, 480), (1280, 720))
STOCK_IMAGE = ('jpeg', 95)                 # compressed_image_transport's default
STOCK_DEPTH = ('png', 9)                   # compressed_depth_image_transport's default
DEPTH_CONFIGS = (STOCK_DEPTH, ('png', 1), ('zstd', 1), ('zstd', 3))  # png l1 = our default
DEPTH_MAX_M = 10.0                         # depth_compressor's default depth_max
SCAN_BOUNDS_M = (0.001, 0.005, 0.02)       # 0.005 = scan_filter's compressed_max_error_m
BUDGET_FRACTION = 0.25                     # budget target = this share of q95's bytes/frame
VIDEO_GOAL = (0.99, 0.08)                  # the default stream: SSIM >= 0.99 at <= 0.08x q95
# (codec, preset, crf): the image compressor's default first.
VIDEO_CONFIGS_QUICK = (('h264', 'veryfast', 20), ('av1', '10', 30))
VIDEO_CONFIGS = (('h264', 'veryfast', 20), ('h264', 'veryfast', 23), ('h264', 'medium', 20),
                 ('h265', 'ultrafast', 20), ('av1', '10', 30), ('av1', '10', 24))
FPS = 30.0


def ssim_gray(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 images on their luma (BT.601 grey), 7x7 window, data range 255."""
    import cv2
    from skimage.metrics import structural_similarity

    def grey(img: np.ndarray) -> np.ndarray:
        return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return float(structural_similarity(grey(a), grey(b), data_range=255))


def mean_finite(values: Sequence[float]) -> Optional[float]:
    """Mean of the finite values; None when there are none (PSNR of a lossless codec)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def codec_label(fmt: str, level: int) -> str:
    return f'{fmt} {"q" if fmt == "jpeg" else "l"}{level}'


def within_bound(error: float, bound: float, top: float = 8.0) -> bool:
    """error <= bound, give or take the float32 rounding of a decoded value up to `top`."""
    return error <= bound + float(np.spacing(np.float32(top)))


def warm_up_codecs() -> None:
    """Encode and decode once per codec untimed: a first call pays one-off library set-up."""
    from llm_agent_perception import image_codec
    img = np.zeros((48, 64, 3), np.uint8)
    for fmt in image_codec.FORMATS:
        encoded = image_codec.encode(img, 'bgr8', fmt)
        image_codec.decode(encoded.format, encoded.data)


def with_ratios(rows: List[Dict[str, Any]], keys: Sequence[str], raw_bytes: int) -> None:
    """Add `<key>_vs_base` (rows[0] is the baseline) and bytes_vs_raw to every row, in place."""
    base = rows[0]
    for row in rows:
        for key in keys:
            row[f'{key}_vs_base'] = ratio(row[key], base[key])
        row['bytes_vs_raw'] = ratio(row['bytes'], raw_bytes)


# ---------------------------------------------------------------------------- images

def image_row(frames: Sequence[np.ndarray], fmt: str, level: int, repeats: int) -> Dict[str, Any]:
    """One codec setting over the frames: mean bytes, mean of median ms, mean PSNR and SSIM."""
    from llm_agent_perception import image_codec
    sizes, enc_ms, dec_ms, psnrs, ssims = [], [], [], [], []
    for img in frames:
        encoded, t_enc = timed(partial(image_codec.encode, img, 'bgr8', fmt, jpeg_quality=level,
                                       png_level=level), repeats)
        (out, _), t_dec = timed(partial(image_codec.decode, encoded.format, encoded.data), repeats)
        sizes.append(len(encoded.data))
        enc_ms.append(t_enc)
        dec_ms.append(t_dec)
        psnrs.append(image_codec.psnr(img, out))
        ssims.append(ssim_gray(img, out))
    return {'codec': codec_label(fmt, level), 'format': fmt, 'level': level,
            'bytes': int(round(np.mean(sizes))), 'encode_ms': float(np.mean(enc_ms)),
            'decode_ms': float(np.mean(dec_ms)), 'psnr_db': mean_finite(psnrs),
            'ssim': float(np.mean(ssims)), 'lossless': not any(math.isfinite(p) for p in psnrs)}


def bench_images(ctx: BenchContext, names: Sequence[str], repeats: int) -> Dict[str, Any]:
    from llm_agent_samples.photos import sized
    configs = [('jpeg', q) for q in ctx.pick((95, 75, 30), (95, 90, 75, 50, 30))]
    configs += [('png', lv) for lv in ctx.pick((3,), (1, 3, 9))]
    out = {}
    for width, height in IMAGE_SIZES:
        ctx.log(f'[compression] images {width}x{height}, {len(names)} photos')
        frames = [sized(n, width, height) for n in names]
        rows = [image_row(frames, fmt, level, repeats) for fmt, level in configs]
        raw = width * height * 3
        with_ratios(rows, ('bytes', 'encode_ms', 'decode_ms'), raw)
        out[f'{width}x{height}'] = {'raw_bytes': raw, 'rows': rows}
    return out


def bench_budget(ctx: BenchContext, frames_n: int) -> Dict[str, Any]:
    """Budget mode on a panning 640x480 sequence, its target a share of q95's bytes/frame."""
    from llm_agent_perception.budget import BudgetController
    from llm_agent_samples.photos import panning

    from llm_agent_perception import image_codec
    frames = [np.ascontiguousarray(f) for f in panning(frames_n, 640, 480)]
    stock = [len(image_codec.encode(f, 'bgr8', 'jpeg', 95).data) for f in frames]  # baseline
    target = BUDGET_FRACTION * float(np.mean(stock))
    ctl = BudgetController(target * FPS, min_quality=10, max_quality=95)  # the node's bounds
    sizes, qualities, psnrs, ssims = [], [], [], []
    for img in frames:
        qualities.append(ctl.quality)
        encoded = image_codec.encode(img, 'bgr8', 'jpeg', ctl.quality)
        ctl.update(len(encoded.data), 1.0 / FPS)
        out, _ = image_codec.decode(encoded.format, encoded.data)
        sizes.append(len(encoded.data))
        psnrs.append(image_codec.psnr(img, out))
        ssims.append(ssim_gray(img, out))
    return {'frames': frames_n, 'size': '640x480', 'target_bytes': int(round(target)),
            'stock_q95_bytes': int(round(np.mean(stock))), 'bytes': int(round(np.mean(sizes))),
            'bytes_vs_target': ratio(float(np.mean(sizes)), target),
            'bytes_vs_base': ratio(float(np.mean(sizes)), float(np.mean(stock))),
            'mean_quality': float(np.mean(qualities)), 'psnr_db': mean_finite(psnrs),
            'ssim': float(np.mean(ssims))}


# ---------------------------------------------------------------------------- depth

def depth_error(encoding: str, original: np.ndarray, decoded: np.ndarray) -> Tuple[float, int]:
    """Max abs error (mm) over pixels the codec keeps (valid and nearer than depth_max), and
    how many pixels it drops as too far (sent as 0, as the stock plugin does)."""
    if encoding == '16UC1':
        valid = original > 0
        keep = valid & (original <= DEPTH_MAX_M * 1000.0)
        err_mm = np.abs(decoded.astype(np.float64) - original.astype(np.float64))
    else:
        valid = np.isfinite(original) & (original > 0)
        keep = valid & (original < DEPTH_MAX_M)
        err_mm = 1000.0 * np.abs(decoded.astype(np.float64) - original.astype(np.float64))
    return (float(np.max(err_mm[keep])) if np.any(keep) else 0.0), int(np.sum(valid & ~keep))


def bench_depth(ctx: BenchContext, repeats: int) -> Dict[str, Any]:
    import cv2
    from llm_agent_samples.photos import motorcycle_depth_mm

    from llm_agent_perception import depth_codec
    source = motorcycle_depth_mm()
    out = {}
    for width, height in IMAGE_SIZES:
        d16 = cv2.resize(source, (width, height), interpolation=cv2.INTER_NEAREST)
        d32 = d16.astype(np.float32) / 1000.0
        d32[d16 == 0] = np.nan
        for encoding, depth in (('16UC1', d16), ('32FC1', d32)):
            rows = []
            for fmt, level in DEPTH_CONFIGS:
                levels = {'png_level': level} if fmt == 'png' else {'zstd_level': level}
                encoded, t_enc = timed(partial(depth_codec.encode, depth, encoding, fmt,
                                               depth_max=DEPTH_MAX_M, **levels), repeats)
                (decoded, _), t_dec = timed(partial(depth_codec.decode, encoded.format,
                                                    encoded.data), repeats)
                err_mm, dropped = depth_error(encoding, depth, decoded)
                rows.append({'codec': codec_label(fmt, level), 'format': fmt, 'level': level,
                             'bytes': len(encoded.data), 'encode_ms': t_enc, 'decode_ms': t_dec,
                             'max_abs_error_mm': err_mm, 'dropped_beyond_max': dropped})
            with_ratios(rows, ('bytes', 'encode_ms', 'decode_ms'), depth.nbytes)
            out[f'{encoding} {width}x{height}'] = {'raw_bytes': depth.nbytes, 'rows': rows}
    return out


# ---------------------------------------------------------------------------- scans

def world_scans(count: int) -> Tuple[List[np.ndarray], Any, float]:
    """Scans of the built-in world with sim_world's and scan_filter's defaults: 360 beams,
    0.05-8 m, 1 cm noise, median 5, downsample 2. Returns (filtered ranges, meta, filter ms)."""
    from llm_agent_perception.scan_processing import ScanMeta, filter_scan
    from llm_agent_sim.world import Sim, generate_world
    beams, lo, hi = 360, 0.05, 8.0
    meta = ScanMeta(-math.pi, -math.pi + (beams - 1) * 2 * math.pi / beams,
                    2 * math.pi / beams, lo, hi)
    scans, filter_ms = [], []
    for seed in range(count):
        raw = Sim(generate_world(seed), seed=seed).scan(beams, -math.pi, lo, hi, 0.01)
        result, t = timed(partial(filter_scan, raw, meta, 5, 2), 5)
        scans.append(result.ranges)
        filter_ms.append(t)
    return scans, meta, float(np.mean(filter_ms))


def scan_row(name: str, scans: Sequence[np.ndarray], encode, decode,
             bound_m: Optional[float]) -> Dict[str, Any]:
    """One scan encoding over the scans: mean bytes, mean of median ms, worst error."""
    sizes, enc_ms, dec_ms, errors = [], [], [], []
    for r in scans:
        blob, t_enc = timed(partial(encode, r), 20)
        back, t_dec = timed(partial(decode, blob), 20)
        sizes.append(len(blob.data) if hasattr(blob, 'data') else len(blob))
        enc_ms.append(t_enc)
        dec_ms.append(t_dec)
        errors.append(float(np.max(np.abs(back.astype(np.float64) - r))))
    worst = max(errors)
    return {'encoding': name, 'bytes': int(round(np.mean(sizes))), 'encode_ms': float(np.mean(enc_ms)),
            'decode_ms': float(np.mean(dec_ms)), 'max_abs_error_m': worst, 'bound_m': bound_m,
            'within_bound': None if bound_m is None else within_bound(worst, bound_m)}


def bench_scans(ctx: BenchContext, count: int) -> Dict[str, Any]:
    from llm_agent_perception import quantize
    scans, meta, filter_ms = world_scans(count)
    as_f32 = partial(np.frombuffer, dtype=np.float32)
    rows = [scan_row('raw float32', scans, np.ndarray.tobytes, as_f32, 0.0),
            scan_row('float32 + zlib', scans,
                     lambda r: quantize.entropy_encode(r.tobytes(), 'zlib'),
                     lambda b: as_f32(quantize.entropy_decode(b, 'zlib', 1 << 20)), 0.0)]
    for bound in SCAN_BOUNDS_M:
        p = quantize.params_for_range(meta.range_min, meta.range_max, bound)
        row = scan_row(f'Q {p.quantized_dtype} {1000 * bound:g} mm + zstd', scans,
                       partial(quantize.pack, p=p, codec='zstd'), quantize.unpack, p.max_error)
        rows.append(dict(row, scale=p.scale))
    raw = int(scans[0].nbytes)
    with_ratios(rows, ('bytes',), raw)  # the raw row's "encode" is a copy: no time baseline
    return {'scans': count, 'beams_after_filter': int(scans[0].size), 'raw_bytes': raw,
            'filter_ms_per_scan': filter_ms, 'rows': rows}


# ---------------------------------------------------------------------------- video
def video_sequences(n: int) -> Dict[str, List[np.ndarray]]:
    """Moving camera sequences at 30 fps: pans over a photograph (5 s across it) at 640x480 and
    1280x720, and the built-in world's camera while the robot drives and turns."""
    from llm_agent_samples.photos import panning
    from llm_agent_sim.render import Camera
    from llm_agent_sim.world import generate_world
    out = {f'pan {w}x{h}': [np.ascontiguousarray(f) for f in panning(150, w, h)][:n]
           for w, h in IMAGE_SIZES}
    world, cam = generate_world(3), Camera(640, 480)
    x, y, yaw = world.start.x, world.start.y, world.start.yaw
    frames = []
    for _ in range(n):   # 0.3 m/s forward, 0.25 rad/s left
        frames.append(cam.render(world, x, y, yaw)[0])
        x, y, yaw = x + 0.01 * math.cos(yaw), y + 0.01 * math.sin(yaw), yaw + 0.25 / FPS
    out['sim camera 640x480, driving'] = frames
    return out


def video_row(frames: Sequence[np.ndarray], codec: str, preset: str, crf: int) -> Dict[str, Any]:
    """Encode the sequence as one stream and decode it: bytes, SSIM, ms, delay, frame->frame."""
    import time

    from llm_agent_perception.video_codec import VideoDecoder, VideoEncoder, VideoSettings
    h, w = frames[0].shape[:2]
    enc = VideoEncoder(w, h, VideoSettings(codec=codec, preset=preset, crf=crf, gop=30))
    dec = VideoDecoder(enc.codec_name)
    sizes, ssims, enc_ms, dec_ms, e2e_ms, pending, delay = [], [], [], [], [], [], 0
    for i, img in enumerate(frames):
        t0 = time.perf_counter()
        packets = enc.encode(img, round(1000 * i / FPS))
        enc_ms.append(1000 * (time.perf_counter() - t0))
        pending.append((i, t0))
        for p in packets:
            t2 = time.perf_counter()
            out = dec.decode(p.data, p.pts, p.keyframe)
            t3 = time.perf_counter()
            dec_ms.append(1000 * (t3 - t2))
            sizes.append(len(p.data))
            if out is None:
                continue
            j, started = pending.pop(0)
            delay = max(delay, i - j)          # frames in after this one, before it came out
            e2e_ms.append(1000 * (t3 - started))
            ssims.append(ssim_gray(frames[j], out))
    enc.flush()
    return {'codec': f'{codec} {preset} crf {crf}', 'bytes': int(round(np.mean(sizes))),
            'ssim': float(np.mean(ssims)), 'ssim_min': float(np.min(ssims)),
            'encode_ms': float(np.mean(enc_ms)), 'decode_ms': float(np.mean(dec_ms)),
            'frame_to_frame_ms_p50': float(np.percentile(e2e_ms, 50)),
            'frame_to_frame_ms_p95': float(np.percentile(e2e_ms, 95)),
            'delay_frames': delay, 'frames': len(frames), 'undecoded': len(pending)}


def bench_video(ctx: BenchContext, n: int) -> Dict[str, Any]:
    """Each sequence: JPEG q95 per frame (the baseline), then each video setting as one stream."""
    out = {}
    for name, frames in video_sequences(n).items():
        ctx.log(f'[compression] video, {name}, {len(frames)} frames')
        base = image_row(frames, *STOCK_IMAGE, repeats=1)
        rows = [{'codec': 'jpeg q95 (per frame)', 'bytes': base['bytes'], 'ssim': base['ssim'],
                 'ssim_min': None, 'encode_ms': base['encode_ms'], 'decode_ms': base['decode_ms'],
                 'frame_to_frame_ms_p50': base['encode_ms'] + base['decode_ms'],
                 'frame_to_frame_ms_p95': None, 'delay_frames': 0, 'frames': len(frames),
                 'undecoded': 0}]
        rows += [video_row(frames, *cfg) for cfg in ctx.pick(VIDEO_CONFIGS_QUICK, VIDEO_CONFIGS)]
        for r in rows:
            r['bytes_vs_base'] = ratio(r['bytes'], rows[0]['bytes'])
        h, w = frames[0].shape[:2]
        out[name] = {'raw_bytes': w * h * 3, 'rows': rows}
    return out


def video_tables(video: Dict[str, Any]) -> List[Table]:
    cols = ['codec', 'bytes/frame', '× jpeg q95', 'SSIM', 'SSIM min', 'enc ms', 'dec ms',
            'frame→decoded p50 ms', 'p95 ms', 'encoder delay (frames)']
    return [Table(f'Video, {name} ({block["rows"][0]["frames"]} frames at {FPS:g} fps); '
                  'baseline = jpeg q95 on each frame', cols,
                  [[r['codec'], r['bytes'], r['bytes_vs_base'], r['ssim'],
                    '-' if r['ssim_min'] is None else r['ssim_min'], r['encode_ms'],
                    r['decode_ms'], r['frame_to_frame_ms_p50'],
                    '-' if r['frame_to_frame_ms_p95'] is None else r['frame_to_frame_ms_p95'],
                    r['delay_frames']] for r in block['rows']])
            for name, block in video.items()]


def video_findings(video: Dict[str, Any]) -> List[str]:
    ssim_goal, bytes_goal = VIDEO_GOAL
    out = []
    for name, block in video.items():
        d = block['rows'][1]     # the image compressor's default
        met = d['ssim'] >= ssim_goal and d['bytes_vs_base'] <= bytes_goal and d['delay_frames'] <= 1
        best = min(block['rows'][1:], key=lambda r: r['bytes_vs_base'])
        out.append(f'Video, {name}: the default stream ({d["codec"]}) sends '
                   f'{d["bytes_vs_base"]:.3f}× the bytes of jpeg q95 at SSIM {d["ssim"]:.4f} '
                   f'(q95: {block["rows"][0]["ssim"]:.4f}), {d["delay_frames"]} frame(s) of '
                   f'encoder delay, frame→decoded p50 {d["frame_to_frame_ms_p50"]:.1f} ms: goal '
                   f'(SSIM ≥ {ssim_goal}, ≤ {bytes_goal}× q95, ≤ 1 frame delay) '
                   + ('met.' if met else 'NOT met.')
                   + f' Fewest bytes: {best["codec"]}, {best["bytes_vs_base"]:.3f}× at SSIM '
                   f'{best["ssim"]:.4f}.')
    return out


# ---------------------------------------------------------------------------- report

def _fmt_db(row: Dict[str, Any]) -> Any:
    return 'lossless' if row['psnr_db'] is None else row['psnr_db']


def image_tables(images: Dict[str, Any]) -> List[Table]:
    cols = ['codec', 'bytes/frame', '× raw', '× stock bytes', 'enc ms', '× stock enc',
            'dec ms', '× stock dec', 'PSNR dB', 'SSIM']
    return [Table(f'Images {size}, raw {block["raw_bytes"]:,} B/frame; baseline = stock jpeg q95',
                  cols, [[r['codec'], r['bytes'], r['bytes_vs_raw'], r['bytes_vs_base'],
                          r['encode_ms'], r['encode_ms_vs_base'], r['decode_ms'],
                          r['decode_ms_vs_base'], _fmt_db(r), r['ssim']] for r in block['rows']])
            for size, block in images.items()]


def depth_tables(depth: Dict[str, Any]) -> List[Table]:
    cols = ['codec', 'bytes', '× raw', '× stock bytes', 'enc ms', '× stock enc', 'dec ms',
            '× stock dec', 'max abs err mm']
    return [Table(f'Depth {case}, raw {block["raw_bytes"]:,} B; baseline = stock compressedDepth '
                  'png l9', cols,
                  [[r['codec'], r['bytes'], r['bytes_vs_raw'], r['bytes_vs_base'], r['encode_ms'],
                    r['encode_ms_vs_base'], r['decode_ms'], r['decode_ms_vs_base'],
                    r['max_abs_error_mm']] for r in block['rows']])
            for case, block in depth.items()]


def scan_table(scans: Dict[str, Any]) -> Table:
    cols = ['encoding', 'bytes', '× raw', 'enc ms', 'dec ms', 'max err mm', 'bound 1/(2S) mm']
    return Table(f'Scans, {scans["beams_after_filter"]} beams after scan_filter, raw float32 '
                 f'{scans["raw_bytes"]} B; baseline = raw', cols,
                 [[r['encoding'], r['bytes'], r['bytes_vs_raw'], r['encode_ms'], r['decode_ms'],
                   1000 * r['max_abs_error_m'], 1000 * r['bound_m']] for r in scans['rows']])


def plot_rate_distortion(ctx: BenchContext, images: Dict[str, Any],
                         budget: Dict[str, Any]) -> str:
    fig, axes = figure(2, len(images), figsize=(5.5 * len(images), 7), squeeze=False)
    for col, (size, block) in enumerate(images.items()):
        jpeg = [r for r in block['rows'] if r['format'] == 'jpeg']
        png = [r for r in block['rows'] if r['format'] == 'png']
        top = max(r['psnr_db'] for r in jpeg) + 3
        for ax, key in ((axes[0][col], 'psnr_db'), (axes[1][col], 'ssim')):
            ax.plot([r['bytes'] for r in jpeg], [r[key] for r in jpeg], 'o-', label='jpeg')
            png_y = top if key == 'psnr_db' else 1.0
            png_levels = '/'.join(str(r['level']) for r in png)  # too close together to annotate
            ax.plot([r['bytes'] for r in png], [png_y] * len(png), 's--',
                    label=f'png l{png_levels} (lossless' + (', drawn at top)' if key == 'psnr_db' else ')'))
            for r in jpeg:
                ax.annotate(f'q{r["level"]}', (r['bytes'], r[key]), fontsize=7,
                            xytext=(3, -9), textcoords='offset points')
            ax.plot([jpeg[0]['bytes']], [jpeg[0][key]], '*', ms=14, label='stock default q95')
            if size == budget['size']:
                ax.plot([budget['bytes']], [budget[key]], 'D', label='budget mode (panning)')
            ax.axvline(block['raw_bytes'], color='grey', ls=':', label='raw bgr8')
            ax.set_xscale('log')
            ax.set_xlabel('bytes / frame')
            ax.set_ylabel('PSNR dB' if key == 'psnr_db' else 'SSIM (grey)')
            ax.set_title(f'{size}')
            ax.grid(alpha=0.3)
        axes[0][col].legend(fontsize=7, loc='lower right')
    return save_plot(ctx, fig, 'compression_rate_distortion.png')


def plot_depth_scan_bytes(ctx: BenchContext, depth: Dict[str, Any], scans: Dict[str, Any]) -> str:
    bars = [(f'{case}  {r["codec"]}', r['bytes_vs_base'], r['encode_ms_vs_base'])
            for case, block in depth.items() for r in block['rows']]
    fig, (ax_d, ax_s) = figure(1, 2, figsize=(12, 0.32 * len(bars) + 1.5),
                               gridspec_kw={'width_ratios': [3, 2]})
    colours = {'png l9': 'tab:grey', 'png l1': 'tab:blue'}
    ax_d.barh(range(len(bars)), [b[1] for b in bars],
              color=[colours.get(b[0].split('  ')[1], 'tab:orange') for b in bars])
    ax_d.set_xlim(0, 1.45 * max(b[1] for b in bars))
    ax_d.set_title('depth (grey: stock png l9, blue: png l1 our default, orange: our zstd)',
                   fontsize=9)
    ax_d.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
    for i, (_, b, e) in enumerate(bars):
        ax_d.text(b, i, f' {b:.2f}× bytes, {e:.2g}× enc', va='center', fontsize=6)
    ax_d.axvline(1.0, color='grey', ls=':')
    ax_d.invert_yaxis()
    ax_d.set_xlabel('bytes ÷ stock compressedDepth png l9')
    rows = scans['rows']
    ax_s.barh(range(len(rows)), [r['bytes_vs_raw'] for r in rows], color='tab:green')
    ax_s.set_yticks(range(len(rows)), [r['encoding'] for r in rows], fontsize=7)
    for i, r in enumerate(rows):
        ax_s.text(r['bytes_vs_raw'], i, f' {r["bytes_vs_raw"]:.2f}', va='center', fontsize=7)
    ax_s.set_xlim(0, 1.2)
    ax_s.invert_yaxis()
    ax_s.set_xlabel('bytes ÷ raw float32')
    ax_s.set_title('scans', fontsize=9)
    return save_plot(ctx, fig, 'compression_depth_scan_bytes.png')


def row_by(rows: Sequence[Dict[str, Any]], key: str, value: Any) -> Dict[str, Any]:
    return next(r for r in rows if r[key] == value)


def findings(images: Dict[str, Any], budget: Dict[str, Any], depth: Dict[str, Any],
             scans: Dict[str, Any]) -> List[str]:
    out = []
    for size, block in images.items():
        base, q75 = block['rows'][0], row_by(block['rows'], 'codec', 'jpeg q75')
        png = row_by(block['rows'], 'codec', 'png l3')
        out.append(f'{size}: jpeg q75 is {q75["bytes_vs_base"]:.2f}× the stock q95 bytes '
                   f'({q75["bytes"]:,.0f} vs {base["bytes"]:,.0f} B) at {q75["psnr_db"]:.1f} dB / '
                   f'SSIM {q75["ssim"]:.3f} (q95: {base["psnr_db"]:.1f} dB / {base["ssim"]:.3f}); '
                   f'lossless png l3 is {png["bytes_vs_base"]:.1f}× the bytes at '
                   f'{png["encode_ms_vs_base"]:.0f}× the encode time.')
    out.append(f'Budget mode (640x480 panning, {budget["frames"]} frames) aimed at '
               f'{budget["target_bytes"]:,.0f} B/frame and sent {budget["bytes"]:,.0f} '
               f'({budget["bytes_vs_target"]:.2f}× target, {budget["bytes_vs_base"]:.2f}× stock q95) '
               f'at mean quality {budget["mean_quality"]:.0f}, {budget["psnr_db"]:.1f} dB.')
    for encoding in ('16UC1', '32FC1'):
        rows = depth[f'{encoding} 640x480']['rows']
        png1, zstd1 = row_by(rows, 'codec', 'png l1'), row_by(rows, 'codec', 'zstd l1')
        err = max(r['max_abs_error_mm'] for r in rows)
        out.append(f'Depth {encoding} 640x480: png l1 (our default, stock-readable) is '
                   f'{png1["bytes_vs_base"]:.2f}× the stock png l9 bytes at '
                   f'{png1["encode_ms_vs_base"]:.2g}× its encode time; zstd l1 is '
                   f'{zstd1["bytes_vs_base"]:.2f}× the bytes, {zstd1["encode_ms_vs_base"]:.2g}× '
                   f'encode, {zstd1["decode_ms_vs_base"]:.2g}× decode; max abs error '
                   + ('0 (lossless).' if err == 0 else
                      f'{err:.1f} mm in every row (the stock inverse-depth quantization).'))
    default = row_by(scans['rows'], 'encoding', next(r['encoding'] for r in scans['rows']
                                                     if r['bound_m'] == 0.005))
    out.append(f'Scans: Q 5 mm + zstd (scan_filter default) is {default["bytes"]:.0f} B vs raw '
               f'{scans["raw_bytes"]} B ({default["bytes_vs_raw"]:.2f}×), max error '
               f'{1000 * default["max_abs_error_m"]:.2f} mm within the 1/(2S) bound '
               f'{1000 * default["bound_m"]:.2f} mm: '
               + ('all bounds hold.' if all(r['within_bound'] is not False for r in scans['rows'])
                  else 'SOME BOUND IS EXCEEDED.'))
    return out


def run(ctx: BenchContext) -> Section:
    import cv2
    from llm_agent_samples.photos import NAMES
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # one core per codec: fair between OpenCV and zstd on a shared machine
    try:
        names = ctx.pick(NAMES[:2], NAMES)
        repeats = ctx.pick(1, 3)
        warm_up_codecs()
        images = bench_images(ctx, names, ctx.pick(2, 3))  # jpeg is cheap: 2 repeats even quick
        ctx.log('[compression] budget mode, depth, scans')
        budget = bench_budget(ctx, ctx.pick(30, 100))
        depth = bench_depth(ctx, repeats)
        scans = bench_scans(ctx, ctx.pick(3, 20))
        video = bench_video(ctx, ctx.pick(30, 150))
    finally:
        cv2.setNumThreads(threads)
    section = Section(
        'compression', 'Compression: images, depth, scans',
        'stock compressed_image_transport default (jpeg q95), stock compressedDepth png level 9, '
        'raw float32 scans; all measured in this run',
        tables=(image_tables(images) + video_tables(video) + depth_tables(depth)
                + [scan_table(scans)]),
        findings=findings(images, budget, depth, scans) + video_findings(video),
        data={'photos': list(names), 'repeats': repeats, 'image_repeats': ctx.pick(2, 3), 'images': images,
              'image_budget': budget, 'video': video, 'depth': depth, 'scans': scans})
    section.tables.insert(len(images), Table(
        'Budget mode, 640x480 panning sequence; baseline = stock jpeg q95 on the same frames',
        ['target B/frame', 'sent B/frame', '× target', '× stock bytes', 'mean quality',
         'PSNR dB', 'SSIM'],
        [[budget['target_bytes'], budget['bytes'], budget['bytes_vs_target'],
          budget['bytes_vs_base'], budget['mean_quality'], budget['psnr_db'], budget['ssim']]]))
    section.plots = [plot_rate_distortion(ctx, images, budget),
                     plot_depth_scan_bytes(ctx, depth, scans)]
    section.notes = [
        f'Photographs: scikit-image {", ".join(names)} (real photos; motorcycle is the Middlebury '
        'stereo left view), resized with INTER_AREA; the sources are 300-741 px wide, so 1280x720 '
        'is upscaled and smoother than a native frame, which flatters every codec alike.',
        'PSNR is over the three bgr8 channels, averaged over photos; SSIM is '
        'skimage.metrics.structural_similarity on the grey (BT.601 luma) image, 7x7 window, '
        'data range 255. Times are the median of the repeats per frame, averaged over frames, '
        'with OpenCV on one thread.',
        f'Budget mode: BudgetController as the image_compressor runs it (quality 10-95, {FPS:g} fps), '
        f'target {BUDGET_FRACTION:g}× the stock q95 bytes/frame of a window panning across the '
        'motorcycle photo; includes the first frames before the quality settles.',
        "Video: PyAV (FFmpeg with libx264, libx265, SVT-AV1) through the image compressor's "
        'own encoder and decoder (llm_agent_perception.video_codec), one thread each, GOP 30, '
        'zero-latency tuning, no B-frames; bytes/frame include the keyframes. The pans move 5 s '
        'across the enlarged motorcycle photo (1280x720 is upscaled, which flatters every codec '
        'alike); the sim camera renders a generated world while the robot drives 0.3 m/s and '
        'turns 0.25 rad/s. Encoder delay counts the frames that went in after a frame and before '
        'it came out decoded; frame→decoded is encode + decode of one frame in this process.',
        'Depth: the Middlebury motorcycle disparity turned into depth (60000 / disparity mm, '
        '1.0-8.3 m; 0 = unknown), nearest-neighbour resized. 32FC1 goes through the stock '
        'inverse-depth quantization (depth_quantization 100, depth_max 10 m) in every row, so '
        'png and zstd carry the same codes and the same error (it grows with depth squared).',
        'Scans, stand-in: no recorded lidar ships with the repo, so scans come from the built-in '
        "world's lidar (generated worlds, one scan per seed, 360 beams, 1 cm Gaussian noise) "
        'cleaned by scan_filter with its defaults (median 5, downsample 2); the bound 1/(2S) holds '
        'for values inside [range_min, range_max], which scan_filter guarantees.',
    ]
    return section
