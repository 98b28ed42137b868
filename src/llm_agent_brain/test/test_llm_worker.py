"""LlmWorker, the LLM's thread without ROS: it loads the model, prepares the standing and each
new instruction, answers topic jobs through its callback, turns backend failures into
fallbacks, and ends when the scheduler stops. A backend double stands in for the model
(the real ones are tested in test_backend_*.py)."""
import threading
import time

from llm_agent_brain.decision_types import BackendError, Choice, Situation
from llm_agent_brain.llm_scheduler import LlmScheduler
from llm_agent_brain.llm_worker import LlmWorker

SIT = Situation({'front_range': 3.0}, '', 'go to the red target')


class Script:
    """A backend double: its answers, in order; an exception in the list is raised."""

    name = 'script'

    def __init__(self, answers, fail_load=False):
        self.answers, self.fail_load = list(answers), fail_load
        self.prepared = []

    def load(self):
        if self.fail_load:
            raise BackendError('no such model file')

    def info(self):
        return {'model': 'script'}

    def prepare(self, catalog, instruction):
        self.prepared.append(instruction)


class Pipeline:
    def __init__(self, backend):
        self.backend = backend

    def llm_decide(self, situation):
        answer = self.backend.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Log:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(('info', text))

    def warning(self, *args, **_kw):
        self.lines.append(('warning', args[-1]))

    def error(self, text):
        self.lines.append(('error', text))


def _worker(backend, **callbacks):
    sched, log = LlmScheduler(), Log()
    got, ready = [], threading.Event()
    worker = LlmWorker(backend, Pipeline(backend) if backend else None, sched, catalog=None,
                       logger=log, log=log,
                       fallback=lambda why: Choice('stop', source='fallback', rationale=why),
                       instruction=lambda: 'go to the red target', on_ready=ready.set,
                       on_topic_choice=lambda job, choice: got.append(choice))
    return worker, sched, log, got, ready


def test_answers_topic_jobs_prepares_instructions_and_survives_backend_failures():
    backend = Script([Choice('turn', {'angle': 1.0}), BackendError('timed out'),
                      ValueError('a bug in the backend')])
    worker, sched, log, got, ready = _worker(backend)
    worker.start()
    assert ready.wait(5.0) and backend.prepared == ['go to the red target']
    sched.submit_warm('say hello')
    for _ in range(3):
        sched.submit_topic(SIT, None, '', time.monotonic(), 30.0)
        while sched.pending():        # one topic job waits at a time (the newest)
            threading.Event().wait(0.01)
    sched.stop()
    assert worker.join(5.0), 'the worker ends when the scheduler stops'
    assert backend.prepared == ['go to the red target', 'say hello']
    assert [c.skill for c in got] == ['turn', 'stop', 'stop']
    assert 'LLM failed: timed out' in got[1].rationale and 'LLM crashed: ValueError' in got[2].rationale
    assert worker.errors == 2 and worker.load_s >= 0.0 and not worker.loading
    assert ('error', 'LLM decision crashed: ValueError: a bug in the backend') in log.lines


def test_a_model_that_fails_to_load_leaves_the_node_inactive_and_says_why():
    worker, sched, log, got, ready = _worker(Script([], fail_load=True))
    worker.run()
    assert not ready.is_set(), 'never ready: the node stays inactive and answers fallbacks'
    assert any(kind == 'error' and 'no such model file' in text for kind, text in log.lines)


def test_without_a_model_it_is_ready_at_once():
    worker, sched, log, got, ready = _worker(None)
    worker.run()
    assert ready.is_set() and not log.lines


