"""decision_node's lifecycle, as Nav2's nodes have one, but driven by the node itself:
`inactive` once its parameters check out (at start), `active` once its model is loaded (at once
without one). A user's `deactivate` takes the LLM out until `activate`; `cleanup` is refused
(the parameters are fixed at start). The node provides `backend` and `scheduler`, calls
`start_lifecycle()` in its constructor and, from its model's thread, `loaded()`."""
from __future__ import annotations

from typing import Any, Tuple

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn

# Rationale of the fallback decisions of a rules-only brain (enable_llm: false).
LLM_DISABLED = 'LLM disabled (enable_llm: false)'
# Why the LLM does not decide while the node is not active (once its model is loaded).
INACTIVE = 'decision_node is inactive (lifecycle): the LLM does not decide until `activate`'

Ok, Refused = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class SelfActivating(LifecycleNodeMixin):
    backend: Any
    scheduler: Any

    def start_lifecycle(self, callback_group: Any) -> None:
        LifecycleNodeMixin.__init__(self, callback_group=MutuallyExclusiveCallbackGroup())
        # The worker thread says "loaded" through this; the transition runs on the executor.
        self._loaded = self.create_guard_condition(self._activate_once,
                                                   callback_group=callback_group)
        self._auto_activate = True
        self.trigger_configure()

    def loaded(self) -> None:
        """From any thread: the model is loaded (or there is none)."""
        self._loaded.trigger()

    def _activate_once(self) -> None:
        if self._auto_activate and self.lifecycle_state() == 'inactive':
            self._auto_activate = False
            self.trigger_activate()

    def lifecycle_state(self) -> str:
        """'unconfigured', 'inactive', 'active' or 'finalized' (or a transition's label)."""
        return self._state_machine.current_state[1]

    @property
    def active(self) -> bool:
        """The LLM decides only in the lifecycle's active state."""
        return self.lifecycle_state() == 'active'

    def not_ready(self) -> str:
        """Why the LLM cannot decide now ('' when it can)."""
        if self.backend is None:
            return LLM_DISABLED
        if not self.backend.ready:
            err = getattr(self.backend, 'load_error', '')
            return f'model not ready: {err}' if err else 'model loading'
        return '' if self.active else INACTIVE

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        # Reached only once the parameters, the catalogue and the fallback skill checked out
        # (a bad one ends the node in __init__ with the reason).
        self.get_logger().info('configured (inactive): the model loads; the LLM decides once '
                               'the node is active')
        return Ok

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.backend is not None and not self.backend.ready:
            self.get_logger().warning(f'not activated: {self.not_ready()}')
            return Refused
        self.get_logger().info('active: ' + ('the LLM decides' if self.backend is not None
                                              else LLM_DISABLED))
        return Ok

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._auto_activate = False  # the user's choice stands
        self.get_logger().info(INACTIVE)
        return Ok

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().warning('cleanup refused: the parameters are fixed at start; restart '
                                  'the node to change them')
        return Refused

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.scheduler.stop()
        self.get_logger().info('finalized: the LLM worker stopped; end the process to leave')
        return Ok

    def lifecycle_status(self) -> Tuple[bool, str]:
        """(ok, message) for diagnostics."""
        if not self.active:
            return False, self.not_ready() if self.backend is not None else 'configuring'
        return True, 'ready' if self.backend is not None else LLM_DISABLED
