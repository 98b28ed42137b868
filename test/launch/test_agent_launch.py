"""Launch test of the whole graph: launch/agent.launch.py with the built-in world, in a namespace.

NOT RUN ON THE DEVELOPMENT MACHINES: `launch_testing` is not installable there (no PyPI or
Debian package; see the README). Run on a ROS 2 Jazzy install, after sourcing the workspace:
    launch_test test/launch/test_agent_launch.py
The Docker CI job runs it (docker/run_tests.sh, through tests/test_launch_graph.py).

Active tests: an Observation arrives, a Decision arrives with a catalogued skill, valid params and
a known source, the action server accepts and finishes `stop` and rejects an unknown skill.
After shutdown every node exited with 0 (Ctrl-C/SIGINT is a clean exit in this suite).
"""
import importlib.util
import json
import math
import os
import unittest

import launch_testing
import launch_testing.actions
import launch_testing.asserts
import pytest
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

import launch

_spec = importlib.util.spec_from_file_location(
    '_probe', os.path.join(os.path.dirname(os.path.abspath(__file__)), '_probe.py'))
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)

NAMESPACE = 'launch_test_agent'
SOURCES = {'rule', 'tree', 'cache', 'llm', 'fallback'}
# Waits for arrival, not speed limits: the first decision may wait for the model to load.
STARTUP_S = 60.0
DECISION_S = 180.0


@pytest.mark.launch_test
def generate_test_description():
    agent = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(probe.LAUNCH_DIR, 'agent.launch.py')),
        launch_arguments={'namespace': NAMESPACE, 'use_sim': 'true'}.items())
    return launch.LaunchDescription([agent, launch_testing.actions.ReadyToTest()])


class TestAgentGraph(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.probe = probe.Probe('agent_launch_probe', NAMESPACE)

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()

    def test_observation_arrives(self):
        from llm_agent_interfaces.msg import Observation
        msgs = self.probe.messages(Observation, 'agent/observation', 1, STARTUP_S)
        self.assertTrue(msgs, f'no Observation on /{NAMESPACE}/agent/observation')
        obs = msgs[0]
        self.assertEqual(len(obs.feature_names), len(obs.feature_values))
        self.assertIn('front_range', obs.feature_names)
        self.assertTrue(all(math.isfinite(v) for v in obs.feature_values))

    def test_decision_is_valid(self):
        from llm_agent_common.catalog import load_catalog

        from llm_agent_interfaces.msg import Decision
        msgs = self.probe.messages(Decision, 'agent/decision', 1, DECISION_S)
        self.assertTrue(msgs, f'no Decision on /{NAMESPACE}/agent/decision')
        decision = msgs[0]
        catalog = load_catalog()
        self.assertIn(decision.skill, catalog.names())
        self.assertIn(decision.source, SOURCES)
        params = json.loads(decision.params_json)
        self.assertIsInstance(params, dict)
        _, reason = catalog.validate(decision.skill, params)
        self.assertEqual(reason, '', f'decision {decision.skill} {params} is not valid: {reason}')
        self.assertGreaterEqual(decision.confidence, 0.0)
        self.assertLessEqual(decision.confidence, 1.0)

    def _send(self, skill, params_json):
        from llm_agent_interfaces.action import ExecuteSkill
        client = self.probe.action_client(ExecuteSkill, 'agent/execute_skill', STARTUP_S)
        try:
            goal = ExecuteSkill.Goal(skill=skill, params_json=params_json)
            handle = self.probe.wait_future(client.send_goal_async(goal), 10.0, f'goal {skill}')
            result = None
            if handle.accepted:
                result = self.probe.wait_future(handle.get_result_async(), 10.0,
                                                f'result of {skill}').result
            return handle.accepted, result
        finally:
            client.destroy()

    def test_stop_goal_is_accepted_and_succeeds(self):
        accepted, result = self._send('stop', '{}')
        self.assertTrue(accepted, 'the action server rejected a stop goal')
        self.assertTrue(result.success, result.message)

    def test_unknown_skill_is_rejected(self):
        accepted, _ = self._send('juggle_chainsaws', '{}')
        self.assertFalse(accepted, 'the action server accepted a skill not in the catalogue')


@launch_testing.post_shutdown_test()
class TestAgentShutdown(unittest.TestCase):

    def test_every_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
