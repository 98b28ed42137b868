"""Figures the skill server reports on diagnostics. Pure Python."""
from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Deque, Dict

from llm_agent_common.stats import percentile

# Reason classes for rejections: the first substring found in the reason names the class.
_REASON_CLASSES = (
    ('unknown skill', 'unknown_skill'),
    ('unknown parameter', 'unknown_param'),
    ('missing parameter', 'missing_param'),
    ('must be finite', 'out_of_bounds'),
    ('outside [', 'out_of_bounds'),
    ('longer than', 'out_of_bounds'),
    (' must be ', 'wrong_type'),
    ('not valid json', 'bad_json'),
    ('json object', 'bad_json'),
    ('forward motion', 'safety'),
    ('way ahead', 'safety'),
    ('busy', 'busy'),
    ('plugin', 'plugin'),
)


def reason_class(reason: str) -> str:
    """Short class of a rejection reason, for counting."""
    low = reason.lower()
    for needle, cls in _REASON_CLASSES:
        if needle in low:
            return cls
    return 'other'


class ServerStats:
    """Counters and latency samples; thread-safe."""

    def __init__(self, window: int = 200):
        self._lock = threading.Lock()
        self.rejections: Counter = Counter()
        self.last_rejection = ''
        self.outcomes: Counter = Counter()
        self.preemptions = 0
        self.accepted = 0
        self.guard_stops = 0
        self._latency: Deque[float] = deque(maxlen=window)

    def reject(self, reason: str) -> str:
        cls = reason_class(reason)
        with self._lock:
            self.rejections[cls] += 1
            self.last_rejection = reason
        return cls

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def outcome(self, kind: str) -> None:
        with self._lock:
            self.outcomes[kind] += 1

    def first_command_latency(self, seconds: float) -> None:
        with self._lock:
            self._latency.append(seconds)

    def snapshot(self) -> Dict[str, str]:
        with self._lock:
            lat = list(self._latency)
            out = {
                'goals_accepted': str(self.accepted),
                'rejections_total': str(sum(self.rejections.values())),
                'preemptions': str(self.preemptions),
                'guard_stops': str(self.guard_stops),
                'last_rejection': self.last_rejection,
            }
            for cls, n in sorted(self.rejections.items()):
                out[f'rejections.{cls}'] = str(n)
            for kind, n in sorted(self.outcomes.items()):
                out[f'results.{kind}'] = str(n)
        p50, p95 = percentile(lat, 50), percentile(lat, 95)
        out['first_cmd_latency_p50_ms'] = f'{p50 * 1e3:.1f}' if p50 is not None else 'n/a'
        out['first_cmd_latency_p95_ms'] = f'{p95 * 1e3:.1f}' if p95 is not None else 'n/a'
        out['first_cmd_latency_samples'] = str(len(lat))
        return out
