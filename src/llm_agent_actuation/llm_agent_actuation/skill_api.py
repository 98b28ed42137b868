"""The plugin interface of a skill: a small pure-Python class the server steps at its control rate.

A skill never talks to ROS. The server gives it a `SkillContext` (the robot's latest pose, the
perception features, the safety guard's view ahead, limits from config) and reads back the
velocity it asked for with `ctx.drive()` and the text it asked to say with `ctx.say()`.

    class Wiggle(Skill):
        resources = ('base',)          # empty: the catalogue's `resource` for the skill
        def start(self, params, ctx): self.t0 = ctx.now
        def step(self, ctx, dt):
            ctx.drive(0.0, 0.5)
            done = ctx.now - self.t0 > 1.0
            return StepOutcome(min(1.0, ctx.now - self.t0), 'wiggling',
                               SkillResult(True, 'wiggled') if done else None)

Its parameters come already validated and normalised from the catalogue (config/skills.yaml).
The server handles timeouts, cancel, pre-emption, approval and the safety guard around it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple


class SkillResult(NamedTuple):
    """How a skill ended: success and a message for the action result."""

    success: bool
    message: str


class StepOutcome(NamedTuple):
    """What one step reports: progress 0..1, a short state, and the result once done."""

    progress: float
    state: str
    result: Optional[SkillResult] = None


@dataclass(frozen=True)
class Pose2D:
    """A planar pose in the odom frame (m, m, rad)."""

    x: float
    y: float
    yaw: float


@dataclass(frozen=True)
class SkillConfig:
    """Limits and gains the skills share (set from the server's parameters)."""

    max_linear_mps: float = 0.5
    max_angular_rps: float = 1.5
    safety_distance_m: float = 0.35
    position_tolerance_m: float = 0.05
    angle_tolerance_rad: float = 0.03
    target_size_stop: float = 0.6
    observation_timeout_s: float = 1.0
    speech_chars_per_s: float = 15.0
    approach_speed_mps: float = 0.25
    search_turn_rps: float = 0.4


@dataclass
class WorldState:
    """The latest sensor-derived state; the server replaces fields as messages arrive."""

    pose: Optional[Pose2D] = None
    pose_stamp: float = -math.inf
    features: Dict[str, float] = field(default_factory=dict)
    features_stamp: float = -math.inf
    front_clearance_m: Optional[float] = None   # nearest range in the guard's front sector
    forward_allowed: bool = False
    forward_reason: str = 'no scan received yet'


class SkillContext:
    """One goal's window on the robot: read the world, ask for velocity and speech."""

    def __init__(self, world: WorldState, config: SkillConfig, now: float = 0.0):
        self.world = world
        self.config = config
        self.now = now
        self.cmd: Optional[Tuple[float, float]] = None
        self.speech: List[str] = []
        self.log_lines: List[str] = []

    @property
    def pose(self) -> Optional[Pose2D]:
        return self.world.pose

    def features(self) -> Dict[str, float]:
        """Perception features if fresh (observation_timeout_s), else an empty dict."""
        if self.now - self.world.features_stamp > self.config.observation_timeout_s:
            return {}
        return self.world.features

    def drive(self, linear: float, angular: float) -> None:
        """Ask for a base velocity this step (clamped to the configured limits)."""
        c = self.config
        self.cmd = (clamp(linear, -c.max_linear_mps, c.max_linear_mps),
                    clamp(angular, -c.max_angular_rps, c.max_angular_rps))

    def say(self, text: str) -> None:
        """Ask the server to publish text on the speech topic."""
        self.speech.append(text)

    def log(self, line: str) -> None:
        self.log_lines.append(line)


class Skill:
    """Base class of a skill plugin; subclass and override `start` and `step`."""

    #: resources held while running; empty = the catalogue's `resource` for the skill
    resources: Tuple[str, ...] = ()
    #: refused at goal time when the safety guard forbids forward motion
    needs_forward_clearance: bool = False

    def start(self, params: Mapping[str, Any], ctx: SkillContext) -> None:
        """Begin with validated parameters."""

    def step(self, ctx: SkillContext, dt: float) -> StepOutcome:  # pragma: no cover
        """Advance one control period; return progress, state and the result once done."""
        raise NotImplementedError

    def stop(self, ctx: SkillContext) -> None:
        """Called once when the skill ends for any reason (done, cancel, pre-empt, timeout)."""


def clamp(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)


