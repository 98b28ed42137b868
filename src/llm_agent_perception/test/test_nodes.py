"""The nodes over real DDS: the test's node publishes real frames and scans, checks outputs."""
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from llm_agent_common.node import latched_qos, sensor_qos
from llm_agent_perception.depth_compressor_node import DepthCompressor
from llm_agent_perception.image_codec import psnr
from llm_agent_perception.image_compressor_node import ImageCompressor
from llm_agent_perception.image_decompressor_node import ImageDecompressor, array_to_image
from llm_agent_perception.observer_node import Observer
from llm_agent_perception.scan_filter_node import ScanFilter, from_compressed_array
from llm_agent_samples.photos import motorcycle_depth_mm, photo
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image, LaserScan
from std_msgs.msg import String

from llm_agent_interfaces.msg import CompressedScan, Observation
from llm_agent_perception import features


@pytest.fixture
def graph(ros_context):
    """A test node and an executor; nodes under test are added to the same executor."""
    executor = SingleThreadedExecutor(context=ros_context)
    tester = rclpy.create_node('perception_tester', context=ros_context)
    executor.add_node(tester)
    under_test = []

    def add(node_cls, **params):
        node = node_cls(context=ros_context, parameter_overrides=[
            Parameter(k, value=v) for k, v in params.items()])
        executor.add_node(node)
        under_test.append(node)
        return node

    yield tester, executor, add
    for node in under_test:
        if hasattr(node, 'close'):
            node.close()  # stop worker threads before anything is destroyed
    executor.shutdown()
    for node in under_test:
        node.destroy_node()
    tester.destroy_node()


def collect(tester, msg_type, topic, qos=None):
    got = []
    tester.create_subscription(msg_type, topic, got.append, qos or sensor_qos(10))
    return got


