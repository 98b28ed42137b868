"""Recording the agent's topics to MCAP, read back by an independent reader; distilling a tree.

Real rclpy over DDS on the test's own domain. The read-back uses `mcap_ros2`, which decodes the
CDR from the schema text in the file (not with rclpy's generated classes).
"""
import json
import random

import cv2
import numpy as np
import pytest
from llm_agent_cli.record import AGENT_TOPICS, Recorder, message_class
from mcap.reader import make_reader
from mcap_ros2.reader import read_ros2_messages
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

FEATURES = ('front_range', 'front_left_range', 'front_right_range', 'left_range', 'right_range',
            'rear_range', 'goal_distance', 'goal_bearing', 'target_visible', 'target_bearing',
            'target_size', 'speed', 'yaw_rate')


def _stamp(msg, sec, nsec=0):
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nsec
    msg.header.frame_id = 'base_link'


def _samples(i):
    """One message of every recorded type, contents depending on i."""
    from skimage.data import astronaut
    m = {t: message_class(ty)() for t, ty, _ in AGENT_TOPICS}
    img = cv2.cvtColor(cv2.resize(astronaut(), (128, 128)), cv2.COLOR_RGB2BGR)
    ok, jpeg = cv2.imencode('.jpg', img)
    assert ok
    c = m['camera/image_raw/compressed']
    _stamp(c, 100 + i)
    c.format, c.data = 'bgr8; jpeg compressed bgr8', jpeg.tobytes()
    d = m['camera/depth/image_raw/compressedDepth']
    _stamp(d, 100 + i)
    d.format, d.data = '16UC1; compressedDepth png', bytes(range(i, i + 40))
    s = m['scan/compressed']
    _stamp(s, 100 + i)
    s.range_max, s.ranges.dtype, s.ranges.shape = 10.0, 'float32', [4]
    s.ranges.scale, s.ranges.codec, s.ranges.data = 25.5, 'none', [1, 2, 3, i]
    f = m['scan/filtered']
    _stamp(f, 100 + i)
    f.ranges = [1.0, 2.0, float(i)]
    o = m['odom']
    _stamp(o, 100 + i)
    o.pose.pose.position.x = 0.5 * i
    ob = m['agent/observation']
    _stamp(ob, 100 + i, 7)
    ob.feature_names, ob.feature_values = ['front_range', 'speed'], [1.5 + i, 0.25]
    ob.summary = f'obstacle {i}'
    de = m['agent/decision']
    _stamp(de, 100 + i, 7)
    de.skill, de.params_json, de.source, de.confidence = 'turn', json.dumps({'angle': 0.1 * i}), \
        'llm', 0.75
    m['agent/instruction'].data = f'go to the red target {i}'
    m['cmd_vel'].linear.x = 0.1 * i
    m['sim/events'].data = json.dumps({'type': 'collision', 'i': i})
    g = m['goal_pose']
    _stamp(g, 100 + i)
    g.pose.position.y = float(i)
    return m


class _Publisher:
    """The test's own node publishing on the agent's topics with the QoS the suite uses."""

    def __init__(self, ros_context, namespace, topics):
        import rclpy
        self.node = rclpy.create_node('record_test_pub', namespace=namespace, context=ros_context)
        self.executor = SingleThreadedExecutor(context=ros_context)
        self.executor.add_node(self.node)
        qos = {'sensor': qos_profile_sensor_data,
               'reliable': QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE),
               'latched': QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                     durability=DurabilityPolicy.TRANSIENT_LOCAL)}
        self.pubs = {t: self.node.create_publisher(message_class(ty), t, qos[k])
                     for t, ty, k in topics}

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


def _deliver(pub, recorder, spin_until, topic, msg):
    """Publish until the recorder has one more message on the topic (best effort may drop)."""
    before = recorder.count(topic)
    for _ in range(20):
        pub.pubs[topic].publish(msg)
        if spin_until(pub.executor, lambda: recorder.count(topic) > before, 0.5):
            return
    pytest.fail(f'{topic}: nothing recorded')


