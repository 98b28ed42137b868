"""Video round trips through the real FFmpeg encoders and decoders (PyAV), on a camera panning
across a real photograph; late readers, corrupt, truncated and out-of-order packets."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llm_agent_perception.bounded import BadInput
from llm_agent_perception.foxglove_video import SCHEMA, TYPE_NAME, compressed_video_cdr, foxglove_format
from llm_agent_perception.video_codec import VideoDecoder, VideoEncoder, VideoSettings
from llm_agent_samples.photos import panning
from skimage.metrics import structural_similarity

W, H = 320, 240
FRAMES = [np.ascontiguousarray(f) for f in panning(150, W, H)][:40]   # 5 s pan at 30 fps


def ssim(a, b):
    return structural_similarity(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY),
                                 cv2.cvtColor(b, cv2.COLOR_BGR2GRAY), data_range=255)


def encode_all(settings=None, frames=FRAMES, force=()):
    enc = VideoEncoder(W, H, settings or VideoSettings(gop=10))
    out = []
    for i, f in enumerate(frames):
        pk = enc.encode(f, 33 * i, force_keyframe=i in force)
        assert len(pk) == 1, f'frame {i}: {len(pk)} packets (zero latency means one per frame)'
        out.append(pk[0])
    return enc, out


@pytest.mark.parametrize('codec', ['h264', 'h265', 'av1'])
def test_round_trip_keeps_the_picture_at_a_fraction_of_jpeg(codec):
    enc, packets = encode_all(VideoSettings(codec=codec, gop=10,
                                            preset='10' if codec == 'av1' else 'veryfast',
                                            crf=22 if codec == 'av1' else 20))
    dec = VideoDecoder(enc.codec_name)
    assert packets[0].keyframe
    scores = []
    for i, p in enumerate(packets):
        img = dec.decode(p.data, p.pts, p.keyframe, W, H)
        assert img is not None and img.shape == (H, W, 3), f'frame {i} not out at once'
        scores.append(ssim(FRAMES[i], img))
    assert min(scores) > 0.95 and np.mean(scores) > 0.98, scores
    jpeg = np.mean([len(cv2.imencode('.jpg', f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1]) for f in FRAMES])
    assert np.mean([len(p.data) for p in packets]) < 0.25 * jpeg


def test_a_late_reader_starts_at_the_next_keyframe_and_a_forced_one_comes_at_once():
    _, packets = encode_all(VideoSettings(gop=10), force=(13,))
    keys = [i for i, p in enumerate(packets) if p.keyframe]
    assert keys[:3] == [0, 10, 13], keys
    dec = VideoDecoder('libx264')
    for p in packets[4:10]:
        with pytest.raises(BadInput, match='waiting for a keyframe'):
            dec.decode(p.data, p.pts, p.keyframe)
    for i in range(10, 20):
        img = dec.decode(packets[i].data, packets[i].pts, packets[i].keyframe)
        assert ssim(FRAMES[i], img) > 0.97


def test_corrupt_truncated_and_out_of_order_packets_are_refused_then_the_stream_recovers():
    _, packets = encode_all(VideoSettings(gop=10))
    dec = VideoDecoder('h264')
    for p in packets[:5]:
        dec.decode(p.data, p.pts, p.keyframe)
    with pytest.raises(BadInput, match='out of order'):
        dec.decode(packets[3].data, packets[3].pts, False)
    with pytest.raises(BadInput, match='empty'):
        dec.decode(b'', packets[5].pts, False)
    outcomes = []
    for p in packets[5:10]:   # truncated and bit-flipped P-frames: an error or a damaged frame
        bad = bytearray(p.data[:len(p.data) // 2])
        bad[len(bad) // 3] ^= 0xFF
        try:
            outcomes.append(dec.decode(bytes(bad), p.pts, False) is not None)
        except BadInput as exc:
            outcomes.append(str(exc))
    img = dec.decode(packets[10].data, packets[10].pts, True)   # the next keyframe: clean again
    assert ssim(FRAMES[10], img) > 0.97


def test_a_stream_larger_than_allowed_is_refused_before_it_is_decoded():
    big = np.zeros((720, 1280, 3), np.uint8)
    enc = VideoEncoder(1280, 720)
    p = enc.encode(big, 0)[0]
    dec = VideoDecoder('libx264', max_pixels=640 * 480)
    with pytest.raises(BadInput):
        dec.decode(p.data, p.pts, True)
    with pytest.raises(BadInput, match='too large'):
        dec.decode(p.data, p.pts, True, 100_000, 100_000)


def test_unknown_encodings_and_settings_are_refused():
    with pytest.raises(BadInput, match='unknown video encoding'):
        VideoDecoder('mjpeg2000')
    with pytest.raises(ValueError, match='codec'):
        VideoEncoder(W, H, VideoSettings(codec='theora'))
    with pytest.raises(ValueError, match='frame'):
        VideoEncoder(W, H).encode(np.zeros((10, 10, 3), np.uint8), 0)


_, PACKETS = encode_all(VideoSettings(gop=5))


@settings(max_examples=300, derandomize=True, database=None, deadline=10_000,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(PACKETS) - 1), st.binary(max_size=64),
                          st.integers(0, 400), st.integers(-5, 5), st.booleans()),
                min_size=1, max_size=12))
def test_fuzzed_packet_streams_decode_or_are_refused(ops):
    dec = VideoDecoder('h264')
    for index, noise, cut, pts_shift, key in ops:
        p = PACKETS[index]
        data = (p.data[:cut] if cut else p.data) + noise
        try:
            img = dec.decode(data, p.pts + pts_shift, key)
        except BadInput:
            continue
        assert img is None or img.shape == (H, W, 3)


def test_compressed_video_cdr_reads_back_with_mcap_ros2_schema():
    from mcap_ros2._dynamic import generate_dynamic
    decode = generate_dynamic(TYPE_NAME, SCHEMA)[TYPE_NAME]
    msg = decode(compressed_video_cdr(12, 345, 'camera_link', b'\x00\x00\x00\x01abc', 'h264'))
    assert (msg.timestamp.sec, msg.timestamp.nanosec) == (12, 345)
    assert msg.frame_id == 'camera_link' and bytes(msg.data) == b'\x00\x00\x00\x01abc'
    assert msg.format == 'h264'
    assert foxglove_format('libx264') == 'h264' and foxglove_format('libx265') == 'h265'
    with pytest.raises(ValueError):
        foxglove_format('mjpeg')


def test_the_streamer_encodes_only_for_readers_and_keys_each_new_one():
    from llm_agent_perception.video_codec import VideoStreamer
    s = VideoStreamer(VideoSettings(gop=100))
    assert s.frame(FRAMES[0], 0, readers=0) == [] and not s.active
    out = [s.frame(f, 33_000_000 * i, readers=1)[0] for i, f in enumerate(FRAMES[:5])]
    assert [p.keyframe for p in out] == [True, False, False, False, False]
    assert [p.pts for p in out] == [0, 33, 66, 99, 132]
    second = s.frame(FRAMES[5], 5 * 33_000_000, readers=2)[0]
    assert second.keyframe and s.keyframes_forced == 1, 'a new reader gets a keyframe at once'
    keys = [s.frame(FRAMES[6 + k], (6 + k) * 33_000_000, readers=2)[0].keyframe
            for k in range(10)]
    # ... and one more about 250 ms later (pts 165 + 250 = 415: the frame at 429 ms)
    assert keys == [False] * 7 + [True, False, False], keys
    assert not s.frame(FRAMES[16], 16 * 33_000_000, readers=1)[0].keyframe
    back = s.frame(FRAMES[17], 0, readers=1)[0]   # the clock stepped back (a sim reset)
    assert back.pts == 529
    assert s.frame(FRAMES[8], 8 * 33_000_000, readers=0) == [] and not s.active
    s.configure(VideoSettings(codec='h265', gop=100))
    assert s.frame(FRAMES[9], 0, readers=1)[0].keyframe and s.encoding == 'libx265'


@pytest.mark.parametrize('codec', ['h264', 'h265'])
def test_keyframes_are_found_in_the_bitstream_where_no_flag_says_so(codec):
    from llm_agent_perception.video_codec import keyframe_in
    enc, packets = encode_all(VideoSettings(codec=codec, gop=10), force=(13,))
    found = [keyframe_in(enc.codec_name, p.data) for p in packets]
    assert found == [p.keyframe for p in packets] and sum(found) >= 3
    assert not keyframe_in('h264', b'') and keyframe_in('av1', b'x')


# Run in a child so that, without the guard, the test process itself does not turn real-time.
# The DDS participant comes after the encoder, as in a node or the bench: its threads are started
# the way glibc starts them from the caller's remembered policy.
_REALTIME_PROBE = '''
import json, os
import numpy as np
import rclpy
from rclpy.context import Context
from llm_agent_perception.video_codec import VideoEncoder, VideoSettings
enc = VideoEncoder(320, 240, VideoSettings(codec='av1', preset='10', crf=30, gop=10))
for i in range(3):
    enc.encode(np.zeros((240, 320, 3), np.uint8), 33 * i)
context = Context()
rclpy.init(context=context)
node = rclpy.create_node('realtime_probe', context=context)
policies = {}
for tid in os.listdir('/proc/self/task'):
    with open(f'/proc/self/task/{tid}/comm') as f:
        policies[f'{tid} {f.read().strip()}'] = os.sched_getscheduler(int(tid))
print(json.dumps({'caller': os.sched_getscheduler(0), 'threads': policies}))
node.destroy_node()
rclpy.try_shutdown(context=context)
'''


@pytest.mark.skipif(not hasattr(os, 'geteuid') or os.geteuid() != 0,
                    reason='SVT-AV1 raises its threads to SCHED_FIFO only when run as root')
def test_opening_an_av1_encoder_leaves_no_thread_real_time(ros_env):
    """SVT-AV1 as root made the opening thread and its ~20 workers SCHED_FIFO 99; every node,
    test process and DDS thread started afterwards inherited it, and busy FIFO threads starved
    the machine."""
    result = subprocess.run([sys.executable, '-c', _REALTIME_PROBE], capture_output=True,
                            text=True, timeout=120, env=ros_env)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    realtime = {tid: p for tid, p in seen['threads'].items() if p in (os.SCHED_FIFO, os.SCHED_RR)}
    assert seen['caller'] == os.SCHED_OTHER and not realtime, seen
    assert any('dds.' in name for name in seen['threads']), 'no DDS thread: the probe checked nothing'
