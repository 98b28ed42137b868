"""The llm-agent command."""
