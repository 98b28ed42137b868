"""Resource arbitration: who holds the base or the speaker, and who a new goal pre-empts.

Pure Python. A goal acquiring resources pre-empts every goal holding any of them (the newest
goal wins); goals on disjoint resources run side by side.
"""
from __future__ import annotations

from typing import Dict, Hashable, Iterable, List, Optional, Tuple


class ResourceArbiter:
    """Track which goal holds each resource."""

    def __init__(self) -> None:
        self._holder: Dict[str, Hashable] = {}
        self._held: Dict[Hashable, Tuple[str, ...]] = {}

    def acquire(self, goal: Hashable, resources: Iterable[str]) -> List[Hashable]:
        """Give `goal` the resources; return the goals pre-empted (they hold nothing now)."""
        resources = tuple(dict.fromkeys(resources))
        preempted: List[Hashable] = []
        for r in resources:
            h = self._holder.get(r)
            if h is not None and h != goal and h not in preempted:
                preempted.append(h)
        for h in preempted:
            self.release(h)
        for r in resources:
            self._holder[r] = goal
        self._held[goal] = resources
        return preempted

    def release(self, goal: Hashable) -> None:
        """Free whatever `goal` holds (no-op if it holds nothing)."""
        for r in self._held.pop(goal, ()):
            if self._holder.get(r) == goal:
                del self._holder[r]

    def holder(self, resource: str) -> Optional[Hashable]:
        return self._holder.get(resource)

    def holds(self, goal: Hashable) -> Tuple[str, ...]:
        return self._held.get(goal, ())

    def active_by_resource(self) -> Dict[str, int]:
        """Number of goals on each resource held now (0 or 1 each)."""
        return {r: 1 for r in sorted(self._holder)}

    def __len__(self) -> int:
        return len(self._held)