def _wait_matched(pub, spin_until):
    assert spin_until(pub.executor, lambda: all(p.get_subscription_count() >= 1
                                                for p in pub.pubs.values()), 15.0)


def test_recording_reads_back_with_an_independent_reader(ros_context, ros_domain_id, spin_until,
                                                         tmp_path):
    path = str(tmp_path / 'run.mcap')
    recorder = Recorder(path, namespace='/robot1', domain_id=ros_domain_id, video=False)
    pub = _Publisher(ros_context, 'robot1', AGENT_TOPICS)
    sent = {}
    try:
        _wait_matched(pub, spin_until)
        for i in range(3):
            for topic, msg in _samples(i).items():
                _deliver(pub, recorder, spin_until, topic, msg)
                sent.setdefault('/robot1/' + topic, []).append(msg)
    finally:
        recorder.close()
        pub.close()
    recorder.close()   # idempotent

    with open(path, 'rb') as f:
        summary = make_reader(f).get_summary()
    schemas = {c.topic: summary.schemas[c.schema_id] for c in summary.channels.values()}
    assert set(schemas) == {'/robot1/' + t for t, _, _ in AGENT_TOPICS}
    for topic, type_name, _ in AGENT_TOPICS:
        schema = schemas['/robot1/' + topic]
        assert schema.name == type_name and schema.encoding == 'ros2msg'
    for c in summary.channels.values():
        assert c.message_encoding == 'cdr' and 'offered_qos_profiles' in c.metadata

    got = {}
    for m in read_ros2_messages(path):
        got.setdefault(m.channel.topic, []).append(m)
    for topic, msgs in sent.items():
        assert len(got.get(topic, [])) >= len(msgs), topic
    # every published message is in the file, decoded field for field
    obs = [m.ros_msg for m in got['/robot1/agent/observation']]
    assert [list(o.feature_names) for o in obs[:3]] == [['front_range', 'speed']] * 3
    assert {tuple(np.round(o.feature_values, 4)) for o in obs} == \
        {(1.5 + i, 0.25) for i in range(3)}
    assert {o.summary for o in obs} == {f'obstacle {i}' for i in range(3)}
    dec = [m for m in got['/robot1/agent/decision']]
    assert {(d.ros_msg.skill, d.ros_msg.source, round(json.loads(d.ros_msg.params_json)['angle'], 3))
            for d in dec} == {('turn', 'llm', round(0.1 * i, 3)) for i in range(3)}
    assert {round(d.ros_msg.confidence, 3) for d in dec} == {0.75}
    # publish time = header stamp; log time = receive time
    for d in dec:
        stamp = d.ros_msg.header.stamp
        assert d.publish_time_ns == stamp.sec * 10**9 + stamp.nanosec
        assert d.log_time_ns > 1_600_000_000 * 10**9
    for m in got['/robot1/camera/image_raw/compressed']:
        img = cv2.imdecode(np.frombuffer(bytes(m.ros_msg.data), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (128, 128, 3)
        assert m.ros_msg.format == 'bgr8; jpeg compressed bgr8'
    scans = got['/robot1/scan/compressed']
    assert {list(s.ros_msg.ranges.data)[-1] for s in scans} == {0, 1, 2}
    assert {s.ros_msg.ranges.codec for s in scans} == {'none'}
    assert {round(m.ros_msg.pose.pose.position.x, 3) for m in got['/robot1/odom']} == {0, 0.5, 1.0}
    assert {round(m.ros_msg.linear.x, 3) for m in got['/robot1/cmd_vel']} == {0, 0.1, 0.2}
    assert {json.loads(m.ros_msg.data)['i'] for m in got['/robot1/sim/events']} == {0, 1, 2}
    assert {m.ros_msg.data for m in got['/robot1/agent/instruction']} == \
        {f'go to the red target {i}' for i in range(3)}
    assert {m.ros_msg.pose.position.y for m in got['/robot1/goal_pose']} == {0.0, 1.0, 2.0}
    assert {m.ros_msg.header.frame_id for m in got['/robot1/scan/filtered']} == {'base_link'}


def _policy_features(rng, front):
    f = {n: 3.0 for n in FEATURES[:6]}
    f.update(front_range=front, goal_distance=-1.0, goal_bearing=0.0, target_visible=0.0,
             target_bearing=0.0, target_size=0.0, speed=0.0, yaw_rate=0.0)
    f['left_range'] = rng.uniform(1.0, 4.0)
    f['right_range'] = rng.uniform(1.0, 4.0)
    return f


def _policy(front):
    if front > 1.5:
        return 'move_forward', {'distance': 1.0, 'speed': 0.3}
    return 'turn', {'angle': 0.8}


def test_tree_trained_from_a_recording_follows_the_recorded_policy(ros_context, ros_domain_id,
                                                                   spin_until, tmp_path):
    from llm_agent_brain.decision_types import Situation
    from llm_agent_brain.distill import decisions_from_mcap, train_from_mcap
    from llm_agent_brain.pipeline import DecisionPipeline, FastPathConfig
    from llm_agent_common.catalog import load_catalog
    topics = [t for t in AGENT_TOPICS if t[0] in ('agent/observation', 'agent/decision',
                                                  'agent/instruction')]
    path = str(tmp_path / 'policy.mcap')
    recorder = Recorder(path, topics=topics, domain_id=ros_domain_id)
    pub = _Publisher(ros_context, '', topics)
    Obs, Dec = message_class(topics[0][1]), message_class(topics[1][1])
    rng = random.Random(3)
    n = 60
    try:
        _wait_matched(pub, spin_until)
        ins = message_class('std_msgs/msg/String')(data='go to the red target')
        _deliver(pub, recorder, spin_until, 'agent/instruction', ins)
        for i in range(n):
            front = rng.choice([rng.uniform(0.5, 1.3), rng.uniform(1.7, 5.0)])
            f = _policy_features(rng, front)
            obs = Obs(feature_names=list(f), feature_values=list(f.values()), summary=f'#{i}')
            obs.header.stamp.sec, obs.header.stamp.nanosec = 1000 + i, 5
            skill, params = _policy(front)
            dec = Dec(skill=skill, params_json=json.dumps(params), source='llm', confidence=0.9)
            dec.header.stamp = obs.header.stamp
            # a cached decision that contradicts the policy: not new knowledge, left out
            other = Dec(skill='stop', params_json='{}', source='cache', confidence=1.0)
            other.header.stamp = obs.header.stamp
            for topic, msg in (('agent/observation', obs), ('agent/decision', dec),
                               ('agent/decision', other)):
                pub.pubs[topic].publish(msg)
            # paced: keep-last queues must not overflow before the recorder has the messages
            assert spin_until(pub.executor,
                              lambda k=i + 1: recorder.count('agent/decision') >= 2 * k and
                              recorder.count('agent/observation') >= k, 10.0)
    finally:
        recorder.close()
        pub.close()

    pairs = decisions_from_mcap(path)
    assert len(pairs) == n
    assert {c.source for _, c in pairs} == {'llm'}
    assert all(s.instruction == 'go to the red target' for s, _ in pairs)
    assert all(c.skill == _policy(s.features['front_range'])[0] for s, c in pairs)
    assert len(decisions_from_mcap(path, sources=('llm', 'cache'))) == 2 * n

    data_dir = str(tmp_path / 'brain')
    catalog = load_catalog()
    result = train_from_mcap(path, FastPathConfig(data_dir=data_dir), catalog)
    assert result.pairs == n and result.skipped.get('source_cache') == n
    assert 'front_range' in result.tree_text

    fresh = DecisionPipeline(catalog, FastPathConfig(data_dir=data_dir, enable_cache=False),
                             backend=None)
    try:
        for front in (0.6, 1.0, 2.2, 4.0):
            f = _policy_features(rng, front)
            choice = fresh.fast_decide(Situation(features=f, instruction='go to the red target'))
            assert choice is not None and choice.source == 'tree', (front, choice)
            assert choice.skill == _policy(front)[0]
    finally:
        fresh.close()


def test_the_video_stream_is_recorded_for_foxglove_and_decodes_with_pyav(
        ros_context, ros_domain_id, spin_until, tmp_path):
    # The real image compressor encodes only because the recorder subscribes to its stream.
    import av
    from llm_agent_perception.foxglove_video import TYPE_NAME
    from llm_agent_perception.image_compressor_node import ImageCompressor
    from llm_agent_perception.image_decompressor_node import array_to_image
    from llm_agent_samples.photos import panning
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from skimage.metrics import structural_similarity
    frames = [np.ascontiguousarray(f) for f in panning(150, 320, 240)][:45]
    path = str(tmp_path / 'video.mcap')
    ex = SingleThreadedExecutor(context=ros_context)
    comp = ImageCompressor(context=ros_context, namespace='robot1',
                           parameter_overrides=[Parameter('video_gop', value=15)])
    ex.add_node(comp)
    import rclpy
    tester = rclpy.create_node('video_source', namespace='robot1', context=ros_context)
    ex.add_node(tester)
    pub = tester.create_publisher(Image, 'camera/image_raw', 10)
    recorder = Recorder(path, namespace='/robot1', domain_id=ros_domain_id)
    sent = {}
    try:
        assert recorder.video_note == ''
        assert spin_until(ex, lambda: comp._video_pub.get_subscription_count() >= 1, 15.0)
        for i, f in enumerate(frames):
            msg = array_to_image(f, 'bgr8', Image().header)
            msg.header.stamp.sec, msg.header.stamp.nanosec = 50, i * 20_000_000
            msg.header.frame_id = 'camera'
            sent[i * 20_000_000] = f
            pub.publish(msg)
            spin_until(ex, lambda: False, 0.04)
        spin_until(ex, lambda: recorder.count('camera/image_raw/video') >= 20, 5.0)
    finally:
        recorder.close()
        comp.close()
        ex.shutdown()
        comp.destroy_node()
        tester.destroy_node()

    with open(path, 'rb') as f:
        summary = make_reader(f).get_summary()
    by_topic = {c.topic: summary.schemas[c.schema_id] for c in summary.channels.values()}
    assert by_topic['/robot1/camera/image_raw/video'].name == TYPE_NAME
    assert 'uint8[] data' in by_topic['/robot1/camera/image_raw/video'].data.decode()
    video = [m for m in read_ros2_messages(path, topics=['/robot1/camera/image_raw/video'])]
    raw = [m for m in read_ros2_messages(path, topics=['/robot1/camera/image_raw/ffmpeg'])]
    assert len(video) >= 20 and len(video) <= len(raw)
    assert {m.ros_msg.format for m in video} == {'h264'}
    # What video_decoder does with CompressedVideo (no keyframe flag): find it in the bitstream.
    from llm_agent_perception.video_codec import keyframe_in
    assert keyframe_in('h264', bytes(video[0].ros_msg.data))
    assert {m.ros_msg.frame_id for m in video} == {'camera'}
    # The Foxglove channel is the raw stream from its first keyframe on.
    first_key = next(i for i, m in enumerate(raw) if m.ros_msg.flags & 1)
    assert [bytes(m.ros_msg.data) for m in video] == \
        [bytes(m.ros_msg.data) for m in raw[first_key:]]
    decoder = av.CodecContext.create('h264', 'r')
    scores = []
    for m in video:   # what Foxglove does: feed each message's data to an H.264 decoder
        for frame in decoder.decode(av.Packet(bytes(m.ros_msg.data))):
            src = sent[m.ros_msg.timestamp.nanosec]
            out = frame.to_ndarray(format='bgr24')
            scores.append(structural_similarity(cv2.cvtColor(src, cv2.COLOR_BGR2GRAY),
                                                cv2.cvtColor(out, cv2.COLOR_BGR2GRAY),
                                                data_range=255))
    assert len(scores) == len(video) and min(scores) > 0.95, scores
