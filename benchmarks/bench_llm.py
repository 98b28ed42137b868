"""LLM backend benchmark: compression settings vs fp32 (memory, latency, agreement) and scored
choice with the prefix cache vs free JSON generation. See llm_agent_brain.bench."""
import os
import sys

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('LLM_AGENT_SKILLS', os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       '..', 'config', 'skills.yaml'))

from llm_agent_brain.bench import main  # noqa: E402

if __name__ == '__main__':
    main(sys.argv[1:])
