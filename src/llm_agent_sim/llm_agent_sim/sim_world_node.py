"""ROS 2 node `sim_world`: wires the built-in 2D world (world.py, render.py) to topics.

Sim time drives everything: a physics timer on the steady clock advances the world in fixed
steps of 1/physics_rate_hz, `speed` times faster than real time, and publishes /clock. Sensor
rates are in sim time; the camera and the scan run in their own callback groups, woken by guard
conditions, so rendering never delays physics (a slow render drops frames, shown on diagnostics).
"""
from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from llm_agent_common.config import ConfigNotFound, installed_config
from llm_agent_common.node import (
    Component,
    GuardedNode,
    LatestWorker,
    Param,
    Params,
    run_component,
    sensor_pub_qos,
)
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, LaserScan
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

from .render import Camera
from .world import Sim, SimParams, World, WorldError, generate_world, load_world, resolve_world_path

NODE_NAME = 'sim_world'
ODOM_FRAME, BASE_FRAME = 'odom', 'base_link'
CAMERA_FRAME, LASER_FRAME = 'camera_optical_frame', 'laser_link'
MAX_TICK_HZ = 250.0          # the physics thread never steps faster than this in real time
MAX_CATCH_UP_S = 0.25        # real seconds of backlog physics may catch up in one tick

# Read-only ones are fixed at start-up; the others apply live (the world file at the next
# sim/reset, checked when set).
PARAMETERS: List[Param] = [
    Param('world_file', 'room.yaml', 'World file: a path, or a name in the installed config/worlds; '
          'empty = generate a world from `seed`', check=lambda v: _world_file_problem(v)),
    Param('seed', 0, 'Seed of the episode (generated world, scan noise); used on start and sim/reset',
          range=(0, 2**31 - 1)),
    Param('speed', 1.0, 'Sim seconds per real second (faster than real time above 1)', range=(0.1, 50.0)),
    Param('physics_rate_hz', 100.0, 'Physics steps per sim second', range=(10.0, 1000.0)),
    Param('camera_rate_hz', 10.0, 'Camera frames per sim second (image, depth, camera_info)',
          range=(0.5, 60.0)),
    Param('scan_rate_hz', 10.0, 'Laser scans per sim second', range=(0.5, 100.0)),
    Param('odom_rate_hz', 50.0, 'Odometry messages per sim second', range=(1.0, 500.0)),
    # 20: the graph's fastest sim-time timers (control loop, brain deadlines) run at 20 Hz and
    # fire on every message; each message wakes a thread in every sim-time node (GuardedNode
    # takes /clock off the executor, whose wake-up per message cost a node ~0.7 ms of CPU).
    Param('clock_rate_hz', 20.0, '/clock messages per sim second: every node with use_sim_time '
          'wakes for each one, so a lower rate costs the graph less CPU and makes sim-time timers '
          'coarser (at most one period late)', range=(10.0, 1000.0)),
    Param('image_width', 640, 'Camera image width in pixels', range=(16, 1920), read_only=True),
    Param('image_height', 480, 'Camera image height in pixels', range=(16, 1080), read_only=True),
    Param('camera_hfov_rad', math.radians(60.0), 'Horizontal field of view of the pinhole camera',
          range=(0.2, 3.0), read_only=True),
    Param('camera_height_m', 0.25, 'Height of the camera above the floor',
          range=(0.05, 0.95), read_only=True),
    Param('scan_beams', 360, 'Beams of the 360 degree laser scan (angle_min -pi)',
          range=(8, 4000), read_only=True),
    Param('scan_range_min_m', 0.05, 'Minimum range of the laser', range=(0.0, 1.0), read_only=True),
    Param('scan_range_max_m', 8.0, 'Maximum range of the laser; farther = inf',
          range=(0.5, 100.0), read_only=True),
    Param('scan_noise_std_m', 0.01, 'Standard deviation of Gaussian range noise', range=(0.0, 0.5)),
    Param('max_linear_speed_mps', 0.5, 'Linear speed limit of the base', range=(0.01, 5.0)),
    Param('max_angular_speed_radps', 1.5, 'Angular speed limit of the base', range=(0.01, 10.0)),
    Param('max_linear_accel_mps2', 1.0, 'Linear acceleration limit of the base', range=(0.01, 20.0)),
    Param('max_angular_accel_radps2', 3.0, 'Angular acceleration limit of the base', range=(0.01, 50.0)),
    Param('goal_tolerance_m', 0.6, 'Distance of the robot centre to the goal that counts as reached',
          range=(0.05, 5.0)),
    Param('cmd_vel_timeout_s', 0.5, 'The base stops when no cmd_vel came for this long (sim time)',
          range=(0.05, 10.0)),
    Param('cmd_vel_stamped', False, 'cmd_vel is geometry_msgs/TwistStamped (the skill server\'s '
          'cmd_vel_stamped) instead of Twist', read_only=True),
]
SIM_PARAM_NAMES = ('max_linear_speed_mps', 'max_angular_speed_radps', 'max_linear_accel_mps2',
                   'max_angular_accel_radps2', 'goal_tolerance_m', 'cmd_vel_timeout_s')


