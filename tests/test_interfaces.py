"""Every llm_agent_interfaces message, service and action round-trips between two processes."""
import json
import os
import subprocess
import sys

import pytest
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor

from llm_agent_interfaces.action import ExecuteSkill
from llm_agent_interfaces.msg import CompressedArray, CompressedScan, Decision, Observation
from llm_agent_interfaces.srv import ApproveSkill, Decide

ECHO = os.path.join(os.path.dirname(__file__), 'interface_echo.py')


def _observation() -> Observation:
    msg = Observation(feature_names=['front_range', 'goal_bearing'], feature_values=[1.25, -0.5],
                      summary='wall ahead at 1.2 m, goal to the right')
    msg.header.frame_id = 'base_link'
    msg.header.stamp.sec = 42
    return msg


def _samples():
    arr = CompressedArray(dtype='float32', shape=[2, 3], quantized_dtype='uint8', scale=12.5,
                          zero_point=3.0, codec='zstd', data=bytes(range(6)))
    scan = CompressedScan(angle_min=-3.125, angle_max=3.125, angle_increment=0.015625,
                          range_min=0.0625, range_max=8.0, ranges=arr)
    decision = Decision(skill='turn', params_json='{"angle": 0.5}', confidence=0.75,
                        source='tree', latency_ms=3.5, rationale='leaf 7 purity 0.95 n=40')
    return [_observation(), decision, arr, scan]


@pytest.fixture
def echo_process(ros_env):
    proc = subprocess.Popen([sys.executable, ECHO], env=ros_env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'ready'
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_every_type_round_trips(ros_context, echo_process, spin_until):
    import rclpy
    node = rclpy.create_node('interface_test', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        received = {}
        publishers = {}
        for sample in _samples():
            name = type(sample).__name__
            publishers[name] = node.create_publisher(type(sample), f'echo_in/{name}', 10)
            node.create_subscription(type(sample), f'echo_out/{name}',
                                     lambda m, n=name: received.setdefault(n, m), 10)

        def publish_all():
            for sample in _samples():
                if type(sample).__name__ not in received:
                    publishers[type(sample).__name__].publish(sample)
            return len(received) == len(publishers)

        assert spin_until(executor, publish_all, timeout_s=20.0, step_s=0.1), received.keys()
        for sample in _samples():
            assert received[type(sample).__name__] == sample

        decide = node.create_client(Decide, 'agent/decide')
        assert decide.wait_for_service(timeout_sec=10.0)
        future = decide.call_async(Decide.Request(observation=_observation(), instruction='go'))
        assert spin_until(executor, future.done, timeout_s=10.0)
        decision = future.result().decision
        assert decision.header.stamp.sec == 42 and decision.source == 'rule'
        assert json.loads(decision.params_json) == {
            'names': ['front_range', 'goal_bearing'], 'values': [1.25, -0.5],
            'summary': 'wall ahead at 1.2 m, goal to the right', 'instruction': 'go'}

        approve = node.create_client(ApproveSkill, 'agent/approve_skill')
        assert approve.wait_for_service(timeout_sec=10.0)
        future = approve.call_async(ApproveSkill.Request(goal_id='ab12', approve=True))
        assert spin_until(executor, future.done, timeout_s=10.0)
        assert future.result().success and future.result().message == 'goal ab12'

        action = ActionClient(node, ExecuteSkill, 'agent/execute_skill')
        assert action.wait_for_server(timeout_sec=10.0)
        feedback = []
        goal_future = action.send_goal_async(
            ExecuteSkill.Goal(skill='speak', params_json='{"text": "hi"}'),
            feedback_callback=lambda fb: feedback.append(fb.feedback))
        assert spin_until(executor, goal_future.done, timeout_s=10.0)
        assert goal_future.result().accepted
        result_future = goal_future.result().get_result_async()
        assert spin_until(executor, result_future.done, timeout_s=10.0)
        result = result_future.result().result
        assert result.success and result.message == '{"text": "hi"}' and result.duration_s == 1.5
        assert spin_until(executor, lambda: bool(feedback), timeout_s=5.0)
        assert feedback[0].state == 'running speak' and feedback[0].progress == 0.5
    finally:
        executor.shutdown()
        node.destroy_node()
