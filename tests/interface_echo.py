"""A separate process that echoes every llm_agent_interfaces type, for the round-trip test.

Messages on `echo_in/<Type>` come back on `echo_out/<Type>`; the services answer with fields
derived from the request; the action sends one feedback and a result derived from the goal.
"""
import json
import sys

import rclpy
from llm_agent_common.node import LeanMultiThreadedExecutor
from rclpy.action import ActionServer
from rclpy.executors import ExternalShutdownException

from llm_agent_interfaces.action import ExecuteSkill
from llm_agent_interfaces.msg import CompressedArray, CompressedScan, Decision, Observation
from llm_agent_interfaces.srv import ApproveSkill, Decide

MESSAGES = (Observation, Decision, CompressedArray, CompressedScan)


def main() -> None:
    rclpy.init()
    node = rclpy.create_node('interface_echo')
    for msg_type in MESSAGES:
        pub = node.create_publisher(msg_type, f'echo_out/{msg_type.__name__}', 10)
        node.create_subscription(msg_type, f'echo_in/{msg_type.__name__}',
                                 lambda m, p=pub: p.publish(m), 10)

    def decide(request, response):
        obs = request.observation
        response.decision.header = obs.header
        response.decision.skill = 'echo'
        response.decision.params_json = json.dumps({
            'names': list(obs.feature_names), 'values': [float(v) for v in obs.feature_values],
            'summary': obs.summary, 'instruction': request.instruction})
        response.decision.source = 'rule'
        response.decision.confidence = 0.5
        return response

    def approve(request, response):
        response.success = request.approve
        response.message = f'goal {request.goal_id}'
        return response

    def execute(goal_handle):
        feedback = ExecuteSkill.Feedback(progress=0.5, state=f'running {goal_handle.request.skill}')
        goal_handle.publish_feedback(feedback)
        goal_handle.succeed()
        return ExecuteSkill.Result(success=True, message=goal_handle.request.params_json,
                                   duration_s=1.5)

    node.create_service(Decide, 'agent/decide', decide)
    node.create_service(ApproveSkill, 'agent/approve_skill', approve)
    ActionServer(node, ExecuteSkill, 'agent/execute_skill', execute)
    executor = LeanMultiThreadedExecutor()
    executor.add_node(node)
    print('ready', flush=True)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
