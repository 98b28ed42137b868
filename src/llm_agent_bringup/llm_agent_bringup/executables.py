"""The executables of llm_agent_bringup (its console scripts): agent_container runs several nodes
of the graph in one process (llm_agent_bringup.container), with the stop signals held while it
imports (llm_agent_common.entry says why)."""
from llm_agent_common.entry import executable

agent_container = executable('llm_agent_bringup.container')
