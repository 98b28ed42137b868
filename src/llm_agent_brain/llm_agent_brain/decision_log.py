"""The decision log: the LLM's decisions (what the tree distils) and how decisions turned out.

Pure Python, no ROS. Every decision of every source is remembered for a short while so that an
outcome (`collision`, `action_failed`, ...) can be attributed to the most recent decision(s).
LLM decisions are appended to a JSON-lines file (one object a line) and replayed on start;
a tree or cache decision reaches the file only when it was followed by a bad outcome, as a
not-to-repeat example. Outcomes are appended as their own lines and replayed onto decisions.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional

from llm_agent_brain.cache import normalise_instruction
from llm_agent_brain.decision_types import Choice, Situation
from llm_agent_brain.tree import Sample, atomic_write_text

BAD_OUTCOMES = ('collision', 'action_failed')
GOOD_OUTCOMES = ('goal_reached', 'action_succeeded')
OUTCOMES = BAD_OUTCOMES + GOOD_OUTCOMES


@dataclass
class LoggedDecision:
    """One decision as remembered: situation, choice, where it came from, and its outcome."""

    id: int
    t: float                    # wall clock, seconds
    features: Dict[str, float]
    instruction: str
    skill: str
    params: Dict[str, Any]
    source: str
    outcome: str = ''           # '' | 'good' | 'bad'
    cache_key: Any = None       # the exact-cache key it was served from or stored under
    mono: float = field(default=0.0, repr=False)   # monotonic time, for the outcome window
    persisted: bool = False

    def to_json(self) -> Dict[str, Any]:
        return {'k': 'd', 'id': self.id, 't': round(self.t, 3), 'f': self.features,
                'i': self.instruction, 's': self.skill, 'p': self.params, 'src': self.source,
                'o': self.outcome}


SYNC_PERIOD_S = 1.0  # the log is fsynced at most this often (it is appended on the decision path)


class DecisionLog:
    """Trainable decisions (LLM ones and bad outcomes) plus a short memory of recent decisions."""

    def __init__(self, path: Optional[str] = None, max_entries: int = 20000,
                 window_s: float = 3.0, max_blamed: int = 2, recent_size: int = 64):
        self.path = path
        self.max_entries = max_entries
        self.window_s = window_s
        self.max_blamed = max_blamed
        self._lock = threading.Lock()
        self._entries: Dict[int, LoggedDecision] = {}        # trainable, oldest first
        self._recent: Deque[LoggedDecision] = deque(maxlen=recent_size)
        self._ids = itertools.count(1)
        self.version = 0            # grows with every change that matters to training
        self.outcomes: Counter = Counter()
        self.blamed: Counter = Counter()    # bad outcomes attributed, per source
        self.load_errors = 0
        self._lines = 0
        self._last_sync = -math.inf
        if path:
            self._load()

    # ------------------------------------------------------------------ writing
    def record(self, situation: Situation, choice: Choice, cache_key: Any = None) -> LoggedDecision:
        """Remember a decision; LLM decisions are trainable and written to the file."""
        d = LoggedDecision(id=next(self._ids), t=time.time(), mono=time.monotonic(),
                           features={k: float(v) for k, v in situation.features.items()},
                           instruction=situation.instruction, skill=choice.skill,
                           params=dict(choice.params), source=choice.source, cache_key=cache_key)
        with self._lock:
            self._recent.append(d)
            if d.source == 'llm':
                self._add_trainable(d)
                self._append(d.to_json())
                d.persisted = True
        return d

    def report_outcome(self, kind: str, detail: Optional[Dict[str, Any]] = None,
                       now: Optional[float] = None) -> List[LoggedDecision]:
        """Attribute an outcome to the recent decision(s) it follows; return those decisions.

        collision: up to `max_blamed` most recent decisions within `window_s`;
        action_failed / action_succeeded: the most recent one (of `detail['skill']` if given);
        goal_reached: the decisions within the window.
        """
        if kind not in OUTCOMES:
            raise ValueError(f'unknown outcome {kind!r}; expected one of {", ".join(OUTCOMES)}')
        detail = detail or {}
        now = time.monotonic() if now is None else now
        with self._lock:
            self.outcomes[kind] += 1
            recent = [d for d in reversed(self._recent) if now - d.mono <= self.window_s]
            if kind in ('action_failed', 'action_succeeded'):
                skill = detail.get('skill')
                recent = [d for d in recent if not skill or d.skill == skill][:1]
            elif kind == 'collision':
                recent = recent[:self.max_blamed]
            bad = kind in BAD_OUTCOMES
            for d in recent:
                if bad:
                    if d.outcome == 'bad':
                        continue
                    d.outcome = 'bad'
                    self.blamed[d.source] += 1
                    if d.source == 'rule':
                        continue  # rules are written by people: count it, do not learn from it
                    if d.id not in self._entries:
                        self._add_trainable(d)
                    if not d.persisted:
                        self._append(d.to_json())
                        d.persisted = True
                    else:
                        self._append({'k': 'o', 'id': d.id, 'o': 'bad'})
                    self.version += 1
                elif d.outcome == '':
                    d.outcome = 'good'
                    if d.persisted:
                        self._append({'k': 'o', 'id': d.id, 'o': 'good'})
            return recent

    # ------------------------------------------------------------------ reading
    def samples(self, avoid_weight: float = 1.0) -> Dict[str, List[Sample]]:
        """Training samples grouped by normalised instruction (a bad outcome becomes a not-to-repeat one)."""
        with self._lock:
            entries = list(self._entries.values())
        out: Dict[str, List[Sample]] = {}
        for d in entries:
            out.setdefault(normalise_instruction(d.instruction), []).append(
                Sample(d.features, d.skill, d.params, weight=1.0, bad=d.outcome == 'bad'))
        return out

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bad_count(self) -> int:
        with self._lock:
            return sum(1 for d in self._entries.values() if d.outcome == 'bad')

    def entries(self) -> List[LoggedDecision]:
        with self._lock:
            return list(self._entries.values())

    # ---------------------------------------------------------------- internals
    def _add_trainable(self, d: LoggedDecision) -> None:
        self._entries[d.id] = d
        while len(self._entries) > self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self.version += 1

    def _append(self, obj: Dict[str, Any]) -> None:
        if not self.path:
            return
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            # 0600 like tree.json: the log holds the robot's instructions and decisions.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, 'a', encoding='utf-8') as f:
                f.write(json.dumps(obj, separators=(',', ':')) + '\n')
                now = time.monotonic()
                if now - self._last_sync >= SYNC_PERIOD_S:  # durable, at most one fsync a second
                    f.flush()
                    os.fsync(f.fileno())
                    self._last_sync = now
            self._lines += 1
            if self._lines > 2 * self.max_entries + 100:
                self._compact()
        except OSError:
            self.load_errors += 1

    def _compact(self) -> None:
        """Rewrite the file with only the kept entries (atomically)."""
        assert self.path
        text = ''.join(json.dumps(d.to_json(), separators=(',', ':')) + '\n'
                       for d in self._entries.values())
        atomic_write_text(self.path, text)
        self._lines = len(self._entries)

    def _load(self) -> None:
        assert self.path
        try:
            # A byte that is not UTF-8 spoils its line only (replaced, then the line is skipped).
            f = open(self.path, encoding='utf-8', errors='replace')
        except FileNotFoundError:
            return
        except OSError:
            self.load_errors += 1
            return
        max_id = 0
        with f:
            for line in f:
                self._lines += 1
                try:
                    obj = json.loads(line)
                    if obj.get('k') == 'd':
                        features = {str(k): float(v) for k, v in obj['f'].items()}
                        if not all(math.isfinite(v) for v in features.values()):
                            raise ValueError('non-finite feature')
                        d = LoggedDecision(id=int(obj['id']), t=float(obj['t']),
                                           features=features,
                                           instruction=str(obj.get('i', '')), skill=str(obj['s']),
                                           params=dict(obj.get('p') or {}), source=str(obj['src']),
                                           outcome=str(obj.get('o', '')), persisted=True)
                        self._add_trainable(d)
                        max_id = max(max_id, d.id)
                    elif obj.get('k') == 'o' and int(obj['id']) in self._entries:
                        self._entries[int(obj['id'])].outcome = str(obj['o'])
                except (ValueError, KeyError, TypeError, AttributeError, RecursionError,
                        OverflowError):
                    self.load_errors += 1  # a line cut short by a crash, or tampered: skip it
        self._ids = itertools.count(max_id + 1)
