"""decision_node: observations and instructions in, one decision per observation out.

The fast path (rules -> tree -> caches, `DecisionPipeline.fast_decide`) runs on the executor;
an LLM decision runs on a worker thread, never on the executor. While the model is busy only
the newest observation waits (older ones are coalesced away). A decision that misses
`decision_timeout_s`, a model still loading, a backend error, a malformed observation or (with
`enable_llm: false`, a rules-only brain) a fast-path miss gives a `fallback` decision with the
safe skill (`stop`). Every decision is published on
`agent/decision` and (unless `execute_decisions` is false) sent to `agent/execute_skill`, which
is pre-empted only when the decision changes.
"""
from __future__ import annotations

import json
import math
import struct
import threading
import time
from collections import deque
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

import rclpy
from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from llm_agent_actuation.catalog import load_catalog
from llm_agent_actuation.stats import percentile
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.action import ActionClient
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from std_msgs.msg import String
from std_srvs.srv import Trigger

from llm_agent_brain import compression, prompt
from llm_agent_brain.backends import BACKENDS, make_backend
from llm_agent_brain.backends.transformers import MODES
from llm_agent_brain.pipeline import DecisionPipeline, FastPathConfig
from llm_agent_brain.types import SOURCES, BackendError, Choice, Situation
from llm_agent_interfaces.action import ExecuteSkill
from llm_agent_interfaces.msg import Decision, Observation
from llm_agent_interfaces.srv import Decide

MAX_FEATURES = 256
# Rationale of the fallback decisions of a rules-only brain (enable_llm: false).
LLM_DISABLED = 'LLM disabled (enable_llm: false)'


# ------------------------------------------------------------------ pure helpers
def situation_from(names: Sequence[str], values: Sequence[float], summary: str,
                   instruction: str, max_instruction_chars: int = 500,
                   max_summary_chars: int = 400) -> Tuple[Optional[Situation], str, List[str]]:
    """(Situation, '', notes) from an observation's fields, or (None, reason, notes)."""
    notes: List[str] = []
    names, values = list(names), list(values)
    if len(names) != len(values):
        return None, (f'observation malformed: {len(names)} feature names but '
                      f'{len(values)} values'), notes
    if len(names) > MAX_FEATURES:
        return None, f'observation malformed: {len(names)} features (at most {MAX_FEATURES})', notes
    if len(set(names)) != len(names):
        return None, 'observation malformed: repeated feature names', notes
    bad = [n for n, v in zip(names, values) if not math.isfinite(float(v))]
    if bad:
        return None, f'observation malformed: non-finite value for {", ".join(bad[:5])}', notes
    text, cut = prompt.sanitize_text(instruction, max_instruction_chars)
    if cut:
        notes.append(f'instruction of {len(instruction)} characters truncated to '
                     f'{max_instruction_chars}')
    if '\ufffd' in instruction:
        notes.append('instruction had invalid UTF-8 (replaced)')
    summ, cut = prompt.sanitize_text(summary, max_summary_chars)
    if cut:
        notes.append(f'summary truncated to {max_summary_chars} characters')
    features = {str(n): float(v) for n, v in zip(names, values)}
    return Situation(features=features, summary=summ, instruction=text), '', notes


def decode_string_message(raw: bytes) -> Tuple[str, bool]:
    """Text of a serialized std_msgs/String; invalid UTF-8 replaced. (text, had_invalid)."""
    try:
        text = deserialize_message(raw, String).data
        return text, '\ufffd' in text
    except Exception:  # noqa: BLE001 - a deserializer that refuses bad UTF-8: decode by hand
        pass
    if len(raw) < 8:
        return '', True
    little = raw[1] == 1  # CDR encapsulation: 0x0001 = little endian
    (length,) = struct.unpack('<I' if little else '>I', raw[4:8])
    body = raw[8:8 + max(0, length - 1)]
    return body.decode('utf-8', errors='replace'), True


