"""Observation and instruction messages -> a Situation the decision paths can trust (no rclpy).

What a message carries is checked here once: feature names and values, summary and instruction
lengths, invalid UTF-8. A malformed observation gives a reason, never a guess.
"""
from __future__ import annotations

import math
import re
import struct
from typing import List, Optional, Sequence, Tuple

from llm_agent_brain import prompt
from llm_agent_brain.decision_types import Situation

MAX_FEATURES = 256
# A feature name is an identifier: it goes into the prompt, the cache key and the tree.
FEATURE_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]{0,63}')


def situation_from(names: Sequence[str], values: Sequence[float], summary: str,
                   instruction: str, max_instruction_chars: int = 500,
                   max_summary_chars: int = 400) -> Tuple[Optional[Situation], str, List[str]]:
    """(Situation, '', notes) from an observation's fields, or (None, reason, notes)."""
    notes: List[str] = []
    names, values = list(names), list(values)
    if len(names) != len(values):
        return None, (f'observation malformed: {len(names)} feature names but '
                      f'{len(values)} values'), notes
    if len(names) > MAX_FEATURES:
        return None, f'observation malformed: {len(names)} features (at most {MAX_FEATURES})', notes
    if len(set(names)) != len(names):
        return None, 'observation malformed: repeated feature names', notes
    odd = [n for n in names if not FEATURE_NAME.fullmatch(str(n))]
    if odd:
        return None, (f'observation malformed: feature name {str(odd[0])[:40]!r} is not '
                      f'[A-Za-z_][A-Za-z0-9_]* of at most 64 characters'), notes
    bad = [n for n, v in zip(names, values) if not math.isfinite(float(v))]
    if bad:
        return None, f'observation malformed: non-finite value for {", ".join(bad[:5])}', notes
    text, cut = prompt.sanitize_text(instruction, max_instruction_chars)
    if cut:
        notes.append(f'instruction of {len(instruction)} characters truncated to '
                     f'{max_instruction_chars}')
    if '\ufffd' in instruction:
        notes.append('instruction had invalid UTF-8 (replaced)')
    summ, cut = prompt.sanitize_text(summary, max_summary_chars)
    if cut:
        notes.append(f'summary truncated to {max_summary_chars} characters')
    features = {str(n): float(v) for n, v in zip(names, values)}
    return Situation(features=features, summary=summ, instruction=text), '', notes


def decode_string_message(raw: bytes) -> Tuple[str, bool]:
    """Text of a serialized std_msgs/String; invalid UTF-8 replaced. (text, had_invalid)."""
    from rclpy.serialization import deserialize_message
    from std_msgs.msg import String
    try:
        text = deserialize_message(raw, String).data
        return text, '\ufffd' in text
    except Exception:  # noqa: BLE001 - a deserializer that refuses bad UTF-8: decode by hand
        pass
    if len(raw) < 8:
        return '', True
    little = raw[1] == 1  # CDR encapsulation: 0x0001 = little endian
    (length,) = struct.unpack('<I' if little else '>I', raw[4:8])
    body = raw[8:8 + max(0, length - 1)]
    return body.decode('utf-8', errors='replace'), True
