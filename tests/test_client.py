"""AgentClient against real nodes over DDS: the brain (rules only, no model) answers its
agent/decide, says it is ready on diagnostics, and the skill server runs or refuses its goals."""
import os
import threading

from llm_agent_bringup.client import AgentClient
from llm_agent_common.node import LeanMultiThreadedExecutor
from rclpy.parameter import Parameter

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
BLOCKED = {'front_range': 0.2, 'front_left_range': 2.0, 'front_right_range': 0.6,
           'left_range': 2.0, 'right_range': 0.6, 'rear_range': 3.0}


def test_client_decides_waits_for_readiness_and_runs_skills(ros_context, tmp_path):
    from llm_agent_actuation.skill_server_node import SkillServer
    from llm_agent_brain.decision_node import DecisionNode

    skills = os.path.join(REPO, 'config', 'skills.yaml')
    brain = DecisionNode(context=ros_context, parameter_overrides=[
        Parameter('enable_llm', value=False), Parameter('persist', value=False),
        Parameter('data_dir', value=str(tmp_path)), Parameter('skills_file', value=skills),
        Parameter('rules_file', value=os.path.join(REPO, 'config', 'rules.yaml')),
        Parameter('execute_decisions', value=False)])
    server = SkillServer(context=ros_context, parameter_overrides=[
        Parameter('catalog_path', value=skills)])
    executor = LeanMultiThreadedExecutor(num_threads=4, context=ros_context)
    for n in (brain, server):
        executor.add_node(n)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    client = AgentClient(use_sim_time=False)
    try:
        assert client.wait_until(lambda: client.brain_ready, 20.0), 'no OK diagnostics'
        d = client.decide(BLOCKED, instruction='go to the red target')
        assert (d.skill, d.source) == ('turn', 'rule'), (d.skill, d.source, d.rationale)
        accepted, result = client.execute('speak', {'text': 'hello'}, timeout_s=20.0)
        assert accepted and result.success and result.outcome == 'succeeded', result
        accepted, result = client.execute('fly', {})
        assert not accepted and result is None
        client.set_estop(True)  # motion goals refused until released; speech still runs
        assert client.wait_until(lambda: bool(server.exec.estop_reason), 10.0)
        assert client.execute('turn', {'angle': 0.1})[0] is False
        assert client.execute('speak', {'text': 'stopped'}, timeout_s=20.0)[0]
        client.set_estop(False)
        assert client.wait_until(lambda: not server.exec.estop_reason, 10.0)
        assert server.exec.check_goal('turn', '{"angle": 0.1}', server.now_s())[1] == ''
    finally:
        client.close()
        executor.shutdown()
        spin.join(timeout=5)
        brain.destroy_node()
        server.destroy_node()
