"""Launch test of the built-in world alone: launch/sim.launch.py in a namespace.

Run by `make test` (launch_testing's pytest plugin), or alone:
    launch_test test/launch/test_world_launch.py

Active tests: the world publishes scan, odom, camera frames, /clock and its diagnostics, and
`sim/reset` answers; after shutdown it exited with 0.
"""
import importlib.util
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

NAMESPACE = 'launch_test_world'
STARTUP_S = 30.0


@pytest.mark.launch_test
def generate_test_description():
    world = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(probe.LAUNCH_DIR, 'sim.launch.py')),
        launch_arguments={'namespace': NAMESPACE}.items())
    return launch.LaunchDescription([world, launch_testing.actions.ReadyToTest()])


class TestWorld(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.probe = probe.Probe('world_launch_probe', NAMESPACE)

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()

    def test_scan_arrives(self):
        from sensor_msgs.msg import LaserScan
        msgs = self.probe.messages(LaserScan, 'scan', 2, STARTUP_S)
        self.assertEqual(len(msgs), 2, f'no LaserScan on /{NAMESPACE}/scan')
        self.assertGreater(len(msgs[0].ranges), 0)

    def test_odom_arrives(self):
        from nav_msgs.msg import Odometry
        msgs = self.probe.messages(Odometry, 'odom', 1, STARTUP_S)
        self.assertTrue(msgs, f'no Odometry on /{NAMESPACE}/odom')
        p = msgs[0].pose.pose.position
        self.assertTrue(math.isfinite(p.x) and math.isfinite(p.y))

    def test_camera_frame_arrives(self):
        from sensor_msgs.msg import Image
        msgs = self.probe.messages(Image, 'camera/image_raw', 1, STARTUP_S)
        self.assertTrue(msgs, f'no Image on /{NAMESPACE}/camera/image_raw')
        self.assertEqual(msgs[0].encoding, 'bgr8')
        self.assertEqual(len(msgs[0].data), msgs[0].step * msgs[0].height)

    def test_clock_advances(self):
        from llm_agent_bringup.graph import clock_topic
        from rosgraph_msgs.msg import Clock
        topic = clock_topic(NAMESPACE)  # a namespaced world runs its own time
        msgs = self.probe.messages(Clock, topic, 2, STARTUP_S)
        self.assertEqual(len(msgs), 2, f'the world does not publish {topic}')
        t = [m.clock.sec + m.clock.nanosec * 1e-9 for m in msgs]
        self.assertGreater(t[1], t[0])

    def test_diagnostics_name_the_world(self):
        from diagnostic_msgs.msg import DiagnosticArray
        msgs = self.probe.messages(DiagnosticArray, 'diagnostics', 1, STARTUP_S)
        self.assertTrue(msgs, f'no DiagnosticArray on /{NAMESPACE}/diagnostics')
        names = [s.name for m in msgs for s in m.status]
        self.assertTrue(any(n.endswith('sim_world') for n in names), names)

    def test_reset_answers(self):
        from std_srvs.srv import Trigger
        response = self.probe.call(Trigger, 'sim/reset', Trigger.Request(), STARTUP_S)
        self.assertIsNotNone(response, f'/{NAMESPACE}/sim/reset did not answer')
        self.assertTrue(response.success, response.message)


@launch_testing.post_shutdown_test()
class TestWorldShutdown(unittest.TestCase):

    def test_world_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
