"""decision_node: observations and instructions in, one decision per observation out.

The ROS face of the brain's pure cores: `observation_check` (what a message may say),
`DecisionPipeline` (rules -> tree -> caches -> LLM), `LlmScheduler` and `LlmWorker` (which
decision the model works on, deadlines, the model's thread), `SkillGoals` (which decisions
become goals of agent/execute_skill, whose server pre-empts), `TaskServer`
(agent/run_instruction), `ContactMonitor` and the lifecycle (`SelfActivating`: active once the
model is loaded). The fast path runs on the executor. A late LLM answer, a model still loading,
a backend error or a malformed observation gives a `fallback` decision with the safe skill.
Every decision is published on `agent/decision` and (unless `execute_decisions` is false) sent
as a goal.
"""
from __future__ import annotations

import json
import sys
import time
from collections import deque
from typing import Any, Deque, Dict, Optional, Tuple

from llm_agent_common.catalog import load_catalog
from llm_agent_common.node import (
    NEXT_WAKE_UP,
    Component,
    Diagnostics,
    GuardedNode,
    Params,
    ThrottledLog,
    latched_qos,
    run_component,
)
from llm_agent_common.stats import percentile
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from llm_agent_brain import prompt
from llm_agent_brain.collisions import ContactMonitor, parse_event
from llm_agent_brain.decision_types import SOURCES, Choice, Situation
from llm_agent_brain.goal_dispatch import at_rest
from llm_agent_brain.llm_scheduler import Job, LlmScheduler
from llm_agent_brain.llm_worker import LlmWorker
from llm_agent_brain.node_params import ALL_PARAMS, backend_from_params, fast_path_config
from llm_agent_brain.observation_check import decode_string_message, situation_from
from llm_agent_brain.pipeline import DecisionPipeline
from llm_agent_brain.self_activating import LLM_DISABLED, SelfActivating
from llm_agent_brain.skill_goals import SkillGoals
from llm_agent_brain.task_server import TaskServer
from llm_agent_interfaces.msg import Decision, Observation
from llm_agent_interfaces.srv import Decide

# How long Ctrl-C waits for a busy LLM worker: well inside launch's 5 s from SIGINT to SIGTERM.
SHUTDOWN_WAIT_S = 2.0