def pump(executor, spin_until, publish, predicate, timeout_s=10.0, period_s=0.2):
    """Publish repeatedly (best-effort topics may drop the first ones) until predicate holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        publish()
        if spin_until(executor, predicate, period_s):
            return True
    return predicate()


def image_msg(img, encoding='bgr8'):
    return array_to_image(img, encoding, Image().header)


def diag_value(diags, name, key):
    for arr in reversed(diags):
        for st in arr.status:
            if st.name == name:
                kv = {v.key: v.value for v in st.values}
                if key in kv:
                    return kv[key]
    return None


def test_image_compressor_output_decodes_with_imdecode(graph, spin_until):
    tester, executor, add = graph
    node = add(ImageCompressor, jpeg_quality=90)
    out = collect(tester, CompressedImage, 'camera/image_raw/compressed')
    pub = tester.create_publisher(Image, 'camera/image_raw', sensor_qos(1))
    img = cv2.resize(photo('astronaut'), (640, 480))
    assert pump(executor, spin_until, lambda: pub.publish(image_msg(img)), lambda: out)
    # The frames come through the input's own thread: the executor never wakes for one.
    assert node.input.stream is not None and node.input.stream.subscription.topic_name == \
        '/camera/image_raw'
    assert '/camera/image_raw' not in [sub.topic_name for sub in node.subscriptions]
    msg = out[-1]
    assert msg.format == 'bgr8; jpeg compressed bgr8'
    decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == img.shape and psnr(img, decoded) > 32


def test_short_image_gives_no_output_and_node_keeps_running(graph, spin_until):
    tester, executor, add = graph
    node = add(ImageCompressor)
    out = collect(tester, CompressedImage, 'camera/image_raw/compressed')
    diags = collect(tester, DiagnosticArray, 'diagnostics', 10)
    pub = tester.create_publisher(Image, 'camera/image_raw', sensor_qos(1))
    good = image_msg(cv2.resize(photo('chelsea'), (320, 240)))
    short = image_msg(cv2.resize(photo('chelsea'), (320, 240)))
    short.data = bytes(short.data)[:-100]
    unknown = image_msg(cv2.resize(photo('chelsea'), (320, 240)))
    unknown.encoding = 'yuv422_weird'
    assert pump(executor, spin_until, lambda: (pub.publish(short), pub.publish(unknown)),
                lambda: node.bad.total >= 4)
    spin_until(executor, lambda: False, 0.5)
    assert out == []
    assert set(node.bad.counts) == {'image'}
    assert pump(executor, spin_until, lambda: pub.publish(good), lambda: out)
    assert spin_until(executor, lambda: diag_value(diags, 'image_compressor', 'bad_inputs')
                      not in (None, '0'), 5.0)
    for key in ('rate_in_hz', 'rate_out_hz', 'bytes_in_total', 'bytes_out_total',
                'compression_ratio', 'encode_time_p50_ms', 'encode_time_p95_ms'):
        assert diag_value(diags, 'image_compressor', key) is not None, key


def test_png_downscale_roi_and_decompressor_chain(graph, spin_until):
    tester, executor, add = graph
    add(ImageCompressor, format='png', downscale=0.5, roi_x=100, roi_y=40, roi_width=400,
        roi_height=300)
    add(ImageDecompressor)
    raw = collect(tester, Image, 'camera/image_decompressed')
    pub = tester.create_publisher(Image, 'camera/image_raw', sensor_qos(1))
    img = cv2.resize(photo('coffee'), (640, 480))
    assert pump(executor, spin_until, lambda: pub.publish(image_msg(img)), lambda: raw)
    msg = raw[-1]
    assert (msg.width, msg.height, msg.encoding) == (200, 150, 'bgr8')
    expected = cv2.resize(img[40:340, 100:500], (200, 150), interpolation=cv2.INTER_AREA)
    got = np.frombuffer(bytes(msg.data), np.uint8).reshape(150, 200, 3)
    np.testing.assert_array_equal(got, expected)


def test_budget_parameter_is_bounded(graph):
    _tester, _executor, add = graph
    node = add(ImageCompressor)
    result = node.set_parameters([Parameter('jpeg_quality', value=101)])[0]
    assert not result.successful
    result = node.set_parameters([Parameter('format', value='webp')])[0]
    assert not result.successful
    assert node.set_parameters([Parameter('budget_bytes_per_s', value=50000)])[0].successful
    assert node._budget is not None


def test_depth_compressor_16uc1_round_trips_and_rejects_wrong_encoding(graph, spin_until):
    tester, executor, add = graph
    node = add(DepthCompressor)
    out = collect(tester, CompressedImage, 'camera/depth/image_raw/compressedDepth')
    pub = tester.create_publisher(Image, 'camera/depth/image_raw', sensor_qos(1))
    colour = image_msg(cv2.resize(photo('rocket'), (64, 48)))
    assert pump(executor, spin_until, lambda: pub.publish(colour), lambda: node.bad.total > 0)
    spin_until(executor, lambda: False, 0.3)
    assert out == []
    depth = motorcycle_depth_mm()
    assert pump(executor, spin_until, lambda: pub.publish(image_msg(depth, '16UC1')),
                lambda: out)
    msg = out[-1]
    assert msg.format == '16UC1; compressedDepth png'
    codes = cv2.imdecode(np.frombuffer(bytes(msg.data)[12:], np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(codes, depth)
    assert '/camera/depth/image_raw' not in [sub.topic_name for sub in node.subscriptions], \
        'depth frames come through the input thread, not the executor'


def scan_msg(ranges, angle_min=-np.pi, inc=np.pi / 180, rmin=0.1, rmax=10.0):
    return LaserScan(angle_min=float(angle_min), angle_increment=float(inc),
                     angle_max=float(angle_min + inc * (len(ranges) - 1)), range_min=rmin,
                     range_max=rmax, ranges=[float(r) for r in ranges])


def test_scan_filter_removes_nan_and_publishes_compressed(graph, spin_until):
    tester, executor, add = graph
    node = add(ScanFilter, downsample=2)
    filtered = collect(tester, LaserScan, 'scan/filtered')
    compressed = collect(tester, CompressedScan, 'scan/compressed')
    pub = tester.create_publisher(LaserScan, 'scan', sensor_qos(1))
    r = 3.0 + 0.5 * np.sin(np.linspace(0, 6, 360))
    r[5], r[77], r[200] = np.nan, np.inf, -np.inf
    all_nan = scan_msg([np.nan] * 360)
    assert pump(executor, spin_until, lambda: pub.publish(all_nan), lambda: node.bad.total > 0)
    spin_until(executor, lambda: False, 0.3)
    assert filtered == []
    assert pump(executor, spin_until, lambda: pub.publish(scan_msg(r)),
                lambda: filtered and compressed)
    out = np.array(filtered[-1].ranges)
    assert out.size == 180 and np.all(np.isfinite(out))
    assert np.all((out >= 0.1) & (out <= 10.0))
    back = from_compressed_array(compressed[-1].ranges)
    assert np.max(np.abs(back - out)) <= 0.005 + 1e-5
    assert len(compressed[-1].ranges.data) < 0.5 * 4 * out.size


def test_observer_features_over_dds(graph, spin_until):
    tester, executor, add = graph
    add(Observer, rate_hz=10.0)
    obs = collect(tester, Observation, 'agent/observation', 10)
    scan_pub = tester.create_publisher(LaserScan, 'scan/filtered', sensor_qos(1))
    img_pub = tester.create_publisher(Image, 'camera/image_raw', sensor_qos(1))
    odom_pub = tester.create_publisher(Odometry, 'odom', sensor_qos(1))
    goal_pub = tester.create_publisher(PoseStamped, 'goal_pose', latched_qos())
    goal = PoseStamped()
    goal.header.frame_id = 'odom'
    goal.pose.position.x, goal.pose.position.y = 3.0, 3.0
    goal_pub.publish(goal)  # transient local: published once, like the world does
    odom = Odometry()
    odom.pose.pose.orientation.w = 1.0
    odom.twist.twist.linear.x, odom.twist.twist.angular.z = 0.3, -0.1
    r = np.full(360, 8.0)
    r[180] = 1.5  # straight ahead (angle 0)
    img = cv2.resize(photo('rocket'), (640, 480))
    img[200:280, 420:500] = (0, 0, 230)  # red square right of centre

    def publish():
        scan_pub.publish(scan_msg(r))
        odom_pub.publish(odom)
        img_pub.publish(image_msg(img))

    def ready():
        if not obs:
            return False
        f = dict(zip(obs[-1].feature_names, obs[-1].feature_values, strict=False))
        return f['target_visible'] == 1.0 and f['goal_distance'] > 0 and f['speed'] > 0

    assert pump(executor, spin_until, publish, ready, timeout_s=15.0)
    msg = obs[-1]
    assert tuple(msg.feature_names) == features.FEATURE_NAMES
    f = dict(zip(msg.feature_names, msg.feature_values, strict=False))
    assert all(np.isfinite(v) for v in msg.feature_values)
    assert f['front_range'] == pytest.approx(1.5)
    assert f['rear_range'] == pytest.approx(8.0)
    assert f['goal_distance'] == pytest.approx(np.hypot(3, 3), rel=1e-5)
    assert f['goal_bearing'] == pytest.approx(np.pi / 4, rel=1e-5)
    assert f['target_bearing'] < 0  # right of centre is negative
    expected = np.arctan2(320 - 459.5, 320 / np.tan(np.radians(30)))
    assert f['target_bearing'] == pytest.approx(expected, abs=0.02)
    assert f['target_size'] == pytest.approx(6400 / (640 * 480), rel=0.3)
    assert f['speed'] == pytest.approx(0.3) and f['yaw_rate'] == pytest.approx(-0.1)
    assert '\n' not in msg.summary and 'red target visible' in msg.summary


def test_observer_looks_for_the_colour_the_instruction_names(graph, spin_until):
    tester, executor, add = graph
    add(Observer, rate_hz=10.0)
    obs = collect(tester, Observation, 'agent/observation', 10)
    scan_pub = tester.create_publisher(LaserScan, 'scan/filtered', sensor_qos(1))
    img_pub = tester.create_publisher(Image, 'camera/image_raw', sensor_qos(1))
    say = tester.create_publisher(String, 'agent/instruction', 10)
    img = np.full((240, 320, 3), 90, np.uint8)
    img[100:140, 40:80] = (200, 80, 40)        # a blue square (BGR) on the left; nothing red
    r = np.full(360, 8.0)

    def seen(summary):
        return lambda: bool(obs) and summary in obs[-1].summary

    def publish():
        scan_pub.publish(scan_msg(r))
        img_pub.publish(image_msg(img))

    assert pump(executor, spin_until, publish, seen('red target unseen'))   # target_color
    for text, summary in (('Go to the BLUE one, then come back', 'blue target visible'),
                          ('stop as soon as you see green', 'green target unseen'),
                          ('drive forward two metres', 'red target unseen')):
        def publish_both(text=text):
            say.publish(String(data=text))
            publish()
        assert pump(executor, spin_until, publish_both, seen(summary)), (text, obs[-1].summary)
    f = dict(zip(obs[-1].feature_names, obs[-1].feature_values, strict=False))
    assert f['target_visible'] == 0.0


def test_instruction_colour_is_the_first_colour_word():
    assert features.instruction_colour('go to the blue one, then the red one') == 'blue'
    assert features.instruction_colour('Explore until you see GREEN.') == 'green'
    assert features.instruction_colour('turn around; redo it') is None    # words, not letters
    assert features.instruction_colour('') is None


def test_node_module_exits_0_on_ctrl_c(ros_env):
    proc = subprocess.Popen([sys.executable, '-m', 'llm_agent_perception.scan_filter_node'],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        time.sleep(3.0)  # let it start spinning (a readiness signal would need ros2cli)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert 'Traceback' not in err


def test_video_stream_only_for_subscribers_keyed_for_each_and_decoded_by_the_decoder_node(
        graph, spin_until):
    from ffmpeg_image_transport_msgs.msg import FFMPEGPacket
    from llm_agent_perception.video_decoder_node import VideoDecoderNode
    from llm_agent_samples.photos import panning
    from skimage.metrics import structural_similarity
    tester, executor, add = graph
    frames = [np.ascontiguousarray(f) for f in panning(150, 320, 240)][:60]
    comp = add(ImageCompressor, video_gop=100)
    pub = tester.create_publisher(Image, 'camera/image_raw', 10)
    sent = {}

    def publish(i):
        msg = image_msg(frames[i % len(frames)])
        msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i // 30, (i % 30) * 33_000_000
        sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = frames[i % len(frames)]
        pub.publish(msg)

    i = 0
    jpeg = collect(tester, CompressedImage, 'camera/image_raw/compressed')
    while i < 10 or not jpeg:   # frames flow, JPEG goes out, and no one asked for video
        publish(i)
        i += 1
        spin_until(executor, lambda: False, 0.05)
    assert not comp._streamer.active and comp.video_stats.rate_out.total_count == 0
    add(VideoDecoderNode)
    decoded = collect(tester, Image, 'camera/image_decoded')
    for _ in range(40):
        publish(i)
        i += 1
        spin_until(executor, lambda: False, 0.05)
    spin_until(executor, lambda: len(decoded) >= 10, 5.0)
    assert len(decoded) >= 10, f'{len(decoded)} frames decoded'
    scores = []
    for msg in decoded:
        src = sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)]
        out = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
        scores.append(structural_similarity(cv2.cvtColor(src, cv2.COLOR_BGR2GRAY),
                                            cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), data_range=255))
    assert min(scores) > 0.95, scores
    # A late subscriber gets a keyframe within its first packets (at its match, and once more
    # 250 ms later should its side of the match come after the first) though the GOP is 100.
    late = collect(tester, FFMPEGPacket, 'camera/image_raw/ffmpeg')
    n = [i]

    def publish_next():
        publish(n[0])
        n[0] += 1
    assert pump(executor, spin_until, publish_next, lambda: len(late) >= 12, period_s=0.05)
    assert any(p.flags & 1 for p in late[:12]), [p.flags for p in late]
    assert {p.encoding for p in late} == {'libx264'}
    assert comp._streamer.keyframes_forced >= 1


def test_video_decoder_for_foxglove_video_says_when_foxglove_msgs_is_missing(graph):
    from llm_agent_perception.image_compressor_node import COMPRESSED_VIDEO, optional_message
    from llm_agent_perception.video_decoder_node import MissingMessages, VideoDecoderNode
    _tester, _executor, add = graph
    if optional_message(*COMPRESSED_VIDEO) is None:     # this machine: no foxglove_msgs (ros-api.md)
        with pytest.raises(MissingMessages, match='foxglove_msgs is not installed'):
            add(VideoDecoderNode, in_format='foxglove', in_topic='camera/video')
    else:
        assert add(VideoDecoderNode, in_format='foxglove', in_topic='camera/video')
