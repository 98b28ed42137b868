"""decision_node: observations and instructions in, one decision per observation out.

The ROS face of the brain's pure cores: `observation_check` (what a message may say),
`DecisionPipeline` (rules -> tree -> caches -> LLM), `LlmScheduler` (which decision the model
works on, deadlines), `GoalDispatch` (which decisions become goals) and `ContactMonitor`.
The fast path runs on the executor; the LLM on a worker thread. A late LLM answer, a model
still loading, a backend error or a malformed observation gives a `fallback` decision with
the safe skill. Every decision is published on `agent/decision` and (unless
`execute_decisions` is false) sent to `agent/execute_skill`, whose server pre-empts.

A managed (lifecycle) node, as Nav2's are, that drives itself: `inactive` once its parameters
check out (at start), `active` once its model is loaded (at once without one). Its topics,
`agent/decide` and the fast path work from the start; the LLM decides only while it is active.
`ros2 lifecycle get /decision_node` says where it is; a user's `deactivate` takes the LLM out
(the rules, tree and caches go on, else the fallback says why) until `activate`.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, Optional, Tuple

from action_msgs.msg import GoalStatus
from llm_agent_common.catalog import load_catalog
from llm_agent_common.node import Diagnostics, GuardedNode, Params, ThrottledLog, latched_qos, run_node
from llm_agent_common.stats import percentile
from rclpy.action import ActionClient
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from llm_agent_brain import prompt
from llm_agent_brain.collisions import ContactMonitor, parse_event
from llm_agent_brain.decision_types import SOURCES, BackendError, Choice, Situation
from llm_agent_brain.goal_dispatch import NEUTRAL_OUTCOMES, GoalDispatch, at_rest
from llm_agent_brain.llm_scheduler import TOPIC, WARM, Job, LlmScheduler
from llm_agent_brain.node_params import ALL_PARAMS, backend_from_params, fast_path_config
from llm_agent_brain.observation_check import decode_string_message, situation_from
from llm_agent_brain.pipeline import DecisionPipeline
from llm_agent_brain.task_server import TaskServer
from llm_agent_interfaces.action import ExecuteSkill
from llm_agent_interfaces.msg import Decision, Observation
from llm_agent_interfaces.srv import Decide

# Rationale of the fallback decisions of a rules-only brain (enable_llm: false).
LLM_DISABLED = 'LLM disabled (enable_llm: false)'
# How long Ctrl-C waits for a busy LLM worker: well inside launch's 5 s from SIGINT to SIGTERM.
SHUTDOWN_WAIT_S = 2.0


# Why the LLM does not decide while the node is not active (once its model is loaded).
INACTIVE = 'decision_node is inactive (lifecycle): the LLM does not decide until `activate`'


class DecisionNode(GuardedNode, LifecycleNodeMixin):
    """Wire topics, the service and the action to the brain's cores."""

    def __init__(self, backend: Any = None, **kwargs: Any) -> None:
        super().__init__('decision_node', **kwargs)
        LifecycleNodeMixin.__init__(self, callback_group=MutuallyExclusiveCallbackGroup())
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
        self.dispatch = GoalDispatch()
        self._resting = False  # the last observation: the base stands still
        self._features: Dict[str, float] = {}  # of the last well-formed observation
        self.contacts = ContactMonitor(p['contact_range_m'], max(p['contact_range_m'],
                                                                 p['contact_clear_m']))
        self.counters: Dict[str, int] = {k: 0 for k in (
            'observations', 'malformed', 'truncated', 'invalid_utf8', 'bad_events',
            'backend_errors', 'goals_sent', 'goals_rejected', 'service_calls', 'contacts',
            'held')}
        self._last_decision = time.monotonic()  # of the last decision that was not a fallback
        self.latency: Dict[str, Deque[float]] = {s: deque(maxlen=500) for s in SOURCES}
        self.load_s = 0.0
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
        self.create_service(Decide, 'agent/decide', self.on_decide, callback_group=service)
        self.create_service(Trigger, 'agent/clear_cache', self.on_clear_cache, callback_group=fast)
        # Its own exclusive group: rclpy 7.1's ActionClient is not safe when two executor threads
        # handle its responses at once ("Two goals were accepted with the same ID", a crash).
        self.action = ActionClient(self, ExecuteSkill, 'agent/execute_skill',
                                   callback_group=MutuallyExclusiveCallbackGroup())
        self.tasks = TaskServer(self, self.params, start=self.set_instruction,
                                stop_robot=lambda: self.execute(fb, self.fallback_params))
        self.create_timer(0.05, self.check_deadlines, callback_group=fast)
        self.diagnostics = Diagnostics(self, self._figures, period_s=p['diagnostics_period_s'],
                                       status=self._status, callback_group=fast)
        self.context.on_shutdown(self.scheduler.stop)  # Ctrl-C: the worker takes no new job
        # The worker says "loaded" through this; the transition then runs on the executor.
        self._loaded = self.create_guard_condition(self._activate_once, callback_group=fast)
        self._auto_activate = True
        self.trigger_configure()
        self._loading = False     # the worker is inside backend.load()
        self.worker = threading.Thread(target=self._work, name='llm_worker', daemon=True)
        self.worker.start()

    # ------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        # Reached only once the parameters, the catalogue and the fallback skill checked out
        # (a bad one ends the node in __init__ with the reason).
        self.get_logger().info('configured (inactive): the model loads; the LLM decides once '
                               'the node is active')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.backend is not None and not self.backend.ready:
            self.get_logger().warning(f'not activated: {self._not_ready()}')
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info('active: ' + ('the LLM decides' if self.backend is not None
                                              else LLM_DISABLED))
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._auto_activate = False  # the user's choice stands
        self.get_logger().info(INACTIVE)
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().warning('cleanup refused: the parameters are fixed at start; restart '
                                  'the node to change them')
        return TransitionCallbackReturn.FAILURE

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.scheduler.stop()
        self.get_logger().info('finalized: the LLM worker stopped; end the process to leave')
        return TransitionCallbackReturn.SUCCESS

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

    def _not_ready(self) -> str:
        if self.backend is None:
            return LLM_DISABLED
        if not self.backend.ready:
            err = getattr(self.backend, 'load_error', '')
            return f'model not ready: {err}' if err else 'model loading'
        return '' if self.active else INACTIVE

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
        if choice is None and self._not_ready():
            choice = self._fallback(self._not_ready())
        if choice is not None:
            self.scheduler.supersede_topic()
            self.finish(choice, msg.header, t0, execute=True)
            return
        self.scheduler.submit_topic(sit, msg.header.stamp, msg.header.frame_id, t0,
                                    self.params['decision_timeout_s'])

    def on_decide(self, request: Decide.Request, response: Decide.Response) -> Decide.Response:
        self.counters['service_calls'] += 1
        t0 = time.monotonic()
        obs = request.observation
        sit, reason = self._situation(obs, request.instruction or self.instruction)
        choice = self._fallback(reason) if sit is None else self._fast(sit)
        if choice is None and self._not_ready():
            choice = self._fallback(self._not_ready())
        if choice is None:
            timeout = self.params['decision_timeout_s']
            job = self.scheduler.submit_service(sit, obs.header.stamp, obs.header.frame_id, t0, timeout)
            if job.done.wait(max(0.0, job.deadline - time.monotonic())) and job.result is not None:
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

    # ------------------------------------------------------------ the LLM worker
    def _work(self) -> None:
        if self.backend is None:
            self.get_logger().info(f'{LLM_DISABLED}: rules, tree and caches decide, else '
                                   f'{self.params["fallback_skill"]}')
            self._loaded.trigger()
            return
        t0 = time.monotonic()
        name = getattr(self.backend, 'name', 'backend')
        self.get_logger().info(f'loading {name} backend ...')
        self._loading = True
        try:
            self.backend.load()
            self.load_s = time.monotonic() - t0
            info = self.backend.info()
            self.get_logger().info(
                f'{name} backend ready in {self.load_s:.1f} s: model {info.get("model")}, '
                f'{info.get("quantization")}, {info.get("memory_mb", "?")} MB')
        except Exception as exc:  # noqa: BLE001 - the node keeps serving fallback decisions
            self.get_logger().error(f'{name} backend failed to load: {exc}; every LLM decision '
                                    f'will be a fallback')
            return
        finally:
            self._loading = False
        if self.scheduler.stopped:  # Ctrl-C came while the model loaded
            return
        self._prepare(self.instruction)  # the instruction it starts with, before a decision waits
        self._loaded.trigger()
        while (job := self.scheduler.next_job()) is not None:
            if job.kind == WARM:
                self._prepare(job.situation.instruction)
                continue
            try:
                choice = self.pipeline.llm_decide(job.situation)
            except BackendError as exc:
                self.counters['backend_errors'] += 1
                self.log.warning('backend', f'LLM decision failed: {exc}')
                choice = self._fallback(f'LLM failed: {exc}'[:300])
            except Exception as exc:  # noqa: BLE001 - never let the worker die
                self.counters['backend_errors'] += 1
                self.get_logger().error(f'LLM decision crashed: {type(exc).__name__}: {exc}')
                choice = self._fallback(f'LLM crashed: {type(exc).__name__}')
            if self.scheduler.finish(job, choice) and job.kind == TOPIC:
                self.finish(choice, self._header(job), job.t0, execute=True)

    def _prepare(self, instruction: str) -> None:
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
            self.get_logger().info(f'instruction prepared in {time.monotonic() - t0:.2f} s')

    def check_deadlines(self) -> None:
        """A topic decision past its deadline: its late answer will be dropped. The skill that
        runs goes on (rules and the guard still apply) until hold_max_s without a decision;
        with nothing running, or past that bound, the fallback skill now. The same timer ends
        agent/run_instruction goals that are cancelled or past their time."""
        self.tasks.check()
        for job in self.scheduler.expire_due():
            why = f'decision missed its deadline of {self.params["decision_timeout_s"]:g} s'
            waited = time.monotonic() - self._last_decision
            if self.dispatch.running() and waited < self.params['hold_max_s']:
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
        if not self.action.server_is_ready():
            self.log.info('noserver', 'agent/execute_skill has no action server: decision '
                          'not executed', period_s=10.0)
            return
        token = self.dispatch.begin(skill, params, resting=self._resting)
        if token is None:
            return
        self.counters['goals_sent'] += 1
        goal = ExecuteSkill.Goal(skill=skill, params_json=json.dumps(params))
        self.action.send_goal_async(goal).add_done_callback(
            lambda f: self._on_goal(f, token, skill, params))

    def _on_goal(self, future: Any, token: int, skill: str, params: Dict[str, Any]) -> None:
        handle = future.result()
        if not handle.accepted:
            self.dispatch.end(token)
            self.counters['goals_rejected'] += 1
            self.pipeline.report_outcome('action_failed', {'skill': skill, 'params': params,
                                                           'message': 'goal rejected'})
            return
        handle.get_result_async().add_done_callback(
            lambda f: self._on_result(f, token, skill, params))

    def _on_result(self, future: Any, token: int, skill: str, params: Dict[str, Any]) -> None:
        res = future.result()
        self.dispatch.end(token, succeeded=res.status == GoalStatus.STATUS_SUCCEEDED)
        if res.status == GoalStatus.STATUS_CANCELED or res.result.outcome in NEUTRAL_OUTCOMES:
            return  # pre-empted by a newer decision: neither success nor failure
        ok = res.status == GoalStatus.STATUS_SUCCEEDED and res.result.success
        self.pipeline.report_outcome('action_succeeded' if ok else 'action_failed',
                                     {'skill': skill, 'params': params,
                                      'message': res.result.message})

    def _status(self) -> Tuple[bool, str]:
        if not self.active:
            return False, self._not_ready() if self.backend is not None else 'configuring'
        return True, 'ready' if self.backend is not None else LLM_DISABLED

    def _figures(self) -> Dict[str, Any]:
        info = self.backend.info() if self.backend is not None else {}
        values: Dict[str, Any] = {f'backend_{k}': v for k, v in info.items()}
        values.update({'model_load_s': round(self.load_s, 2), 'pending': self.scheduler.pending(),
                       'goals_running': self.dispatch.running(),
                       'instruction': self.instruction[:80]})
        values.update(self.counters)
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
        self.worker.join(timeout=0.05 if self._loading else SHUTDOWN_WAIT_S)
        self.leave_now = self.worker.is_alive()
        if self.leave_now:  # on stderr: after Ctrl-C there is no rosout to log to
            print(f'[{self.get_name()}] the LLM worker is busy (model loading or deciding): '
                  'exiting without waiting for it', file=sys.stderr)
        self.pipeline.close()
        super().destroy_node()


def main(args: Any = None) -> int:
    return run_node(DecisionNode, args=args, threads=4)


if __name__ == '__main__':
    main()
