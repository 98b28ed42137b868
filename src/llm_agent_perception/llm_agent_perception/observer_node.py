"""Turn scan/filtered, odom, the camera and goal_pose into agent/observation at rate_hz."""
from __future__ import annotations

import math
import threading
import time
from typing import Optional, Tuple

import cv2
from geometry_msgs.msg import PoseStamped
from llm_agent_common.angles import yaw_from_quaternion
from llm_agent_common.node import (
    LASER_POSE_PARAMS,
    BadInputs,
    Component,
    Diagnostics,
    GuardedNode,
    Param,
    Params,
    StreamStats,
    latched_qos,
    run_component,
    sensor_qos,
)
from nav_msgs.msg import Odometry
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CameraInfo, Image, LaserScan
from std_msgs.msg import String

from llm_agent_interfaces.msg import Observation

from . import features, image_codec

PARAMS = [
    Param('rate_hz', 5.0, 'Observations published per second (at most)', range=(0.1, 50.0)),
    Param('hfov_deg', 60.0, 'Camera horizontal field of view, used until camera/camera_info '
          'gives K', range=(1.0, 179.0)),
    Param('target_color', 'red', 'Colour of the target to look for while the instruction on '
          'agent/instruction names none (an instruction naming a colour sets it)',
          allowed=tuple(features.TARGET_HUES)),
    Param('target_min_saturation', 100, 'HSV saturation a target pixel needs (0..255)',
          range=(0, 255)),
    Param('target_min_value', 60, 'HSV value (brightness) a target pixel needs (0..255)',
          range=(0, 255)),
    Param('target_min_size', 0.0005, 'Smallest blob, as a fraction of the image, that counts '
          'as the target', range=(0.0, 1.0)),
    Param('detect_width', 160, 'Frames are resized to this width (pixels) before colour '
          'detection; 0 = full size', range=(0, 4096)),
    *LASER_POSE_PARAMS,   # sector ranges are measured from the base's centre
    Param('scan_timeout_s', 1.0, 'No observation is published when the last scan is older',
          range=(0.05, 60.0)),
    Param('image_timeout_s', 1.0, 'The target counts as not visible when the last frame is '
          'older', range=(0.05, 60.0)),
]


