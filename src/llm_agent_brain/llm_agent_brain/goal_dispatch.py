"""Which decisions become new goals for agent/execute_skill (no rclpy).

The brain only sends goals and reads results: pre-emption, cancel and per-resource arbitration
are the skill server's (a newer goal on a resource pre-empts the one holding it). What the
brain keeps is which goals it sent are still running, so that the same decision, made again
on the next observation, does not restart a skill that is already doing it.
"""
from __future__ import annotations

import math
import threading
from typing import Any, Dict, Optional, Tuple

Goal = Tuple[str, Dict[str, Any]]

# Outcomes of ExecuteSkill.Result.outcome that say nothing about the decision itself.
NEUTRAL_OUTCOMES = ('canceled', 'preempted')


def same_goal(a: Goal, b: Goal, rel_tol: float = 0.15, abs_tol: float = 0.05) -> bool:
    """True when two (skill, params) are the same decision up to small numeric changes."""
    if a[0] != b[0] or set(a[1]) != set(b[1]):
        return False
    for k, va in a[1].items():
        vb = b[1][k]
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
            if not math.isclose(va, vb, rel_tol=rel_tol, abs_tol=abs_tol):
                return False
        elif va != vb:
            return False
    return True


# The skill whose goal ends at once and whose effect lasts: a second one changes nothing.
STOP = 'stop'
# Below these the robot is at rest (the observation's speed in m/s, yaw_rate in rad/s).
REST_SPEED, REST_YAW_RATE = 0.02, 0.05


def at_rest(features: Dict[str, float]) -> bool:
    """The observation says the base stands still (unknown speed counts as moving)."""
    return (abs(features.get('speed', math.inf)) < REST_SPEED
            and abs(features.get('yaw_rate', math.inf)) < REST_YAW_RATE)


class GoalDispatch:
    """The goals sent and not yet ended, keyed by a token the node keeps with each goal.

    Besides a decision already running, a `stop` is not sent again while the last goal was a
    `stop` that succeeded and the robot is at rest: a brain deciding `stop` on every observation
    (5 a second while it waits) would otherwise keep the action server busy for nothing."""

    def __init__(self) -> None:
        self._running: Dict[int, Goal] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._stopped = False   # the last goal was a stop that succeeded, none sent since

    def begin(self, skill: str, params: Dict[str, Any], resting: bool = False) -> Optional[int]:
        """A token for a new goal, or None when the same decision is already running (or a
        stop would repeat one that holds: `resting` says the robot is at rest)."""
        with self._lock:
            if any(same_goal(g, (skill, params)) for g in self._running.values()):
                return None
            if skill == STOP and self._stopped and resting:
                return None
            self._stopped = False
            self._next += 1
            self._running[self._next] = (skill, dict(params))
            return self._next

    def end(self, token: int, succeeded: bool = False) -> None:
        """The goal was rejected or has a result: the same decision may be sent again."""
        with self._lock:
            goal = self._running.pop(token, None)
            if goal is not None and goal[0] == STOP and succeeded and not self._running:
                self._stopped = True

    def running(self) -> int:
        """Goals sent and not yet ended."""
        with self._lock:
            return len(self._running)
