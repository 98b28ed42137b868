"""Tests of the sim_world node over DDS: in-process on the test's context, or as a process."""
import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped, Twist  # noqa: E402
from llm_agent_common.node import LeanMultiThreadedExecutor  # noqa: E402
from llm_agent_sim.sim_world_node import SimWorldNode  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, LaserScan  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

WALL_WORLD = """
room: {min: [-2.0, -2.0], max: [2.0, 2.0]}
target: {center: [-1.5, 1.5], size: [0.3, 0.3]}
start: {x: 1.0, y: 0.0, yaw: 0.0}
"""


def stamp_s(msg):
    return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec


class Probe:
    """A test node recording what the sim publishes."""

    def __init__(self, context):
        self.node = rclpy.create_node('probe', context=context)
        self.msgs = {k: [] for k in ('image', 'depth', 'info', 'scan', 'odom', 'clock', 'events',
                                     'goal', 'diag')}
        sub = self.node.create_subscription
        rec = self._recorder
        sub(Image, 'camera/image_raw', rec('image'), qos_profile_sensor_data)
        sub(Image, 'camera/depth/image_raw', rec('depth'), qos_profile_sensor_data)
        sub(CameraInfo, 'camera/camera_info', rec('info'), qos_profile_sensor_data)
        sub(LaserScan, 'scan', rec('scan'), qos_profile_sensor_data)
        sub(Odometry, 'odom', rec('odom'), qos_profile_sensor_data)
        sub(Clock, '/clock', rec('clock'), QoSProfile(depth=10))
        sub(String, 'sim/events', rec('events'),
            QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        sub(PoseStamped, 'goal_pose', rec('goal'),
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        sub(DiagnosticArray, 'diagnostics', rec('diag'), QoSProfile(depth=10))
        self.cmd = self.node.create_publisher(Twist, 'cmd_vel', QoSProfile(depth=10))
        self.reset = self.node.create_client(Trigger, 'sim/reset')

    def _recorder(self, key):
        return lambda msg: self.msgs[key].append(msg)

    def events(self, kind=None):
        out = [json.loads(m.data) for m in self.msgs['events']]
        return [e for e in out if kind is None or e['type'] == kind]

    def drive(self, v, w=0.0):
        msg = Twist()
        msg.linear.x, msg.angular.z = v, w
        self.cmd.publish(msg)


def _run(args, env, **kw):
    return subprocess.Popen([sys.executable, '-m', 'llm_agent_sim.sim_world_node', '--ros-args']
                            + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


@pytest.fixture
def make_sim(ros_context):
    """Start a SimWorldNode and a Probe on the test's context; tear both down cleanly."""
    made = []

    def _make(**params):
        node = SimWorldNode(context=ros_context,
                            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        probe = Probe(ros_context)
        executor = LeanMultiThreadedExecutor(num_threads=4, context=ros_context)
        executor.add_node(node)
        executor.add_node(probe.node)
        made.append((executor, node, probe))
        return node, probe, executor

    yield _make
    for executor, node, probe in made:
        pool = getattr(executor, '_executor', None)     # see sim_world_node.main
        if pool is not None:
            pool.shutdown(wait=True)
        executor.shutdown()
        probe.node.destroy_node()
        node.destroy_node()


def test_topics_at_their_rates_with_types_and_encodings(ros_context, ros_env, spin_until):
    # The node in its own process, as deployed: rates are not shared with the probe's work.
    proc = _run(['-p', 'speed:=2.0', '-p', 'camera_rate_hz:=10.0', '-p', 'scan_rate_hz:=10.0',
                 '-p', 'odom_rate_hz:=50.0'], ros_env)
    probe = Probe(ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(probe.node)
    try:
        # The latched goal comes when the probe's reader matches the world's writer; under
        # load that can be after the frames (CI once had 25 frames and no goal yet).
        assert spin_until(executor, lambda: len(probe.msgs['image']) >= 25
                          and len(probe.msgs['diag']) >= 3 and probe.msgs['goal'],
                          timeout_s=20.0), {k: len(v) for k, v in probe.msgs.items()}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
        executor.shutdown()
        probe.node.destroy_node()
    assert proc.returncode == 0
    # Small messages arrive as published: their rate in sim time (stamps) is the configured one.
    for key, hz in (('info', 10.0), ('scan', 10.0), ('odom', 50.0)):
        stamps = [stamp_s(m) for m in probe.msgs[key]]
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        assert 0.75 * hz <= rate <= 1.1 * hz, (key, rate)
    # Best-effort frames of 0.6-0.9 MB may be lost on the way to a busy subscriber: check the
    # publisher's own rate on diagnostics, and that received frames sit on the 0.1 s grid.
    values = {kv.key: kv.value for kv in probe.msgs['diag'][-1].status[0].values}
    assert 7.5 <= float(values['camera_rate_hz']) <= 11.0, values
    for key in ('image', 'depth'):
        stamps = np.array([stamp_s(m) for m in probe.msgs[key]])
        gaps = np.diff(stamps) / 0.1
        assert len(stamps) >= 10 and np.allclose(gaps, np.round(gaps), atol=0.02), (key, gaps)
        assert gaps.min() >= 1.0 - 0.02
    image, depth, info = probe.msgs['image'][-1], probe.msgs['depth'][-1], probe.msgs['info'][-1]
    assert (image.encoding, image.width, image.height, image.step) == ('bgr8', 640, 480, 1920)
    assert len(image.data) == 640 * 480 * 3
    assert (depth.encoding, depth.width, depth.height, depth.step) == ('16UC1', 640, 480, 1280)
    mm = np.frombuffer(bytes(depth.data), dtype=np.uint16)
    assert mm.max() > 0
    fx = 320.0 / math.tan(math.radians(30.0))
    assert list(info.k) == pytest.approx([fx, 0, 319.5, 0, fx, 239.5, 0, 0, 1])
    scan = probe.msgs['scan'][-1]
    assert len(scan.ranges) == 360 and scan.angle_min == pytest.approx(-math.pi)
    assert (scan.range_min, scan.range_max) == pytest.approx((0.05, 8.0))
    odom = probe.msgs['odom'][-1]
    assert (odom.header.frame_id, odom.child_frame_id) == ('odom', 'base_link')
    assert odom.pose.pose.position.x == pytest.approx(-2.0)       # room.yaml start
    clocks = [c.clock.sec + 1e-9 * c.clock.nanosec for c in probe.msgs['clock']]
    assert clocks == sorted(clocks) and clocks[-1] > 1.0
    goal = probe.msgs['goal'][0]
    assert goal.header.frame_id == 'odom' and goal.pose.position.x == pytest.approx(2.4)
    status = probe.msgs['diag'][-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.name == 'sim_world'
    assert {'camera_rate_hz', 'real_time_factor', 'sim_time_s', 'collisions',
            'bad_commands'} <= set(values)
    assert float(values['real_time_factor']) > 1.0


def test_driving_into_a_wall_gives_one_collision_and_stops(make_sim, spin_until, tmp_path):
    world = tmp_path / 'wall.yaml'
    world.write_text(WALL_WORLD)
    node, probe, executor = make_sim(world_file=str(world), speed=5.0, camera_rate_hz=2.0,
                                     image_width=160, image_height=120)
    # Drive until the contact (a loaded machine runs the world slower than `speed`), then keep
    # pushing for a while: still one collision, and the robot stays at the wall.
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and not probe.events('collision'):
        probe.drive(0.5)
        spin_until(executor, lambda: False, timeout_s=0.05)
    push_until = time.monotonic() + 1.0
    while time.monotonic() < push_until:
        probe.drive(0.5)
        spin_until(executor, lambda: False, timeout_s=0.05)
    spin_until(executor, lambda: False, timeout_s=0.3)
    collisions = probe.events('collision')
    assert len(collisions) == 1, probe.events()
    assert collisions[0]['x'] == pytest.approx(2.0 - 0.18, abs=0.02)
    # Odometry is best effort: on a loaded machine the newest received one can be old. Wait for
    # one stamped well after the contact.
    after = collisions[0]['t'] + 1.0
    assert spin_until(executor, lambda: stamp_s(probe.msgs['odom'][-1]) > after, timeout_s=10.0)
    odom = probe.msgs['odom'][-1]
    assert 2.0 - 0.18 - 0.02 <= odom.pose.pose.position.x <= 2.0 - 0.18
    assert abs(odom.twist.twist.linear.x) < 1e-6


def test_reset_with_one_seed_reproduces_the_first_frames(make_sim, spin_until):
    node, probe, executor = make_sim(world_file='', seed=7, speed=4.0,
                                     image_width=320, image_height=240)

    def frames_after(t0):
        """The first image, depth and scan stamped after t0 (the robot stands still)."""
        def got():
            return all(any(stamp_s(m) > t0 for m in probe.msgs[k])
                       for k in ('image', 'depth', 'scan'))
        assert spin_until(executor, got, timeout_s=10.0)
        return tuple(bytes(next(m for m in probe.msgs[k] if stamp_s(m) > t0).data)
                     if k != 'scan' else
                     next(m for m in probe.msgs[k] if stamp_s(m) > t0)
                     for k in ('image', 'depth', 'scan'))

    def reset(seed):
        node.set_parameters([Parameter('seed', value=seed)])
        n = len(probe.events('reset'))
        future = probe.reset.call_async(Trigger.Request())
        assert spin_until(executor, lambda: future.done() and len(probe.events('reset')) > n,
                          timeout_s=10.0)
        assert future.result().success, future.result().message
        return probe.events('reset')[-1]['t']

    assert probe.reset.wait_for_service(timeout_sec=5.0)
    first = frames_after(reset(7))
    deadline = time.monotonic() + 1.0                  # move away, then start again
    while time.monotonic() < deadline:
        probe.drive(0.3, 1.0)
        spin_until(executor, lambda: False, timeout_s=0.05)
    # Let every queued command reach the world before the resets: a command delivered late, after
    # a reset, would move the robot of the new episode (seen on a loaded machine).
    probe.drive(0.0, 0.0)
    spin_until(executor, lambda: False, timeout_s=0.5)
    other = frames_after(reset(8))
    again = frames_after(reset(7))
    assert first[0] == again[0] and first[1] == again[1]
    assert first[0] != other[0]
    # Scan noise comes from (seed, step): equal when taken the same number of steps in.
    if abs((stamp_s(first[2]) - probe.events('reset')[0]['t'])
           - (stamp_s(again[2]) - probe.events('reset')[-1]['t'])) < 1e-6:
        assert list(first[2].ranges) == list(again[2].ranges)
    episodes = [e['episode'] for e in probe.events('reset')]
    assert episodes == sorted(episodes) and len(set(episodes)) == 3


def test_nan_cmd_vel_does_not_move_the_robot(make_sim, spin_until):
    node, probe, executor = make_sim(speed=5.0, camera_rate_hz=2.0, image_width=160,
                                     image_height=120)
    assert spin_until(executor, lambda: len(probe.msgs['odom']) > 5, timeout_s=10.0)
    start = probe.msgs['odom'][-1].pose.pose.position
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        probe.drive(float('nan'), 0.5)
        probe.drive(0.4, float('inf'))
        spin_until(executor, lambda: False, timeout_s=0.05)
    n = len(probe.msgs['odom'])
    spin_until(executor, lambda: len(probe.msgs['odom']) > n + 5, timeout_s=5.0)
    odom = probe.msgs['odom'][-1]
    assert odom.pose.pose.position.x == start.x and odom.pose.pose.position.y == start.y
    assert odom.twist.twist.linear.x == 0.0 and odom.twist.twist.angular.z == 0.0
    assert node._bad_commands > 0


def test_bad_world_file_stops_with_file_and_field(ros_env, tmp_path):
    bad = tmp_path / 'room.yaml'
    bad.write_text(WALL_WORLD + 'boxes:\n  - {center: [0, 1], size: [1, 1]}\n'
                   '  - {center: [0, -1], size: [1, 1]}\n  - {center: [1, 1], size: [0.5]}\n')
    proc = _run(['-p', f'world_file:={bad}'], ros_env)
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert 'room.yaml: boxes[2].size must be two positive numbers' in err
    assert 'Traceback' not in err + out


def test_sigint_exits_zero_without_traceback(ros_env):
    proc = _run(['-p', 'speed:=5.0', '-p', 'image_width:=160', '-p', 'image_height:=120'], ros_env)
    try:
        deadline = time.monotonic() + 15
        line = ''
        while time.monotonic() < deadline and 'world' not in line:
            line = proc.stderr.readline()              # the start-up log line
        assert 'world' in line
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert 'Traceback' not in err and 'never retrieved' not in err


def test_bad_world_file_parameter_is_refused(make_sim, tmp_path):
    node, probe, executor = make_sim(speed=1.0, image_width=160, image_height=120)
    bad = tmp_path / 'broken.yaml'
    bad.write_text('start: {x: 0, y: 0}\n')
    result = node.set_parameters([Parameter('world_file', value=str(bad))])[0]
    assert not result.successful and 'broken.yaml: world.target is missing' in result.reason
    assert node.get_parameter('world_file').value == 'room.yaml'
    result = node.set_parameters([Parameter('world_file', value='corridor')])[0]
    assert result.successful
