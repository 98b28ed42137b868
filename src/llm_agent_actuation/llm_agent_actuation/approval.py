"""Goals waiting for a person's approval (skills with `requires_approval`). Pure Python."""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional, Tuple

WAITING, APPROVED, REFUSED = 'waiting', 'approved', 'refused'


@dataclass
class _Pending:
    skill: str
    since: float
    decision: str = WAITING
    event: threading.Event = field(default_factory=threading.Event)


class ApprovalBook:
    """Goals (by hex id) waiting for approval, oldest first; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: 'OrderedDict[str, _Pending]' = OrderedDict()

    def request(self, goal_id: str, skill: str, now: float) -> threading.Event:
        """Register a goal; the returned event is set when a person decides."""
        with self._lock:
            p = _Pending(skill, now)
            self._pending[goal_id] = p
            return p.event

    def decide(self, goal_id: str, approve: bool) -> Tuple[bool, str]:
        """Approve or refuse a waiting goal ('' = the only one waiting); (found, message).

        With several waiting an empty id is refused: approving "the oldest" could approve a
        goal the person never looked at. The message lists the waiting ids and skills.
        """
        with self._lock:
            waiting = [g for g, p in self._pending.items() if p.decision == WAITING]
            if not goal_id:
                if not waiting:
                    return False, 'no goal is waiting for approval'
                if len(waiting) > 1:
                    listed = ', '.join(f'{g} ({self._pending[g].skill})' for g in waiting)
                    return False, (f'{len(waiting)} goals wait for approval: name one by its '
                                   f'goal_id: {listed}')
                goal_id = waiting[0]
            goal_id = goal_id.lower().replace('-', '')
            p = self._pending.get(goal_id)
            if p is None or p.decision != WAITING:
                return False, f'goal {goal_id} is not waiting for approval'
            p.decision = APPROVED if approve else REFUSED
            p.event.set()
            return True, f'goal {goal_id} ({p.skill}) {p.decision}'

    def decision(self, goal_id: str) -> str:
        with self._lock:
            p = self._pending.get(goal_id)
            return p.decision if p else REFUSED

    def withdraw(self, goal_id: str) -> None:
        """Forget a goal (decided, timed out or cancelled)."""
        with self._lock:
            self._pending.pop(goal_id, None)

    def waiting(self) -> Tuple[str, ...]:
        with self._lock:
            return tuple(g for g, p in self._pending.items() if p.decision == WAITING)

    def oldest(self) -> Optional[str]:
        w = self.waiting()
        return w[0] if w else None
