"""Which decision the LLM works on next, and when a waiting one becomes a fallback (no rclpy).

Topic decisions (agent/observation) are coalesced: only the newest waits, and it keeps the
oldest waiting deadline, so a stream of observations cannot starve the robot of decisions while
the model is busy. A fast-path decision supersedes a waiting topic decision (its late answer
would interrupt the newer skill). Service decisions (agent/decide) queue in order, each with
its own deadline. The clock is injected: tests drive it without sleeping.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional

from llm_agent_brain.decision_types import Choice, Situation

TOPIC, SERVICE, WARM = 'topic', 'service', 'warm'


@dataclass
class Job:
    """One decision waiting for the model."""

    situation: Situation
    stamp: Any
    frame_id: str
    t0: float
    deadline: float
    kind: str  # TOPIC | SERVICE | WARM (build a new instruction's prompt cache, no answer)
    done: threading.Event = field(default_factory=threading.Event)
    result: Optional[Choice] = None
    expired: bool = False
    on_done: Optional[Callable[[], None]] = None   # e.g. wake the executor of a waiting service

    def mark_done(self) -> None:
        """Wake whoever waits for this job: a thread on `done`, an executor through on_done."""
        self.done.set()
        if self.on_done is not None:
            self.on_done()


class LlmScheduler:
    """Jobs for one LLM worker: submit, take the next, finish, expire the overdue."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.counters: Dict[str, int] = {'coalesced': 0, 'superseded': 0, 'deadline_missed': 0}
        self._cv = threading.Condition()
        self._latest: Optional[Job] = None
        self._requests: Deque[Job] = deque()
        self._inflight: Optional[Job] = None
        self._warm: Optional[str] = None
        self._stopped = False

    def submit_topic(self, situation: Situation, stamp: Any, frame_id: str, t0: float,
                     timeout_s: float) -> Job:
        """Queue a topic decision; an older one still waiting is dropped (its deadline kept)."""
        deadline = t0 + timeout_s
        with self._cv:
            if self._latest is not None:
                self.counters['coalesced'] += 1
                if not self._latest.expired:
                    deadline = min(deadline, self._latest.deadline)
                self._latest.expired = True
            job = Job(situation, stamp, frame_id, t0, deadline, TOPIC)
            self._latest = job
            self._cv.notify()
        return job

    def submit_service(self, situation: Situation, stamp: Any, frame_id: str, t0: float,
                       timeout_s: float, on_done: Optional[Callable[[], None]] = None) -> Job:
        """Queue a service decision with its own deadline; on_done is called once it is done."""
        job = Job(situation, stamp, frame_id, t0, t0 + timeout_s, SERVICE, on_done=on_done)
        with self._cv:
            self._requests.append(job)
            self._cv.notify()
        return job

    def submit_warm(self, instruction: str) -> None:
        """Ask the worker to prepare a new instruction before its first decision needs it."""
        with self._cv:
            self._warm = instruction
            self._cv.notify()

    def supersede_topic(self) -> None:
        """A newer observation was decided on the fast path: waiting topic jobs are moot."""
        with self._cv:
            for job in (self._latest, self._inflight):
                if job is not None and job.kind == TOPIC and not job.expired:
                    job.expired = True
                    self.counters['superseded'] += 1
            self._latest = None

    def next_job(self, block: bool = True) -> Optional[Job]:
        """The next live job for the worker (in flight from now); None once stopped or idle."""
        while True:
            with self._cv:
                while block and not self._stopped and not self._requests and self._latest is None \
                        and self._warm is None:
                    self._cv.wait()
                if self._stopped or (not self._requests and self._latest is None
                                     and self._warm is None):
                    return None
                if self._warm is not None and not self._requests:
                    instruction, self._warm = self._warm, None
                    return Job(Situation({}, '', instruction), None, '', self.clock(),
                               float('inf'), WARM)
                job = self._requests.popleft() if self._requests else self._latest
                if job is self._latest:
                    self._latest = None
                if job.expired or self.clock() > job.deadline:
                    job.mark_done()  # a service caller waiting on it gives up at its deadline
                    continue
                self._inflight = job
                return job

    def finish(self, job: Job, choice: Choice) -> bool:
        """Record the model's answer; True when it is still wanted (not expired meanwhile)."""
        with self._cv:
            if self._inflight is job:
                self._inflight = None
            late = job.expired
        job.result = choice
        job.mark_done()
        return not late

    def expire_due(self) -> List[Job]:
        """Topic jobs past their deadline, marked expired: each now gets a fallback."""
        now = self.clock()
        with self._cv:
            due = [j for j in (self._inflight, self._latest) if j is not None
                   and j.kind == TOPIC and not j.expired and now > j.deadline]
            for j in due:
                j.expired = True
            self.counters['deadline_missed'] += len(due)
        return due

    def give_up(self, job: Job) -> None:
        """A service caller stopped waiting at its deadline."""
        with self._cv:
            job.expired = True
            self.counters['deadline_missed'] += 1

    def pending(self) -> int:
        """Jobs waiting or in flight."""
        with self._cv:
            return len(self._requests) + (self._latest is not None) + (self._inflight is not None)

    @property
    def stopped(self) -> bool:
        """True once stop() was called (the node is shutting down)."""
        return self._stopped

    def stop(self) -> None:
        """Wake the worker and make it return."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
