"""The LLM's own thread (no rclpy): load the model, prepare the standing instruction, then run
the scheduler's jobs one at a time until the scheduler stops. decision_node wires its
callbacks to ROS; tests drive it with a backend double and a plain logger."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from llm_agent_brain.decision_types import BackendError, Choice
from llm_agent_brain.llm_scheduler import TOPIC, WARM, Job, LlmScheduler


class LlmWorker:
    def __init__(self, backend: Any, pipeline: Any, scheduler: LlmScheduler, catalog: Any,
                 logger: Any, log: Any, fallback: Callable[[str], Choice],
                 instruction: Callable[[], str], on_ready: Callable[[], None],
                 on_topic_choice: Callable[[Job, Choice], None]) -> None:
        """logger: an rclpy-style logger (info/warning/error); log: a ThrottledLog for what can
        repeat; fallback(why): the safe choice; instruction(): the standing instruction;
        on_ready(): the model is loaded (or there is none); on_topic_choice(job, choice): an
        answer to a topic decision that is still wanted."""
        self.backend, self.pipeline, self.scheduler, self.catalog = backend, pipeline, scheduler, catalog
        self.logger, self.log, self.fallback = logger, log, fallback
        self._instruction, self._on_ready, self._on_topic_choice = instruction, on_ready, on_topic_choice
        self.load_s = 0.0
        self.loading = False      # inside backend.load(): cannot be interrupted
        self.errors = 0           # decisions the backend failed
        self.thread = threading.Thread(target=self.run, name='llm_worker', daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread; True when it has ended."""
        self.thread.join(timeout=timeout_s)
        return not self.thread.is_alive()

    def run(self) -> None:
        if self.backend is None:
            self._on_ready()
            return
        if not self._load():
            return
        self.prepare(self._instruction())  # before a decision waits for it
        self._on_ready()
        while (job := self.scheduler.next_job()) is not None:
            if job.kind == WARM:
                self.prepare(job.situation.instruction)
                continue
            choice = self.decide(job)
            if self.scheduler.finish(job, choice) and job.kind == TOPIC:
                self._on_topic_choice(job, choice)

    def _load(self) -> bool:
        t0 = time.monotonic()
        name = getattr(self.backend, 'name', 'backend')
        self.logger.info(f'loading {name} backend ...')
        self.loading = True
        try:
            self.backend.load()
            self.load_s = time.monotonic() - t0
            info = self.backend.info()
            self.logger.info(f'{name} backend ready in {self.load_s:.1f} s: model '
                             f'{info.get("model")}, {info.get("quantization")}, '
                             f'{info.get("memory_mb", "?")} MB')
        except Exception as exc:  # noqa: BLE001 - the node keeps serving fallback decisions
            self.logger.error(f'{name} backend failed to load: {exc}; every LLM decision will '
                              f'be a fallback')
            return False
        finally:
            self.loading = False
        return not self.scheduler.stopped  # Ctrl-C came while the model loaded

    def decide(self, job: Job) -> Choice:
        """The model's choice for a job; a fallback when the backend fails (never raises)."""
        try:
            return self.pipeline.llm_decide(job.situation)
        except BackendError as exc:
            self.errors += 1
            self.log.warning('backend', f'LLM decision failed: {exc}')
            return self.fallback(f'LLM failed: {exc}'[:300])
        except Exception as exc:  # noqa: BLE001 - never let the worker die
            self.errors += 1
            self.logger.error(f'LLM decision crashed: {type(exc).__name__}: {exc}')
            return self.fallback(f'LLM crashed: {type(exc).__name__}')

    def prepare(self, instruction: str) -> None:
        """Build the instruction's prompt cache off the decision path (logged with its time)."""
        prepare = getattr(self.backend, 'prepare', None)
        if prepare is None:
            return
        t0 = time.monotonic()
        try:
            prepare(self.catalog, instruction)
        except Exception as exc:  # noqa: BLE001 - the first decision builds it then
            self.log.warning('prepare', f'could not prepare the instruction: {exc}')
            return
        if not self.scheduler.stopped:  # after Ctrl-C there is no rosout to log to
            self.logger.info(f'instruction prepared in {time.monotonic() - t0:.2f} s')
