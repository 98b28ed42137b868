"""Launch test of agent.launch.py with `use_sim:=false`, as on a robot: no built-in world, a
driver stand-in (test/launch/_driver.py: odom, scan, camera, camera_info; it logs each cmd_vel
it receives) in its place, and wall time. `cmd_vel_stamped:=true`: the driver takes cmd_vel as
TwistStamped, as Jazzy's diff_drive_controller does.

Active tests: the world is absent, perception turns the driver's data into an Observation, and
a skill sent to the action server reaches the driver as `cmd_vel`. After shutdown every process
exited with 0 and printed no traceback.
"""
import importlib.util
import json
import os
import re
import sys
import unittest

import launch_testing
import launch_testing.actions
import pytest
from launch.actions import ExecuteProcess, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

import launch

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location('_probe', os.path.join(_here, '_probe.py'))
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)

NAMESPACE = 'launch_test_robot'
STARTUP_S = 60.0
PREEMPTED_TRIES, PREEMPTED_WITHIN_S = 5, 3.0


@pytest.mark.launch_test
def generate_test_description():
    driver = ExecuteProcess(
        cmd=[sys.executable, os.path.join(_here, '_driver.py'), '--stamped', '--ros-args', '-r',
             f'__ns:=/{NAMESPACE}'], name='driver', output='screen')
    agent = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(probe.LAUNCH_DIR, 'agent.launch.py')),
        launch_arguments={'namespace': NAMESPACE, 'use_sim': 'false',
                          'cmd_vel_stamped': 'true'}.items())
    return (launch.LaunchDescription([driver, agent, launch_testing.actions.ReadyToTest()]),
            {'driver': driver})


class TestRealRobot(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.probe = probe.Probe('robot_launch_probe', NAMESPACE)

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()

    def test_no_world_runs(self):
        self.assertEqual(self.probe.wait_for_graph(('observer', 'skill_server'),
                                                   timeout_s=STARTUP_S), [])
        names = [n for n, _ in self.probe.node.get_node_names_and_namespaces()]
        self.assertNotIn('sim_world', names, 'use_sim:=false started the built-in world')

    def test_observation_from_the_driver(self):
        from llm_agent_interfaces.msg import Observation
        msgs = self.probe.messages(Observation, 'agent/observation', 1, STARTUP_S)
        self.assertTrue(msgs, 'no Observation from the driver stand-in data')
        features = dict(zip(msgs[0].feature_names, msgs[0].feature_values))
        self.assertAlmostEqual(features['front_range'], 2.0, delta=0.1)

    def test_a_skill_reaches_the_driver(self, proc_output, driver):
        from llm_agent_interfaces.action import ExecuteSkill
        client = self.probe.action_client(ExecuteSkill, 'agent/execute_skill', STARTUP_S)
        try:
            # While its model loads, the brain sends its fallback `stop` (once: the driver's
            # odometry says the robot rests), which pre-empts a turn sent at that moment: send
            # the turn again then.
            for _ in range(PREEMPTED_TRIES):
                goal = ExecuteSkill.Goal(skill='turn', params_json=json.dumps({'angle': 0.5}))
                handle = self.probe.wait_future(client.send_goal_async(goal), 10.0, 'turn goal')
                self.assertTrue(handle.accepted)
                result = handle.get_result_async()
                self.probe.spin_until(result.done, PREEMPTED_WITHIN_S)
                if not result.done() or result.result().result.outcome != 'preempted':
                    break
        finally:
            client.destroy()
        # A turning command (angular z not zero), stamped in the base frame, is what the driver
        # must have received.
        proc_output.assertWaitFor(expected_output=re.compile(
                                      r'cmd_vel \S+ -?0*\.?0*[1-9]\S* frame=base_link'),
                                  process=driver, timeout=STARTUP_S, stream='stdout')


@launch_testing.post_shutdown_test()
class TestRealRobotShutdown(unittest.TestCase):

    def test_every_process_exits_cleanly(self, proc_info, proc_output):
        probe.assert_clean_exit(self, proc_info, proc_output)
