"""One plain-language goal followed to its end (the core of `agent/run_instruction`): no ROS,
the clock passed in, so tests drive it step by step.

A task ends
  goal_reached  when the rule named `done_rule` decides (the robot is inside the goal
                tolerance) or the world reports the goal reached (`sim/events`);
  settled       when the agent itself (tree, cache or LLM, not a rule or a fallback) chose a
                resting skill `settle_decisions` times in a row: it has nothing left to do;
  timed_out     at its deadline;
  canceled / replaced  when the user cancels it or a newer goal or instruction replaces it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from llm_agent_brain.decision_types import Choice
from llm_agent_brain.rules import rule_name

RESTING_SKILLS = ('stop', 'wait')
AGENT_SOURCES = ('tree', 'cache', 'llm')


@dataclass(frozen=True)
class TaskEnd:
    success: bool
    outcome: str
    message: str


class InstructionTask:
    def __init__(self, instruction: str, now_s: float, timeout_s: float,
                 done_rule: str = 'goal_reached', settle_decisions: int = 3) -> None:
        if not instruction.strip():
            raise ValueError('an empty instruction')
        if not timeout_s > 0.0:
            raise ValueError(f'timeout_s must be > 0, got {timeout_s}')
        self.instruction = instruction
        self.start_s = now_s
        self.deadline_s = now_s + timeout_s
        self.done_rule = done_rule
        self.settle_decisions = max(1, int(settle_decisions))
        self.decisions = 0
        self.skill = self.source = ''
        self.goal_distance = -1.0
        self.end: Optional[TaskEnd] = None
        self._resting = 0   # resting choices of the agent in a row

    def elapsed_s(self, now_s: float) -> float:
        return max(0.0, now_s - self.start_s)

    def _finish(self, success: bool, outcome: str, message: str) -> TaskEnd:
        if self.end is None:
            self.end = TaskEnd(success, outcome, message)
        return self.end

    def on_decision(self, choice: Choice, features: Dict[str, float]) -> Optional[TaskEnd]:
        """A decision the robot executes; the end it brings, if any."""
        if self.end is not None:
            return None
        self.decisions += 1
        self.skill, self.source = choice.skill, choice.source
        self.goal_distance = float(features.get('goal_distance', -1.0))
        if rule_name(choice) == self.done_rule:
            return self._finish(True, 'goal_reached', f'the {self.done_rule} rule decided '
                                f'({choice.rationale})')
        # Rules and fallbacks say nothing about what the agent means to do: they neither count
        # nor break the run.
        if choice.source in AGENT_SOURCES:
            self._resting = self._resting + 1 if choice.skill in RESTING_SKILLS else 0
        if self._resting >= self.settle_decisions:
            return self._finish(True, 'settled', f'the agent chose {choice.skill} '
                                f'{self._resting} times in a row: nothing left to do')
        return None

    def on_world_goal_reached(self) -> Optional[TaskEnd]:
        return None if self.end else self._finish(True, 'goal_reached',
                                                  'the world reports the goal reached')

    def check(self, now_s: float) -> Optional[TaskEnd]:
        if self.end is None and now_s >= self.deadline_s:
            return self._finish(False, 'timed_out', f'not done after '
                                f'{self.deadline_s - self.start_s:g} s')
        return None

    def cancel(self) -> TaskEnd:
        return self._finish(False, 'canceled', 'canceled by the client: the robot stops')

    def replace(self, by: str) -> TaskEnd:
        return self._finish(False, 'replaced', f'replaced by {by}')
