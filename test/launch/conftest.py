"""The launch tests need ROS 2's launch and launch_testing: from a ROS 2 install, or from
../shared/ros2-tools installed into the venv by `make setup`. Where neither exists (a user's
plain machine) the files here are not collected and test_tools_present.py says why; where they
should exist but do not import, that test fails instead of hiding a broken install."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHARED_TOOLS = os.path.join(os.path.dirname(REPO), 'shared', 'ros2-tools')
ROS_INSTALL = '/opt/ros/jazzy'


def tools_expected() -> str:
    """Where launch_testing should come from here, or '' when nothing provides it."""
    if os.path.isdir(os.path.join(SHARED_TOOLS, 'wheels')):
        return SHARED_TOOLS
    if os.path.isdir(ROS_INSTALL):
        return ROS_INSTALL
    return ''


def _importable() -> bool:
    try:
        import launch_testing  # noqa: F401
    except ImportError:
        return False
    return True


collect_ignore_glob = [] if _importable() else ['test_*_launch.py', 'test_ros2_*.py']
