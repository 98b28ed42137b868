"""A fixed policy in the place of the LLM, for tests and the bench (never the product's choice).

Forward when the way ahead is clear, else turn to the more open side: enough to fill the tree
and the caches in seconds where the real model would take minutes. Tests and bench rows that
use it say so; the LLM rows use the real model.
"""
from __future__ import annotations

from typing import Any

from llm_agent_brain.backends.base import BackendBase
from llm_agent_brain.decision_types import Choice, Situation


class ScriptedBackend(BackendBase):
    """Forward 0.5 m when front_range > 1.5 m, else turn 1 rad towards the more open side."""

    name = 'scripted'

    def choose(self, situation: Situation, catalog: Any) -> Choice:
        f = situation.features
        if f['front_range'] > 1.5:
            return Choice('move_forward', {'distance': 0.5, 'speed': 0.3}, 0.8, 'llm', 'scripted')
        return Choice('turn', {'angle': 1.0 if f['left_range'] > f['right_range'] else -1.0},
                      0.8, 'llm', 'scripted')
