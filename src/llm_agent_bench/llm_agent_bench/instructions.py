"""The instruction suite: kinds of plain-language goals, their paraphrases and declarative success
checks, judged against what the world recorded (no rclpy).

A suite file (YAML) lists kinds; each has paraphrases (so nothing passes by matching a string),
a time limit in sim seconds, and `check`: steps met in order, each one of

  reach: {target: <colour>|goal|start, within_m: 0.6}  the robot centre comes that close
  return_to: start | {within_m: 0.5}                    it ends that close to its start
  turn_by: {angle: rad, tol: 0.35}                      it ends turned by angle (left +)
  move_by: {distance: m, tol: 0.25}                     it ends that far along its start heading
  stay: {seconds: s}                                    it does not move for that long
  say: {contains: text}                                 it speaks words containing the text
  stop_when_visible: <colour> | {colour, within_s: 3}  once the colour is in view, it stops
                                                        within within_s and stays stopped
  no_contact: true                                      no collision (anywhere in the list)

A step is met at a moment of the episode; the next step is judged from there on. `return_to`,
`turn_by` and `move_by` are judged on the pose the episode ends with.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

REST_SPEED_MPS, REST_YAW_RATE = 0.02, 0.05  # below both the robot is at rest
HALF_FOV_RAD = math.radians(28.0)            # the 60 degree camera, less a margin at the edges
STILL_M, STILL_RAD = 0.1, 0.2                # what `stay` tolerates (odometry noise, a nudge)

CHECKS = ('reach', 'return_to', 'turn_by', 'move_by', 'stay', 'say', 'stop_when_visible',
          'no_contact')
_FIELDS = {'reach': ({'target'}, {'target', 'within_m'}),
           'return_to': (set(), {'within_m'}),
           'turn_by': ({'angle'}, {'angle', 'tol'}),
           'move_by': ({'distance'}, {'distance', 'tol'}),
           'stay': ({'seconds'}, {'seconds'}),
           'say': ({'contains'}, {'contains'}),
           'stop_when_visible': ({'colour'}, {'colour', 'within_s'})}
DEFAULTS = {'reach': {'within_m': 0.6}, 'return_to': {'within_m': 0.5}, 'turn_by': {'tol': 0.35},
            'move_by': {'tol': 0.25}, 'stop_when_visible': {'within_s': 3.0}}
_KIND_KEYS = {'kind', 'paraphrases', 'check', 'time_limit_s', 'world', 'description'}


class SuiteError(ValueError):
    """A suite file is invalid; the message names the kind and the field."""


@dataclass(frozen=True)
class Step:
    check: str
    args: Dict[str, Any]


@dataclass(frozen=True)
class Kind:
    name: str
    paraphrases: Tuple[str, ...]
    steps: Tuple[Step, ...]
    time_limit_s: float
    world: str = 'generated'
    description: str = ''


def parse_step(raw: Any, where: str, colours: Sequence[str]) -> Step:
    """One check of a kind, with its defaults filled in."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise SuiteError(f'{where} must be a mapping with one check, one of {", ".join(CHECKS)}')
    (name, value), = raw.items()
    if name not in CHECKS:
        raise SuiteError(f'{where}: unknown check {name!r}, expected one of {", ".join(CHECKS)}')
    if name == 'no_contact':
        if value is not True:
            raise SuiteError(f'{where}.no_contact must be true')
        return Step(name, {})
    if name == 'return_to' and value == 'start':
        value = {}
    if name == 'stop_when_visible' and isinstance(value, str):
        value = {'colour': value}
    if not isinstance(value, dict):
        raise SuiteError(f'{where}.{name} must be a mapping')
    required, allowed = _FIELDS[name]
    if set(value) - allowed or required - set(value):
        raise SuiteError(f'{where}.{name} takes {", ".join(sorted(allowed))} '
                         f'(required: {", ".join(sorted(required)) or "none"}), got '
                         f'{", ".join(sorted(value)) or "nothing"}')
    args = dict(DEFAULTS.get(name, {}), **value)
    for key, v in args.items():
        if key in ('target', 'colour', 'contains'):
            if not isinstance(v, str) or not v.strip():
                raise SuiteError(f'{where}.{name}.{key} must be a non-empty string')
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SuiteError(f'{where}.{name}.{key} must be a finite number')
        elif key in ('within_m', 'tol', 'seconds', 'within_s') and v <= 0:
            raise SuiteError(f'{where}.{name}.{key} must be positive')
    for key in ('target', 'colour'):
        allowed_names = list(colours) + (['goal', 'start'] if key == 'target' else [])
        if key in args and args[key] not in allowed_names:
            raise SuiteError(f'{where}.{name}.{key} must be one of {", ".join(allowed_names)}')
    return Step(name, args)


