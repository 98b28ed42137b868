"""The whole graph of config/graph.yaml: the built-in world (use_sim:=true), perception, brain
and actuation.

Arguments (`ros2 launch launch/agent.launch.py --show-args`):
  use_sim:=true|false     start the built-in world; the other nodes then follow its /clock
  use_sim_time:=''|true|false  follow /clock (default: as use_sim; true with use_sim:=false when
                          the world or Gazebo runs in another process or container)
  namespace:=robot1       one namespace for every node (relative topic names follow it)
  config:=/path           folder with graph.yaml and the parameter files
  backend:=auto|llamacpp|transformers|openai, model:=<id or path>   decision_node parameter overrides
  only:=a,b / without:=a,b    pick nodes or groups, as `llm-agent up --only/--without`
  cmd_vel_stamped:=''|true|false  cmd_vel as TwistStamped (Jazzy's diff_drive_controller, Nav2)
                          on the skill server and the built-in world (empty: the config files)
  one_process:=true       every selected node in one process on one executor (agent_container:
                          less memory; a crash then stops them all)
Example: ros2 launch launch/agent.launch.py use_sim:=false namespace:=robot1 backend:=openai

Run for real by the launch tests in test/launch/ (`make test`).
Nodes, parameter files and the sim-time rule come from config/graph.yaml through
llm_agent_bringup.graph, in llm_agent_bringup.launch_graph: no node is named here.
"""
import os

from llm_agent_bringup.launch_graph import generate

# Groups of config/graph.yaml this file starts (empty: all). tests/test_launch_graph.py checks
# that the per-subsystem files together cover every group of the graph.
GROUPS = ()


def generate_launch_description():
    return generate(GROUPS, launch_dir=os.path.dirname(os.path.abspath(__file__)))