class DecisionNode(GuardedNode, SelfActivating):
    """Wire topics, the service and the action to the brain's cores."""

    def __init__(self, backend: Any = None, **kwargs: Any) -> None:
        super().__init__('decision_node', **kwargs)
        self.params = Params(self, ALL_PARAMS, on_change=self._on_params)
        p = self.params
        self.catalog = load_catalog(p['skills_file'] or None)
        fb = p['fallback_skill']
        fb_params, reason = self.catalog.validate(fb, {}) if fb in self.catalog else ({}, 'unknown')
        if reason:
            raise ValueError(f'fallback_skill {fb!r} is not a parameterless skill of the '
                             f'catalogue: {reason}')
        self.fallback_params = fb_params
        # enable_llm false: no backend at all (the pipeline then never calls one).
        self.backend = None if not p['enable_llm'] else \
            backend if backend is not None else backend_from_params(p.values, self.get_logger().info)
        self.pipeline = DecisionPipeline(self.catalog, fast_path_config(p.values), self.backend,
                                         safe_skill=fb)
        self.instruction = p['default_instruction']
        self.scheduler = LlmScheduler()
        self._resting = False  # the last observation: the base stands still
        self._features: Dict[str, float] = {}  # of the last well-formed observation
        self.contacts = ContactMonitor(p['contact_range_m'], max(p['contact_range_m'],
                                                                 p['contact_clear_m']))
        self.counters: Dict[str, int] = {k: 0 for k in (
            'observations', 'malformed', 'truncated', 'invalid_utf8', 'bad_events', 'service_calls',
            'contacts', 'held')}
        self._last_decision = time.monotonic()  # of the last decision that was not a fallback
        self.latency: Dict[str, Deque[float]] = {s: deque(maxlen=500) for s in SOURCES}
        self.log = ThrottledLog(self.get_logger())

        fast, service = MutuallyExclusiveCallbackGroup(), ReentrantCallbackGroup()
        self.pub = self.create_publisher(Decision, 'agent/decision', 10)
        self.create_subscription(Observation, 'agent/observation', self.on_observation, 10,
                                 callback_group=fast)
        # Latched, so that a node (re)started late gets the standing instruction; and volatile,
        # so that a plain publisher (`ros2 topic pub`) reaches it too. A latched publisher's
        # message then arrives twice: the same text again changes nothing.
        for qos in (latched_qos(), 10):
            self.create_subscription(String, 'agent/instruction', self.on_instruction, qos,
                                     callback_group=fast, raw=True)
        self.create_subscription(String, 'sim/events', self.on_event, 10, callback_group=fast)
        if p['contact_topic']:
            self.create_subscription(Bool, p['contact_topic'], self.on_contact, 10,
                                     callback_group=fast)
        self._wake = self.create_guard_condition(lambda: None, callback_group=fast)
        self.create_service(Decide, 'agent/decide', self.on_decide, callback_group=service)
        self.create_service(Trigger, 'agent/clear_cache', self.on_clear_cache, callback_group=fast)
        self.goals = SkillGoals(self, self.pipeline.report_outcome, self.log)
        self.tasks = TaskServer(self, self.params, start=self.set_instruction,
                                stop_robot=lambda: self.execute(fb, self.fallback_params))
        self.create_timer(0.05, self.check_deadlines, callback_group=fast)
        self.diagnostics = Diagnostics(self, self._figures, period_s=p['diagnostics_period_s'],
                                       status=self.lifecycle_status, callback_group=fast)
        self.context.on_shutdown(self.scheduler.stop)  # Ctrl-C: the worker takes no new job
        self.start_lifecycle(callback_group=fast)
        self.worker = LlmWorker(self.backend, self.pipeline, self.scheduler, self.catalog,
                                self.get_logger(), self.log, self._fallback,
                                instruction=lambda: self.instruction, on_ready=self._ready,
                                on_topic_choice=lambda job, choice: self.finish(
                                    choice, self._header(job), job.t0, execute=True))
        self.worker.start()

    def _ready(self) -> None:
        if self.backend is None:
            self.get_logger().info(f'{LLM_DISABLED}: rules, tree and caches decide, else '
                                   f'{self.params["fallback_skill"]}')
        self.loaded()

    # ------------------------------------------------------------ helpers
    def _on_params(self, values: Dict[str, Any]) -> None:
        if values['default_instruction'] != self.instruction:
            self.instruction = values['default_instruction']
        self.contacts = ContactMonitor(values['contact_range_m'],
                                       max(values['contact_range_m'], values['contact_clear_m']))

    def _fallback(self, why: str) -> Choice:
        return Choice(skill=self.params['fallback_skill'], params=dict(self.fallback_params),
                      confidence=0.0, source='fallback', rationale=why)

    def _situation(self, obs: Observation, instruction: str) -> Tuple[Optional[Situation], str]:
        sit, reason, notes = situation_from(
            obs.feature_names, obs.feature_values, obs.summary, instruction,
            self.params['max_instruction_chars'], self.params['max_summary_chars'])
        for note in notes:
            kind = 'truncated' if 'truncated' in note else 'invalid_utf8'
            self.counters[kind] += 1
            self.log.warning(kind, note)
        if sit is None:
            self.counters['malformed'] += 1
            self.log.warning('malformed', f'{reason}: fallback, no model call')
        return sit, reason

    def _fast(self, sit: Situation) -> Optional[Choice]:
        try:
            return self.pipeline.fast_decide(sit)
        except Exception as exc:  # noqa: BLE001 - a fast-path bug must not stop deciding
            self.log.error('fast', f'fast path failed: {type(exc).__name__}: {exc}')
            return None

    # ------------------------------------------------------------ inputs
    def on_instruction(self, raw: bytes) -> None:
        text, invalid = decode_string_message(raw)
        if invalid:
            self.counters['invalid_utf8'] += 1
            self.log.warning('utf8', 'instruction with invalid UTF-8: bad bytes replaced')
        limit = self.params['max_instruction_chars']
        if len(text) > limit:
            self.counters['truncated'] += 1
            self.get_logger().warning(f'instruction of {len(text)} characters truncated to {limit}')
        kept, _ = prompt.sanitize_text(text, limit)
        if kept != self.instruction:
            self.tasks.on_instruction(kept)
            self.set_instruction(kept)

    def set_instruction(self, text: str) -> str:
        """Make text the current instruction (its prompt cache is built off the decision
        path); the text as kept."""
        self.instruction, _ = prompt.sanitize_text(text, self.params['max_instruction_chars'])
        self.get_logger().info(f'instruction: "{self.instruction[:120]}"')
        if self.backend is not None:
            self.scheduler.submit_warm(self.instruction)
        return self.instruction

    def on_observation(self, msg: Observation) -> None:
        self.counters['observations'] += 1
        t0 = time.monotonic()
        sit, reason = self._situation(msg, self.instruction)
        self._resting = sit is not None and at_rest(sit.features)
        self._features = sit.features if sit is not None else self._features
        if sit is not None and self.contacts.update_ranges(sit.features):
            self._report_contact(f'scan: an obstacle within {self.contacts.contact_range_m:g} m')
        choice = self._fallback(reason) if sit is None else self._fast(sit)
        if choice is None and self.not_ready():
            choice = self._fallback(self.not_ready())
        if choice is not None:
            self.scheduler.supersede_topic()
            self.finish(choice, msg.header, t0, execute=True)
            return
        self.scheduler.submit_topic(sit, msg.header.stamp, msg.header.frame_id, t0,
                                    self.params['decision_timeout_s'])

    async def on_decide(self, request: Decide.Request, response: Decide.Response) -> Decide.Response:
        self.counters['service_calls'] += 1
        t0 = time.monotonic()
        obs = request.observation
        sit, reason = self._situation(obs, request.instruction or self.instruction)
        choice = self._fallback(reason) if sit is None else self._fast(sit)
        if choice is None and self.not_ready():
            choice = self._fallback(self.not_ready())
        if choice is None:
            timeout = self.params['decision_timeout_s']
            job = self.scheduler.submit_service(sit, obs.header.stamp, obs.header.frame_id, t0,
                                                timeout, on_done=self._wake.trigger)
            # A coroutine: the node's one executor thread serves everything else while the
            # model thinks; the worker's guard condition (or the 20 Hz deadline timer) resumes it.
            while not job.done.is_set() and time.monotonic() < job.deadline:
                await NEXT_WAKE_UP
            if job.done.is_set() and job.result is not None:
                choice = job.result
            else:
                self.scheduler.give_up(job)
                choice = self._fallback(f'decision missed its deadline of {timeout:g} s')
        response.decision = self.finish(choice, obs.header, t0,
                                        execute=self.params['execute_service_decisions'])
        return response

    def on_event(self, msg: String) -> None:
        try:
            event = parse_event(msg.data)
        except ValueError as exc:
            self.counters['bad_events'] += 1
            self.log.warning('event', f'sim/events: {exc}')
            return
        if event['type'] in ('collision', 'goal_reached'):
            self.pipeline.report_outcome(event['type'], event)
        if event['type'] == 'goal_reached':
            self.tasks.on_goal_reached()

    def on_contact(self, msg: Bool) -> None:
        if self.contacts.update(bool(msg.data)):
            self._report_contact(f'{self.params["contact_topic"]}: contact')

    def _report_contact(self, why: str) -> None:
        self.counters['contacts'] += 1
        self.log.warning('contact', f'collision sensed ({why})')
        self.pipeline.report_outcome('collision', {'source': why})

    def on_clear_cache(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        resp.message = self.pipeline.clear_cache()
        resp.success = True
        self.get_logger().info(resp.message)
        return resp

    def check_deadlines(self) -> None:
        """A topic decision past its deadline: its late answer will be dropped. The skill that
        runs goes on (rules and the guard still apply) until hold_max_s without a decision;
        with nothing running, or past that bound, the fallback skill now. The same timer ends
        agent/run_instruction goals that are cancelled or past their time."""
        self.tasks.check()
        for job in self.scheduler.expire_due():
            why = f'decision missed its deadline of {self.params["decision_timeout_s"]:g} s'
            waited = time.monotonic() - self._last_decision
            if self.goals.running() and waited < self.params['hold_max_s']:
                self.counters['held'] += 1
                self.log.info('hold', f'LLM {why}: the running skill goes on '
                                      f'({waited:.1f} s since the last decision)')
                continue
            self.log.warning('deadline', f'LLM {why}: fallback')
            self.finish(self._fallback(why), self._header(job), job.t0, True)

    @staticmethod
    def _header(job: Job) -> Any:
        header = Observation().header
        header.stamp, header.frame_id = job.stamp, job.frame_id
        return header

    # ------------------------------------------------------------ outputs
    def finish(self, choice: Choice, header: Any, t0: float, execute: bool) -> Decision:
        """Publish one decision (a Choice is valid by construction) and maybe execute it."""
        if choice.source == 'fallback':
            self.pipeline.sources['fallback'] += 1
        else:
            self._last_decision = time.monotonic()
        msg = Decision(skill=choice.skill, params_json=json.dumps(choice.params, sort_keys=True),
                       confidence=float(min(1.0, max(0.0, choice.confidence))),
                       source=choice.source if choice.source in SOURCES else 'fallback',
                       rationale=(choice.rationale or '')[:500])
        msg.header.stamp, msg.header.frame_id = header.stamp, header.frame_id
        msg.latency_ms = float((time.monotonic() - t0) * 1000.0)
        self.latency[msg.source].append(msg.latency_ms)
        if not self.context.ok():  # Ctrl-C shut ROS down while the worker was still deciding
            return msg
        self.pub.publish(msg)
        if execute and self.params['execute_decisions']:
            self.execute(choice.skill, choice.params)
        if execute:
            self.tasks.on_decision(choice, self._features)
        return msg

    def execute(self, skill: str, params: Dict[str, Any]) -> None:
        """Send the decision as a goal unless the same one is running (the server pre-empts)."""
        self.goals.send(skill, params, resting=self._resting)

    def _figures(self) -> Dict[str, Any]:
        info = self.backend.info() if self.backend is not None else {}
        values: Dict[str, Any] = {f'backend_{k}': v for k, v in info.items()}
        values.update({'model_load_s': round(self.worker.load_s, 2),
                       'backend_errors': self.worker.errors, 'pending': self.scheduler.pending(),
                       'goals_running': self.goals.running(),
                       'instruction': self.instruction[:80]})
        values.update(self.counters)
        values.update(self.goals.counters)
        values.update(self.scheduler.counters)
        for s, lat in self.latency.items():
            for q in (50, 95):
                values[f'latency_p{q}_ms_{s}'] = round(percentile(list(lat), q) or 0.0, 2)
        values.update({f'pipeline_{k}': round(v, 4) for k, v in self.pipeline.stats().items()})
        return values

    def destroy_node(self) -> None:
        """Stop the worker first. One still inside torch (a model loading, a long decision) is
        not waited for past SHUTDOWN_WAIT_S: `leave_now` tells run_node to end the process
        without Python's finalisation, which would abort under that thread (exit -6)."""
        self.scheduler.stop()
        # A load cannot be interrupted: waiting for it only delays the exit (torch's import
        # holds the GIL for seconds; under `ros2 launch` that passed launch's 5 s SIGINT timeout).
        self.leave_now = not self.worker.join(0.05 if self.worker.loading else SHUTDOWN_WAIT_S)
        if self.leave_now:  # on stderr: after Ctrl-C there is no rosout to log to
            print(f'[{self.get_name()}] the LLM worker is busy (model loading or deciding): '
                  'exiting without waiting for it', file=sys.stderr)
        self.pipeline.close()
        super().destroy_node()


# One thread: no callback blocks (agent/decide and agent/run_instruction wait as coroutines, the
# model runs on the LlmWorker's thread), and a pool thread's hand-off cost the fast path ~0.3 ms.
COMPONENT = Component(DecisionNode)


def main(args: Any = None) -> int:
    return run_component(COMPONENT, args)


if __name__ == '__main__':
    main()
