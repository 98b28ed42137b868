"""The built-in 2D world alone (group `sim` of config/graph.yaml). It publishes /clock and never
follows it.

Arguments: namespace, config.

NOT RUN ON THE DEVELOPMENT MACHINES: `launch`/`launch_ros` are not installable there (no
PyPI or Debian package; see the README); written for ROS 2 Jazzy, run by the Docker CI job
(test/launch/).
Nodes, parameter files and the sim-time rule come from config/graph.yaml through
llm_agent_sim.graph, in _graph_launch.py beside this file: no node is named here.
"""
import importlib.util
import os

# Groups of config/graph.yaml this file starts (empty: all). tests/test_launch_graph.py checks
# that the per-subsystem files together cover every group of the graph.
GROUPS = ('sim',)


def _helper():
    """Import _graph_launch.py by path: `ros2 launch` does not put this folder on sys.path."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '_graph_launch.py')
    spec = importlib.util.spec_from_file_location('llm_agent_graph_launch', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate_launch_description():
    return _helper().generate(GROUPS)
