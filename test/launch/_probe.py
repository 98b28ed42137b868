"""A small rclpy probe and the checks shared by the launch tests in this folder (imported by
path). It uses its own rclpy Context, never the global one. `make test` runs these tests through
launch_testing's pytest plugin (launch_testing from ../shared/ros2-tools or a ROS install).
"""
import os
import time
from typing import Any, Callable, List, Optional

import rclpy
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LAUNCH_DIR = os.path.join(REPO, 'launch')

# DDS stays on this machine in every test run, whoever starts it (the nodes inherit this).
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


class Probe:
    """One node in `namespace` with an executor: wait for messages, call services and actions."""

    def __init__(self, name: str, namespace: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(predicate())

    def wait_for_graph(self, nodes=(), topics=(), services=(), actions=(),
                       timeout_s: float = 30.0) -> List[str]:
        """What is still missing of these names (relative to the namespace) after timeout_s."""
        ns = self.node.get_namespace().rstrip('/')

        def missing() -> List[str]:
            have_nodes = {f'{n_ns.rstrip("/")}/{n}' for n, n_ns in
                          self.node.get_node_names_and_namespaces()}
            have_topics = {t for t, _ in self.node.get_topic_names_and_types()}
            have_services = {s for s, _ in self.node.get_service_names_and_types()}
            gone = [f'node {n}' for n in nodes if f'{ns}/{n}' not in have_nodes]
            gone += [f'topic {t}' for t in topics if f'{ns}/{t}' not in have_topics]
            gone += [f'service {s}' for s in services if f'{ns}/{s}' not in have_services]
            gone += [f'action {a}' for a in actions
                     if f'{ns}/{a}/_action/send_goal' not in have_services]
            return gone

        self.spin_until(lambda: not missing(), timeout_s)
        return missing()

    def messages(self, msg_type: Any, topic: str, count: int, timeout_s: float) -> List[Any]:
        """Up to `count` messages from `topic` (best effort: matches any publisher's QoS)."""
        got: List[Any] = []
        sub = self.node.create_subscription(msg_type, topic, got.append, qos_profile_sensor_data)
        try:
            self.spin_until(lambda: len(got) >= count, timeout_s)
        finally:
            self.node.destroy_subscription(sub)
        return got[:count]

    def call(self, srv_type: Any, name: str, request: Any, timeout_s: float) -> Optional[Any]:
        client = self.node.create_client(srv_type, name)
        try:
            if not self.spin_until(client.service_is_ready, timeout_s):
                return None
            future = client.call_async(request)
            self.spin_until(future.done, timeout_s)
            return future.result() if future.done() else None
        finally:
            self.node.destroy_client(client)

    def action_client(self, action_type: Any, name: str, timeout_s: float) -> ActionClient:
        client = ActionClient(self.node, action_type, name)
        if not self.spin_until(client.server_is_ready, timeout_s):
            client.destroy()
            raise AssertionError(f'action server {name} not ready after {timeout_s} s')
        return client

    def wait_future(self, future: Any, timeout_s: float, what: str) -> Any:
        if not self.spin_until(future.done, timeout_s):
            raise AssertionError(f'{what}: no answer after {timeout_s} s')
        return future.result()


def assert_clean_exit(test: Any, proc_info: Any, proc_output: Any) -> None:
    """After shutdown: every process exited 0 and none printed a Python traceback."""
    import launch_testing.asserts
    launch_testing.asserts.assertExitCodes(proc_info)
    for io in proc_output:
        text = io.text.decode(errors='replace') if isinstance(io.text, bytes) else str(io.text)
        test.assertNotIn('Traceback (most recent call last)', text,
                         f'{io.process_name} printed a traceback:\n{text[-2000:]}')
