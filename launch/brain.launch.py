"""The decision node alone (group `brain` of config/graph.yaml).

Arguments: namespace, config, use_sim_time, backend (auto|llamacpp|transformers|openai), model.

Run for real by the launch tests in test/launch/ (`make test`).
Nodes, parameter files and the sim-time rule come from config/graph.yaml through
llm_agent_bringup.graph, in llm_agent_bringup.launch_graph: no node is named here.
"""
import os

from llm_agent_bringup.launch_graph import generate

# Groups of config/graph.yaml this file starts (empty: all). tests/test_launch_graph.py checks
# that the per-subsystem files together cover every group of the graph.
GROUPS = ('brain',)


def generate_launch_description():
    return generate(GROUPS, launch_dir=os.path.dirname(os.path.abspath(__file__)))
