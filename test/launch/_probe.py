"""A small rclpy probe shared by the launch tests in this folder (imported by path).

NOT RUN ON THE DEVELOPMENT MACHINES (no `launch_testing` there, see the README); the Docker
CI job runs these tests. It uses its own rclpy Context, never the global one.
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
