"""Collisions as the robot itself senses them (no rclpy).

A real robot has no `sim/events`: a contact is a bumper/contact message when one is configured,
or the scan's nearest return closer than `contact_range_m` (the observation's sector ranges are
the scan's minima). Each contact is reported once, until the robot is clear again.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, Mapping

from llm_agent_common.features import SECTOR_NAMES


class ContactMonitor:
    """Edge-detect contacts: True once when one starts, again only after the robot was clear."""

    def __init__(self, contact_range_m: float, clear_range_m: float) -> None:
        if not 0.0 <= contact_range_m <= clear_range_m:
            raise ValueError(f'need 0 <= contact_range_m ({contact_range_m}) <= '
                             f'clear_range_m ({clear_range_m})')
        self.contact_range_m = contact_range_m
        self.clear_range_m = clear_range_m
        self._touching = False

    def update(self, touching: bool) -> bool:
        """Feed the current contact state; True when a new contact starts."""
        started = touching and not self._touching
        self._touching = touching
        return started

    def update_ranges(self, features: Mapping[str, float]) -> bool:
        """Feed an observation's features; True when the nearest sector range starts a contact."""
        ranges = [features[n] for n in SECTOR_NAMES if n in features and math.isfinite(features[n])]
        if not ranges or self.contact_range_m <= 0.0:
            return False
        nearest = min(ranges)
        if self._touching and nearest < self.clear_range_m:
            return False  # still in (or just out of) the same contact
        return self.update(nearest < self.contact_range_m)


MAX_EVENT_BYTES = 65536   # a world event is a few hundred bytes; more is not an event


def parse_event(text: str) -> Dict[str, Any]:
    """A `sim/events` message as a dict whose 'type' is a string; ValueError says what is wrong.

    Deep nesting, huge numbers and oversized or non-object messages are refused here, so the
    node's callback only ever sees a well-formed event.
    """
    if len(text) > MAX_EVENT_BYTES:
        raise ValueError(f'event of {len(text)} characters (at most {MAX_EVENT_BYTES})')
    try:
        event = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f'not JSON ({type(exc).__name__}: {str(exc)[:80]})') from None
    if not isinstance(event, dict) or not isinstance(event.get('type'), str):
        raise ValueError('not a JSON object with a string "type"')
    return event