def same_goal(a: Tuple[str, Dict[str, Any]], b: Tuple[str, Dict[str, Any]],
              rel_tol: float = 0.15, abs_tol: float = 0.05) -> bool:
    """True when two (skill, params) are the same decision up to small numeric changes."""
    if a[0] != b[0] or set(a[1]) != set(b[1]):
        return False
    for k, va in a[1].items():
        vb = b[1][k]
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
            if not math.isclose(va, vb, rel_tol=rel_tol, abs_tol=abs_tol):
                return False
        elif va != vb:
            return False
    return True


@dataclass
class Job:
    """One decision waiting for the model."""

    situation: Situation
    stamp: Any
    frame_id: str
    t0: float
    deadline: float
    kind: str  # 'topic' | 'service'
    done: threading.Event = field(default_factory=threading.Event)
    result: Optional[Choice] = None
    expired: bool = False


# Parameters of the node itself: name -> (default, description, extra descriptor fields).
NODE_PARAMS: Dict[str, Tuple[Any, str, Dict[str, Any]]] = {
    'backend': ('transformers', 'LLM backend', {'choices': BACKENDS}),
    'enable_llm': (True, 'false: a rules-only brain; no model is loaded and what rules, tree '
                   'and caches cannot decide gets fallback_skill at once', {}),
    'model': ('', 'HF model id, local folder or .gguf file; empty = the packaged SmolLM2-135M', {}),
    'quantization': ('nf4', 'Weights precision of the transformers backend',
                     {'choices': compression.QUANTIZATIONS}),
    'compute_dtype': ('auto', 'bitsandbytes 4-bit compute dtype (auto: float32 on CPU, '
                      'bfloat16 on GPU)', {'choices': compression.COMPUTE_DTYPES}),
    'device': ('auto', 'auto (GPU when there is one), cpu or cuda', {'choices': ('auto', 'cpu', 'cuda')}),
    'device_map': ('', 'accelerate device_map, e.g. auto to spread a big model over several '
                   'GPUs; empty = the whole model on `device`', {}),
    'prune_amount': (0.0, 'Fraction of linear weights removed by L1 magnitude pruning',
                     {'min': 0.0, 'max': 0.9}),
    'model_cache_dir': ('', 'Where a GGUF model is converted once and kept; empty = '
                        '~/.cache/llm_agent/models', {}),
    'llm_mode': ('score', 'score: log-likelihood of each allowed skill (fast, always valid); '
                 'generate: free JSON generation', {'choices': MODES}),
    'margin_m': (0.3, 'move_forward stops this far before the obstacle ahead (m)',
                 {'min': 0.0, 'max': 5.0}),
    'num_threads': (0, 'torch CPU threads for inference; 0 = all cores but one', {'min': 0, 'max': 64}),
    'openai_base_url': ('http://localhost:8000/v1', 'OpenAI-compatible server base URL', {}),
    'openai_model': ('', 'Model name sent to the server; empty = the server default', {}),
    'openai_api_key_env': ('OPENAI_API_KEY', 'Environment variable holding the API key', {}),
    'openai_timeout_s': (10.0, 'Timeout of one request (s)', {'min': 0.1, 'max': 300.0}),
    'openai_max_retries': (2, 'Retries after a timeout or server error', {'min': 0, 'max': 10}),
    'openai_guided': (True, 'Ask for guided JSON (json_schema / guided_json) when the server '
                      'supports it', {}),
    'decision_timeout_s': (5.0, 'An LLM decision later than this becomes a fallback (s)',
                           {'min': 0.05, 'max': 600.0}),
    'skills_file': ('', 'Skill catalogue; empty = the installed config/skills.yaml', {}),
    'default_instruction': ('go to the red target', 'Instruction until one arrives on '
                            'agent/instruction', {}),
    'max_instruction_chars': (500, 'Longer instructions are truncated', {'min': 16, 'max': 20000}),
    'max_summary_chars': (400, 'Longer observation summaries are truncated',
                          {'min': 16, 'max': 20000}),
    'fallback_skill': ('stop', 'Safe skill of a fallback decision (must take no required '
                       'parameters)', {}),
    'execute_decisions': (True, 'Send decisions of agent/observation to agent/execute_skill', {}),
    'execute_service_decisions': (False, 'Also execute decisions asked for on agent/decide', {}),
    'diagnostics_period_s': (1.0, 'Period of the diagnostics message (s)',
                             {'min': 0.1, 'max': 60.0}),
}