class Observer(GuardedNode):
    """Keep the newest of each input; publish the feature vector on a timer."""

    def __init__(self, **kwargs) -> None:
        super().__init__('observer', **kwargs)
        self.params = Params(self, PARAMS, on_change=self._retime)
        self.bad = BadInputs(self)
        self.stats = StreamStats(work='detect')
        self._lock = threading.Lock()
        self._scan: Optional[Tuple[float, dict, float, object]] = None  # t, sectors, clear, header
        self._pose = (0.0, 0.0, 0.0)
        self._twist = (0.0, 0.0)
        self._goal: Optional[Tuple[float, float]] = None
        self._k: Optional[Tuple[list, int]] = None
        self._target: Optional[Tuple[float, features.Target, float]] = None  # t, target, bearing
        self._named_colour: Optional[str] = None    # the colour the last instruction names
        self._pub = self.create_publisher(Observation, 'agent/observation', 10)
        self.frames_detected = 0
        # The goal is rare and latched; every other input is read at each observation, newest
        # message only: one detection per observation instead of one per 30 Hz frame, and no
        # executor wake-up per odometry, scan or frame message.
        self.create_subscription(PoseStamped, 'goal_pose', self._on_goal, latched_qos())
        self.create_subscription(String, 'agent/instruction', self._on_instruction, 10)
        self._inputs = [  # camera_info before the image: detection uses its K
            self.create_polled_subscription(LaserScan, 'scan/filtered', self._on_scan,
                                            sensor_qos(1)),
            self.create_polled_subscription(Odometry, 'odom', self._on_odom, sensor_qos(1)),
            self.create_polled_subscription(CameraInfo, 'camera/camera_info', self._on_info,
                                            sensor_qos(1)),
            self.create_polled_subscription(Image, 'camera/image_raw', self._detect,
                                            sensor_qos(1))]
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._timer = self.create_timer(1.0 / self.params['rate_hz'], self._publish,
                                        callback_group=self._timer_group)
        self.diagnostics = Diagnostics(self, self._figures, self.bad,
                                       callback_group=MutuallyExclusiveCallbackGroup())

    def _retime(self, values) -> None:
        period = 1.0 / float(values['rate_hz'])
        if abs(self._timer.timer_period_ns - period * 1e9) > 1:
            self._timer.cancel()
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(period, self._publish,
                                            callback_group=self._timer_group)

    def _figures(self):
        kv = self.stats.key_values()
        kv['frames_detected'] = str(self.frames_detected)
        kv['goal_known'] = str(self._goal is not None)
        kv['camera_info_known'] = str(self._k is not None)
        return kv

    def _on_scan(self, msg: LaserScan) -> None:
        self.stats.rate_in.add(4 * len(msg.ranges))
        if not (math.isfinite(msg.range_max) and msg.range_max > 0 and msg.angle_increment != 0
                and math.isfinite(msg.angle_min) and math.isfinite(msg.angle_increment)):
            self.bad.report('scan', 'scan geometry invalid (range_max or angles)')
            return
        p = self.params.values
        sectors = features.sector_ranges(msg.ranges, msg.angle_min, msg.angle_increment,
                                         msg.range_min, msg.range_max,
                                         (p['laser_x_m'], p['laser_y_m'], p['laser_yaw_rad']))
        with self._lock:
            self._scan = (time.monotonic(), sectors, float(msg.range_max), msg.header)

    def _on_odom(self, msg: Odometry) -> None:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        t = msg.twist.twist
        values = (p.x, p.y, q.x, q.y, q.z, q.w, t.linear.x, t.linear.y, t.angular.z)
        if not all(math.isfinite(v) for v in values):
            self.bad.report('odom', 'odometry has non-finite values')
            return
        with self._lock:
            self._pose = (p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w))
            self._twist = (math.hypot(t.linear.x, t.linear.y), t.angular.z)

    def _on_goal(self, msg: PoseStamped) -> None:
        x, y = msg.pose.position.x, msg.pose.position.y
        if not (math.isfinite(x) and math.isfinite(y)):
            self.bad.report('goal', 'goal_pose has non-finite position')
            return
        with self._lock:
            self._goal = (x, y)

    def _on_instruction(self, msg: String) -> None:
        colour = features.instruction_colour(msg.data[:10000])
        with self._lock:
            changed, self._named_colour = colour != self._named_colour, colour
        if changed:
            self.get_logger().info(f'looking for the {self._colour()} target '
                                   f'({"named by the instruction" if colour else "target_color"})')

    def _colour(self) -> str:
        with self._lock:
            return self._named_colour or self.params['target_color']

    def _on_info(self, msg: CameraInfo) -> None:
        k = list(msg.k)
        if msg.width > 0 and k[0] > 0 and all(math.isfinite(v) for v in k):
            with self._lock:
                self._k = (k, int(msg.width))

    def _detect(self, msg: Image) -> None:
        self.stats.rate_in.add(len(msg.data))
        p = self.params.values
        try:
            img = image_codec.image_to_array(msg.encoding, msg.width, msg.height, msg.step,
                                             msg.data, msg.is_bigendian)
        except image_codec.BadInput as exc:
            self.bad.report('image', str(exc))
            return
        if img.ndim == 2:
            self.bad.report('image', 'mono8 frames carry no colour: no target detection')
            return
        t0 = time.perf_counter()
        bgr, _ = image_codec.to_wire(img, msg.encoding)
        width = bgr.shape[1]
        if 0 < p['detect_width'] < width:
            scale = p['detect_width'] / width
            bgr = cv2.resize(bgr, (p['detect_width'], max(1, round(bgr.shape[0] * scale))),
                             interpolation=cv2.INTER_AREA)
        target = features.detect_target(bgr, self._colour(), p['target_min_saturation'],
                                        p['target_min_value'], p['target_min_size'])
        bearing = 0.0
        if target.visible:
            u = (target.u + 0.5) * width / bgr.shape[1] - 0.5  # back to full-size pixel columns
            with self._lock:
                k = self._k
            bearing = features.pixel_bearing(u, width, k[0] if k else None, k[1] if k else 0,
                                             math.radians(p['hfov_deg']))
        self.stats.work_ms.add(1000.0 * (time.perf_counter() - t0))
        self.frames_detected += 1
        with self._lock:
            self._target = (time.monotonic(), target, bearing)

    def _publish(self) -> None:
        for polled in self._inputs:
            polled.poll()
        now = time.monotonic()
        p = self.params.values
        with self._lock:
            scan, pose, twist, goal, tgt = (self._scan, self._pose, self._twist, self._goal,
                                            self._target)
        if scan is None or now - scan[0] > p['scan_timeout_s']:
            return
        goal_f = features.goal_features(pose[0], pose[1], pose[2], goal)
        if tgt is not None and now - tgt[0] <= p['image_timeout_s'] and tgt[1].visible:
            target_f = (1.0, tgt[2], tgt[1].size)
        else:
            target_f = (0.0, 0.0, 0.0)
        values = features.feature_vector(scan[1], goal_f, target_f, twist[0], twist[1], scan[2])
        msg = Observation(feature_names=list(features.FEATURE_NAMES), feature_values=values,
                          summary=features.summary(features.FEATURE_NAMES, values,
                                                   self._colour()))
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = scan[3].frame_id
        self._pub.publish(msg)
        self.stats.rate_out.add(len(values) * 4 + len(msg.summary))


COMPONENT = Component(Observer)


def main(args=None) -> int:
    """Run the observer node until Ctrl-C."""
    return run_component(COMPONENT, args)


if __name__ == '__main__':
    raise SystemExit(main())
