"""The executables of llm_agent_brain (its console scripts): each runs one node with the stop
signals held while the node imports (llm_agent_common.entry says why)."""
from llm_agent_common.entry import executable

decision_node = executable('llm_agent_brain.decision_node')