def parse_suite(data: Any, colours: Sequence[str], source: str = 'suite') -> List[Kind]:
    """Kinds of a parsed suite file; SuiteError names the file, the kind and the field."""
    items = data.get('kinds') if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise SuiteError(f'{source}: needs a non-empty list `kinds`')
    kinds: List[Kind] = []
    for i, item in enumerate(items):
        where = f'{source}: kinds[{i}]'
        if not isinstance(item, dict):
            raise SuiteError(f'{where} must be a mapping')
        if set(item) - _KIND_KEYS:
            raise SuiteError(f'{where}: unknown field(s) {", ".join(sorted(set(item) - _KIND_KEYS))}')
        name = item.get('kind')
        if not isinstance(name, str) or not name or name in {k.name for k in kinds}:
            raise SuiteError(f'{where}.kind must be a name of its own')
        where = f'{source}: kind {name}'
        phrases = item.get('paraphrases')
        if not isinstance(phrases, list) or len(phrases) < 3 or not all(
                isinstance(p, str) and p.strip() for p in phrases) or len(set(phrases)) < 3:
            raise SuiteError(f'{where}.paraphrases must be at least 3 different strings')
        steps_raw = item.get('check')
        if not isinstance(steps_raw, list) or not steps_raw:
            raise SuiteError(f'{where}.check must be a non-empty list of checks')
        steps = tuple(parse_step(s, f'{where}.check[{j}]', colours) for j, s in enumerate(steps_raw))
        limit = item.get('time_limit_s')
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 1 <= limit <= 600:
            raise SuiteError(f'{where}.time_limit_s must be a number of sim seconds in 1..600')
        world = item.get('world', 'generated')
        if not isinstance(world, str) or not world:
            raise SuiteError(f'{where}.world must be a world file name or "generated"')
        kinds.append(Kind(name, tuple(p.strip() for p in phrases), steps, float(limit), world,
                          str(item.get('description', ''))))
    return kinds


def load_suite(path: str, colours: Optional[Sequence[str]] = None) -> List[Kind]:
    """Kinds of a suite file; colours default to those the built-in world's targets have."""
    import os

    from llm_agent_common.config import read_yaml
    if colours is None:
        from llm_agent_sim.world import TARGET_COLOURS as colours
    return parse_suite(read_yaml(path, SuiteError), colours, os.path.basename(path))


# ------------------------------------------------------------------ what an episode recorded
@dataclass
class Trace:
    """An episode as the world and the brain told it: poses from odometry (sim seconds from the
    episode's start, yaw unwrapped), what the robot said, collisions, and where things are."""

    t: List[float] = field(default_factory=list)
    x: List[float] = field(default_factory=list)
    y: List[float] = field(default_factory=list)
    yaw: List[float] = field(default_factory=list)
    speed: List[float] = field(default_factory=list)
    yaw_rate: List[float] = field(default_factory=list)
    said: List[Tuple[float, str]] = field(default_factory=list)
    collisions: int = 0
    goal: Tuple[float, float] = (0.0, 0.0)
    targets: Dict[str, Tuple[float, float]] = field(default_factory=dict)

    def add_pose(self, t: float, x: float, y: float, yaw: float, speed: float,
                 yaw_rate: float) -> None:
        if self.yaw:   # unwrap: turns add up past +-pi
            yaw = self.yaw[-1] + math.remainder(yaw - self.yaw[-1], 2.0 * math.pi)
        for seq, v in ((self.t, t), (self.x, x), (self.y, y), (self.yaw, yaw),
                       (self.speed, speed), (self.yaw_rate, yaw_rate)):
            seq.append(float(v))

    def point(self, name: str) -> Tuple[float, float]:
        if name == 'goal':
            return self.goal
        if name == 'start':
            return (self.x[0], self.y[0])
        return self.targets[name]

    def at_rest_for(self, seconds: float) -> bool:
        """The robot has been at rest for the last `seconds` (and moved before, or not)."""
        if not self.t or self.t[-1] - self.t[0] < seconds:
            return False
        for i in range(len(self.t) - 1, -1, -1):
            if abs(self.speed[i]) > REST_SPEED_MPS or abs(self.yaw_rate[i]) > REST_YAW_RATE:
                return False
            if self.t[-1] - self.t[i] >= seconds:
                return True
        return False


@dataclass(frozen=True)
class Verdict:
    ok: bool
    why: str


