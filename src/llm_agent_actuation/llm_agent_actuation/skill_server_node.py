"""ROS 2 node `skill_server`: the `agent/execute_skill` action server around the pure executive.

Goals are validated at goal time (rejections logged, counted and published as JSON on
`agent/skill_rejections`), run on their resources in parallel threads of a MultiThreadedExecutor,
stepped at `control_rate_hz` by one control timer through the safety guard, and report feedback
at `feedback_rate_hz`.
"""
from __future__ import annotations

import json
import math
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from llm_agent_common.angles import yaw_from_quaternion
from llm_agent_common.catalog import load_catalog
from llm_agent_common.node import (
    LASER_POSE_PARAMS,
    Component,
    GuardedNode,
    Param,
    Params,
    latched_qos,
    run_component,
)
from nav_msgs.msg import Odometry
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, String

from llm_agent_interfaces.action import ExecuteSkill
from llm_agent_interfaces.msg import Observation
from llm_agent_interfaces.srv import ApproveSkill

from .approval import APPROVED, ApprovalBook
from .executive import CANCELED, FAILED, SUCCEEDED, Executive, GoalRun, elapsed
from .guard import Footprint, SafetyGuard, Watchdog
from .ramp import VelocityRamp
from .skill_api import Pose2D, SkillConfig
from .stats import ServerStats

# Every parameter is read when the server starts (read-only: `ros2 param set` is refused).
PARAMETERS: List[Param] = [
    Param('catalog_path', '', 'skills.yaml to load; empty = the installed config/skills.yaml',
          read_only=True),
    Param('control_rate_hz', 20.0, 'rate of the control loop stepping skills and commanding cmd_vel',
          range=(5.0, 100.0), read_only=True),
    Param('feedback_rate_hz', 10.0, 'rate of action feedback per goal (at least 5 Hz)',
          range=(5.0, 50.0), read_only=True),
    Param('safety_distance_m', 0.35, 'forward motion stops when the scan shows an obstacle closer than this'
          ' ahead', range=(0.05, 5.0), read_only=True),
    Param('footprint_radius_m', 0.2, 'radius of the circle around the base centre that the guard keeps '
          'clear along the commanded path (the sim robot is 0.18 m)', range=(0.01, 3.0),
          read_only=True),
    *LASER_POSE_PARAMS,
    Param('scan_timeout_s', 1.0, 'no scan for this long: forward motion not allowed',
          range=(0.05, 10.0), read_only=True),
    Param('watchdog_timeout_s', 0.5, 'zero velocity published when idle or when commands stop for this long',
          range=(0.05, 5.0), read_only=True),
    Param('approval_timeout_s', 30.0, 'a goal waiting for approval is rejected after this long',
          range=(0.1, 3600.0), read_only=True),
    Param('max_linear_speed_mps', 0.5, 'forward/backward speed limit of every skill',
          range=(0.01, 5.0), read_only=True),
    Param('max_angular_speed_rps', 1.5, 'turn rate limit of every skill', range=(0.05, 10.0), read_only=True),
    Param('max_linear_accel_mps2', 1.0, 'how fast the commanded forward speed may change (what '
          'the base can follow); a stop goes out at once', range=(0.05, 20.0), read_only=True),
    Param('max_angular_accel_rps2', 3.0, 'how fast the commanded turn rate may change; a stop '
          'goes out at once', range=(0.05, 50.0), read_only=True),
    Param('cmd_vel_stamped', False, 'publish cmd_vel as geometry_msgs/TwistStamped (what '
          "Jazzy's diff_drive_controller and Nav2 take) instead of Twist", read_only=True),
    Param('base_frame_id', 'base_link', 'frame_id of a stamped cmd_vel', read_only=True,
          check=lambda v: '' if str(v).strip() else 'base_frame_id must not be empty'),
    Param('position_tolerance_m', 0.05, 'move_forward / navigate_to arrive within this distance',
          range=(0.005, 1.0), read_only=True),
    Param('angle_tolerance_rad', 0.03, 'turn arrives within this angle', range=(0.001, 0.5), read_only=True),
    Param('target_size_stop', 0.6, 'approach_target succeeds when target_size (image fraction) reaches this',
          range=(0.01, 1.0), read_only=True),
    Param('approach_speed_mps', 0.25, 'forward speed of approach_target', range=(0.01, 2.0), read_only=True),
    Param('observation_timeout_s', 1.0, 'perception features older than this are ignored',
          range=(0.05, 10.0), read_only=True),
    Param('speech_chars_per_s', 15.0, 'speak holds the speaker for len(text) / this seconds',
          range=(1.0, 100.0), read_only=True),
    Param('max_active_goals', 16, 'goals running or waiting at once; more are rejected as busy',
          range=(1, 64), read_only=True),
    Param('result_keep_s', 2.0, 'how long a finished goal result stays available to clients',
          range=(1.0, 900.0), read_only=True),
    Param('diagnostics_period_s', 1.0, 'period of the diagnostics status', range=(0.1, 60.0), read_only=True),
]

