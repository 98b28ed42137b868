"""The executables of llm_agent_perception (its console scripts): each runs one node with the stop
signals held while the node imports (llm_agent_common.entry says why)."""
from llm_agent_common.entry import executable

image_compressor = executable('llm_agent_perception.image_compressor_node')
image_decompressor = executable('llm_agent_perception.image_decompressor_node')
depth_compressor = executable('llm_agent_perception.depth_compressor_node')
scan_filter = executable('llm_agent_perception.scan_filter_node')
observer = executable('llm_agent_perception.observer_node')
video_decoder = executable('llm_agent_perception.video_decoder_node')
