"""agent/run_instruction: InstructionTask (task.py) on a ROS 2 action server, inside
decision_node. The node calls `on_decision`, `on_goal_reached`, `on_instruction` and `check`;
this module owns nothing else. One goal at a time: a newer goal or an instruction on
agent/instruction replaces the running one (its result says so)."""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Dict, Optional

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.task import Future

from llm_agent_brain.decision_types import Choice
from llm_agent_brain.task import InstructionTask, TaskEnd
from llm_agent_interfaces.action import RunInstruction

STOPS_ROBOT = ('canceled', 'timed_out')


class TaskServer:
    def __init__(self, node: Any, params: Any, start: Callable[[str], str],
                 stop_robot: Callable[[], None]) -> None:
        """`start(text)` makes text the node's instruction and returns it as the node keeps
        it (sanitized, truncated); `stop_robot()` sends the fallback skill."""
        self.node, self.params = node, params
        self._start, self._stop_robot = start, stop_robot
        self._lock = threading.Lock()
        self.task: Optional[InstructionTask] = None
        self._handle: Any = None
        self._done: Optional[Future] = None
        self.server = ActionServer(node, RunInstruction, 'agent/run_instruction',
                                   execute_callback=self._execute, goal_callback=self._on_goal,
                                   handle_accepted_callback=lambda h: h.execute(),
                                   cancel_callback=lambda _h: CancelResponse.ACCEPT,
                                   callback_group=ReentrantCallbackGroup())

    def _on_goal(self, goal: Any) -> GoalResponse:
        why = ('an empty instruction' if not goal.instruction.strip() else
               f'timeout_s {goal.timeout_s} (must be 0 or > 0 s)'
               if not (math.isfinite(goal.timeout_s) and goal.timeout_s >= 0.0) else '')
        if why:
            self.node.get_logger().warning(f'agent/run_instruction: refused {why}')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _execute(self, handle: Any) -> RunInstruction.Result:
        req = handle.request
        timeout = req.timeout_s or self.params['task_timeout_s']
        done = Future()
        with self._lock:
            self._end_current('a newer agent/run_instruction goal')
            text = self._start(req.instruction)
            self.task = InstructionTask(text, time.monotonic(), timeout,
                                        settle_decisions=self.params['task_settle_decisions'])
            self._handle, self._done, task = handle, done, self.task
        self.node.get_logger().info(f'agent/run_instruction: "{text[:120]}" '
                                    f'(gives up after {timeout:g} s)')
        end: TaskEnd = await done
        if end.outcome in STOPS_ROBOT:
            self._stop_robot()
        if end.outcome == 'canceled':
            handle.canceled()
        elif end.success:
            handle.succeed()
        else:
            handle.abort()
        self.node.get_logger().info(f'agent/run_instruction: {end.outcome}: {end.message}')
        return RunInstruction.Result(success=end.success, outcome=end.outcome,
                                     message=end.message[:500],
                                     elapsed_s=float(task.elapsed_s(time.monotonic())),
                                     decisions=task.decisions)

    def _end_current(self, by: str) -> None:
        """Under the lock: the running task is replaced."""
        if self.task is not None:
            self._finish(self.task.replace(by))

    def _finish(self, end: Optional[TaskEnd]) -> None:
        """Under the lock: wake the task's goal with its end; the node's next events go to
        no task until a new goal."""
        if end is not None and self._done is not None:
            self._done.set_result(end)
            self.task = self._handle = self._done = None

    # ------------------------------------------------------------ from the node
    def on_decision(self, choice: Choice, features: Dict[str, float]) -> None:
        with self._lock:
            if self.task is None:
                return
            end = self.task.on_decision(choice, features)
            self._handle.publish_feedback(RunInstruction.Feedback(
                skill=choice.skill, source=choice.source, decisions=self.task.decisions,
                elapsed_s=float(self.task.elapsed_s(time.monotonic())),
                goal_distance=float(self.task.goal_distance)))
            self._finish(end)

    def on_goal_reached(self) -> None:
        with self._lock:
            if self.task is not None:
                self._finish(self.task.on_world_goal_reached())

    def on_instruction(self, text: str) -> None:
        """An instruction on agent/instruction; the same text again (a latched copy) is not
        a new one."""
        with self._lock:
            if self.task is not None and text != self.task.instruction:
                self._end_current('an instruction on agent/instruction')

    def check(self) -> None:
        with self._lock:
            if self.task is None:
                return
            if self._handle.is_cancel_requested:
                self._finish(self.task.cancel())
            else:
                self._finish(self.task.check(time.monotonic()))
