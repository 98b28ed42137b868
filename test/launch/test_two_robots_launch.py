"""Launch test of two robots side by side on one ROS graph: agent.launch.py twice, in the
namespaces robot_a and robot_b, each with its own built-in world and clock.

Active tests: each namespace has its own nodes, observations and clock, and a goal sent to one
robot's action server runs there. After shutdown every node exited with 0 and printed no
traceback.
"""
import importlib.util
import json
import os
import unittest

import launch_testing
import launch_testing.actions
import pytest
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

import launch

_spec = importlib.util.spec_from_file_location(
    '_probe', os.path.join(os.path.dirname(os.path.abspath(__file__)), '_probe.py'))
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)

ROBOTS = ('robot_a', 'robot_b')
STARTUP_S = 90.0


@pytest.mark.launch_test
def generate_test_description():
    robots = [IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(probe.LAUNCH_DIR, 'agent.launch.py')),
        launch_arguments={'namespace': ns}.items()) for ns in ROBOTS]
    return launch.LaunchDescription(robots + [launch_testing.actions.ReadyToTest()])


class TestTwoRobots(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.probes = {ns: probe.Probe(f'{ns}_probe', ns) for ns in ROBOTS}

    @classmethod
    def tearDownClass(cls):
        for p in cls.probes.values():
            p.close()

    def test_each_robot_has_its_graph_and_clock(self):
        from llm_agent_bringup.graph import clock_topic
        from rosgraph_msgs.msg import Clock

        from llm_agent_interfaces.msg import Observation
        for ns, p in self.probes.items():
            with self.subTest(robot=ns):
                self.assertEqual(p.wait_for_graph(('sim_world', 'observer', 'decision_node',
                                                   'skill_server'), timeout_s=STARTUP_S), [])
                self.assertTrue(p.messages(Observation, 'agent/observation', 1, STARTUP_S))
                self.assertTrue(p.messages(Clock, clock_topic(ns), 1, STARTUP_S),
                                f'no clock on {clock_topic(ns)}')

    def test_a_goal_runs_on_its_own_robot(self):
        from llm_agent_interfaces.action import ExecuteSkill
        p = self.probes['robot_b']
        client = p.action_client(ExecuteSkill, 'agent/execute_skill', STARTUP_S)
        try:
            goal = ExecuteSkill.Goal(skill='speak', params_json=json.dumps({'text': 'I am b'}))
            handle = p.wait_future(client.send_goal_async(goal), 10.0, 'speak goal')
            self.assertTrue(handle.accepted)
            result = p.wait_future(handle.get_result_async(), 30.0, 'speak result').result
            self.assertTrue(result.success, result.message)
        finally:
            client.destroy()


@launch_testing.post_shutdown_test()
class TestTwoRobotsShutdown(unittest.TestCase):

    def test_every_node_exits_cleanly(self, proc_info, proc_output):
        probe.assert_clean_exit(self, proc_info, proc_output)
