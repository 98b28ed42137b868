"""The skills of the mobile-robot scenario, closed loop on odometry and perception features.

Pure Python: each class follows `skill_api.Skill`; skills.yaml names them by `plugin`, and the
server falls back to `BUILTIN_SKILLS` by skill name.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Type

from llm_agent_common.angles import wrap_angle

from .skill_api import Pose2D, Skill, SkillContext, SkillResult, StepOutcome, clamp

_WAIT_ODOM = 'waiting for odom'


class Stop(Skill):
    """Command zero velocity once and finish."""

    def step(self, ctx: SkillContext, dt: float) -> StepOutcome:
        ctx.drive(0.0, 0.0)
        return StepOutcome(1.0, 'stopped', SkillResult(True, 'stopped'))


class Wait(Skill):
    """Hold the base still for `seconds`."""

    def start(self, params: Mapping[str, Any], ctx: SkillContext) -> None:
        self.seconds = float(params['seconds'])
        self.t0 = ctx.now

    def step(self, ctx: SkillContext, dt: float) -> StepOutcome:
        ctx.drive(0.0, 0.0)
        elapsed = ctx.now - self.t0
        if elapsed >= self.seconds:
            return StepOutcome(1.0, 'waited', SkillResult(True, f'waited {self.seconds:.2f} s'))
        return StepOutcome(elapsed / self.seconds if self.seconds else 1.0, 'waiting')


class Speak(Skill):
    """Say a text (published on the speech topic); the speaker is busy for len/rate seconds."""

    resources = ('speaker',)

    def start(self, params: Mapping[str, Any], ctx: SkillContext) -> None:
        self.text = str(params['text'])
        self.duration = max(0.2, len(self.text) / ctx.config.speech_chars_per_s)
        self.t0 = ctx.now
        ctx.say(self.text)
        ctx.log(f'speak: {self.text}')

    def step(self, ctx: SkillContext, dt: float) -> StepOutcome:
        elapsed = ctx.now - self.t0
        if elapsed >= self.duration:
            return StepOutcome(1.0, 'spoken', SkillResult(True, f'said {len(self.text)} characters'))
        return StepOutcome(elapsed / self.duration, 'speaking')


class MoveForward(Skill):
    """Drive straight ahead `distance` metres at up to `speed`, holding the start heading."""

    needs_forward_clearance = True

    def start(self, params: Mapping[str, Any], ctx: SkillContext) -> None:
        self.distance = float(params['distance'])
        self.speed = float(params['speed'])
        self.origin: Optional[Pose2D] = None

    def step(self, ctx: SkillContext, dt: float) -> StepOutcome:
        pose = ctx.pose
        if pose is None:
            ctx.drive(0.0, 0.0)
            return StepOutcome(0.0, _WAIT_ODOM)
        if self.origin is None:
            self.origin = pose
        o = self.origin
        # Distance along the start heading: sideways drift does not count as progress.
        travelled = (pose.x - o.x) * math.cos(o.yaw) + (pose.y - o.y) * math.sin(o.yaw)
        remaining = self.distance - travelled
        progress = clamp(travelled / self.distance, 0.0, 1.0)
        if remaining <= ctx.config.position_tolerance_m:
            ctx.drive(0.0, 0.0)
            return StepOutcome(1.0, 'arrived',
                               SkillResult(True, f'moved {travelled:.2f} m forward'))
        # Slow down over the last part so the base does not overshoot (about 1/s decay).
        v = clamp(1.5 * remaining, 0.05, self.speed)
        w = 2.0 * wrap_angle(o.yaw - pose.yaw)
        ctx.drive(v, w)
        return StepOutcome(progress, 'moving')


class Turn(Skill):
    """Turn in place by `angle` radians (positive = left), closed loop on odom yaw."""

    def start(self, params: Mapping[str, Any], ctx: SkillContext) -> None:
        self.angle = float(params['angle'])
        self.turned = 0.0
        self.last_yaw: Optional[float] = None

    def step(self, ctx: SkillContext, dt: float) -> StepOutcome:
        pose = ctx.pose
        if pose is None:
            ctx.drive(0.0, 0.0)
            return StepOutcome(0.0, _WAIT_ODOM)
        if self.last_yaw is not None:
            self.turned += wrap_angle(pose.yaw - self.last_yaw)   # unwrap across +-pi
        self.last_yaw = pose.yaw
        err = self.angle - self.turned
        progress = 1.0 if self.angle == 0 else clamp(self.turned / self.angle, 0.0, 1.0)
        if abs(err) <= ctx.config.angle_tolerance_rad:
            ctx.drive(0.0, 0.0)
            return StepOutcome(1.0, 'turned', SkillResult(True, f'turned {self.turned:.3f} rad'))
        mag = clamp(2.0 * abs(err), 0.15, ctx.config.max_angular_rps)
        ctx.drive(0.0, math.copysign(mag, err))
        return StepOutcome(progress, 'turning')


class NavigateTo(Skill):
    """Go to (x, y) in the odom frame: turn toward it, then drive while steering."""

    def start(self, params: Mapping[str, Any], ctx: SkillContext) -> None:
        self.goal = (float(params['x']), float(params['y']))
        self.initial: Optional[float] = None

    def step(self, ctx: SkillContext, dt: float) -> StepOutcome:
        pose = ctx.pose
        if pose is None:
            ctx.drive(0.0, 0.0)
            return StepOutcome(0.0, _WAIT_ODOM)
        dx, dy = self.goal[0] - pose.x, self.goal[1] - pose.y
        dist = math.hypot(dx, dy)
        if self.initial is None:
            self.initial = max(dist, 1e-6)
        progress = clamp(1.0 - dist / self.initial, 0.0, 1.0)
        tol = max(ctx.config.position_tolerance_m, 0.1)
        if dist <= tol:
            ctx.drive(0.0, 0.0)
            return StepOutcome(1.0, 'arrived', SkillResult(
                True, f'reached ({self.goal[0]:.2f}, {self.goal[1]:.2f}) within {dist:.2f} m'))
        err = wrap_angle(math.atan2(dy, dx) - pose.yaw)
        w = 2.0 * err
        if abs(err) > 0.5:
            ctx.drive(0.0, w)
            return StepOutcome(progress, 'turning toward goal')
        v = clamp(0.8 * dist, 0.05, ctx.config.max_linear_mps) * math.cos(err)
        ctx.drive(v, w)
        return StepOutcome(progress, 'driving')


class ApproachTarget(Skill):
    """Drive to the visible target; done when it fills `target_size_stop` or the way is short."""

    def start(self, params: Mapping[str, Any], ctx: SkillContext) -> None:
        self.size0: Optional[float] = None

    def step(self, ctx: SkillContext, dt: float) -> StepOutcome:
        c = ctx.config
        f = ctx.features()
        size = float(f.get('target_size', 0.0))
        front = f.get('front_range')
        scan_front = ctx.world.front_clearance_m
        near = [r for r in (front, scan_front) if r is not None]
        if size >= c.target_size_stop:
            ctx.drive(0.0, 0.0)
            return StepOutcome(1.0, 'reached', SkillResult(
                True, f'target reached (size {size:.2f} >= {c.target_size_stop:.2f})'))
        if near and min(near) < c.safety_distance_m:
            ctx.drive(0.0, 0.0)
            return StepOutcome(1.0, 'reached', SkillResult(
                True, f'stopped at the safety distance on the way to the target ({min(near):.2f} m)'))
        if not f or f.get('target_visible', 0.0) < 0.5:
            ctx.drive(0.0, c.search_turn_rps)   # look around for it
            return StepOutcome(0.0, 'searching' if f else 'waiting for observation')
        bearing = float(f.get('target_bearing', 0.0))
        if self.size0 is None:
            self.size0 = size
        span = max(c.target_size_stop - self.size0, 1e-6)
        progress = clamp((size - self.size0) / span, 0.0, 1.0)
        v = c.approach_speed_mps * max(0.0, math.cos(bearing)) if abs(bearing) < 0.6 else 0.0
        ctx.drive(v, 1.5 * bearing)
        return StepOutcome(progress, 'approaching')


BUILTIN_SKILLS: Dict[str, Type[Skill]] = {
    'stop': Stop,
    'move_forward': MoveForward,
    'turn': Turn,
    'navigate_to': NavigateTo,
    'approach_target': ApproachTarget,
    'speak': Speak,
    'wait': Wait,
}