def _world_file_problem(value: str) -> str:
    """'' when the world file loads (or is empty: generated), else why not."""
    try:
        make_world(str(value), 0, 0.6)
    except WorldError as exc:
        return str(exc)
    return ''


def _stamp(t: float) -> Time:
    sec = int(math.floor(t))
    return Time(sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999))


def worlds_dir() -> Optional[str]:
    """Return the suite's installed config/worlds, or None without it (then only paths work)."""
    try:
        return installed_config('worlds')
    except ConfigNotFound:
        return None


def make_world(world_file: str, seed: int, goal_tolerance_m: float) -> World:
    """Load the named world file, or generate one from seed when world_file is empty."""
    if not world_file.strip():
        return generate_world(seed, goal_tolerance_m)
    return load_world(resolve_world_path(world_file.strip(), worlds_dir()))


class _Rate:
    """Count publications to report rates per sim second and per real second."""

    def __init__(self) -> None:
        self.count = 0
        self.last = (0, 0.0, time.monotonic())

    def rates(self, t_sim: float) -> tuple:
        n0, s0, r0 = self.last
        now = time.monotonic()
        self.last = (self.count, t_sim, now)
        dn = self.count - n0
        return (dn / (t_sim - s0) if t_sim > s0 else 0.0, dn / (now - r0) if now > r0 else 0.0)


