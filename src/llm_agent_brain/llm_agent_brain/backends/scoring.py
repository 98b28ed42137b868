"""Fill a chosen skill's parameters from the features, and turn candidate scores into a
confidence. Pure Python: used by every backend, tested without a model.

A scored choice names only the skill; its parameters come from the observation (turn towards
the target or the goal, drive up to the obstacle ahead minus a margin), clamped into the
catalogue's bounds and validated. A skill whose required parameters cannot be derived is not a
candidate at all, so a scored answer is always executable.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from llm_agent_brain.decision_types import BackendError, Choice, Situation

MAX_ANSWER_CHARS = 16384  # a skill and its params fit in far less
DEFAULT_MARGIN_M = 0.3  # the decision node's margin_m default (FastPathConfig)
# A turn smaller than this is a no-op for the base: offering it lets a weak model "decide"
# without changing anything, and a cached no-op then repeats forever.
MIN_TURN_RAD = 0.1
_NUMBER = r'[-+]?\d+(?:\.\d+)?'


def _numbers_after(text: str, words: Sequence[str]) -> Optional[float]:
    for word in words:
        m = re.search(rf'\b{word}\b\D{{0,12}}?({_NUMBER})', text, re.IGNORECASE)
        if m:
            return float(m.group(1))
    return None


def _point_from_instruction(text: str) -> Optional[Tuple[float, float]]:
    m = re.search(rf'x\s*[=:]\s*({_NUMBER}).{{0,12}}?y\s*[=:]\s*({_NUMBER})', text, re.IGNORECASE)
    if not m:
        m = re.search(rf'\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)', text)
    return (float(m.group(1)), float(m.group(2))) if m else None


def _finite(features: Mapping[str, float], name: str) -> Optional[float]:
    value = features.get(name)
    return float(value) if value is not None and math.isfinite(value) else None


def derive_params(skill: str, situation: Situation, catalog: Any,
                  margin_m: float = DEFAULT_MARGIN_M) -> Optional[Dict[str, Any]]:
    """Parameters for `skill` from the features and instruction, or None when not derivable."""
    if skill not in catalog:
        return None
    f = situation.features
    text = situation.instruction or ''
    raw: Dict[str, Any] = {}
    if skill == 'turn':
        angle = None
        if (_finite(f, 'target_visible') or 0.0) >= 0.5 and _finite(f, 'target_bearing') is not None:
            angle = _finite(f, 'target_bearing')
        elif _finite(f, 'goal_bearing') is not None:
            angle = _finite(f, 'goal_bearing')
        else:
            left, right = _finite(f, 'left_range'), _finite(f, 'right_range')
            # Search: a quarter turn towards the more open side (left when unknown).
            angle = -math.pi / 2 if left is not None and right is not None and right > left \
                else math.pi / 2
        if abs(angle) < MIN_TURN_RAD:
            return None
        raw['angle'] = angle
    elif skill == 'move_forward':
        front = _finite(f, 'front_range')
        if front is None:
            return None
        distance = front - margin_m
        goal = _finite(f, 'goal_distance')
        if goal is not None:
            distance = min(distance, goal)
        low = catalog[skill].params['distance'].min if 'distance' in catalog[skill].params else None
        if low is not None and distance < low:
            return None  # no room ahead: clamping up to the minimum would drive at the obstacle
        raw['distance'] = distance
    elif skill == 'navigate_to':
        point = _point_from_instruction(text)
        if point is None:
            return None
        raw['x'], raw['y'] = point
    elif skill == 'approach_target':
        # Only towards a target that is in view; searching is the job of turn.
        if (_finite(f, 'target_visible') or 0.0) < 0.5:
            return None
    elif skill == 'wait':
        # Only when asked to: waiting is never a way to reach a goal.
        if not re.search(r'\b(wait|pause|hold on)\b', text, re.IGNORECASE):
            return None
        seconds = _numbers_after(text, ('wait', 'pause', 'for'))
        raw['seconds'] = seconds if seconds is not None else 1.0
    elif skill == 'speak':
        # The words to say come from the instruction; without any, speak is no candidate.
        m = re.search(r'\b(?:say|speak|tell|announce)\b[:\s]*(.+)', text, re.IGNORECASE)
        if not m or not m.group(1).strip():
            return None
        raw['text'] = m.group(1).strip()
    spec = catalog[skill]
    # Generic skills of a user's catalogue: only their defaults are known.
    for name, p in spec.params.items():
        if name not in raw and p.default is None:
            return None
    params = catalog.clamp(skill, raw)
    valid, reason = catalog.validate(skill, params)
    return valid if not reason else None


def candidates(situation: Situation, catalog: Any,
               margin_m: float = DEFAULT_MARGIN_M) -> List[Tuple[str, Dict[str, Any]]]:
    """Skills whose parameters can be filled now, each with its parameters, catalogue order."""
    out = []
    for name in catalog.names:
        params = derive_params(name, situation, catalog, margin_m)
        if params is not None:
            out.append((name, params))
    return out


def softmax(scores: Sequence[float]) -> List[float]:
    """Normalised probabilities of log-scores (numerically stable)."""
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def choose_by_scores(situation: Situation, catalog: Any, margin_m: float,
                     score: Any) -> Choice:
    """The scored choice among the skills whose parameters can be filled now; `score(situation,
    catalog, names)` gives each name's log-likelihood (a backend's model)."""
    allowed = candidates(situation, catalog, margin_m)
    if not allowed:
        raise BackendError('no skill has derivable parameters in this situation')
    names = [n for n, _ in allowed]
    return choice_from_scores(names, score(situation, catalog, names), allowed)


def choice_from_scores(names: Sequence[str], scores: Sequence[float],
                       allowed: Sequence[Tuple[str, Dict[str, Any]]]) -> Choice:
    """The best-scored candidate as a Choice (its parameters derived from the features), with
    the softmax of the scores as confidence and the top three in the rationale."""
    probs = softmax(scores)
    best = max(range(len(names)), key=lambda i: scores[i])
    ranked = sorted(zip(names, probs), key=lambda x: -x[1])[:3]
    why = ', '.join(f'{n} {p:.2f}' for n, p in ranked)
    return Choice(skill=names[best], params=dict(allowed[best][1]), confidence=float(probs[best]),
                  source='llm', rationale=f'scored {len(names)} skills: {why}; params from features')


def merge_params(skill: str, proposed: Any, situation: Situation, catalog: Any,
                 margin_m: float = DEFAULT_MARGIN_M) -> Tuple[Optional[Dict[str, Any]], str]:
    """The model's proposed params when they validate, else (None, reason): an invalid answer
    is a fallback, never an action. Without proposed params they come from the features."""
    if proposed is not None and not isinstance(proposed, dict):
        return None, 'params is not a JSON object'
    if proposed:
        params, reason = catalog.validate(skill, proposed)
        return (params, 'model params') if not reason else (None, reason)
    derived = derive_params(skill, situation, catalog, margin_m)
    if derived is not None:
        return derived, 'derived from features'
    params, reason = catalog.validate(skill, proposed if isinstance(proposed, dict) else {})
    return (params, 'defaults') if not reason else (None, reason)


def parse_answer(text: str, names: Sequence[str]) -> Tuple[Optional[str], Any]:
    """(skill, params) from a model's JSON answer, or a bare skill name; (None, None) if none.

    Linear in the answer's length (a regex over `{.*}` was quadratic: 100k `{` took 6 s), and
    only its first MAX_ANSWER_CHARS are read.
    """
    text = text[:MAX_ANSWER_CHARS]
    start, end = text.find('{'), text.rfind('}')
    if 0 <= start < end:
        try:
            data = json.loads(text[start:end + 1])
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and isinstance(data.get('skill'), str) and data['skill'] in names:
            return data['skill'], data.get('params', {})
    words = re.findall(r'[A-Za-z_]+', text)
    for word in words:
        if word in names:
            return word, {}
    return None, None


def choice_from_answer(text: str, situation: Situation, catalog: Any, margin_m: float,
                       who: str) -> Choice:
    """A validated Choice from a model's free-text answer; BackendError when it is unusable.

    Shared by every backend that reads text (free generation, OpenAI-compatible servers).
    """
    skill, proposed = parse_answer(text, catalog.names)
    if skill is None:
        raise BackendError(f'{who} {text[:120]!r}: names no allowed skill')
    params, how = merge_params(skill, proposed, situation, catalog, margin_m)
    if params is None:
        raise BackendError(f'{who} {skill!r} with unusable parameters: {how}')
    return Choice(skill=skill, params=params, confidence=0.5, source='llm',
                  rationale=f'{who} {text[:80]!r}; {how}')


class CandidateTree:
    """Candidate token sequences as a prefix tree, to feed them all in one sequence.

    `tokens` are the tree's nodes in feed order (each candidate's tokens but its last, shared
    prefixes once), `depths` their depth (0 = a first token), `ancestors` each node's ancestors
    and itself (what it may attend to among the tree's tokens).
    """

    def __init__(self, candidates: Sequence[Sequence[int]]) -> None:
        self.tokens: List[int] = []
        self.depths: List[int] = []
        self.ancestors: List[List[int]] = []
        self._node: Dict[Tuple[int, ...], int] = {}
        self._candidates = [list(c) for c in candidates]
        for cand in candidates:
            for j in range(1, len(cand)):
                key = tuple(cand[:j])
                if key in self._node:
                    continue
                parent = self._node.get(key[:-1])
                self._node[key] = len(self.tokens)
                self.tokens.append(cand[j - 1])
                self.depths.append(j - 1)
                self.ancestors.append(([] if parent is None else self.ancestors[parent])
                                      + [len(self.tokens) - 1])

    def steps(self, candidate: Sequence[int]) -> List[Tuple[int, int]]:
        """(row, token) pairs whose log-probabilities sum to the candidate's score: row 0 is
        the distribution after the context, row 1 + i the one after tree node i."""
        out = [(0, candidate[0])]
        for j in range(1, len(candidate)):
            out.append((1 + self._node[tuple(candidate[:j])], candidate[j]))
        return out

    def members(self) -> List[Set[int]]:
        """For each tree node, the candidates (by index) whose tokens pass through it."""
        out: List[Set[int]] = [set() for _ in self.tokens]
        for j, cand in enumerate(self._candidates):
            for row, _ in self.steps(cand)[1:]:
                out[row - 1].add(j)
        return out