class Visibility:
    """Whether a target is in the camera's view with nothing in between (the world's geometry)."""

    def __init__(self, world: Any) -> None:
        from llm_agent_sim.world import ray_segment_distances
        self.world, self._targets, self._rays = world, world.targets(), ray_segment_distances

    def __call__(self, colour: str, x: float, y: float, yaw: float) -> bool:
        ob = self._targets.get(colour)
        if ob is None:
            return False
        dx, dy = ob.center[0] - x, ob.center[1] - y
        dist = math.hypot(dx, dy)
        if dist < 1e-6:
            return True
        if abs(math.remainder(math.atan2(dy, dx) - yaw, 2 * math.pi)) > HALF_FOV_RAD:
            return False
        hits = self._rays(x, y, np.array([[dx / dist, dy / dist]]), self.world.segments)
        return float(hits.min()) >= dist - 0.5 * math.hypot(*ob.size) - 1e-6


def _step_met(step: Step, trace: Trace, start: int, visible) -> Tuple[Optional[int], str]:
    """(index where the step is met at or after `start`, else None; a reason in words)."""
    a, n = step.args, len(trace.t)
    last = n - 1
    if step.check == 'reach':
        px, py = trace.point(a['target'])
        d = np.hypot(np.asarray(trace.x[start:]) - px, np.asarray(trace.y[start:]) - py)
        hit = np.flatnonzero(d <= a['within_m'])
        if hit.size:
            return start + int(hit[0]), f'reached {a["target"]}'
        return None, f'{a["target"]} never within {a["within_m"]} m (closest {d.min():.2f} m)'
    if step.check == 'return_to':
        d = math.hypot(trace.x[last] - trace.x[0], trace.y[last] - trace.y[0])
        return (last, 'back at the start') if d <= a['within_m'] else \
            (None, f'ended {d:.2f} m from the start')
    if step.check == 'turn_by':
        turned = trace.yaw[last] - trace.yaw[0]
        if abs(turned - a['angle']) <= a['tol']:
            return last, f'turned {turned:.2f} rad'
        return None, f'turned {turned:.2f} rad, not {a["angle"]:.2f}'
    if step.check == 'move_by':
        h = trace.yaw[0]
        dx, dy = trace.x[last] - trace.x[0], trace.y[last] - trace.y[0]
        along, across = dx * math.cos(h) + dy * math.sin(h), -dx * math.sin(h) + dy * math.cos(h)
        if abs(along - a['distance']) <= a['tol'] and abs(across) <= 2 * a['tol']:
            return last, f'moved {along:.2f} m'
        return None, f'moved {along:.2f} m along and {across:.2f} m across, not {a["distance"]} m'
    if step.check == 'stay':
        t0 = trace.t[start]
        for i in range(start, n):
            if math.hypot(trace.x[i] - trace.x[start], trace.y[i] - trace.y[start]) > STILL_M \
                    or abs(trace.yaw[i] - trace.yaw[start]) > STILL_RAD:
                return None, f'moved after {trace.t[i] - t0:.1f} s of {a["seconds"]} s'
            if trace.t[i] - t0 >= a['seconds']:
                return i, f'stayed {a["seconds"]} s'
        return None, 'the episode ended first'
    if step.check == 'say':
        for t, text in trace.said:
            if t >= trace.t[start] and a['contains'].lower() in text.lower():
                return int(np.searchsorted(trace.t, t)) if t <= trace.t[last] else last, 'said it'
        return None, f'never said "{a["contains"]}"'
    if step.check == 'stop_when_visible':
        seen = next((i for i in range(start, n)
                     if visible(a['colour'], trace.x[i], trace.y[i], trace.yaw[i])), None)
        if seen is None:
            return None, f'{a["colour"]} never in view'
        stop_by = trace.t[seen] + a['within_s']
        k = int(np.searchsorted(trace.t, stop_by))
        if k > last:
            return None, f'{a["colour"]} came into view {trace.t[last] - trace.t[seen]:.1f} s before the end'
        moved = max(math.hypot(trace.x[i] - trace.x[k], trace.y[i] - trace.y[k]) for i in range(k, n))
        if moved > STILL_M:
            return None, f'{a["colour"]} in view at {trace.t[seen]:.1f} s; the robot drove on'
        return k, f'stopped once {a["colour"]} was in view'
    raise ValueError(step.check)


def judge(steps: Sequence[Step], trace: Trace, visible) -> Verdict:
    """Whether the episode met every step in order (and no_contact, if listed)."""
    if not trace.t:
        return Verdict(False, 'no odometry was recorded')
    at, done = 0, []
    for step in steps:
        if step.check == 'no_contact':
            if trace.collisions:
                return Verdict(False, f'{trace.collisions} collision(s)')
            continue
        index, why = _step_met(step, trace, at, visible)
        if index is None:
            return Verdict(False, '; '.join(done + [why]))
        at = index
        done.append(why)
    return Verdict(True, '; '.join(done) or 'no contact')