class SimWorldNode(GuardedNode):
    """Publish camera, depth, scan, odometry, clock and events of the built-in world."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.params = Params(self, PARAMETERS, on_change=self._apply_parameters)
        self._p: Dict[str, Any] = self.params.values
        self._lock = threading.Lock()
        world = make_world(self._p['world_file'], self._p['seed'], self._p['goal_tolerance_m'])
        self.sim = Sim(world, self._sim_params(), seed=self._p['seed'])
        self.camera = Camera(self._p['image_width'], self._p['image_height'],
                             self._p['camera_hfov_rad'], self._p['camera_height_m'])
        self._bad_commands = 0
        self._render_s = 0.0
        self._renders = 0
        self._rates = {k: _Rate() for k in ('camera', 'scan', 'odom')}
        # Each sensor's next instant on its sim-time grid; None: the grid starts at the next
        # physics step (at start and after a reset; a grid from t=0 put the first frame, sampled
        # after the first step, off the grid of the frames that followed).
        self._due: Dict[str, Optional[float]] = {k: None for k in ('camera', 'scan', 'odom', 'clock')}
        self._debt = 0.0
        self._last_tick = time.monotonic()
        self._rtf = (time.monotonic(), 0.0, 0.0)
        self._pending_events: List[Dict[str, Any]] = []
        # The episode state at each sensor's due instant: captured by physics, taken by the sensor.
        self._wanted: Dict[str, Any] = {'camera': None, 'scan': None}

        # REP 2003: sensor publishers keep the system default (reliable) so that every
        # subscriber, reliable or best effort, can connect.
        sensor_out = sensor_pub_qos(5)
        self.pub_image = self.create_publisher(Image, 'camera/image_raw', sensor_out)
        self.pub_depth = self.create_publisher(Image, 'camera/depth/image_raw', sensor_out)
        self.pub_info = self.create_publisher(CameraInfo, 'camera/camera_info', sensor_out)
        self.pub_scan = self.create_publisher(LaserScan, 'scan', sensor_out)
        self.pub_odom = self.create_publisher(Odometry, 'odom', sensor_out)
        self.pub_clock = self.create_publisher(ClockMsg, '/clock', QoSProfile(depth=10))
        self.pub_events = self.create_publisher(
            String, 'sim/events', QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.pub_goal = self.create_publisher(
            PoseStamped, 'goal_pose',
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.pub_diag = self.create_publisher(DiagnosticArray, 'diagnostics', QoSProfile(depth=10))

        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        # Physics and the sensors run in threads of their own, off the executor: a timer at
        # 100 Hz and a guard condition per frame cost an rclpy wake-up (~1 ms of Python) each,
        # and the executor now wakes only for commands, the reset service and diagnostics.
        errors = self.callback_errors
        self._camera_worker = LatestWorker(errors.wrap('camera', lambda _: self._on_camera()),
                                           'sim_camera')
        self._scan_worker = LatestWorker(errors.wrap('scan', lambda _: self._on_scan()),
                                         'sim_scan')
        self.create_subscription(TwistStamped if self._p['cmd_vel_stamped'] else Twist, 'cmd_vel',
                                 self._on_cmd_vel, QoSProfile(depth=10))
        self.create_service(Trigger, 'sim/reset', self._on_reset)
        self.create_timer(1.0, self._on_diagnostics, clock=self._steady)
        self._tick_hz = self._physics_tick_hz()
        self._stop = threading.Event()
        self._physics_thread = threading.Thread(target=self._run_physics, name='sim_physics',
                                                daemon=True)
        self._physics_thread.start()
        self._publish_goal()
        self.get_logger().info(
            f'world {world.name!r} (seed {self._p["seed"]}), camera '
            f'{self.camera.width}x{self.camera.height} hfov {self.camera.hfov_rad:.3f} rad, '
            f'speed {self._p["speed"]}x')

    # ------------------------------------------------------------------ parameters

    def _sim_params(self) -> SimParams:
        return SimParams(**{n: float(self._p[n]) for n in SIM_PARAM_NAMES})

    def _physics_tick_hz(self) -> float:
        return min(self._p['physics_rate_hz'] * self._p['speed'], MAX_TICK_HZ)

    def _apply_parameters(self, _values: Dict[str, Any]) -> None:
        with self._lock:
            self.sim.params = self._sim_params()
        self._tick_hz = self._physics_tick_hz()   # the physics thread's next wait uses it

    def close(self) -> None:
        """Stop physics and the sensors (run_node, before the node is destroyed)."""
        self._stop.set()
        self._physics_thread.join(2.0)
        self._camera_worker.stop()
        self._scan_worker.stop()

    def destroy_node(self) -> None:  # type: ignore[override]
        self.close()   # idempotent: a node made without run_node (tests) stops its threads too
        super().destroy_node()

    # ------------------------------------------------------------------ physics

    def _run_physics(self) -> None:
        step = self.callback_errors.wrap('physics', self._on_physics)
        deadline = time.monotonic()
        while True:
            deadline += 1.0 / self._tick_hz
            now = time.monotonic()
            if deadline < now:   # behind (a stalled machine): carry on from now, no burst;
                deadline = now   # _on_physics catches up on the sim time it owes
            if self._stop.wait(deadline - now):
                return
            step()

    def _on_physics(self) -> None:
        now = time.monotonic()
        elapsed, self._last_tick = now - self._last_tick, now
        dt = 1.0 / self._p['physics_rate_hz']
        events: List[Dict[str, Any]] = []
        with self._lock:
            speed = self._p['speed']
            self._debt = min(self._debt + min(elapsed, MAX_CATCH_UP_S) * speed,
                             MAX_CATCH_UP_S * speed)
            tick_clock = False
            odom_states = []
            due = {name: False for name in self._wanted}
            while self._debt >= dt:
                events += self.sim.step(dt)
                self._debt -= dt
                # Each sensor samples the episode at its own instants on a sim-time grid.
                if self._take_due('odom'):
                    odom_states.append(self.sim.state())
                tick_clock = self._take_due('clock') or tick_clock
                for name in self._wanted:
                    if self._take_due(name):
                        self._wanted[name] = self.sim.state()
                        due[name] = True
            events, self._pending_events = self._pending_events + events, []
            t = self.sim.t
        if tick_clock:
            self.pub_clock.publish(ClockMsg(clock=_stamp(t)))
        for event in events:
            self.pub_events.publish(String(data=json.dumps(event)))
            if event['type'] == 'collision':
                self.get_logger().info(f'collision with a {event.get("obstacle")} at '
                                       f'({event["x"]:.2f}, {event["y"]:.2f})')
            elif event['type'] == 'goal_reached':
                self.get_logger().info(f'goal reached at t={event["t"]:.2f}')
        for state in odom_states:
            self._publish_odom(state)
        if due['camera']:
            self._camera_worker.submit(True)
        if due['scan']:
            self._scan_worker.submit(True)

    def _take_due(self, name: str) -> bool:
        """Tell whether the sensor is due at the current sim time and schedule its next time."""
        t = self.sim.t
        period = 1.0 / self._p[f'{name}_rate_hz']
        if self._due[name] is None:
            self._due[name] = t + period
            return True
        half_step = 0.5 / self._p['physics_rate_hz']      # sim time is a float sum of steps
        if t < self._due[name] - half_step:
            return False
        # Next instant on this sensor's grid; after a stall, skip the missed ones (no burst).
        missed = math.floor((t + half_step - self._due[name]) / period)
        self._due[name] += (missed + 1) * period
        return True

    def _publish_odom(self, s: Any) -> None:
        msg = Odometry()
        msg.header = Header(stamp=_stamp(s.t), frame_id=ODOM_FRAME)
        msg.child_frame_id = BASE_FRAME
        msg.pose.pose.position.x, msg.pose.pose.position.y = s.x, s.y
        msg.pose.pose.orientation.z = math.sin(s.yaw / 2.0)
        msg.pose.pose.orientation.w = math.cos(s.yaw / 2.0)
        msg.pose.covariance[0] = msg.pose.covariance[7] = msg.pose.covariance[35] = 1e-4
        msg.twist.twist.linear.x = s.v
        msg.twist.twist.angular.z = s.w
        msg.twist.covariance[0] = msg.twist.covariance[35] = 1e-4
        self.pub_odom.publish(msg)
        self._rates['odom'].count += 1

    # ------------------------------------------------------------------ sensors

    def _on_camera(self) -> None:
        with self._lock:
            s, self._wanted['camera'] = self._wanted['camera'], None
            world = self.sim.world
        if s is None:
            return
        start = time.perf_counter()
        bgr, depth = self.camera.render(world, s.x, s.y, s.yaw)
        if s.episode != self.sim.episode:
            return  # a reset came while rendering: no frame of the old episode after it
        self._render_s += time.perf_counter() - start
        self._renders += 1
        header = Header(stamp=_stamp(s.t), frame_id=CAMERA_FRAME)
        h, w = self.camera.height, self.camera.width
        image = Image(header=header, height=h, width=w, encoding='bgr8', is_bigendian=0,
                      step=w * 3)
        image.data = bgr.tobytes()
        depth_msg = Image(header=header, height=h, width=w, encoding='16UC1',
                          is_bigendian=int(sys.byteorder == 'big'), step=w * 2)
        depth_msg.data = depth.tobytes()
        info = CameraInfo(header=header, height=h, width=w, distortion_model='plumb_bob')
        info.d = [0.0] * 5
        info.k = list(self.camera.K)
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = list(self.camera.P)
        self.pub_image.publish(image)
        self.pub_depth.publish(depth_msg)
        self.pub_info.publish(info)
        self._rates['camera'].count += 1

    def _on_scan(self) -> None:
        p = self._p
        with self._lock:
            s, self._wanted['scan'] = self._wanted['scan'], None
            if s is None or s.episode != self.sim.episode:
                return
            ranges = self.sim.scan(p['scan_beams'], -math.pi, p['scan_range_min_m'],
                                   p['scan_range_max_m'], p['scan_noise_std_m'], state=s)
        n = len(ranges)
        msg = LaserScan(header=Header(stamp=_stamp(s.t), frame_id=LASER_FRAME))
        msg.angle_min = -math.pi
        msg.angle_increment = 2.0 * math.pi / n
        msg.angle_max = msg.angle_min + msg.angle_increment * (n - 1)
        msg.time_increment = 0.0
        msg.scan_time = 1.0 / p['scan_rate_hz']
        msg.range_min = float(p['scan_range_min_m'])
        msg.range_max = float(p['scan_range_max_m'])
        msg.ranges = ranges.tolist()
        self.pub_scan.publish(msg)
        self._rates['scan'].count += 1

    # ------------------------------------------------------------------ commands, reset

    def _on_cmd_vel(self, msg: Twist | TwistStamped) -> None:
        if isinstance(msg, TwistStamped):
            msg = msg.twist
        with self._lock:
            ok = self.sim.command(msg.linear.x, msg.angular.z)
            if not ok:
                self._bad_commands += 1
        if not ok:
            self.get_logger().warn(
                f'cmd_vel with a non-finite value (linear.x={msg.linear.x}, '
                f'angular.z={msg.angular.z}) ignored; the base is commanded to stop',
                throttle_duration_sec=2.0)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        seed, world_file = int(self._p['seed']), str(self._p['world_file'])
        try:
            world = make_world(world_file, seed, float(self._p['goal_tolerance_m']))
        except WorldError as exc:
            response.success, response.message = False, str(exc)
            return response
        with self._lock:
            event = self.sim.reset(world, seed)
            self._pending_events.append(event)
            for name in self._due:                  # first frames right after the reset
                self._due[name] = None
            self._wanted = {name: None for name in self._wanted}
        self._publish_goal()
        response.success = True
        response.message = f'episode {event["episode"]} in world {world.name!r} (seed {seed})'
        self.get_logger().info(response.message)
        return response

    def _publish_goal(self) -> None:
        with self._lock:
            gx, gy = self.sim.world.goal
            t = self.sim.t
        msg = PoseStamped(header=Header(stamp=_stamp(t), frame_id=ODOM_FRAME))
        msg.pose.position.x, msg.pose.position.y = gx, gy
        msg.pose.orientation.w = 1.0
        self.pub_goal.publish(msg)

    # ------------------------------------------------------------------ diagnostics

    def _on_diagnostics(self) -> None:
        with self._lock:
            t = self.sim.t
            collisions, goals = self.sim.collisions, self.sim.goals_reached
            episode, world = self.sim.episode, self.sim.world.name
        now = time.monotonic()
        r0, t0, _ = self._rtf
        rtf = (t - t0) / (now - r0) if now > r0 else 0.0
        self._rtf = (now, t, rtf)
        status = DiagnosticStatus(name=self.get_name(), hardware_id='llm_agent_sim')
        values = [('sim_time_s', f'{t:.3f}'), ('real_time_factor', f'{rtf:.2f}'),
                  ('speed', f'{self._p["speed"]:.2f}'), ('world', world),
                  ('episode', str(episode)), ('collisions', str(collisions)),
                  ('goals_reached', str(goals)), ('bad_commands', str(self._bad_commands))]
        slow = []
        for name, rate in self._rates.items():
            per_sim, per_real = rate.rates(t)
            values += [(f'{name}_rate_hz', f'{per_sim:.2f}'),
                       (f'{name}_rate_real_hz', f'{per_real:.2f}')]
            if t > t0 and per_sim < 0.7 * self._p[f'{name}_rate_hz']:
                slow.append(name)
        mean_ms = 1000.0 * self._render_s / self._renders if self._renders else 0.0
        values.append(('render_ms', f'{mean_ms:.2f}'))
        self._render_s, self._renders = 0.0, 0
        values += list(self.callback_errors.key_values().items())
        status.values = [KeyValue(key=k, value=v) for k, v in values]
        if slow:
            status.level = DiagnosticStatus.WARN
            status.message = 'below the configured rate (sim time): ' + ', '.join(slow)
        else:
            status.level = DiagnosticStatus.OK
            status.message = f'running at {rtf:.2f}x real time'
        self.pub_diag.publish(DiagnosticArray(header=Header(stamp=_stamp(t)), status=[status]))


COMPONENT = Component(SimWorldNode, fatal=(WorldError, ValueError))


def main(args: Optional[List[str]] = None) -> int:
    """Run the sim_world node until Ctrl-C; return 0, or 1 when the world cannot be built."""
    return run_component(COMPONENT, args)


if __name__ == '__main__':
    sys.exit(main())
