"""Pure helpers of the compression bench section (fast: no codecs timed, no ROS)."""
import math

import numpy as np
from llm_agent_bench.compression import mean_finite, ssim_gray, with_ratios, within_bound


def test_ssim_is_one_for_identical_images_and_less_with_noise():
    rng = np.random.default_rng(0)
    img = np.ascontiguousarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))[..., None]
                               .repeat(3, axis=2))
    noisy = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    assert ssim_gray(img, img) == 1.0
    assert 0.0 < ssim_gray(img, noisy) < 0.9
    assert ssim_gray(img[..., 0], img[..., 0]) == 1.0  # grey input is used as is


def test_mean_finite_skips_infinite_psnr_and_gives_none_when_lossless():
    assert mean_finite([30.0, math.inf, 40.0]) == 35.0
    assert mean_finite([math.inf, math.inf]) is None


def test_with_ratios_divides_by_the_first_row_and_raw():
    rows = [{'bytes': 100, 'encode_ms': 2.0}, {'bytes': 50, 'encode_ms': 1.0}]
    with_ratios(rows, ('bytes', 'encode_ms'), raw_bytes=1000)
    assert rows[0]['bytes_vs_base'] == 1.0 and rows[1]['bytes_vs_base'] == 0.5
    assert rows[1]['encode_ms_vs_base'] == 0.5 and rows[1]['bytes_vs_raw'] == 0.05


def test_within_bound_allows_float32_rounding_only():
    assert within_bound(0.005 + 1e-7, 0.005)
    assert not within_bound(0.0051, 0.005)


def test_video_row_counts_bytes_delay_and_quality_on_a_real_stream():
    # A still camera (the same photo 12 times): after the keyframe the stream is nearly free,
    # no frame waits inside the encoder, and the picture survives.
    import cv2
    from llm_agent_bench.compression import video_row
    from llm_agent_samples.photos import sized
    frame = np.ascontiguousarray(sized('astronaut', 320, 240))
    row = video_row([frame] * 12, 'h264', 'veryfast', 20)
    assert row['frames'] == 12 and row['undecoded'] == 0 and row['delay_frames'] == 0
    assert row['ssim'] > 0.97 and row['ssim_min'] <= row['ssim']
    jpeg = len(cv2.imencode('.jpg', frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])
    assert row['bytes'] < jpeg / 4, (row['bytes'], jpeg)
    assert row['frame_to_frame_ms_p50'] >= row['decode_ms'] * 0.5 > 0
