"""Acceleration limits on the commanded velocity, so that no skill asks a base for a step change
it cannot follow (what Nav2's velocity_smoother does, open loop: against the last command).

A stop -- both components zero: a skill ending, the guard, the e-stop, a cancel, the watchdog --
goes out at once. Stopping late is the worse failure, and a base brakes at its own limit.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple


def _step_toward(current: float, target: float, max_step: float) -> float:
    return current + max(-max_step, min(max_step, target - current))


class VelocityRamp:
    """Limits how fast (v, w) may change: `max_linear_accel` m/s², `max_angular_accel` rad/s².

    `period_s` is the control period: the longest time one step may assume (after a pause or
    at the first command, the change allowed is that of one period, not of the whole pause).
    """

    def __init__(self, max_linear_accel: float, max_angular_accel: float, period_s: float):
        for name, value in (('max_linear_accel', max_linear_accel),
                            ('max_angular_accel', max_angular_accel), ('period_s', period_s)):
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be a positive number, got {value!r}')
        self.max_linear_accel = float(max_linear_accel)
        self.max_angular_accel = float(max_angular_accel)
        self.period_s = float(period_s)
        self.v = 0.0
        self.w = 0.0
        self._last: Optional[float] = None

    def __call__(self, v: float, w: float, now: float) -> Tuple[float, float]:
        """The command to send now toward the wanted (v, w); remembers it as the last one."""
        if v == 0.0 and w == 0.0:
            self.v = self.w = 0.0
        else:
            dt = self.period_s if self._last is None else min(max(now - self._last, 0.0),
                                                              self.period_s)
            self.v = _step_toward(self.v, float(v), self.max_linear_accel * dt)
            self.w = _step_toward(self.w, float(w), self.max_angular_accel * dt)
        self._last = now
        return self.v, self.w
