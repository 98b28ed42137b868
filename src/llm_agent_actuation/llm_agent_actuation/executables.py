"""The executables of llm_agent_actuation (its console scripts): each runs one node with the stop
signals held while the node imports (llm_agent_common.entry says why)."""
from llm_agent_common.entry import executable

skill_server = executable('llm_agent_actuation.skill_server_node')
