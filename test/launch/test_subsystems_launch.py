"""Launch test of the per-subsystem launch files put together, as a user starts parts of the
graph in separate terminals: sim.launch.py, perception.launch.py, brain.launch.py and
actuation.launch.py in one namespace.

Active tests: each file's nodes are up, an Observation arrives and a Decision follows. After
shutdown every node exited with 0 and printed no traceback.
"""
import importlib.util
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

NAMESPACE = 'launch_test_parts'
PARTS = {
    'sim.launch.py': ('sim_world',),
    'perception.launch.py': ('scan_filter', 'image_compressor', 'depth_compressor', 'observer'),
    'brain.launch.py': ('decision_node',),
    'actuation.launch.py': ('skill_server',),
}
STARTUP_S = 60.0


@pytest.mark.launch_test
def generate_test_description():
    # The world runs its own clock in the namespace; every other part follows it.
    parts = [IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(probe.LAUNCH_DIR, name)),
        launch_arguments=dict({'namespace': NAMESPACE},
                              **({} if name == 'sim.launch.py' else {'use_sim_time': 'true'}))
        .items()) for name in PARTS]
    return launch.LaunchDescription(parts + [launch_testing.actions.ReadyToTest()])


class TestParts(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.probe = probe.Probe('parts_launch_probe', NAMESPACE)

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()

    def test_every_part_is_up(self):
        for name, nodes in PARTS.items():
            with self.subTest(launch_file=name):
                self.assertEqual(self.probe.wait_for_graph(nodes, timeout_s=STARTUP_S), [],
                                 f'{name} did not bring its nodes up')

    def test_observation_then_decision(self):
        from llm_agent_interfaces.msg import Decision, Observation
        self.assertTrue(self.probe.messages(Observation, 'agent/observation', 1, STARTUP_S),
                        'no Observation from the perception launch file')
        self.assertTrue(self.probe.messages(Decision, 'agent/decision', 1, STARTUP_S),
                        'no Decision from the brain launch file')


@launch_testing.post_shutdown_test()
class TestPartsShutdown(unittest.TestCase):

    def test_every_node_exits_cleanly(self, proc_info, proc_output):
        probe.assert_clean_exit(self, proc_info, proc_output)
