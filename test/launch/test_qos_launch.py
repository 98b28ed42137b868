"""REP 2003 through the running graph: every topic the graph publishes is received once by a
subscriber with the default QoS (reliable, as Nav2 and most user nodes subscribe) and once by
one with the sensor-data QoS (best effort). A best-effort publisher would starve the first.
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

NAMESPACE = 'launch_test_qos'
STARTUP_S = 60.0


def _topics():
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, LaserScan

    from llm_agent_interfaces.msg import CompressedScan, Decision, Observation
    return [('camera/image_raw', Image), ('camera/depth/image_raw', Image),
            ('camera/camera_info', CameraInfo), ('scan', LaserScan), ('odom', Odometry),
            ('scan/filtered', LaserScan), ('scan/compressed', CompressedScan),
            ('camera/image_raw/compressed', CompressedImage),
            ('camera/depth/image_raw/compressedDepth', CompressedImage),
            ('agent/observation', Observation), ('agent/decision', Decision),
            ('cmd_vel', Twist), ('diagnostics', DiagnosticArray)]


@pytest.mark.launch_test
def generate_test_description():
    agent = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(probe.LAUNCH_DIR, 'agent.launch.py')),
        launch_arguments={'namespace': NAMESPACE}.items())
    return launch.LaunchDescription([agent, launch_testing.actions.ReadyToTest()])


class TestQoS(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.probe = probe.Probe('qos_probe', NAMESPACE)

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()

    def test_default_and_sensor_data_subscribers_both_receive(self):
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        node = self.probe.node
        got = {}
        subs = []
        for topic, msg_type in _topics():
            for kind, qos in (('default', QoSProfile(depth=10)),
                              ('sensor_data', qos_profile_sensor_data)):
                got[(topic, kind)] = 0

                def count(_msg, key=(topic, kind)):
                    got[key] += 1
                subs.append(node.create_subscription(msg_type, topic, count, qos))
        try:
            self.probe.spin_until(lambda: all(got.values()), STARTUP_S)
        finally:
            for sub in subs:
                node.destroy_subscription(sub)
        missing = [f'{t} ({k})' for (t, k), n in got.items() if n == 0]
        self.assertEqual(missing, [], 'received nothing on these topics with that QoS')


@launch_testing.post_shutdown_test()
class TestQoSShutdown(unittest.TestCase):

    def test_every_node_exits_cleanly(self, proc_info, proc_output):
        probe.assert_clean_exit(self, proc_info, proc_output)
