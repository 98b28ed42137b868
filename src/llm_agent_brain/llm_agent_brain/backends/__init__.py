"""LLM backends behind one small interface: given the allowed skills and the situation, choose."""
from llm_agent_brain.backends.base import BACKENDS, make_backend

__all__ = ['BACKENDS', 'make_backend']
