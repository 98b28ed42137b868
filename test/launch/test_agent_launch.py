"""Launch test of the whole graph: the robot's entry point, launch/agent.launch.py with the
built-in world, in a namespace (run by `make test` through launch_testing's pytest plugin, or
alone: `launch_test test/launch/test_agent_launch.py`).

Active tests: every node, topic, service and the action of the graph are up; an Observation
arrives; a Decision arrives with a catalogued skill, valid params and a known source;
`agent/decide` answers; the action server runs a `move_forward` to success and rejects an
unknown skill. After shutdown every node exited with 0 and printed no traceback.
"""
import importlib.util
import json
import math
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

NAMESPACE = 'launch_test_agent'
SOURCES = {'rule', 'tree', 'cache', 'llm', 'fallback'}
NODES = ('sim_world', 'scan_filter', 'image_compressor', 'depth_compressor', 'observer',
         'decision_node', 'skill_server')
TOPICS = ('scan', 'scan/filtered', 'scan/compressed', 'odom', 'camera/image_raw',
          'camera/image_raw/compressed', 'camera/depth/image_raw/compressedDepth',
          'agent/observation', 'agent/decision', 'cmd_vel')
SERVICES = ('agent/decide', 'agent/clear_cache', 'agent/approve_skill', 'sim/reset')
# Waits for arrival, not speed limits: the first decision may wait for the model to load.
STARTUP_S = 60.0
DECISION_S = 120.0


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

    def test_graph_is_up(self):
        missing = self.probe.wait_for_graph(NODES, TOPICS, SERVICES, ('agent/execute_skill',),
                                            STARTUP_S)
        self.assertEqual(missing, [], f'not up in /{NAMESPACE}')

    def test_observation_arrives(self):
        from llm_agent_interfaces.msg import Observation
        msgs = self.probe.messages(Observation, 'agent/observation', 1, STARTUP_S)
        self.assertTrue(msgs, f'no Observation on /{NAMESPACE}/agent/observation')
        obs = msgs[0]
        self.assertEqual(len(obs.feature_names), len(obs.feature_values))
        self.assertIn('front_range', obs.feature_names)
        self.assertTrue(all(math.isfinite(v) for v in obs.feature_values))

    def _assert_valid(self, decision):
        from llm_agent_common.catalog import load_catalog
        catalog = load_catalog()
        self.assertIn(decision.skill, catalog.names)
        self.assertIn(decision.source, SOURCES)
        params = json.loads(decision.params_json)
        self.assertIsInstance(params, dict)
        _, reason = catalog.validate(decision.skill, params)
        self.assertEqual(reason, '', f'decision {decision.skill} {params} is not valid: {reason}')
        self.assertGreaterEqual(decision.confidence, 0.0)
        self.assertLessEqual(decision.confidence, 1.0)

    def test_decision_is_valid(self):
        from llm_agent_interfaces.msg import Decision
        msgs = self.probe.messages(Decision, 'agent/decision', 1, DECISION_S)
        self.assertTrue(msgs, f'no Decision on /{NAMESPACE}/agent/decision')
        self._assert_valid(msgs[0])

    def test_decide_service_answers(self):
        from llm_agent_interfaces.msg import Observation
        from llm_agent_interfaces.srv import Decide
        obs = Observation(feature_names=['front_range', 'target_visible'],
                          feature_values=[0.2, 0.0], summary='a wall right ahead')
        response = self.probe.call(Decide, 'agent/decide',
                                   Decide.Request(observation=obs, instruction='explore'),
                                   DECISION_S)
        self.assertIsNotNone(response, f'/{NAMESPACE}/agent/decide did not answer')
        self._assert_valid(response.decision)
        self.assertNotEqual(response.decision.skill, 'move_forward',
                            'the brain drove forward into a wall 0.2 m ahead')

    def _send(self, skill, params_json):
        from llm_agent_interfaces.action import ExecuteSkill
        client = self.probe.action_client(ExecuteSkill, 'agent/execute_skill', STARTUP_S)
        try:
            goal = ExecuteSkill.Goal(skill=skill, params_json=params_json)
            handle = self.probe.wait_future(client.send_goal_async(goal), 10.0, f'goal {skill}')
            result = None
            if handle.accepted:
                result = self.probe.wait_future(handle.get_result_async(), 30.0,
                                                f'result of {skill}').result
            return handle.accepted, result
        finally:
            client.destroy()

    def test_a_skill_runs(self):
        accepted, result = self._send('turn', json.dumps({'angle': 0.3}))
        self.assertTrue(accepted, 'the action server rejected a turn goal')
        self.assertIn(result.outcome, ('succeeded', 'preempted'), result.message)

    def test_unknown_skill_is_rejected(self):
        accepted, _ = self._send('juggle_chainsaws', '{}')
        self.assertFalse(accepted, 'the action server accepted a skill not in the catalogue')


@launch_testing.post_shutdown_test()
class TestAgentShutdown(unittest.TestCase):

    def test_every_node_exits_cleanly(self, proc_info, proc_output):
        probe.assert_clean_exit(self, proc_info, proc_output)
