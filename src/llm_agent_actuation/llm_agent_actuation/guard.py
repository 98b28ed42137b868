"""The safety guard, independent of the brain and of the skills: forward motion only when the
scan shows the footprint's path clear, and a watchdog that zeroes the base when commands stop.

Pure Python (no rclpy); the node feeds it scans and asks it before every base command.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class Footprint:
    """The robot's footprint (a circle around the base's centre) and where the laser sits on it."""

    radius_m: float = 0.2
    laser_x_m: float = 0.0
    laser_y_m: float = 0.0
    laser_yaw_rad: float = 0.0


class SafetyGuard:
    """Decide whether forward motion is allowed from the latest laser scan.

    The check is the corridor the footprint sweeps along the commanded path (straight ahead,
    or the arc of a turning command), not a cone: an obstacle a little off the centre line is
    still in the way. `front_clearance_m` is the distance an obstacle straight ahead would have
    from the centre when the footprint touches it along the path (the old centre-distance, so
    `safety_distance_m` keeps its meaning). A beam that reads -inf, 0 or less than range_min
    (closer than the laser can measure) or NaN (no answer) in the forward half counts as an
    obstacle touching the robot; a scan with non-finite angles or limits, or one older than
    `scan_timeout_s` (its stamp or its arrival), allows no forward motion at all.
    """

    def __init__(self, safety_distance_m: float = 0.35, scan_timeout_s: float = 1.0,
                 footprint: Footprint = Footprint(), slowdown_gain: float = 1.0,
                 creep_speed_mps: float = 0.08):
        self.safety_distance_m = safety_distance_m
        self.scan_timeout_s = scan_timeout_s
        self.footprint = footprint
        # Near an obstacle forward speed is capped at gain * (clearance - safety distance), but
        # never below the creep speed: the base reaches the safety distance slowly enough to
        # stop before the obstacle, whatever its latency and deceleration limit.
        self.slowdown_gain = slowdown_gain
        self.creep_speed_mps = creep_speed_mps
        self.front_clearance_m: Optional[float] = None   # None: nothing in the corridor
        self.scan_stamp = -math.inf
        self.scan_problem = 'no scan received'
        self._points = np.zeros((0, 2))

    def update_scan(self, ranges: Sequence[float], angle_min: float, angle_increment: float,
                    now: float, range_max: float = math.inf, range_min: float = 0.0,
                    stamp: Optional[float] = None) -> Optional[float]:
        """Take a scan (arrived at `now`, stamped `stamp`); return the straight-ahead clearance."""
        self.scan_stamp = now if stamp is None else min(now, stamp)
        self._points = np.zeros((0, 2))
        self.front_clearance_m = None
        limits = (angle_min, angle_increment, range_min)
        if not all(math.isfinite(v) for v in limits) or range_min < 0 or not range_max > 0 \
                or math.isnan(range_max) or not math.isfinite(self.scan_stamp):
            self.scan_problem = 'scan with non-finite angles, limits or stamp'
            return None
        r = np.asarray(ranges, dtype=np.float64)
        if r.size == 0:
            self.scan_problem = 'empty scan'
            return None
        fp = self.footprint
        beam = angle_min + angle_increment * np.arange(r.size) + fp.laser_yaw_rad
        with np.errstate(invalid='ignore'):
            valid = np.isfinite(r) & (r >= range_min) & (r <= range_max)
            too_close = (r == -np.inf) | (np.isfinite(r) & (r < range_min))
        unknown = np.isnan(r)
        # Too close or no answer: an obstacle at the laser itself, as far as the corridor knows.
        dist = np.where(valid, r, 0.0)
        keep = valid | too_close | unknown
        pts = np.stack([fp.laser_x_m + dist * np.cos(beam), fp.laser_y_m + dist * np.sin(beam)], 1)
        ahead = np.cos(beam) > 0.0
        self._points = pts[keep & (valid | ahead)]
        self.scan_problem = ''
        self.front_clearance_m = self.clearance(1.0, 0.0)
        return self.front_clearance_m

    def clearance(self, linear: float, angular: float) -> Optional[float]:
        """Centre-distance equivalent of the first contact along the command's path; None: clear."""
        pts, r = self._points, self.footprint.radius_m
        if pts.size == 0:
            return None
        x, y = pts[:, 0], pts[:, 1]
        if abs(angular) < 1e-3 or abs(linear / angular) > 1e3:
            inside = (np.abs(y) <= r) & (x >= 0.0)
            travel = x - np.sqrt(np.maximum(r * r - y * y, 0.0))
        else:
            R = linear / angular          # signed turn radius: positive = left
            d = np.hypot(x, y - R)
            off = d - abs(R)
            psi = np.arctan2(x, abs(R) - np.sign(R) * y) % (2.0 * np.pi)
            inside = (np.abs(off) <= r) & (psi <= np.pi)
            travel = abs(R) * psi - np.sqrt(np.maximum(r * r - off * off, 0.0))
        if not np.any(inside):
            return None
        return float(max(0.0, np.min(travel[inside])) + r)

    def forward_allowed(self, now: float, linear: float = 1.0,
                        angular: float = 0.0) -> Tuple[bool, str]:
        """(allowed, reason) for moving forward along (linear, angular) now."""
        if self.scan_problem:
            return False, f'{self.scan_problem}: forward motion not allowed'
        age = now - self.scan_stamp
        if age > self.scan_timeout_s:
            return False, (f'no scan for {age:.2f} s (> {self.scan_timeout_s:.2f} s): '
                           'forward motion not allowed')
        c = self.clearance(linear, angular)
        if c is not None and c < self.safety_distance_m:
            return False, (f'way ahead blocked: obstacle at {c:.2f} m, closer than the safety '
                           f'distance {self.safety_distance_m:.2f} m')
        return True, ''

    def filter(self, linear: float, angular: float, now: float) -> Tuple[float, float, str]:
        """Return the command with forward motion removed when not allowed (and the reason),
        and forward speed capped near obstacles on its path."""
        if linear > 0.0:
            ok, reason = self.forward_allowed(now, linear, angular)
            if not ok:
                return 0.0, angular, reason
            c = self.clearance(linear, angular)
            if c is not None:
                cap = max(self.creep_speed_mps, self.slowdown_gain * (c - self.safety_distance_m))
                linear = min(linear, cap)
        return linear, angular, ''


class Watchdog:
    """Say when to publish zero velocity: idle (every timeout) or commands stopped coming."""

    def __init__(self, timeout_s: float = 0.5):
        self.timeout_s = timeout_s
        self.last_command = -math.inf

    def commanded(self, now: float) -> None:
        """Record that a velocity (of any value) went to the base."""
        self.last_command = now

    def should_zero(self, now: float, base_active: bool) -> Tuple[bool, str]:
        """(publish zero?, why) given whether a skill holds the base."""
        if now - self.last_command < self.timeout_s:
            return False, ''
        return True, 'commands stopped coming' if base_active else 'no skill active'
