"""The skill executive: validates goals, starts skills on their resources (pre-empting the
holder), steps them at the control rate through the safety guard, and ends them on success,
failure, timeout, cancel or pre-emption. Pure Python; the ROS node only wires it.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type

from llm_agent_common.catalog import SkillCatalog, SkillSpec

from .arbiter import ResourceArbiter
from .guard import SafetyGuard
from .plugins import resolve_skill_class, skill_resources
from .skill_api import Skill, SkillConfig, SkillContext, SkillResult, WorldState
from .stats import ServerStats

BASE = 'base'
_log = logging.getLogger(__name__)

# Result kinds (counted on diagnostics)
SUCCEEDED, FAILED, CANCELED, PREEMPTED, TIMED_OUT, GUARD, ESTOP = (
    'succeeded', 'failed', 'canceled', 'preempted', 'timed_out', 'guard_abort', 'estop')


@dataclass
class GoalRun:
    """One accepted goal from acceptance to its result."""

    goal_id: str
    spec: SkillSpec
    params: Dict[str, Any]
    skill: Skill
    ctx: SkillContext
    resources: Tuple[str, ...]
    accepted_at: float
    started_at: Optional[float] = None
    first_cmd_at: Optional[float] = None
    last_step_at: Optional[float] = None
    progress: float = 0.0
    state: str = 'accepted'
    result: Optional[SkillResult] = None
    kind: str = ''
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def holds_base(self) -> bool:
        return BASE in self.resources


class Executive:
    """Goals, resources and skills; every method is thread-safe."""

    def __init__(self, catalog: SkillCatalog, config: SkillConfig, guard: SafetyGuard,
                 stats: Optional[ServerStats] = None, max_active_goals: int = 16):
        self.catalog = catalog
        self.config = config
        self.guard = guard
        self.stats = stats or ServerStats()
        self.max_active_goals = max_active_goals
        self.world = WorldState()
        self.arbiter = ResourceArbiter()
        self.lock = threading.RLock()
        self.runs: Dict[str, GoalRun] = {}          # accepted, not yet ended (incl. waiting)
        self._reserved = 0                           # accepted by goal check, run not created
        self._classes: Dict[str, Type[Skill]] = {}
        self._base_was_active = False
        self.estop_reason = ''                       # non-empty: the software stop is engaged
        self.closed = ''                             # non-empty: shut down, goals refused

    # -- goal time -------------------------------------------------------------------------
    def skill_class(self, name: str) -> Type[Skill]:
        """The class of a configured skill (cached); raises PluginError."""
        cls = self._classes.get(name)
        if cls is None:
            cls = self._classes[name] = resolve_skill_class(self.catalog[name])
        return cls

    def check_goal(self, skill: str, params_json: str, now: float) -> Tuple[Dict[str, Any], str]:
        """(params, '') to accept a goal, or ({}, reason) to reject it; reserves a slot."""
        if self.closed:
            return {}, self.closed
        params, reason = self.catalog.validate(skill, params_json)
        if reason:
            return {}, reason
        try:
            cls = self.skill_class(skill)
        except Exception as exc:  # noqa: BLE001 - a plugin that fails to load is its goal's problem
            return {}, f'{skill}: plugin error: {type(exc).__name__}: {exc}'
        if self.estop_reason and BASE in skill_resources(cls, self.catalog[skill]):
            return {}, f'{skill} refused: e-stop engaged ({self.estop_reason})'
        if getattr(cls, 'needs_forward_clearance', False):
            ok, why = self.guard.forward_allowed(now)
            if not ok:
                return {}, f'{skill} refused: {why}'
        with self.lock:
            if len(self.runs) + self._reserved >= self.max_active_goals:
                return {}, f'server busy: {self.max_active_goals} goals active or waiting'
            self._reserved += 1
        return params, ''

    def create_run(self, goal_id: str, skill: str, params: Dict[str, Any], now: float) -> GoalRun:
        """Make the run of an accepted goal (consumes the slot reserved by check_goal)."""
        spec = self.catalog[skill]
        cls = self.skill_class(skill)
        run = GoalRun(goal_id=goal_id, spec=spec, params=params, skill=cls(),
                      ctx=SkillContext(self.world, self.config, now),
                      resources=skill_resources(cls, spec), accepted_at=now)
        with self.lock:
            self._reserved = max(0, self._reserved - 1)
            self.runs[goal_id] = run
            if self.closed:  # accepted while the server shut down: its thread returns at once
                self._finish(run, False, self.closed, FAILED)
        self.stats.add('accepted')
        return run

    # -- run time --------------------------------------------------------------------------
    def start(self, run: GoalRun, now: float) -> List[GoalRun]:
        """Give the run its resources (pre-empting holders) and start its skill."""
        with self.lock:
            if run.done.is_set():
                return []
            preempted_ids = self.arbiter.acquire(run.goal_id, run.resources)
            preempted = [self.runs[g] for g in preempted_ids if g in self.runs]
            for p in preempted:
                self._finish(p, False, f'pre-empted by {run.spec.name} (goal {run.goal_id[:8]})',
                             PREEMPTED)
                self.stats.add('preemptions')
            run.started_at = run.last_step_at = now
            run.ctx.now = now
            run.state = 'started'
            try:
                run.skill.start(run.params, run.ctx)
            except Exception as exc:  # a plugin's bug ends its goal, not the server
                self._finish(run, False, f'{run.spec.name} failed to start: {exc!r}', FAILED)
            return preempted

    def tick(self, now: float) -> Tuple[Optional[Tuple[float, float]], List[str], List[str]]:
        """Step every running skill once; return (base command or None, speech, log lines)."""
        base_cmd: Optional[Tuple[float, float]] = None
        speech: List[str] = []
        logs: List[str] = []
        with self.lock:
            for run in list(self.runs.values()):
                if run.started_at is None or run.done.is_set():
                    continue
                dt = max(0.0, now - (run.last_step_at or now))
                run.last_step_at = now
                ctx = run.ctx
                ctx.now = now
                ctx.cmd = None
                if now - run.started_at > run.spec.timeout_s:
                    self._finish(run, False, f'{run.spec.name} timed out after '
                                 f'{run.spec.timeout_s:.1f} s', TIMED_OUT)
                    if run.holds_base:
                        base_cmd = (0.0, 0.0)
                    continue
                try:
                    out = run.skill.step(ctx, dt)
                except Exception as exc:
                    self._finish(run, False, f'{run.spec.name} failed: {exc!r}', FAILED)
                    if run.holds_base:
                        base_cmd = (0.0, 0.0)
                    continue
                speech.extend(ctx.speech)
                logs.extend(ctx.log_lines)
                ctx.speech, ctx.log_lines = [], []
                run.progress = min(1.0, max(0.0, float(out.progress)))
                run.state = str(out.state)
                if run.holds_base:
                    v, w = ctx.cmd if ctx.cmd is not None else (0.0, 0.0)
                    v, w, why = self.guard.filter(v, w, now)
                    if self.estop_reason:  # set by another thread since this run started
                        v, w, why = 0.0, 0.0, f'e-stop engaged ({self.estop_reason})'
                    if why:
                        self.stats.add('guard_stops')
                        self._finish(run, False, f'aborted by the safety guard: {why}', GUARD)
                        base_cmd = (0.0, 0.0)
                        continue
                    base_cmd = (v, w)
                    if run.first_cmd_at is None:
                        run.first_cmd_at = now
                        self.stats.first_command_latency(max(0.0, now - run.accepted_at))
                if out.result is not None:
                    self._finish(run, bool(out.result.success), str(out.result.message),
                                 SUCCEEDED if out.result.success else FAILED)
                    if run.holds_base:
                        base_cmd = (0.0, 0.0)
            base_active = self.base_active()
            if base_cmd is None and self._base_was_active and not base_active:
                base_cmd = (0.0, 0.0)   # the base skill just ended some other way
            self._base_was_active = base_active
        return base_cmd, speech, logs

    def cancel(self, goal_id: str) -> bool:
        """End a goal as canceled; True when it held the base (the caller zeroes it now)."""
        with self.lock:
            run = self.runs.get(goal_id)
            if run is None or run.done.is_set():
                return False
            self._finish(run, False, 'canceled', CANCELED)
            return run.holds_base and run.started_at is not None

    def fail(self, run: GoalRun, message: str, kind: str = FAILED) -> None:
        """End a goal that never started (approval refused or timed out)."""
        with self.lock:
            self._finish(run, False, message, kind)

    def end(self, run: GoalRun) -> None:
        """Forget a goal whose result was sent."""
        with self.lock:
            self.arbiter.release(run.goal_id)
            self.runs.pop(run.goal_id, None)

    def set_estop(self, engaged: bool, reason: str = '') -> bool:
        """Engage (every goal on the base ends now, new ones are refused) or release the software
        stop; True when a base skill was running (the caller zeroes the base at once)."""
        with self.lock:
            self.estop_reason = (reason or 'engaged') if engaged else ''
            if not engaged:
                return False
            was_moving = self.base_active()
            for run in list(self.runs.values()):
                if run.holds_base:
                    self._finish(run, False, f'stopped by the e-stop ({self.estop_reason})', ESTOP)
            return was_moving

    def shutdown(self, message: str = 'skill server shutting down') -> None:
        """End every goal (running or waiting) so their execute threads return; from now on
        goals are refused, and one accepted just before ends as soon as its run is made."""
        with self.lock:
            self.closed = message
            for run in list(self.runs.values()):
                self._finish(run, False, message, FAILED)

    def base_active(self) -> bool:
        with self.lock:
            holder = self.arbiter.holder(BASE)
            run = self.runs.get(holder) if holder is not None else None
            return run is not None and not run.done.is_set()

    def active_by_resource(self) -> Dict[str, int]:
        with self.lock:
            out: Dict[str, int] = {}
            for run in self.runs.values():
                if run.started_at is not None and not run.done.is_set():
                    for r in run.resources:
                        out[r] = out.get(r, 0) + 1
            return out

    def _finish(self, run: GoalRun, success: bool, message: str, kind: str) -> None:
        if run.done.is_set():
            return
        run.result = SkillResult(success, message)
        run.kind = kind
        if run.started_at is not None:
            try:
                run.skill.stop(run.ctx)
            except Exception as exc:  # pragma: no cover - a plugin's bug
                _log.warning('%s.stop failed: %r', run.spec.name, exc)
        self.arbiter.release(run.goal_id)
        self.stats.outcome(kind)
        run.done.set()


def elapsed(run: GoalRun, now: float) -> float:
    """Seconds from acceptance to now (the action result's duration)."""
    return max(0.0, now - run.accepted_at) if math.isfinite(run.accepted_at) else 0.0
