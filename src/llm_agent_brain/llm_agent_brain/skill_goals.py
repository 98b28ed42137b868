"""The brain's side of agent/execute_skill: a decision becomes a goal unless the same one is
still running (GoalDispatch), and a goal's result becomes an outcome for the fast path's
learning. Pre-emption and cancel are the skill server's; this only sends and reads."""
from __future__ import annotations

import json
from typing import Any, Callable, Dict

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

from llm_agent_brain.goal_dispatch import NEUTRAL_OUTCOMES, GoalDispatch
from llm_agent_interfaces.action import ExecuteSkill


class SkillGoals:
    def __init__(self, node: Any, report: Callable[[str, Dict[str, Any]], None], log: Any) -> None:
        """report(kind, details): action_succeeded / action_failed to the pipeline; log: a
        ThrottledLog."""
        self.report, self.log = report, log
        self.dispatch = GoalDispatch()
        self.counters = {'goals_sent': 0, 'goals_rejected': 0}
        # Its own exclusive group: rclpy 7.1's ActionClient is not safe when two executor threads
        # handle its responses at once ("Two goals were accepted with the same ID", a crash).
        self.action = ActionClient(node, ExecuteSkill, 'agent/execute_skill',
                                   callback_group=MutuallyExclusiveCallbackGroup())

    def send(self, skill: str, params: Dict[str, Any], resting: bool) -> None:
        """Send (skill, params) unless the same goal runs (`resting`: the base stands still)."""
        if not self.action.server_is_ready():
            self.log.info('noserver', 'agent/execute_skill has no action server: decision '
                          'not executed', period_s=10.0)
            return
        token = self.dispatch.begin(skill, params, resting=resting)
        if token is None:
            return
        self.counters['goals_sent'] += 1
        goal = ExecuteSkill.Goal(skill=skill, params_json=json.dumps(params))
        self.action.send_goal_async(goal).add_done_callback(
            lambda f: self._on_goal(f, token, skill, params))

    def running(self) -> int:
        return self.dispatch.running()

    def _on_goal(self, future: Any, token: int, skill: str, params: Dict[str, Any]) -> None:
        handle = future.result()
        if not handle.accepted:
            self.dispatch.end(token)
            self.counters['goals_rejected'] += 1
            self.report('action_failed', {'skill': skill, 'params': params,
                                          'message': 'goal rejected'})
            return
        handle.get_result_async().add_done_callback(
            lambda f: self._on_result(f, token, skill, params))

    def _on_result(self, future: Any, token: int, skill: str, params: Dict[str, Any]) -> None:
        res = future.result()
        self.dispatch.end(token, succeeded=res.status == GoalStatus.STATUS_SUCCEEDED)
        if res.status == GoalStatus.STATUS_CANCELED or res.result.outcome in NEUTRAL_OUTCOMES:
            return  # pre-empted by a newer decision: neither success nor failure
        ok = res.status == GoalStatus.STATUS_SUCCEEDED and res.result.success
        self.report('action_succeeded' if ok else 'action_failed',
                    {'skill': skill, 'params': params, 'message': res.result.message})