# SkillConfig field -> the parameter that sets it.
SKILL_CONFIG_PARAMS = {
    'max_linear_mps': 'max_linear_speed_mps', 'max_angular_rps': 'max_angular_speed_rps',
    'safety_distance_m': 'safety_distance_m', 'position_tolerance_m': 'position_tolerance_m',
    'angle_tolerance_rad': 'angle_tolerance_rad', 'target_size_stop': 'target_size_stop',
    'observation_timeout_s': 'observation_timeout_s', 'speech_chars_per_s': 'speech_chars_per_s',
    'approach_speed_mps': 'approach_speed_mps',
}

# Requests waiting to be answered, at most: a burst of goals faster than Python can accept
# them (measured ~30-50 goals/s here) waits and is answered late; beyond this many the oldest
# waiting request is dropped (its client times out) instead of memory growing without bound.
MAX_QUEUED_REQUESTS = 1000
_REQUESTS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=MAX_QUEUED_REQUESTS,
                       reliability=ReliabilityPolicy.RELIABLE)


class _GoalIdActionServer(ActionServer):
    """ActionServer that lets the goal callback know the goal's id (for rejection reports).

    rclpy (Jazzy) passes only the goal message to the goal callback; the id is recorded here in
    a thread-local just before the callback runs synchronously in the same thread.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        self.current = threading.local()
        super().__init__(*args, **kwargs)

    async def _execute_goal_request(self, request_header_and_message):  # type: ignore[override]
        try:
            self.current.goal_id = bytes(request_header_and_message[1].goal_id.uuid).hex()
        except Exception:  # pragma: no cover - another rclpy layout: report no id
            self.current.goal_id = ''
        return await super()._execute_goal_request(request_header_and_message)


class SkillServer(GuardedNode):
    """The `agent/execute_skill` action server with its safety guard and watchdog."""

    def __init__(self, **kwargs: Any):
        super().__init__('skill_server', **kwargs)
        self.params = Params(self, PARAMETERS)
        p = self.p = self.params.values
        self.catalog = load_catalog(p['catalog_path'] or None)
        self.guard = SafetyGuard(p['safety_distance_m'], p['scan_timeout_s'], Footprint(
            p['footprint_radius_m'], p['laser_x_m'], p['laser_y_m'], p['laser_yaw_rad']))
        self.watchdog = Watchdog(p['watchdog_timeout_s'])
        self.stats = ServerStats()
        self.approvals = ApprovalBook()
        config = SkillConfig(**{f: p[name] for f, name in SKILL_CONFIG_PARAMS.items()})
        self.exec = Executive(self.catalog, config, self.guard, self.stats, p['max_active_goals'])
        for name in self.catalog.names:   # fail early on a plugin that does not load
            try:
                self.exec.skill_class(name)
            except Exception as exc:
                self.get_logger().error(f'skill {name!r}: {exc}; its goals will be rejected')
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._pub_lock = threading.Lock()
        self._base_zeroed = False
        self._accepted_params: Dict[str, Dict[str, Any]] = {}

        ctl = MutuallyExclusiveCallbackGroup()
        goals = ReentrantCallbackGroup()
        self.ramp = VelocityRamp(p['max_linear_accel_mps2'], p['max_angular_accel_rps2'],
                                 1.0 / p['control_rate_hz'])
        self.cmd_pub = self.create_publisher(TwistStamped if p['cmd_vel_stamped'] else Twist,
                                             'cmd_vel', 10)
        self.speech_pub = self.create_publisher(String, 'agent/speech', 10)
        self.reject_pub = self.create_publisher(String, 'agent/skill_rejections', 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)
        # Read by the control loop at its own rate, newest message first: the guard and the
        # skills look at them only there, and a callback per 50 Hz odometry message cost an
        # executor wake-up each.
        self._inputs = [
            self.create_polled_subscription(Odometry, 'odom', self._on_odom,
                                            qos_profile_sensor_data),
            self.create_polled_subscription(LaserScan, 'scan', self._on_scan,
                                            qos_profile_sensor_data),
            self.create_polled_subscription(Observation, 'agent/observation',
                                            self._on_observation, qos_profile_sensor_data)]
        # Latched: a server that starts (or restarts) while the e-stop is engaged sees it.
        self.create_subscription(Bool, 'agent/estop', self._on_estop, latched_qos(),
                                 callback_group=ctl)
        self.action = _GoalIdActionServer(
            self, ExecuteSkill, 'agent/execute_skill', execute_callback=self._execute,
            goal_callback=self.callback_errors.wrap('goal', self._on_goal, lambda *_: GoalResponse.REJECT),
            cancel_callback=self.callback_errors.wrap('cancel', self._on_cancel,
                                                      lambda *_: CancelResponse.REJECT),
            callback_group=goals, result_timeout=int(math.ceil(p['result_keep_s'])),
            goal_service_qos_profile=_REQUESTS,
            cancel_service_qos_profile=_REQUESTS,
            result_service_qos_profile=_REQUESTS)
        self.create_service(ApproveSkill, 'agent/approve_skill', self._on_approve,
                            qos_profile=QoSProfile(depth=10), callback_group=goals)
        # The control loop runs only while a goal exists: idle, it would wake 20 times a second
        # to step nothing (_execute starts it again; a goal's check polls the inputs itself).
        self._poll_lock = threading.Lock()
        self._control_timer = self.create_timer(1.0 / p['control_rate_hz'], self._control,
                                                callback_group=ctl)
        self._control_timer.cancel()
        # A goal that starts is stepped at once (its first command goes out now, not at the next
        # control period: 37 ms p50 at 20 Hz in bench section 5), in the control loop's group.
        self._step_now = self.create_guard_condition(self._control, callback_group=ctl)
        # The watchdog runs on the steady clock: it must fire even when sim time stands still.
        # With a goal it looks every 0.1 s for commands that stopped coming; idle it only
        # repeats the zero command, once a timeout.
        self._watchdog_periods_ns = (int(min(0.1, p['watchdog_timeout_s'] / 2.0) * 1e9),
                                     int(p['watchdog_timeout_s'] * 1e9))
        self._watchdog_timer = self.create_timer(
            p['watchdog_timeout_s'], self._watchdog,
            callback_group=MutuallyExclusiveCallbackGroup(), clock=self._steady)
        self.create_timer(p['diagnostics_period_s'], self._diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup())
        self._throttle: Dict[str, float] = {}
        self.get_logger().info(f'serving agent/execute_skill with skills: {", ".join(self.catalog.names)}')

    # -- time and publishing ---------------------------------------------------------------
    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def steady_s(self) -> float:
        return self._steady.now().nanoseconds * 1e-9

    def close(self) -> None:
        """On the way out (run_node, before the node is destroyed): end every goal, let their
        execute callbacks send the results, and command the base to zero."""
        self.exec.shutdown()
        time.sleep(2.0 / self.p['feedback_rate_hz'])
        self.publish_cmd(0.0, 0.0)

    def publish_cmd(self, v: float, w: float) -> None:
        """Command the base toward (v, w) within the acceleration limits (a stop: at once)."""
        with self._pub_lock:
            v, w = self.ramp(float(v), float(w), self.steady_s())
            if self.p['cmd_vel_stamped']:
                msg = TwistStamped()
                msg.header.stamp = self.get_clock().now().to_msg()
                msg.header.frame_id = self.p['base_frame_id']
                twist = msg.twist
            else:
                msg = twist = Twist()
            twist.linear.x, twist.angular.z = v, w
            self.cmd_pub.publish(msg)
            self.watchdog.commanded(self.steady_s())

    def _warn_throttled(self, key: str, text: str, period_s: float = 2.0) -> None:
        now = time.monotonic()
        if now - self._throttle.get(key, -math.inf) >= period_s:
            self._throttle[key] = now
            self.get_logger().warning(text)

    # -- inputs ----------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        q = msg.pose.pose.orientation
        vals = (msg.pose.pose.position.x, msg.pose.pose.position.y, q.x, q.y, q.z, q.w)
        if not all(math.isfinite(v) for v in vals):
            self._warn_throttled('odom', 'odom with non-finite pose ignored')
            return
        self.exec.world.pose = Pose2D(vals[0], vals[1], yaw_from_quaternion(*vals[2:]))
        self.exec.world.pose_stamp = self.now_s()

    def _on_scan(self, msg: LaserScan) -> None:
        now = self.now_s()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if now - stamp > 10.0 * self.p['scan_timeout_s']:
            self._warn_throttled('stamp', f'scan stamped {now - stamp:.1f} s before this node\'s '
                                 'clock: forward motion refused (do the laser driver and this '
                                 'node use the same clock? use_sim_time?)', 10.0)
        clearance = self.guard.update_scan(msg.ranges, msg.angle_min, msg.angle_increment, now,
                                           msg.range_max, msg.range_min, stamp)
        self.exec.world.front_clearance_m = clearance

    def _on_estop(self, msg: Bool) -> None:
        """agent/estop true: zero the base now and refuse motion goals until false."""
        engaged = bool(msg.data)
        if engaged == bool(self.exec.estop_reason):
            return
        self.exec.set_estop(engaged, 'agent/estop')
        if engaged:
            self.publish_cmd(0.0, 0.0)
            self.get_logger().warning('e-stop engaged on agent/estop: base zeroed, motion goals '
                                      'refused until it is released')
        else:
            self.get_logger().info('e-stop released on agent/estop')

    def _on_observation(self, msg: Observation) -> None:
        if len(msg.feature_names) != len(msg.feature_values):
            self._warn_throttled('obs', 'observation with mismatched names/values ignored')
            return
        self.exec.world.features = {n: float(v) for n, v in zip(msg.feature_names, msg.feature_values)
                                    if math.isfinite(v)}
        self.exec.world.features_stamp = self.now_s()

    # -- action server ---------------------------------------------------------------------
    def _on_goal(self, goal: ExecuteSkill.Goal) -> GoalResponse:
        goal_id = getattr(self.action.current, 'goal_id', '')
        self._poll_inputs()   # the guard judges the goal on the newest scan, idle or not
        params, reason = self.exec.check_goal(goal.skill, goal.params_json, self.now_s())
        if not reason:
            with self._pub_lock:
                self._accepted_params[goal_id] = params  # validated once, here
            return GoalResponse.ACCEPT
        cls = self.stats.reject(reason)
        self._warn_throttled(f'reject-{cls}', f'goal {goal_id[:8]} rejected ({cls}): {reason}', 1.0)
        self.reject_pub.publish(String(data=json.dumps(
            {'goal_id': goal_id, 'skill': goal.skill, 'reason': reason, 'class': cls})))
        return GoalResponse.REJECT

    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        goal_id = bytes(goal_handle.goal_id.uuid).hex()
        with self.exec.lock:
            if self.exec.cancel(goal_id):
                self.publish_cmd(0.0, 0.0)   # now, not at the next control period
        self.approvals.withdraw(goal_id)
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle: Any) -> ExecuteSkill.Result:
        goal_id = bytes(goal_handle.goal_id.uuid).hex()
        req = goal_handle.request
        with self._pub_lock:
            params = self._accepted_params.pop(goal_id, None)
        if params is None:  # only if rclpy did not tell the goal callback the goal's id
            params, _ = self.exec.catalog.validate(req.skill, req.params_json)
        run = self.exec.create_run(goal_id, req.skill, params, self.now_s())
        self._wake_control()
        period = 1.0 / self.p['feedback_rate_hz']
        try:
            if goal_handle.is_cancel_requested:
                self.exec.cancel(goal_id)
            elif run.spec.requires_approval:
                self._await_approval(goal_handle, run, period)
            if not run.done.is_set():
                self.exec.start(run, self.now_s())
                self._step_now.trigger()
            while not run.done.wait(period):
                self._feedback(goal_handle, run)
                if goal_handle.is_cancel_requested:
                    self._on_cancel(goal_handle)
            self._feedback(goal_handle, run)
        finally:
            self.exec.end(run)
            self.approvals.withdraw(goal_id)
        result = ExecuteSkill.Result()
        res = run.result
        result.success = bool(res and res.success)
        result.message = res.message if res else 'ended without a result'
        result.duration_s = float(elapsed(run, self.now_s()))
        result.outcome = run.kind or (SUCCEEDED if result.success else FAILED)
        if result.success:
            self._settle(goal_handle.succeed)
        elif run.kind == CANCELED and goal_handle.is_cancel_requested:
            self._settle(goal_handle.canceled)
        else:
            self._settle(goal_handle.abort)
        # rclpy refuses two severities from one call site: two calls.
        if result.success:
            self.get_logger().info(f'{req.skill} [{goal_id[:8]}]: {result.message}')
        else:
            self.get_logger().warning(f'{req.skill} [{goal_id[:8]}]: {result.message}')
        return result

    def _settle(self, transition: Callable[[], None]) -> None:
        """Put a goal in its terminal state; at shutdown (Ctrl-C destroys the action server while
        goals end) there is no one to tell, and that is not an error."""
        if not self.context.ok():
            return
        try:
            transition()
        except _rclpy.RCLError:
            if self.context.ok():
                raise

    def _await_approval(self, goal_handle: Any, run: GoalRun, period: float) -> None:
        event = self.approvals.request(run.goal_id, run.spec.name, self.now_s())
        run.state = 'waiting for approval'
        self.get_logger().info(
            f'{run.spec.name} [{run.goal_id[:8]}] waits for approval on agent/approve_skill')
        deadline = time.monotonic() + self.p['approval_timeout_s']
        while not event.wait(period):
            if goal_handle.is_cancel_requested or run.done.is_set():
                self.exec.cancel(run.goal_id)
                return
            if time.monotonic() >= deadline:
                self.exec.fail(run, 'approval timed out', FAILED)
                self.stats.reject('approval timed out')
                return
            self._feedback(goal_handle, run)
        if self.approvals.decision(run.goal_id) != APPROVED:
            self.exec.fail(run, 'approval refused', FAILED)
            self.stats.reject('approval refused')

    def _feedback(self, goal_handle: Any, run: GoalRun) -> None:
        fb = ExecuteSkill.Feedback()
        fb.progress = float(run.progress)
        fb.state = run.state
        try:
            goal_handle.publish_feedback(fb)
        except Exception:  # the goal handle may already be gone at shutdown
            pass

    def _on_approve(self, req: ApproveSkill.Request, res: ApproveSkill.Response) -> ApproveSkill.Response:
        res.success, res.message = self.approvals.decide(req.goal_id, req.approve)
        self.get_logger().info(f'approval: {res.message}')
        return res

    # -- control, watchdog, diagnostics ----------------------------------------------------
    def _poll_inputs(self) -> None:
        """Take the newest odometry, scan and observation (from any callback thread)."""
        with self._poll_lock:
            for polled in self._inputs:
                polled.poll()

    def _wake_control(self) -> None:
        """Run the control loop (a goal now exists); under the executive's lock, so an idle
        loop cannot stop itself after the goal came."""
        with self.exec.lock:
            if self._control_timer.is_canceled():
                self._control_timer.reset()
                self._watchdog_timer.timer_period_ns = self._watchdog_periods_ns[0]
                self._watchdog_timer.reset()

    def _control(self) -> None:
        self._poll_inputs()
        cmd, speech, logs = self.exec.tick(self.now_s())
        for text in speech:
            self.speech_pub.publish(String(data=text))
        for line in logs:
            self.get_logger().info(line)
        if cmd is not None:
            # Hold the executive's lock: a cancel in between must not be overwritten.
            with self.exec.lock:
                if cmd != (0.0, 0.0) and not self.exec.base_active():
                    cmd = (0.0, 0.0)
                self.publish_cmd(*cmd)
        with self.exec.lock:
            if not self.exec.runs:
                self._control_timer.cancel()
                self._watchdog_timer.timer_period_ns = self._watchdog_periods_ns[1]

    def _watchdog(self) -> None:
        zero, why = self.watchdog.should_zero(self.steady_s(), self.exec.base_active())
        if zero:
            if why == 'commands stopped coming':
                self._warn_throttled('watchdog', f'watchdog: {why}; base commanded to zero')
            self.publish_cmd(0.0, 0.0)

    def _diagnostics(self) -> None:
        self._poll_inputs()   # the guard's figures below are current while idle too
        status = DiagnosticStatus(name=self.get_name(), hardware_id='llm_agent')
        values = self.stats.snapshot()
        for r in ('base', 'speaker'):
            values.setdefault(f'active.{r}', '0')
        for r, n in self.exec.active_by_resource().items():
            values[f'active.{r}'] = str(n)
        values['waiting_for_approval'] = str(len(self.approvals.waiting()))
        values['control_loop'] = 'idle' if self._control_timer.is_canceled() else 'running'
        values['estop'] = str(bool(self.exec.estop_reason)).lower()
        values.update(self.callback_errors.key_values())
        ok, why = self.guard.forward_allowed(self.now_s())
        values['forward_allowed'] = str(ok).lower()
        values['front_clearance_m'] = f'{self.guard.front_clearance_m:.2f}' \
            if self.guard.front_clearance_m is not None else 'clear'
        status.level = DiagnosticStatus.OK if ok and not self.exec.estop_reason \
            else DiagnosticStatus.WARN
        status.message = 'ok' if ok else why
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self.diag_pub.publish(msg)


# One thread per running or waiting goal (each blocks in its execute callback) plus room for
# the control timer, watchdog, subscriptions and services.
COMPONENT = Component(SkillServer, threads=lambda node: int(node.p['max_active_goals']) + 6)


def main(args: Optional[List[str]] = None) -> int:
    """Run the skill server until Ctrl-C; the base is commanded to zero on the way out."""
    return run_component(COMPONENT, args)


if __name__ == '__main__':
    main()
