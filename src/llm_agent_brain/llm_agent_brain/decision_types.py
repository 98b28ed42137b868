"""Plain data passed between the brain's decision paths (rules, tree, cache, LLM backends)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Protocol

SOURCES = ('rule', 'tree', 'cache', 'llm', 'fallback')


@dataclass(frozen=True)
class Situation:
    """What every decision path sees: named features, the summary and the instruction."""

    features: Dict[str, float]
    summary: str = ''
    instruction: str = ''


@dataclass
class Choice:
    """A decision before it becomes a Decision message: always a catalogue skill, valid params."""

    skill: str
    params: Dict[str, Any] = field(default_factory=dict)
    confidence: float = 1.0
    source: str = 'llm'
    rationale: str = ''


class Backend(Protocol):
    """An LLM backend: given the allowed skills, the situation and the instruction, choose."""

    name: str

    def choose(self, situation: Situation, catalog: Any) -> Choice:
        """Return a Choice among `catalog.names`; raise BackendError when it cannot."""
        ...


class BackendError(RuntimeError):
    """The backend could not produce a decision (timeout, server error, bad answer)."""
