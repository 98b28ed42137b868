"""Rates, byte counters and latency percentiles for diagnostics (pure Python, thread-safe)."""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Deque, Dict, Iterable, Optional, Tuple

import numpy as np


def percentile(values: Iterable[float], q: float) -> Optional[float]:
    """The q-th percentile (q in 0..100) by linear interpolation, as numpy; None for no values.

    The one percentile of the suite: diagnostics of every node and the bench report use it.
    """
    arr = np.fromiter(values, float)
    return float(np.percentile(arr, q)) if arr.size else None


class RateMeter:
    """Count events and their bytes over a sliding time window."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._clock = clock
        self._events: Deque[Tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()
        self.total_count = 0
        self.total_bytes = 0

    def add(self, nbytes: int = 0) -> None:
        """Record one event of nbytes bytes now."""
        now = self._clock()
        with self._lock:
            self._events.append((now, int(nbytes)))
            self.total_count += 1
            self.total_bytes += int(nbytes)
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._events and now - self._events[0][0] > self._window_s:
            self._events.popleft()

    def rates(self) -> Tuple[float, float]:
        """Return (events per second, bytes per second) over the window."""
        now = self._clock()
        with self._lock:
            self._trim(now)
            if len(self._events) < 2:
                return 0.0, 0.0
            span = max(now - self._events[0][0], 1e-6)
            # n events span n-1 intervals: count the first one as the window's start.
            count = len(self._events) - 1
            nbytes = sum(b for _, b in list(self._events)[1:])
            return count / span, nbytes / span


class Percentiles:
    """Keep the last N samples and report percentiles of them."""

    def __init__(self, size: int = 500) -> None:
        self._samples: Deque[float] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        """Record one sample."""
        with self._lock:
            self._samples.append(float(value))

    def percentile(self, q: float) -> Optional[float]:
        """Return the q-th percentile (0..100) of the kept samples, None when empty."""
        with self._lock:
            return percentile(self._samples, q)

    def summary(self, prefix: str, unit: str = 'ms') -> Dict[str, str]:
        """Return p50/p95 as diagnostic key/values (empty strings before the first sample)."""
        out = {}
        for q in (50, 95):
            value = self.percentile(q)
            out[f'{prefix}_p{q}_{unit}'] = '' if value is None else f'{value:.3f}'
        return out


def compression_ratio(bytes_in: int, bytes_out: int) -> float:
    """Return bytes_in / bytes_out (0 when nothing went out)."""
    return float(bytes_in) / bytes_out if bytes_out > 0 else 0.0
