"""Bandwidth budget: pick the JPEG quality frame by frame to hold a bytes-per-second target.

The last frame's size at the current quality predicts the next one's (consecutive frames look
alike). A token bucket turns the budget into a per-frame target and pays back any overshoot or
undershoot over `payback_s`, so the long-run rate holds the budget. The quality moves by
ln(target / size) / slope, where slope = d ln(bytes) / d quality is learnt online; the move is
damped, capped and ignored inside a dead band, so the quality settles instead of oscillating.
"""
from __future__ import annotations

import math
from typing import Optional


class BudgetController:
    """Choose the quality of the next frame from the sizes of the previous ones."""

    def __init__(self, bytes_per_s: float, min_quality: int = 5, max_quality: int = 95,
                 initial_quality: int = 75, payback_s: float = 2.0, gain: float = 0.5,
                 dead_band: float = 0.04, max_step: float = 8.0) -> None:
        if bytes_per_s <= 0:
            raise ValueError('bytes_per_s must be > 0')
        if not 1 <= min_quality <= max_quality <= 100:
            raise ValueError('need 1 <= min_quality <= max_quality <= 100')
        self.bytes_per_s = float(bytes_per_s)
        self.min_quality = min_quality
        self.max_quality = max_quality
        self.payback_s = payback_s
        self.gain = gain
        self.dead_band = dead_band
        self.max_step = max_step
        self._q = float(min(max(initial_quality, min_quality), max_quality))
        self._slope = 0.03  # d ln(bytes) / d quality, typical of JPEG in the middle range
        self._credit = 0.0  # bytes we may still spend (negative: we owe)
        self._dt: Optional[float] = None
        self._last: Optional[tuple] = None  # (quality, ln bytes) of the previous frame

    @property
    def quality(self) -> int:
        """Return the quality to encode the next frame with."""
        return int(round(self._q))

    def update(self, nbytes: int, dt_s: float) -> int:
        """Record a frame of nbytes made at `quality`, dt_s after the last; return the next quality."""
        q_used = self.quality
        nbytes = max(int(nbytes), 1)
        dt_s = min(max(dt_s, 1e-3), 1.0)  # a pause in the stream must not bank a huge credit
        self._dt = dt_s if self._dt is None else 0.8 * self._dt + 0.2 * dt_s
        per_frame = self.bytes_per_s * self._dt
        cap = self.bytes_per_s * self.payback_s
        self._credit = min(max(self._credit + self.bytes_per_s * dt_s - nbytes, -cap), cap)

        ln_b = math.log(nbytes)
        if self._last is not None and abs(q_used - self._last[0]) >= 2:
            observed = (ln_b - self._last[1]) / (q_used - self._last[0])
            if observed > 0:  # content changes can make it negative: learn only from sane ones
                self._slope = min(max(0.7 * self._slope + 0.3 * observed, 0.01), 0.15)
        self._last = (q_used, ln_b)

        frames_to_payback = max(self.payback_s / self._dt, 1.0)
        target = max(per_frame + self._credit / frames_to_payback, 0.1 * per_frame)
        err = math.log(target / nbytes)
        if abs(err) > self.dead_band:
            step = self.gain * err / self._slope
            step = min(max(step, -self.max_step), self.max_step)
            self._q = min(max(self._q + step, self.min_quality), self.max_quality)
        return self.quality
