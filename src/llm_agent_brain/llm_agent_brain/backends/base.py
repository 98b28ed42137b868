"""What every backend shares: loading state, figures for diagnostics, and the factory."""
from __future__ import annotations

import os
import threading
from typing import Any, Dict

from llm_agent_brain.decision_types import BackendError, Choice, Situation

BACKENDS = ('transformers', 'llamacpp', 'openai')
# What the `backend` parameter takes: a backend, or auto (node_params.resolve_backend).
BACKEND_CHOICES = ('auto',) + BACKENDS


def cpu_threads(requested: int) -> int:
    """Inference CPU threads: `requested`, or with 0 all cores but one.

    The sensor and skill nodes share the robot's CPU; an inference that wants every core stalls
    on its slowest thread (measured on 2 cores beside the graph: 2 threads ~2x slower than 1).
    """
    if requested > 0:
        return requested
    return max(1, (os.cpu_count() or 1) - 1)


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
    """Build a backend by name (one of BACKENDS), with its keyword options."""
    if kind == 'transformers':
        from llm_agent_brain.backends.transformers import TransformersBackend
        return TransformersBackend(**options)
    if kind == 'llamacpp':
        from llm_agent_brain.backends.llamacpp import LlamaCppBackend
        return LlamaCppBackend(**options)
    if kind == 'openai':
        from llm_agent_brain.backends.openai import OpenAIBackend
        return OpenAIBackend(**options)
    raise ValueError(f'backend must be one of {BACKENDS}, got {kind!r}')
