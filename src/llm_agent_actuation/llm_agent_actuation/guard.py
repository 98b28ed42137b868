"""The safety guard, independent of the brain and of the skills: forward motion only when the
scan shows the way ahead clear, and a watchdog that zeroes the base when commands stop.

Pure Python (no rclpy); the node feeds it scans and asks it before every base command.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple


class SafetyGuard:
    """Decide whether forward motion is allowed from the latest laser scan."""

    def __init__(self, safety_distance_m: float = 0.35, half_angle_rad: float = 0.35,
                 scan_timeout_s: float = 1.0, slowdown_gain: float = 1.0,
                 creep_speed_mps: float = 0.08):
        self.safety_distance_m = safety_distance_m
        # Near an obstacle forward speed is capped at gain * (clearance - safety distance), but
        # never below the creep speed: the base reaches the safety distance slowly enough to
        # stop before the obstacle, whatever its latency and deceleration limit.
        self.slowdown_gain = slowdown_gain
        self.creep_speed_mps = creep_speed_mps
        self.half_angle_rad = half_angle_rad
        self.scan_timeout_s = scan_timeout_s
        self.front_clearance_m: Optional[float] = None   # None: no valid ray in the sector
        self.scan_stamp = -math.inf

    def update_scan(self, ranges: Sequence[float], angle_min: float, angle_increment: float,
                    now: float, range_max: float = math.inf) -> Optional[float]:
        """Take a scan; return the nearest valid range within +-half_angle of straight ahead.

        NaN, inf, non-positive readings and readings beyond range_max are ignored; a sector
        with no valid reading counts as clear.
        """
        nearest = math.inf
        for i, r in enumerate(ranges):
            if not math.isfinite(r) or r <= 0.0 or r > range_max:
                continue
            a = angle_min + i * angle_increment
            a = (a + math.pi) % (2.0 * math.pi) - math.pi
            if abs(a) <= self.half_angle_rad and r < nearest:
                nearest = r
        self.front_clearance_m = nearest if math.isfinite(nearest) else None
        self.scan_stamp = now
        return self.front_clearance_m

    def forward_allowed(self, now: float) -> Tuple[bool, str]:
        """(allowed, reason): refused without a recent scan or with an obstacle too close."""
        age = now - self.scan_stamp
        if age > self.scan_timeout_s:
            if math.isinf(age):
                return False, 'no scan received: forward motion not allowed'
            return False, (f'no scan for {age:.2f} s (> {self.scan_timeout_s:.2f} s): '
                           'forward motion not allowed')
        c = self.front_clearance_m
        if c is not None and c < self.safety_distance_m:
            return False, (f'way ahead blocked: obstacle at {c:.2f} m, closer than the safety '
                           f'distance {self.safety_distance_m:.2f} m')
        return True, ''

    def filter(self, linear: float, angular: float, now: float) -> Tuple[float, float, str]:
        """Return the command with forward motion removed when not allowed (and the reason),
        and forward speed capped near obstacles."""
        if linear > 0.0:
            ok, reason = self.forward_allowed(now)
            if not ok:
                return 0.0, angular, reason
            c = self.front_clearance_m
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
