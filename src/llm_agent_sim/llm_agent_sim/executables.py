"""The executables of llm_agent_sim (its console scripts): each runs one node with the stop
signals held while the node imports (llm_agent_common.entry says why)."""
from llm_agent_common.entry import executable

sim_world = executable('llm_agent_sim.sim_world_node')
