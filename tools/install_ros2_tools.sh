#!/usr/bin/env bash
# Install ROS 2 Jazzy's launch, launch_testing and `ros2` command into a venv that has the Jazzy
# rclpy wheels, from a folder of wheels and message sources (../shared/ros2-tools on the
# development machines and CI; see its README). On a ROS 2 install they come from ROS: skip this.
# Usage: install_ros2_tools.sh VENV TOOLS_DIR
set -euo pipefail
venv=$(cd "$1" && pwd)
tools=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
py="$venv/bin/python"
# Their PyPI dependencies (numpy and rclpy are in the venv already).
"$py" -m pip install -q -r "$here/../requirements/ros2-tools.txt"
"$py" -m pip install -q --no-deps "$tools"/wheels/*.whl
# launch_ros imports composition_interfaces at start-up; ffmpeg_image_transport_msgs carries the
# video packets of the perception's video stream. Built like our own interfaces.
for pkg in "$tools"/src/*/; do
  "$here/build_interfaces.sh" "$venv" "$pkg"
done
"$py" -c "import launch, launch_ros, launch_testing, ros2cli, composition_interfaces.srv"
echo "ros2 tools from $tools installed into $venv"
