"""What every backend shares: loading state, figures for diagnostics, and the factory."""
from __future__ import annotations

import threading
from typing import Any, Dict

from llm_agent_brain.decision_types import BackendError, Choice, Situation

BACKENDS = ('transformers', 'openai')


class BackendBase:
    """A backend that may need loading before it can choose; `choose` is thread-safe."""

    name = 'base'

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ready = False
        self.load_error = ''

    def load(self) -> None:
        """Get ready to choose (load weights, check the server); idempotent."""
        self.ready = True

    def choose(self, situation: Situation, catalog: Any) -> Choice:
        """Return a Choice among catalog.names; raise BackendError when it cannot."""
        raise BackendError(f'{self.name}: not implemented')

    def info(self) -> Dict[str, Any]:
        """Figures for diagnostics (model, quantization, memory...)."""
        return {'backend': self.name, 'ready': self.ready, 'load_error': self.load_error}

    def close(self) -> None:
        """Release what the backend holds."""


def make_backend(kind: str, **options: Any) -> BackendBase:
    """Build a backend by name: 'transformers' or 'openai', with its keyword options."""
    if kind == 'transformers':
        from llm_agent_brain.backends.transformers import TransformersBackend
        return TransformersBackend(**options)
    if kind == 'openai':
        from llm_agent_brain.backends.openai import OpenAIBackend
        return OpenAIBackend(**options)
    raise ValueError(f'backend must be one of {BACKENDS}, got {kind!r}')
