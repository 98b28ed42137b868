"""The agent end to end: the demo reaches the goal, faults are contained, robots run side by side.

Real processes over DDS on the test's own domain, the real packaged model; nothing mocked.
"""
import json
import os
import signal
import subprocess
import sys

import psutil
import pytest
import rclpy
from llm_agent_bringup.graph import default_config_dir
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data

from llm_agent_interfaces.msg import Decision, Observation
from llm_agent_interfaces.srv import Decide

LLM_AGENT = os.path.join(os.path.dirname(sys.executable), 'llm-agent')
CONFIG = default_config_dir()

pytestmark = pytest.mark.slow


def _stop(proc, timeout=60):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_demo_reaches_the_goal_in_the_default_world(tmp_path, ros_env):
    summary_path, out = tmp_path / 'summary.json', tmp_path / 'out'
    result = subprocess.run(
        [LLM_AGENT, 'demo', '--episodes', '3', '--seed', '1', '--episode-timeout', '90',
         '--json', str(summary_path), '--out', str(out)],
        env=ros_env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    for key in ('episodes', 'successes', 'collisions', 'decisions_by_source', 'latency_ms'):
        assert key in summary
    # The floor: most seeded episodes in the default room reach the target, none collides.
    assert summary['episodes'] == 3
    assert summary['successes'] >= 2, summary['per_episode']
    assert summary['collisions'] == 0
    assert all('p50' in v and 'p95' in v for v in summary['latency_ms'].values())
    metrics = json.loads((out / 'metrics.json').read_text())
    assert len(metrics['episodes']) == 3 and metrics['episodes'][0]['trajectory']
    assert sorted(p.name for p in out.glob('episode_*.png')) == [
        'episode_00.png', 'episode_01.png', 'episode_02.png']
    assert 'episodes reached the goal' in result.stdout


class _Probe:
    """The test's node: odometry of a namespace, decisions, and a spin helper."""

    def __init__(self, context, namespaces=('',)):
        self.node = rclpy.create_node('integration_probe', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.speed = {}
        self.decisions = {}
        for ns in namespaces:
            prefix = f'/{ns}' if ns else ''
            self.decisions[ns] = []
            self.node.create_subscription(
                Odometry, f'{prefix}/odom',
                lambda m, ns=ns: self.speed.__setitem__(ns, abs(m.twist.twist.linear.x)),
                qos_profile_sensor_data)
            self.node.create_subscription(
                Decision, f'{prefix}/agent/decision',
                lambda m, ns=ns: self.decisions[ns].append(m), 50)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


def test_brain_killed_mid_episode_stops_the_base_and_is_reported(ros_context, ros_env, spin_until):
    # The world runs apart from `up`, so it outlives the graph and shows what the base does.
    world = subprocess.Popen([sys.executable, '-m', 'llm_agent_sim.sim_world_node', '--ros-args',
                              '--params-file', os.path.join(CONFIG, 'sim.yaml')], env=ros_env)
    up = subprocess.Popen([LLM_AGENT, 'up', '--without', 'sim', '--sim-time'], env=ros_env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = _Probe(ros_context)
    try:
        # The brain loads its model, then drives toward the target straight ahead.
        assert spin_until(probe.executor, lambda: probe.speed.get('', 0.0) > 0.1, 240.0, 0.1), \
            'the agent never drove'
        brain = [p for p in psutil.Process(up.pid).children(recursive=True)
                 if 'llm_agent_brain.decision_node' in ' '.join(p.cmdline())]
        assert len(brain) == 1
        brain[0].kill()
        # The base stops well inside a second (the skill server zeroes it as the graph stops;
        # the watchdogs would without it): measured on the world's own odometry.
        assert spin_until(probe.executor, lambda: probe.speed.get('', 1.0) < 0.01, 5.0, 0.05)
        out, _ = up.communicate(timeout=60)
        assert 'node decision_node exited with code -9' in out
        assert up.returncode != 0
    finally:
        _stop(up)
        _stop(world)
        probe.close()


def test_unreachable_llm_gives_fallback_stop_never_blind_driving(ros_context, spin_until, tmp_path):
    from llm_agent_brain.decision_node import DecisionNode
    node = DecisionNode(context=ros_context, parameter_overrides=[
        Parameter('backend', value='openai'),
        Parameter('openai_base_url', value='http://127.0.0.1:9/v1'),   # nothing listens there
        Parameter('openai_timeout_s', value=0.5), Parameter('openai_max_retries', value=1),
        Parameter('data_dir', value=str(tmp_path)), Parameter('execute_decisions', value=False)])
    probe = _Probe(ros_context)
    probe.executor.add_node(node)
    try:
        client = probe.node.create_client(Decide, 'agent/decide')
        assert client.wait_for_service(timeout_sec=10.0)
        # "Ready" for a remote backend means configured; the server is only tried per decision.
        assert spin_until(probe.executor, lambda: node.backend.ready, 10.0)
        open_room = {'front_range': 4.0, 'front_left_range': 4.0, 'front_right_range': 4.0,
                     'left_range': 3.0, 'right_range': 3.0, 'rear_range': 3.0,
                     'goal_distance': 3.0, 'goal_bearing': 0.2, 'target_visible': 1.0,
                     'target_bearing': 0.2, 'target_size': 0.02, 'speed': 0.0, 'yaw_rate': 0.0}
        obs = Observation(feature_names=list(open_room),
                          feature_values=[float(v) for v in open_room.values()])
        for _ in range(2):
            future = client.call_async(Decide.Request(observation=obs,
                                                      instruction='go to the red target'))
            assert spin_until(probe.executor, future.done, 30.0)
            decision = future.result().decision
            assert (decision.skill, decision.source) == ('stop', 'fallback'), decision
            assert 'model loading' not in decision.rationale
        assert node.worker.errors >= 1
    finally:
        probe.executor.remove_node(node)
        node.destroy_node()
        probe.close()


def test_two_robots_on_one_graph_run_independently(ros_context, ros_env, spin_until):
    ups = {ns: subprocess.Popen([LLM_AGENT, 'up', '--namespace', ns], env=ros_env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for ns in ('robot1', 'robot2')}
    probe = _Probe(ros_context, namespaces=('robot1', 'robot2'))
    try:
        expected = {f'/{ns}/{n}' for ns in ups for n in (
            'sim_world', 'observer', 'decision_node', 'skill_server')}

        def all_up():
            names = {f'{ns.rstrip("/")}/{n}' for n, ns in
                     probe.node.get_node_names_and_namespaces()}
            return expected <= names
        assert spin_until(probe.executor, all_up, 90.0, 0.2)
        # Each brain decides on its own robot's observations (fallbacks while its model loads).
        assert spin_until(probe.executor, lambda: probe.decisions['robot1'] and
                          probe.decisions['robot2'], 120.0, 0.1)
        assert 'robot1' in probe.speed and 'robot2' in probe.speed
        # Stop robot1's graph: robot2 keeps deciding.
        _stop(ups['robot1'])
        assert ups['robot1'].returncode == 0
        probe.decisions['robot2'].clear()
        assert spin_until(probe.executor, lambda: len(probe.decisions['robot2']) >= 3, 60.0, 0.1)
        assert ups['robot2'].poll() is None
    finally:
        for proc in ups.values():
            _stop(proc)
        probe.close()
