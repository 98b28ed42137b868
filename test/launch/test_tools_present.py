"""The launch tests run wherever launch_testing can exist: this test fails when
../shared/ros2-tools (or /opt/ros/jazzy) is there but launch_testing does not import, and skips,
saying why, on a machine that has neither."""
import importlib.util
import os

import pytest

_spec = importlib.util.spec_from_file_location(
    '_launch_conftest', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'conftest.py'))
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)


def test_launch_testing_is_installed_where_it_should_be():
    source = _conftest.tools_expected()
    if not source:
        pytest.skip('no ../shared/ros2-tools and no ROS 2 Jazzy install: the launch tests in '
                    'test/launch/ are not collected (install ROS 2 Jazzy to run them)')
    for module in ('launch', 'launch_ros', 'launch_testing', 'ros2cli'):
        assert importlib.util.find_spec(module) is not None, (
            f'{module} is missing although {source} is there: run `make setup`')
