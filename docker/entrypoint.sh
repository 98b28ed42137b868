#!/usr/bin/env bash
# Entrypoint of the llm-agent image: source ROS 2 Jazzy and the workspace, then run the agent.
#   docker run IMAGE                          -> ros2 launch llm_agent_bringup agent.launch.py
#   docker run IMAGE use_sim:=false backend:=openai   (launch arguments are passed through)
#   docker run IMAGE ros2 topic list          -> any other command runs as given
# NOT RUN ON THE DEVELOPMENT MACHINES: there is no Docker engine there (see the README).
set -eo pipefail   # no -u: ROS's setup.bash reads unset variables
source "/opt/ros/${ROS_DISTRO:-jazzy}/setup.bash"
source /ws/install/setup.bash

if [[ $# -eq 0 || "$1" == *:=* ]]; then
  set -- ros2 launch llm_agent_bringup agent.launch.py "$@"
fi
exec "$@"
