#!/usr/bin/env bash
# The test stage's command: the packages' tests through colcon, then the repository's tests,
# which include the agreement test and the launch tests of test/launch/ (tests/test_launch_graph.py
# runs `launch_test <file>` for each, since launch_testing imports in this image).
# NOT RUN ON THE DEVELOPMENT MACHINES: there is no Docker engine there (see the README).
set -eo pipefail   # no -u while sourcing: ROS's setup.bash reads unset variables
source "/opt/ros/${ROS_DISTRO:-jazzy}/setup.bash"
source /ws/install/setup.bash
set -u
# DDS stays inside the container, on a domain of this run's own.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( RANDOM % 100 + 101 ))}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
cd /ws

status=0
colcon test --base-paths src --event-handlers console_direct+ --return-code-on-test-failure || status=1
colcon test-result --verbose || status=1
python3 -m pytest tests -rs || status=1
exit "$status"