def _descriptor(name: str, default: Any, description: str, extra: Dict[str, Any]) -> ParameterDescriptor:
    d = ParameterDescriptor(name=name, description=description)
    if 'choices' in extra:
        d.description += f' (one of: {", ".join(map(str, extra["choices"]))})'
        d.additional_constraints = f'one of {list(extra["choices"])}'
    if 'min' in extra or 'max' in extra:
        if isinstance(default, bool):
            pass
        elif isinstance(default, int):
            d.integer_range = [IntegerRange(from_value=int(extra.get('min', -2**31)),
                                            to_value=int(extra.get('max', 2**31 - 1)), step=0)]
        elif isinstance(default, float):
            d.floating_point_range = [FloatingPointRange(
                from_value=float(extra.get('min', -1e300)), to_value=float(extra.get('max', 1e300)),
                step=0.0)]
    return d


class DecisionNode(Node):
    """The brain's ROS face: wires topics, the service and the action to the pipeline."""

    def __init__(self, backend: Any = None, **kwargs: Any) -> None:
        super().__init__('decision_node', **kwargs)
        self.p: Dict[str, Any] = {}
        for name, (default, desc, extra) in NODE_PARAMS.items():
            self.p[name] = self.declare_parameter(
                name, default, _descriptor(name, default, desc, extra)).value
        for name, (_, _, extra) in NODE_PARAMS.items():
            if 'choices' in extra and self.p[name] not in extra['choices']:
                raise ValueError(f'parameter {name}={self.p[name]!r} not one of {extra["choices"]}')
        fast = self._declare_fast_path()
        self.catalog = load_catalog(self.p['skills_file'] or None)
        fb = self.p['fallback_skill']
        fb_params, reason = self.catalog.validate(fb, {}) if fb in self.catalog else ({}, 'unknown')
        if reason:
            raise ValueError(f'fallback_skill {fb!r} is not a parameterless skill of the '
                             f'catalogue: {reason}')
        self.fallback_params = fb_params
        # enable_llm false: no backend at all (the pipeline then never calls one).
        self.backend = None if not self.p['enable_llm'] else \
            backend if backend is not None else self._make_backend()
        self.pipeline = DecisionPipeline(self.catalog, fast, self.backend, logger=None)
        self.instruction = self.p['default_instruction']
        self.counters: Dict[str, int] = {k: 0 for k in (
            'observations', 'malformed', 'truncated', 'invalid_utf8', 'bad_events', 'coalesced',
            'deadline_missed', 'backend_errors', 'goals_sent', 'goals_preempted', 'goals_rejected',
            'service_calls', 'superseded')}
        self.latency: Dict[str, Deque[float]] = {s: deque(maxlen=500) for s in SOURCES}
        self.load_s = 0.0
        self._cv = threading.Condition()
        self._latest: Optional[Job] = None
        self._requests: Deque[Job] = deque()
        self._inflight: Optional[Job] = None
        self._stop = False
        self._goals: Dict[str, Tuple[Tuple[str, Dict[str, Any]], Any]] = {}
        self._goal_lock = threading.Lock()
        self._last_log: Dict[str, float] = {}

        self.cb_fast = MutuallyExclusiveCallbackGroup()
        self.cb_service = ReentrantCallbackGroup()
        self.pub = self.create_publisher(Decision, 'agent/decision', 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)
        self.create_subscription(Observation, 'agent/observation', self.on_observation,
                                 qos_profile_sensor_data, callback_group=self.cb_fast)
        self.create_subscription(String, 'agent/instruction', self.on_instruction, 10,
                                 callback_group=self.cb_fast, raw=True)
        self.create_subscription(String, 'sim/events', self.on_event, 10,
                                 callback_group=self.cb_fast)
        self.create_service(Decide, 'agent/decide', self.on_decide, callback_group=self.cb_service)
        self.create_service(Trigger, 'agent/clear_cache', self.on_clear_cache,
                            callback_group=self.cb_fast)
        self.action = ActionClient(self, ExecuteSkill, 'agent/execute_skill',
                                   callback_group=self.cb_service)
        self.create_timer(0.05, self.check_deadlines, callback_group=self.cb_fast)
        self.create_timer(self.p['diagnostics_period_s'], self.publish_diagnostics,
                          callback_group=self.cb_fast)
        self.worker = threading.Thread(target=self._work, name='llm_worker', daemon=True)
        self.worker.start()

    # ------------------------------------------------------------ parameters
    def _declare_fast_path(self) -> FastPathConfig:
        values: Dict[str, Any] = {}
        for f in fields(FastPathConfig):
            md = f.metadata
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            desc = _descriptor(f.name, default, md.get('description', f.name), dict(md))
            if isinstance(default, list):
                desc.type = Parameter.Type.STRING_ARRAY.value
                value = self.declare_parameter(f.name, [str(x) for x in default] or
                                               Parameter.Type.STRING_ARRAY, desc).value
                values[f.name] = list(value) if value is not None else []
            else:
                values[f.name] = self.declare_parameter(f.name, default, desc).value
        return FastPathConfig(**values)

    def _make_backend(self) -> Any:
        p = self.p
        if p['backend'] == 'openai':
            return make_backend('openai', base_url=p['openai_base_url'], model=p['openai_model'],
                                api_key_env=p['openai_api_key_env'],
                                timeout_s=p['openai_timeout_s'],
                                max_retries=p['openai_max_retries'], guided=p['openai_guided'],
                                margin_m=p['margin_m'],
                                max_instruction_chars=p['max_instruction_chars'],
                                log=self.get_logger().info)
        return make_backend('transformers', model=p['model'], quantization=p['quantization'],
                            device=p['device'], device_map=p['device_map'],
                            compute_dtype=p['compute_dtype'], prune_amount=p['prune_amount'],
                            model_cache_dir=p['model_cache_dir'], mode=p['llm_mode'],
                            margin_m=p['margin_m'], num_threads=p['num_threads'],
                            max_instruction_chars=p['max_instruction_chars'],
                            log=self.get_logger().info)

    # ------------------------------------------------------------ helpers
    def _throttled(self, key: str, text: str, level: str = 'warning', period_s: float = 2.0) -> None:
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= period_s:
            self._last_log[key] = now
            # One call site per severity: rclpy refuses a call site that changes severity.
            logger = self.get_logger()
            if level == 'error':
                logger.error(text)
            elif level == 'info':
                logger.info(text)
            else:
                logger.warning(text)

    def _fallback(self, why: str) -> Choice:
        return Choice(skill=self.p['fallback_skill'], params=dict(self.fallback_params),
                      confidence=0.0, source='fallback', rationale=why)

    def _situation(self, obs: Observation, instruction: str) -> Tuple[Optional[Situation], str]:
        sit, reason, notes = situation_from(
            obs.feature_names, obs.feature_values, obs.summary, instruction,
            self.p['max_instruction_chars'], self.p['max_summary_chars'])
        for note in notes:
            self.counters['truncated' if 'truncated' in note else 'invalid_utf8'] += 1
            self._throttled(note[:20], note)
        if sit is None:
            self.counters['malformed'] += 1
            self._throttled('malformed', f'{reason}: fallback, no model call')
        return sit, reason

    # ------------------------------------------------------------ inputs
    def on_instruction(self, raw: bytes) -> None:
        text, invalid = decode_string_message(raw)
        if invalid:
            self.counters['invalid_utf8'] += 1
            self._throttled('utf8', 'instruction with invalid UTF-8: bad bytes replaced')
        limit = self.p['max_instruction_chars']
        if len(text) > limit:
            self.counters['truncated'] += 1
            self.get_logger().warning(f'instruction of {len(text)} characters truncated to {limit}')
        clean, _ = prompt.sanitize_text(text, limit)
        self.instruction = clean
        self.get_logger().info(f'instruction: "{clean[:120]}"')

    def on_observation(self, msg: Observation) -> None:
        self.counters['observations'] += 1
        t0 = time.monotonic()
        sit, reason = self._situation(msg, self.instruction)
        if sit is None:
            self.finish(self._fallback(reason), msg.header, t0, execute=True)
            return
        choice = self._fast(sit)
        if choice is not None:
            self._supersede_pending()
            self.finish(choice, msg.header, t0, execute=True)
            return
        if not self._llm_ready():
            self.finish(self._fallback(self._not_ready()), msg.header, t0, execute=True)
            return
        deadline = t0 + self.p['decision_timeout_s']
        with self._cv:
            if self._latest is not None:
                self.counters['coalesced'] += 1
                if not self._latest.expired:
                    # The robot has waited since the older observation: a newer one must not
                    # restart the clock, or a stream of them starves it of any decision while
                    # the model is busy (a fallback every decision_timeout_s instead).
                    deadline = min(deadline, self._latest.deadline)
                self._latest.expired = True
            job = Job(sit, msg.header.stamp, msg.header.frame_id, t0, deadline, 'topic')
            self._latest = job
            self._cv.notify()

    def _supersede_pending(self) -> None:
        """A newer observation was decided: an older one still waiting for the LLM is moot.

        Without this, its deadline would later publish a fallback `stop` that interrupts the
        newer decision's skill.
        """
        with self._cv:
            for job in (self._latest, self._inflight):
                if job is not None and job.kind == 'topic' and not job.expired:
                    job.expired = True
                    self.counters['superseded'] += 1
            self._latest = None

    def _fast(self, sit: Situation) -> Optional[Choice]:
        try:
            return self.pipeline.fast_decide(sit)
        except Exception as exc:  # noqa: BLE001 - a fast-path bug must not stop deciding
            self._throttled('fast', f'fast path failed: {type(exc).__name__}: {exc}', 'error')
            return None

    def _llm_ready(self) -> bool:
        return self.backend is not None and bool(self.backend.ready)

    def _not_ready(self) -> str:
        if self.backend is None:
            return LLM_DISABLED
        err = getattr(self.backend, 'load_error', '')
        return f'model not ready: {err}' if err else 'model loading'

    def on_decide(self, request: Decide.Request, response: Decide.Response) -> Decide.Response:
        self.counters['service_calls'] += 1
        t0 = time.monotonic()
        obs = request.observation
        instruction = request.instruction or self.instruction
        execute = self.p['execute_service_decisions']
        sit, reason = self._situation(obs, instruction)
        if sit is None:
            choice = self._fallback(reason)
        else:
            choice = self._fast(sit)
            if choice is None and not self._llm_ready():
                choice = self._fallback(self._not_ready())
            if choice is None:
                job = Job(sit, obs.header.stamp, obs.header.frame_id, t0,
                          t0 + self.p['decision_timeout_s'], 'service')
                with self._cv:
                    self._requests.append(job)
                    self._cv.notify()
                if not job.done.wait(max(0.0, job.deadline - time.monotonic())):
                    job.expired = True
                    self.counters['deadline_missed'] += 1
                    choice = self._fallback(f'decision missed its deadline of '
                                            f'{self.p["decision_timeout_s"]:g} s')
                else:
                    choice = job.result
        response.decision = self.finish(choice, obs.header, t0, execute=execute)
        return response

    def on_event(self, msg: String) -> None:
        try:
            event = json.loads(msg.data)
            kind = event['type']
        except (ValueError, TypeError, KeyError) as exc:
            self.counters['bad_events'] += 1
            self._throttled('event', f'sim/events: not a JSON object with a type ({exc})')
            return
        if kind in ('collision', 'goal_reached'):
            self.pipeline.report_outcome(kind, event if isinstance(event, dict) else {})

    def on_clear_cache(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        resp.message = self.pipeline.clear_cache()
        resp.success = True
        self.get_logger().info(resp.message)
        return resp

    # ------------------------------------------------------------ worker
    def _work(self) -> None:
        if self.backend is None:
            self.get_logger().info(f'{LLM_DISABLED}: rules, tree and caches decide, else '
                                   f'{self.p["fallback_skill"]}')
            return
        t0 = time.monotonic()
        name = getattr(self.backend, 'name', 'backend')
        self.get_logger().info(f'loading {name} backend ...')
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
        while True:
            with self._cv:
                while not self._stop and not self._requests and self._latest is None:
                    self._cv.wait()
                if self._stop:
                    return
                job = self._requests.popleft() if self._requests else self._latest
                if job is self._latest:
                    self._latest = None
                self._inflight = job
            if job.expired or time.monotonic() > job.deadline:
                job.done.set()
                continue
            try:
                choice = self.pipeline.llm_decide(job.situation)
            except BackendError as exc:
                self.counters['backend_errors'] += 1
                self._throttled('backend', f'LLM decision failed: {exc}')
                choice = self._fallback(f'LLM failed: {exc}'[:300])
            except Exception as exc:  # noqa: BLE001 - never let the worker die
                self.counters['backend_errors'] += 1
                self.get_logger().error(f'LLM decision crashed: {type(exc).__name__}: {exc}')
                choice = self._fallback(f'LLM crashed: {type(exc).__name__}')
            with self._cv:
                self._inflight = None
                late = job.expired
            job.result = choice
            job.done.set()
            if job.kind == 'topic' and not late:
                header = Observation().header
                header.stamp, header.frame_id = job.stamp, job.frame_id
                self.finish(choice, header, job.t0, execute=True)

    def check_deadlines(self) -> None:
        """A topic decision past its deadline: publish the fallback now, drop the late answer."""
        now = time.monotonic()
        with self._cv:
            jobs = [j for j in (self._inflight, self._latest) if j is not None
                    and j.kind == 'topic' and not j.expired and now > j.deadline]
            for j in jobs:
                j.expired = True
        for j in jobs:
            self.counters['deadline_missed'] += 1
            self._throttled('deadline', f'LLM decision missed its deadline of '
                            f'{self.p["decision_timeout_s"]:g} s: fallback')
            header = Observation().header
            header.stamp, header.frame_id = j.stamp, j.frame_id
            self.finish(self._fallback(f'decision missed its deadline of '
                                       f'{self.p["decision_timeout_s"]:g} s'), header, j.t0, True)

    # ------------------------------------------------------------ outputs
    def finish(self, choice: Choice, header: Any, t0: float, execute: bool) -> Decision:
        """Check, publish and (maybe) execute one decision; return its message."""
        params, reason = self.catalog.validate(choice.skill, choice.params)
        if reason:  # last line of defence: never publish what the action server would refuse
            self.get_logger().error(f'refused invalid decision {choice.skill}: {reason}')
            choice = self._fallback(f'invalid decision refused: {reason}')
            params = dict(self.fallback_params)
        if choice.source == 'fallback':
            self.pipeline.sources['fallback'] += 1
        msg = Decision()
        msg.header.stamp = header.stamp
        msg.header.frame_id = header.frame_id
        msg.skill = choice.skill
        msg.params_json = json.dumps(params, sort_keys=True)
        msg.confidence = float(min(1.0, max(0.0, choice.confidence)))
        msg.source = choice.source if choice.source in SOURCES else 'fallback'
        msg.latency_ms = float((time.monotonic() - t0) * 1000.0)
        msg.rationale = (choice.rationale or '')[:500]
        self.latency[msg.source].append(msg.latency_ms)
        if not self.context.ok():  # Ctrl-C shut ROS down while the worker was still deciding
            return msg
        self.pub.publish(msg)
        if execute and self.p['execute_decisions']:
            self.execute(choice.skill, params)
        return msg

    def execute(self, skill: str, params: Dict[str, Any]) -> None:
        """Send a skill unless the same one already runs on its resource; pre-empt otherwise."""
        if not self.action.server_is_ready():
            self._throttled('noserver', 'agent/execute_skill has no action server: decision '
                            'not executed', 'info', 10.0)
            return
        resource = self.catalog[skill].resource
        with self._goal_lock:
            running = self._goals.get(resource)
            if running is not None and same_goal(running[0], (skill, params)):
                return
            if running is not None and running[1] is not None:
                self.counters['goals_preempted'] += 1
                running[1].cancel_goal_async()
            self._goals[resource] = ((skill, params), None)
        goal = ExecuteSkill.Goal(skill=skill, params_json=json.dumps(params))
        self.counters['goals_sent'] += 1
        future = self.action.send_goal_async(goal)
        future.add_done_callback(lambda f: self._on_goal(f, resource, skill, params))

    def _on_goal(self, future: Any, resource: str, skill: str, params: Dict[str, Any]) -> None:
        handle = future.result()
        with self._goal_lock:
            current = self._goals.get(resource)
            mine = current is not None and current[0] == (skill, params)
            if not handle.accepted:
                self.counters['goals_rejected'] += 1
                if mine:
                    del self._goals[resource]
            elif mine:
                self._goals[resource] = ((skill, params), handle)
        if not handle.accepted:
            self.pipeline.report_outcome('action_failed', {'skill': skill, 'params': params,
                                                           'message': 'goal rejected'})
            return
        handle.get_result_async().add_done_callback(
            lambda f: self._on_result(f, resource, handle, skill, params))

    def _on_result(self, future: Any, resource: str, handle: Any, skill: str,
                   params: Dict[str, Any]) -> None:
        res = future.result()
        with self._goal_lock:
            current = self._goals.get(resource)
            if current is not None and current[1] is handle:
                del self._goals[resource]
        if res.status == GoalStatus.STATUS_CANCELED:
            return  # pre-empted by a newer decision: neither success nor failure
        ok = res.status == GoalStatus.STATUS_SUCCEEDED and res.result.success
        self.pipeline.report_outcome('action_succeeded' if ok else 'action_failed',
                                     {'skill': skill, 'params': params,
                                      'message': res.result.message})

    def publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name=self.get_name(), hardware_id='llm_agent_brain')
        info = self.backend.info() if hasattr(self.backend, 'info') else {}
        ready = self.backend is None or bool(getattr(self.backend, 'ready', False))
        status.level = DiagnosticStatus.OK if ready else DiagnosticStatus.WARN
        status.message = LLM_DISABLED if self.backend is None else 'ready' if ready \
            else self._not_ready()
        with self._cv:
            pending = len(self._requests) + (self._latest is not None) + (self._inflight is not None)
        values: Dict[str, Any] = {f'backend_{k}': v for k, v in info.items()}
        values.update({'model_load_s': round(self.load_s, 2), 'pending': pending,
                       'instruction': self.instruction[:80]})
        values.update(self.counters)
        for s, lat in self.latency.items():
            for q in (50, 95):
                values[f'latency_p{q}_ms_{s}'] = round(percentile(lat, q / 100) or 0.0, 2)
        try:
            values.update({f'pipeline_{k}': round(v, 4) for k, v in self.pipeline.stats().items()})
        except Exception as exc:  # noqa: BLE001
            values['pipeline_error'] = str(exc)
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(arr)

    def destroy_node(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        # Join the worker: a daemon thread still inside torch at interpreter exit aborts the
        # process ("terminate called without an active exception", exit -6).
        self.worker.join(timeout=30.0)
        if self.worker.is_alive():
            self.get_logger().warning('LLM worker still busy at shutdown')
        self.pipeline.close()
        super().destroy_node()


def main(args: Optional[List[str]] = None) -> None:
    rclpy.init(args=args)
    node = None
    executor = MultiThreadedExecutor(num_threads=4)
    try:
        node = DecisionNode()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
