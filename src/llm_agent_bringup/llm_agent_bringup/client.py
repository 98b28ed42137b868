"""AgentClient: a Python client of a running graph, shared by `llm-agent demo`, the bench and
tests (as nav2's BasicNavigator is for Nav2).

It owns an rclpy context and a node spinning on a thread of its own, so a caller's code stays
plain Python: give an instruction, reset the built-in world with a seed, ask `agent/decide`,
run a skill on `agent/execute_skill`, wait until the brain is ready, and hear what the graph
publishes (events, decisions, odometry) through listeners called on the spin thread.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from llm_agent_bringup.graph import clock_topic

Listener = Callable[[Any], None]


class ClientError(RuntimeError):
    """A service or action of the graph did not answer in time, or refused."""


def wait_future(future: Any, timeout_s: float) -> Any:
    """The future's result, or None when it is not done within timeout_s (spun elsewhere)."""
    deadline = time.monotonic() + timeout_s
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    return future.result() if future.done() else None


class AgentClient:
    """Talk to one robot's graph (its namespace) from plain Python."""

    def __init__(self, namespace: str = '', use_sim_time: bool = True,
                 node_name: str = 'agent_client') -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from nav_msgs.msg import Odometry
        from rclpy.action import ActionClient
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from std_msgs.msg import Bool, String
        from std_srvs.srv import Trigger

        from llm_agent_interfaces.action import ExecuteSkill, RunInstruction
        from llm_agent_interfaces.msg import Decision
        from llm_agent_interfaces.srv import Decide

        self.context = Context()
        rclpy.init(context=self.context)
        cli_args = ['--ros-args', '-r', f'/clock:={clock_topic(namespace)}'] if namespace else None
        self.node = rclpy.create_node(
            node_name, namespace=namespace, context=self.context, cli_args=cli_args,
            parameter_overrides=[Parameter('use_sim_time', value=use_sim_time)])
        self.lock = threading.Lock()
        self.brain_ready = False      # decision_node's diagnostics said OK (model loaded, or none)
        self.decisions_seen = 0
        self.goal: Optional[List[float]] = None
        self._listeners: Dict[str, List[Listener]] = {'event': [], 'decision': [], 'odom': []}
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._String, self._ExecuteSkill, self._Decide = String, ExecuteSkill, Decide
        self._RunInstruction = RunInstruction
        self._instruction_pub = self.node.create_publisher(String, 'agent/instruction', latched)
        self._estop_pub = self.node.create_publisher(Bool, 'agent/estop', latched)
        self._Bool = Bool
        self._reset = self.node.create_client(Trigger, 'sim/reset')
        self._decide = self.node.create_client(Decide, 'agent/decide')
        self._execute = ActionClient(self.node, ExecuteSkill, 'agent/execute_skill')
        self._run = ActionClient(self.node, RunInstruction, 'agent/run_instruction')
        self.node.create_subscription(String, 'sim/events', self._on_event, 50)
        self.node.create_subscription(Decision, 'agent/decision', self._on_decision, 50)
        self.node.create_subscription(Odometry, 'odom', self._on_odom, qos_profile_sensor_data)
        self.node.create_subscription(PoseStamped, 'goal_pose', self._on_goal, latched)
        self.node.create_subscription(DiagnosticArray, 'diagnostics', self._on_diagnostics, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self._spin_forever, name='agent_client', daemon=True)
        self._spin.start()

    # ------------------------------------------------------------ listening
    def add_listener(self, kind: str, fn: Listener) -> None:
        """Call fn(message) for each 'event' (a dict from sim/events), 'decision' or 'odom'."""
        self._listeners[kind].append(fn)

    def _emit(self, kind: str, item: Any) -> None:
        for fn in self._listeners[kind]:
            fn(item)

    def _spin_forever(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except (ExternalShutdownException, Exception):  # the context went down with the caller
            pass

    def _on_event(self, msg: Any) -> None:
        try:
            event = json.loads(msg.data)
        except (ValueError, RecursionError):
            return
        if isinstance(event, dict):
            self._emit('event', event)

    def _on_decision(self, msg: Any) -> None:
        with self.lock:
            self.decisions_seen += 1
        self._emit('decision', msg)

    def _on_odom(self, msg: Any) -> None:
        self._emit('odom', msg)

    def _on_goal(self, msg: Any) -> None:
        with self.lock:
            self.goal = [msg.pose.position.x, msg.pose.position.y]

    def _on_diagnostics(self, msg: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticStatus
        ok = any(s.name == 'decision_node' and s.level == DiagnosticStatus.OK for s in msg.status)
        with self.lock:
            self.brain_ready = self.brain_ready or ok

    # ------------------------------------------------------------ asking
    def now_s(self) -> float:
        """The node's clock (sim time when the graph follows /clock)."""
        return self.node.get_clock().now().nanoseconds * 1e-9

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """True once predicate() holds (checked under the client's lock), False at the timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return True
            time.sleep(0.02)
        return False

    def instruct(self, text: str) -> None:
        """Give the robot a goal in plain language (latched on agent/instruction)."""
        self._instruction_pub.publish(self._String(data=text))

    def set_estop(self, engaged: bool) -> None:
        """Engage or release the software stop (latched on agent/estop)."""
        self._estop_pub.publish(self._Bool(data=bool(engaged)))

    def set_sim_seed(self, seed: int, timeout_s: float = 10.0,
                     world_file: Optional[str] = None) -> None:
        """Set the built-in world's seed, and its world file if given ('' = generated from the
        seed); both apply at the next reset."""
        from rclpy.parameter import Parameter
        from rclpy.parameter_client import AsyncParameterClient
        client = AsyncParameterClient(self.node, 'sim_world')
        if not client.wait_for_services(timeout_sec=timeout_s):
            raise ClientError('sim_world parameter services not available')
        params = [Parameter('seed', value=seed)]
        if world_file is not None:
            params.append(Parameter('world_file', value=world_file))
        result = wait_future(client.set_parameters(params), timeout_s)
        if result is None or not all(r.successful for r in result.results):
            reasons = '; '.join(r.reason for r in (result.results if result else []) if r.reason)
            raise ClientError(f'sim_world refused seed {seed}'
                              + (f' / world {world_file!r}' if world_file is not None else '')
                              + (f': {reasons}' if reasons else ''))

    def reset(self, timeout_s: float = 10.0) -> None:
        """Restart the built-in world's episode."""
        from std_srvs.srv import Trigger
        if not self._reset.wait_for_service(timeout_sec=timeout_s):
            raise ClientError('sim/reset is not available')
        result = wait_future(self._reset.call_async(Trigger.Request()), timeout_s)
        if result is None or not result.success:
            raise ClientError(f'sim/reset failed: {getattr(result, "message", "timeout")}')

    def decide(self, features: Mapping[str, float], instruction: str = '', summary: str = '',
               timeout_s: float = 30.0) -> Any:
        """Ask agent/decide about these features; the Decision message."""
        req = self._Decide.Request(instruction=instruction)
        req.observation.feature_names = list(features)
        req.observation.feature_values = [float(v) for v in features.values()]
        req.observation.summary = summary
        req.observation.header.stamp = self.node.get_clock().now().to_msg()
        if not self._decide.wait_for_service(timeout_sec=timeout_s):
            raise ClientError('agent/decide is not available')
        result = wait_future(self._decide.call_async(req), timeout_s)
        if result is None:
            raise ClientError(f'agent/decide did not answer in {timeout_s:g} s')
        return result.decision

    def execute(self, skill: str, params: Mapping[str, Any],
                timeout_s: float = 60.0) -> Tuple[bool, Any]:
        """Run one skill; (accepted, ExecuteSkill.Result or None when rejected)."""
        if not self._execute.wait_for_server(timeout_sec=timeout_s):
            raise ClientError('agent/execute_skill is not available')
        goal = self._ExecuteSkill.Goal(skill=skill, params_json=json.dumps(dict(params)))
        handle = wait_future(self._execute.send_goal_async(goal), timeout_s)
        if handle is None:
            raise ClientError(f'agent/execute_skill did not answer the goal in {timeout_s:g} s')
        if not handle.accepted:
            return False, None
        result = wait_future(handle.get_result_async(), timeout_s)
        if result is None:
            raise ClientError(f'{skill} gave no result in {timeout_s:g} s')
        return True, result.result

    def run_instruction(self, text: str, timeout_s: float = 120.0,
                        feedback: Optional[Listener] = None) -> Any:
        """Give a goal on agent/run_instruction and wait for its end; the RunInstruction.Result
        (success, outcome, message, elapsed_s, decisions). feedback(msg) hears each decision."""
        if not self._run.wait_for_server(timeout_sec=10.0):
            raise ClientError('agent/run_instruction is not available')
        goal = self._RunInstruction.Goal(instruction=text, timeout_s=float(timeout_s))
        handle = wait_future(self._run.send_goal_async(
            goal, feedback_callback=(lambda m: feedback(m.feedback)) if feedback else None), 10.0)
        if handle is None or not handle.accepted:
            raise ClientError(f'agent/run_instruction refused {text!r}' if handle else
                              'agent/run_instruction did not answer the goal in 10 s')
        # The node ends the goal at timeout_s; a few seconds more for its answer to arrive.
        result = wait_future(handle.get_result_async(), timeout_s + 10.0)
        if result is None:
            handle.cancel_goal_async()
            raise ClientError(f'agent/run_instruction gave no result in {timeout_s + 10.0:g} s')
        return result.result

    def close(self) -> None:
        """Stop spinning and shut the client's context down."""
        import rclpy
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
