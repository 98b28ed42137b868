"""A skill plugin that lives in a test module: the server must load it through skills.yaml."""
from llm_agent_actuation.skill_api import Skill, SkillResult, StepOutcome


class Wiggle(Skill):
    """Turn left for `seconds`, then succeed (a user's skill the server was never edited for)."""

    def start(self, params, ctx):
        self.seconds = float(params['seconds'])
        self.t0 = ctx.now

    def step(self, ctx, dt):
        elapsed = ctx.now - self.t0
        if elapsed >= self.seconds:
            ctx.drive(0.0, 0.0)
            return StepOutcome(1.0, 'wiggled', SkillResult(True, 'wiggled'))
        ctx.drive(0.0, 0.3)
        return StepOutcome(elapsed / self.seconds, 'wiggling')


class NotASkill:
    pass
