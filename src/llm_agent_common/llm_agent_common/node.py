"""The node toolkit of every package: parameters, QoS, diagnostics, bad inputs, a worker, run_node."""
from __future__ import annotations

import faulthandler
import inspect
import os
import signal
import sys
import threading
import time
from dataclasses import MISSING, dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

from .entry import held_stop
from .exit_timer import exit_after
from .heap import keep_large_buffers
from .stats import Percentiles, RateMeter, compression_ratio


def sensor_qos(depth: int = 1) -> QoSProfile:
    """For subscribers of sensor data (REP 2003's sensor-data profile): best effort, keep-last
    `depth`, so a slow consumer gets the newest frame, never a queue. Publishers use
    `sensor_pub_qos`."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def sensor_pub_qos(depth: int = 5) -> QoSProfile:
    """For publishers of sensor data (REP 2003: the system default, reliable, volatile): every
    subscriber can connect, reliable ones (Nav2, `ros2 topic echo` defaults) and best-effort ones
    alike; a best-effort subscriber still gets best-effort delivery."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> QoSProfile:
    """Reliable, transient-local, depth 1: late joiners get the last message (e.g. goal_pose)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass(frozen=True)
class Param:
    """One parameter of a node: the suite's single way to declare one.

    `range` bounds numbers (inclusive), `allowed` lists the accepted values, `check` returns ''
    for a fine value or the reason it is not. `read_only` parameters are fixed at start-up
    (a `ros2 param set` is refused and says so); the others are validated and applied live:
    the node reads them from `Params` when it uses them, or in its `on_change` callback.
    """

    name: str
    default: Any
    description: str
    range: Optional[Tuple[float, float]] = None
    allowed: Optional[Sequence[Any]] = None
    check: Optional[Callable[[Any], str]] = None
    read_only: bool = False

    def problem(self, value: Any) -> str:
        """'' when `value` is acceptable, else why not."""
        if self.allowed is not None and value not in self.allowed:
            return f'{self.name} must be one of {list(self.allowed)}, got {value!r}'
        if self.range is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = self.range
            if not lo <= value <= hi:  # also refuses NaN
                return f'{self.name}={value!r} is outside [{lo:g}, {hi:g}]'
        if self.check is not None:
            return self.check(value)
        return ''

    def descriptor(self) -> ParameterDescriptor:
        """The ParameterDescriptor `ros2 param describe` shows."""
        desc = ParameterDescriptor(name=self.name, description=self.description,
                                   read_only=self.read_only)
        if self.allowed is not None:
            desc.additional_constraints = 'one of: ' + ', '.join(map(str, self.allowed))
        if self.range is not None and not isinstance(self.default, bool):
            lo, hi = self.range
            if isinstance(self.default, int):
                desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
            elif isinstance(self.default, float):
                desc.floating_point_range = [FloatingPointRange(
                    from_value=float(lo), to_value=float(hi), step=0.0)]
        if isinstance(self.default, (list, tuple)):
            desc.type = Parameter.Type.STRING_ARRAY.value
        return desc


# Where the laser sits on the base: the skill server's guard and the observer both read scans
# in the base frame, from these same three parameters (config/ sets them alike in both files).
LASER_POSE_PARAMS = (
    Param('laser_x_m', 0.0, 'laser position on the base, forward of the centre',
          range=(-3.0, 3.0), read_only=True),
    Param('laser_y_m', 0.0, 'laser position on the base, left of the centre', range=(-3.0, 3.0),
          read_only=True),
    Param('laser_yaw_rad', 0.0, 'laser heading on the base (0 = facing forward)',
          range=(-3.15, 3.15), read_only=True),
)


def params_from_dataclass(cls: Any, read_only: bool = True) -> List[Param]:
    """Params of a config dataclass whose fields carry description/min/max/choices metadata."""
    out = []
    for f in dataclass_fields(cls):
        md = f.metadata
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        rng = (md['min'], md['max']) if 'min' in md and 'max' in md else None
        out.append(Param(f.name, default, md.get('description', f.name), range=rng,
                         allowed=md.get('choices'), read_only=read_only))
    return out


class Params:
    """Declare a node's parameters, refuse invalid or read-only changes, keep the current values."""

    def __init__(self, node: Node, specs: Iterable[Param],
                 on_change: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
        self._specs = {s.name: s for s in specs}
        self._on_change = on_change
        self.values: Dict[str, Any] = {}
        self._declared = False  # rclpy runs the callback for declarations too
        node.add_on_set_parameters_callback(self._validate)
        for spec in self._specs.values():
            default = spec.default
            if isinstance(default, (list, tuple)):
                # An empty list has no type of its own: declare it as a string array.
                default = [str(x) for x in default] or Parameter.Type.STRING_ARRAY
            value = node.declare_parameter(spec.name, default, spec.descriptor()).value
            if isinstance(spec.default, (list, tuple)):
                value = list(value) if value is not None else []
            problem = spec.problem(value)
            if problem:
                raise ValueError(f'parameter {problem}')
            self.values[spec.name] = value
        self._declared = True
        node.add_post_set_parameters_callback(self._store)

    def _validate(self, params) -> SetParametersResult:
        for p in params:
            spec = self._specs.get(p.name)
            if spec is None:
                continue
            if spec.read_only and self._declared:
                return SetParametersResult(successful=False, reason=(
                    f'{p.name} is read-only: it is fixed at start-up (restart the node with '
                    f'the new value)'))
            problem = spec.problem(p.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def _store(self, params) -> None:
        changed = False
        for p in params:
            if p.name in self._specs:
                self.values[p.name] = p.value
                changed = True
        if changed and self._on_change is not None:
            self._on_change(self.values)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


class BadInputs:
    """Count bad inputs by kind and log them, throttled so a flood does not flood the log."""

    def __init__(self, node: Node, throttle_s: float = 5.0) -> None:
        self._logger = node.get_logger()
        self._throttle_s = throttle_s
        self._last_log: Dict[str, float] = {}
        self._lock = threading.Lock()
        self.counts: Dict[str, int] = {}

    def report(self, kind: str, detail: str) -> None:
        """Count one bad input of this kind; log at most once per throttle period per kind."""
        now = time.monotonic()
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            total = self.counts[kind]
            due = now - self._last_log.get(kind, -1e9) >= self._throttle_s
            if due:
                self._last_log[kind] = now
        if due:
            self._logger.warning(f'bad input ({kind}, {total} so far): {detail}; nothing published')

    @property
    def total(self) -> int:
        """Return the number of bad inputs seen."""
        with self._lock:
            return sum(self.counts.values())


@dataclass
class StreamStats:
    """Figures of one in -> out stream, as shown on diagnostics.

    `work` names what each message costs (encode, decode, detect, filter): the diagnostics key
    of its time percentiles, `<work>_time_p50_ms`.
    """

    work: str = 'encode'
    rate_in: RateMeter = field(default_factory=RateMeter)
    rate_out: RateMeter = field(default_factory=RateMeter)
    work_ms: Percentiles = field(default_factory=Percentiles)
    dropped: int = 0

    def key_values(self) -> Dict[str, str]:
        """Return rates, bytes, ratio, encode time percentiles and drops."""
        hz_in, bps_in = self.rate_in.rates()
        hz_out, bps_out = self.rate_out.rates()
        kv = {
            'rate_in_hz': f'{hz_in:.2f}', 'rate_out_hz': f'{hz_out:.2f}',
            'bytes_in_per_s': f'{bps_in:.0f}', 'bytes_out_per_s': f'{bps_out:.0f}',
            'bytes_in_total': str(self.rate_in.total_bytes),
            'bytes_out_total': str(self.rate_out.total_bytes),
            'messages_in': str(self.rate_in.total_count),
            'messages_out': str(self.rate_out.total_count),
            'compression_ratio':
                f'{compression_ratio(self.rate_in.total_bytes, self.rate_out.total_bytes):.2f}',
            'frames_dropped': str(self.dropped),
        }
        kv.update(self.work_ms.summary(f'{self.work}_time'))
        return kv


class ThrottledLog:
    """Log lines by kind, at most once per period each, so that a flood does not flood the log.

    The key names the kind of event (a fixed string), never its changing text.
    """

    def __init__(self, logger: Any, period_s: float = 2.0) -> None:
        self._logger = logger
        self._period_s = period_s
        self._last: Dict[str, float] = {}
        self._lock = threading.Lock()

    def _due(self, key: str, period_s: Optional[float]) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e18) < (self._period_s if period_s is None else period_s):
                return False
            self._last[key] = now
            return True

    # One call site per severity: rclpy refuses a call site that changes severity.
    def info(self, key: str, text: str, period_s: Optional[float] = None) -> None:
        if self._due(key, period_s):
            self._logger.info(text)

    def warning(self, key: str, text: str, period_s: Optional[float] = None) -> None:
        if self._due(key, period_s):
            self._logger.warning(text)

    def error(self, key: str, text: str, period_s: Optional[float] = None) -> None:
        if self._due(key, period_s):
            self._logger.error(text)


class CallbackErrors:
    """Turn an exception in a callback into a counted, rate-limited error; the node carries on.

    One message, whatever it holds, must not take a node down (and `llm-agent up` or launch
    with it): the count shows on `diagnostics` as `callback_errors[_<callback>]`.
    """

    def __init__(self, logger: Any, period_s: float = 5.0) -> None:
        self._log = ThrottledLog(logger, period_s)
        self._lock = threading.Lock()
        self.counts: Dict[str, int] = {}

    def wrap(self, name: str, fn: Callable[..., Any],
             default: Optional[Callable[..., Any]] = None) -> Callable[..., Any]:
        """fn, guarded; on an exception `default(*args)` (None without one) is returned. A
        coroutine function stays one (rclpy awaits only those), guarded while it runs."""
        def failed(exc: Exception, args: Tuple[Any, ...]) -> Any:
            with self._lock:
                n = self.counts[name] = self.counts.get(name, 0) + 1
            self._log.error(name, f'{name}: {type(exc).__name__}: {str(exc)[:300]} '
                                  f'({n} so far; the node carries on)')
            return default(*args) if default is not None else None

        if inspect.iscoroutinefunction(fn):
            async def guarded_coroutine(*args: Any) -> Any:
                try:
                    return await fn(*args)
                except Exception as exc:  # noqa: BLE001 - counted and logged; the node carries on
                    return failed(exc, args)
            return guarded_coroutine

        def guarded(*args: Any) -> Any:
            try:
                return fn(*args)
            except Exception as exc:  # noqa: BLE001 - counted and logged; the node carries on
                return failed(exc, args)
        return guarded

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def key_values(self) -> Dict[str, str]:
        with self._lock:
            kv = {'callback_errors': str(sum(self.counts.values()))}
            kv.update({f'callback_errors_{k}': str(v) for k, v in sorted(self.counts.items())})
        return kv


def _last_arg(*args: Any) -> Any:
    return args[-1] if args else None  # a service's response, as it came


def qos_incompatibility(pub: QoSProfile, sub: QoSProfile) -> str:
    """Why a publisher and a subscription with these profiles do not connect ('' if they do).

    Reliability and durability only: rclpy's qos_check_compatible also reads deadline and
    liveliness, and the graph reports a remote endpoint's unset deadline as a finite maximum,
    so it flagged every pair of default profiles ("Subscription has a deadline, but publisher
    does not")."""
    reasons = []
    if pub.reliability == ReliabilityPolicy.BEST_EFFORT and \
            sub.reliability == ReliabilityPolicy.RELIABLE:
        reasons.append('best-effort publisher, reliable subscription')
    if pub.durability == DurabilityPolicy.VOLATILE and \
            sub.durability == DurabilityPolicy.TRANSIENT_LOCAL:
        reasons.append('volatile publisher, transient-local subscription')
    return '; '.join(reasons)


class QosWatch:
    """Warn once per endpoint when a publisher and a subscription on one topic cannot talk.

    rclpy's default incompatible-QoS and -type event handlers are waitables that each executor
    wake-up polls in Python: 20 of them were half the skill server's CPU at idle (15 vs 37 % of
    a core, one run, side by side). The same warning comes here from a look at the graph every
    `period_s` on a steady timer instead."""

    def __init__(self, node: Node, period_s: float = 5.0) -> None:
        self._node = node
        # (kind, topic) -> the node's own QoS profiles there (a node may subscribe twice to one
        # topic, e.g. latched and volatile, so that either kind of publisher reaches it).
        self._endpoints: Dict[Tuple[str, str], List[QoSProfile]] = {}
        self._warned: set = set()
        self.incompatible = 0
        node.create_timer(period_s, self.check, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def add(self, kind: str, topic: str, qos: Any) -> None:
        """Record an own publisher or subscription ('publisher'/'subscription')."""
        own = self._endpoints.setdefault((kind, topic), [])
        if isinstance(qos, QoSProfile) and qos not in own:
            own.append(qos)

    def check(self) -> None:
        """Look up the other side of every own endpoint; warn about each new other endpoint that
        none of the node's own endpoints on that topic can talk to."""
        node = self._node
        own = (node.get_name(), node.get_namespace())
        for (kind, topic), profiles in self._endpoints.items():
            name = node.resolve_topic_name(topic)
            others = (node.get_subscriptions_info_by_topic(name) if kind == 'publisher'
                      else node.get_publishers_info_by_topic(name))
            for info in others:
                if (info.node_name, info.node_namespace) == own:
                    continue
                reasons = [qos_incompatibility(q, info.qos_profile) if kind == 'publisher'
                           else qos_incompatibility(info.qos_profile, q) for q in profiles]
                key = (kind, name, bytes(info.endpoint_gid))
                if not reasons or not all(reasons) or key in self._warned:
                    continue
                self._warned.add(key)
                self.incompatible += 1
                other = f'{info.node_namespace.rstrip("/")}/{info.node_name}'
                node.get_logger().warning(
                    f'{other} {"subscribes to" if kind == "publisher" else "publishes"} {name} '
                    f'with QoS incompatible with this node\'s {kind}: no messages pass between '
                    f'them ({reasons[0]})')


class PolledSubscription:
    """A subscription no executor waits on: its node takes the newest message when it needs one
    (`poll`, e.g. from a 20 Hz control loop reading a 50 Hz odometry), which saves an executor
    wake-up per message, and each wake-up costs rclpy about a millisecond of Python.

    rclpy (Jazzy) has no public take(); this is the handle call its executor makes."""

    _MAX_TAKEN = 1000  # a queue deeper than the QoS depth cannot build up; a bound all the same

    def __init__(self, subscription: Any, handler: Callable[[Any], None]) -> None:
        self.subscription = subscription
        self._handler = handler

    def poll(self) -> bool:
        """Hand the newest waiting message (older ones are dropped) to the handler; False if
        none was waiting."""
        from rclpy.exceptions import InvalidHandle
        sub, latest = self.subscription, None
        try:
            with sub.handle:
                for _ in range(self._MAX_TAKEN):
                    taken = sub.handle.take_message(sub.msg_type, sub.raw)
                    if taken is None:
                        break
                    latest = taken
        except InvalidHandle:  # destroyed at shutdown
            return False
        if latest is None:
            return False
        self._handler(latest[0])
        return True


class StreamInput:
    """A subscription served by a thread of its own that waits on DDS for it alone and runs the
    handler there, for a node's one fast input (a 30 Hz camera) and, through `adopt`, rclpy's
    own /clock subscription under use_sim_time: the executor does not wake per message. An
    rclpy executor wake-up rebuilds and waits on a wait set of every entity of the node (its
    parameter services among them): a compressor at 30 Hz 640x480 took 7.3 % of a core
    with its frames handed from the executor to a worker thread, 5.6 % taking them here (AMD
    EPYC, the same run). The executor still serves the node's timers and services.

    rmw_fastrtps lets one wait set at a time wait on a subscription: this one is out of the
    executor's wait set and has no QoS event handlers (GuardedNode leaves them out). A slow
    handler loses nothing but old frames: with keep-last QoS, DDS keeps the newest.
    """

    def __init__(self, node: 'GuardedNode', msg_type: Any, topic: str,
                 handler: Callable[[Any], None], qos_profile: Any, name: str) -> None:
        self._serve(node, node.create_subscription(msg_type, topic, _never_called, qos_profile),
                    handler, name)

    @classmethod
    def adopt(cls, node: 'GuardedNode', subscription: Any, handler: Callable[[Any], None],
              name: str) -> 'StreamInput':
        """Serve a subscription the node already has (one rclpy made) on a thread of its own."""
        stream = cls.__new__(cls)
        stream._serve(node, subscription, handler, name)
        return stream

    def _serve(self, node: 'GuardedNode', subscription: Any, handler: Callable[[Any], None],
               name: str) -> None:
        from rclpy.guard_condition import GuardCondition
        self._node = node
        self.subscription = subscription
        node._subscriptions.remove(subscription)   # out of every executor's wait set
        self._name = subscription.topic_name.replace('/', '_')
        self._unguarded = handler
        self._handler = node._guard(self._name, handler)
        # Not the node's: only this thread waits on it (close() wakes the thread with it).
        self._wake = GuardCondition(None, None, context=node.context)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        node._stream_inputs.append(self)
        self._thread.start()

    def _run(self) -> None:
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
        sub, context = self.subscription, self._node.context
        try:
            with sub.handle, self._wake.handle, context.handle:
                wait_set = _rclpy.WaitSet(1, 1, 0, 0, 0, 0, context.handle)
                while not self._stop:
                    wait_set.clear_entities()
                    wait_set.add_subscription(sub.handle)
                    wait_set.add_guard_condition(self._wake.handle)
                    wait_set.wait(-1)
                    if self._stop:
                        return
                    taken = sub.handle.take_message(sub.msg_type, sub.raw)
                    if taken is not None:
                        self._handler(taken[0])
        except Exception as exc:  # noqa: BLE001 - the context shut down under the wait
            if not self._stop:
                self._node.get_logger().error(f'input {sub.topic_name} stopped: {exc!r}')

    def guard(self) -> None:
        """Guard the handler now (a stream made before its node had its CallbackErrors)."""
        self._handler = self._node._guard(self._name, self._unguarded)

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the thread (after the message in hand) and destroy the subscription."""
        if self._stop:
            return
        self._stop = True
        self._wake.trigger()
        self._thread.join(timeout_s)
        if self in self._node._stream_inputs:
            self._node._stream_inputs.remove(self)
        self.subscription.destroy()
        self._wake.destroy()


class LazyInput:
    """An input that exists only while some output of the node has a reader, as
    image_transport's publishers encode only for subscribers: a compressor nobody reads costs
    neither the transport of its input (a 0.9 MB frame 30 times a second) nor its encoding.

    `readers()` counts the readers of the outputs; `create()` makes the input (a StreamInput).
    A steady timer looks every `period_s`, so a new reader gets frames within that time.
    """

    def __init__(self, node: Node, outputs: Callable[[], Sequence[Any]],
                 create: Callable[[], StreamInput], period_s: float = 1.0,
                 callback_group: Any = None) -> None:
        self._node = node
        self._outputs = outputs
        self._create = create
        self.stream: Optional[StreamInput] = None
        self.changes = 0
        self._lock = threading.Lock()   # update() on the executor, close() from shutdown
        self.update()
        node.create_timer(period_s, self.update, callback_group=callback_group,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))

    def readers(self) -> int:
        return sum(pub.get_subscription_count() for pub in self._outputs())

    def update(self) -> None:
        """Subscribe when an output has a reader, unsubscribe when none has."""
        wanted = self.readers() > 0
        with self._lock:
            if wanted and self.stream is None:
                self.stream = self._create()
                self.changes += 1
            elif not wanted and self.stream is not None:
                self.stream.close()
                self.stream = None
                self.changes += 1

    def close(self) -> None:
        """Stop the input for good (the node shuts down); the timer subscribes no more."""
        with self._lock:
            self._outputs = lambda: ()
            if self.stream is not None:
                self.stream.close()
                self.stream = None


def _is_time_source_clock(topic: str, callback: Any) -> bool:
    from rclpy.time_source import CLOCK_TOPIC, TimeSource
    return topic == CLOCK_TOPIC and isinstance(getattr(callback, '__self__', None), TimeSource)


def _never_called(msg: Any) -> None:  # pragma: no cover - a polled subscription's callback
    raise AssertionError('a polled subscription is never dispatched by an executor')


class GuardedNode(Node):
    """A Node whose subscription, service, timer and guard-condition callbacks cannot kill it,
    and whose publishers and subscriptions tell incompatible QoS through a QosWatch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.callback_errors: Optional[CallbackErrors] = None  # rclpy's own services come first
        self.qos_watch: Optional[QosWatch] = None
        self._polled: List[Any] = []
        self._stream_inputs: List[StreamInput] = []
        super().__init__(*args, **kwargs)
        self.callback_errors = CallbackErrors(self.get_logger())
        for stream in self._stream_inputs:   # /clock's, adopted while Node.__init__ ran
            stream.guard()
        self.qos_watch = QosWatch(self)
        for pub in self.publishers:   # parameter_events, made by Node's own __init__
            self.qos_watch.add('publisher', pub.topic_name, pub.qos_profile)

    def _guard(self, name: str, callback: Callable[..., Any],
               default: Optional[Callable[..., Any]] = None) -> Callable[..., Any]:
        errors = self.callback_errors
        return callback if errors is None else errors.wrap(name, callback, default)

    def create_subscription(self, msg_type, topic, callback, qos_profile, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault('event_callbacks', SubscriptionEventCallbacks(use_default_callbacks=False))
        sub = super().create_subscription(
            msg_type, topic, self._guard(topic.replace('/', '_'), callback), qos_profile, *args,
            **kwargs)
        if self.qos_watch is not None:
            self.qos_watch.add('subscription', topic, sub.qos_profile)
        if _is_time_source_clock(topic, callback):
            # rclpy's TimeSource, for use_sim_time: /clock on a thread of its own, not the
            # executor's. An executor wake-up per clock message (20 Hz) cost a node ~0.7 ms
            # of CPU each; ROS-time timers still wake the executor when they become due.
            StreamInput.adopt(self, sub, callback, 'clock_input')
        return sub

    def destroy_subscription(self, subscription: Any) -> bool:  # type: ignore[override]
        for stream in list(self._stream_inputs):
            if stream.subscription is subscription:   # /clock when use_sim_time turns false
                stream.close()
                return True
        return super().destroy_subscription(subscription)

    def create_polled_subscription(self, msg_type: Any, topic: str,
                                   handler: Callable[[Any], None],
                                   qos_profile: Any) -> PolledSubscription:
        """A subscription that the node reads with `poll()` (see PolledSubscription); the handler
        is guarded like a callback and shows on the graph as this node's subscription."""
        sub = self.create_subscription(msg_type, topic, _never_called, qos_profile)
        self._subscriptions.remove(sub)   # out of every executor's wait set
        self._polled.append(sub)
        return PolledSubscription(sub, self._guard(topic.replace('/', '_'), handler))

    def destroy_node(self) -> None:  # type: ignore[override]
        for stream in list(self._stream_inputs):
            stream.close()
        for sub in self._polled:
            sub.destroy()
        self._polled.clear()
        super().destroy_node()

    def create_publisher(self, msg_type, topic, qos_profile, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault('event_callbacks', PublisherEventCallbacks(use_default_callbacks=False))
        pub = super().create_publisher(msg_type, topic, qos_profile, *args, **kwargs)
        if self.qos_watch is not None:
            self.qos_watch.add('publisher', topic, pub.qos_profile)
        return pub

    def create_service(self, srv_type, srv_name, callback, *args, **kwargs):  # type: ignore[override]
        return super().create_service(
            srv_type, srv_name, self._guard(srv_name.replace('/', '_'), callback, _last_arg),
            *args, **kwargs)

    def create_timer(self, timer_period_sec, callback, *args, **kwargs):  # type: ignore[override]
        name = getattr(callback, '__name__', 'timer').lstrip('_')
        return super().create_timer(timer_period_sec, self._guard(name, callback), *args, **kwargs)

    def create_guard_condition(self, callback, *args, **kwargs):  # type: ignore[override]
        name = getattr(callback, '__name__', 'guard').lstrip('_')
        return super().create_guard_condition(self._guard(name, callback), *args, **kwargs)


class Diagnostics:
    """Publish one DiagnosticStatus named after the node on `diagnostics`, about once a second.

    `status` returns (ok, message); without it the level is OK unless bad inputs arrived since
    the last report (WARN).
    """

    def __init__(self, node: Node, values: Callable[[], Dict[str, Any]],
                 bad: Optional[BadInputs] = None, period_s: float = 1.0, callback_group=None,
                 status: Optional[Callable[[], Tuple[bool, str]]] = None) -> None:
        self._node = node
        self._values = values
        self._bad = bad
        self._status = status
        self._pub = node.create_publisher(DiagnosticArray, 'diagnostics', 10)
        self._last_bad = 0
        self._last_errors = 0
        self._timer = node.create_timer(period_s, self.publish, callback_group=callback_group)

    def publish(self) -> None:
        """Publish the current figures and the node's level."""
        status = DiagnosticStatus(name=self._node.get_name(),
                                  hardware_id=self._node.get_fully_qualified_name())
        try:
            kv = dict(self._values())
        except Exception as exc:  # noqa: BLE001 - a figure that fails must not stop the report
            kv = {'figures_error': f'{type(exc).__name__}: {exc}'}
        ok, message = self._status() if self._status is not None else (True, 'ok')
        errors = getattr(self._node, 'callback_errors', None)
        if errors is not None:
            kv.update(errors.key_values())
            if errors.total > self._last_errors:
                ok, message = False, 'callback errors seen'
            self._last_errors = errors.total
        if self._bad is not None:
            bad_total = self._bad.total
            kv['bad_inputs'] = str(bad_total)
            for kind, count in sorted(self._bad.counts.items()):
                kv[f'bad_inputs_{kind}'] = str(count)
            if bad_total > self._last_bad and ok:
                message = 'bad inputs seen'
            self._last_bad = bad_total
        status.level = DiagnosticStatus.OK if ok and message != 'bad inputs seen' \
            else DiagnosticStatus.WARN
        status.message = message
        status.values = [KeyValue(key=k, value=str(v)) for k, v in kv.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(msg)


class LatestWorker:
    """A thread that processes only the newest submitted item; older unprocessed ones are dropped."""

    def __init__(self, handler: Callable[[Any], None], name: str = 'worker',
                 on_error: Optional[Callable[[BaseException], None]] = None) -> None:
        self._handler = handler
        self._on_error = on_error
        self._cond = threading.Condition()
        self._item: Any = None
        self._has_item = False
        self._stop = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Hand over an item, replacing (and counting as dropped) one not yet started."""
        with self._cond:
            if self._has_item:
                self.dropped += 1
            self._item, self._has_item = item, True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._has_item and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                item, self._item, self._has_item = self._item, None, False
            try:
                self._handler(item)
            except Exception as exc:  # a bad frame must not kill the worker
                if self._on_error is not None:
                    self._on_error(exc)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread after its current item."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout_s)


class _NextWakeUp:
    """`await NEXT_WAKE_UP` in an rclpy coroutine callback gives the executor back until it next
    wakes up (rclpy resumes a waiting coroutine at each wake-up; a guard condition's trigger
    wakes it from another thread)."""

    def __await__(self) -> Any:
        yield


NEXT_WAKE_UP = _NextWakeUp()


# How long the shutdown waits for callbacks in flight before destroying the node; with the
# node's own close() it stays inside launch's 5 s between SIGINT and SIGTERM.
CALLBACKS_WAIT_S = 2.0


class _StopRequest:
    """SIGINT/SIGTERM ask the spin loop to end. The handler only sets a flag: an exception
    raised from it would land anywhere in the main thread, e.g. half-way through rclpy making a
    Task, which then fails noisily when garbage-collected."""

    def __init__(self) -> None:
        self.signal = ''
        self._at = 0.0

    def __call__(self, signum: int, frame: Any) -> None:
        # A terminal or a launcher may deliver one stop twice (to the process and to its
        # group): a repeat within FORCE_AFTER_S does not interrupt the clean shutdown. One that
        # comes later means the shutdown hangs for the caller: leave at once.
        if not self.signal:
            self.signal, self._at = signal.Signals(signum).name, time.monotonic()
        elif time.monotonic() - self._at >= self.FORCE_AFTER_S:
            os.write(2, f'{signal.Signals(signum).name} again during shutdown: exiting now\n'
                     .encode())
            os._exit(0)

    FORCE_AFTER_S = 1.0


# A stopping node that is still alive this long after the first SIGINT/SIGTERM dumps every
# thread's stack to stderr and exits 1. Past the clean shutdown's own budget (callbacks 2 s,
# executor 1 s, a node's close/destroy up to 2 s more) and launch's SIGTERM at 5 s, which ends a
# node whose main thread still runs Python; before launch's SIGKILL at 10 s, so a node stuck in
# C says where instead of dying unexplained.
SHUTDOWN_LIMIT_S = 8.0
# The DDS teardown after the nodes' work is over (see exit_timer): with CALLBACKS_WAIT_S before
# it, within launch's 5 s from SIGINT to SIGTERM.
DDS_TEARDOWN_LIMIT_S = 2.5


class _ShutdownWatchdog:
    """What the watchdog thread does at a stop signal besides arming: wake the executor, which
    then spins without a timeout (a timeout makes rclpy build a Timer at every wake-up)."""

    wake: Callable[[], None] = staticmethod(lambda: None)


def _start_shutdown_watchdog() -> _ShutdownWatchdog:
    """From the first stop signal on, bound the shutdown with faulthandler's C watchdog thread.

    The signal is seen by a thread reading the interpreter's wake-up fd, not by the Python
    handler: that one runs only when the main thread runs bytecode, and a main thread stuck in a
    C call (a DDS write or teardown) would never arm it. Once armed the watchdog needs neither
    the GIL nor the main thread."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    watchdog = _ShutdownWatchdog()

    def watch() -> None:
        if os.read(read_fd, 1):
            faulthandler.dump_traceback_later(SHUTDOWN_LIMIT_S, exit=True)
            while True:   # the Python handler runs once the main thread is back from the
                watchdog.wake()   # wait; until the process ends, in case the first wake was early
                time.sleep(0.2)

    threading.Thread(target=watch, name='shutdown_watchdog', daemon=True).start()
    return watchdog


def _delete_participant() -> None:
    """Delete the process's DDS participant now, while every Fast DDS thread is alive: peers
    hear it leave at once, and nothing is left for the C++ static destructors at exit(). Left to
    them, a participant whose writers carried camera-sized messages was seen (CI, three times)
    to spin a core for minutes after Python had finished, and launch had to SIGTERM the node."""
    from rclpy.utilities import get_default_context
    get_default_context().destroy()


def _wait_for_callbacks(executor: Any, timeout_s: float) -> bool:
    """Let callbacks in flight finish before the node is destroyed (rclpy 7.1's
    Executor.shutdown() does not wait for them, and they then touch destroyed publishers);
    False when one is still running after timeout_s."""
    pool = getattr(executor, '_executor', None)  # MultiThreadedExecutor's thread pool
    if pool is None:
        return True
    pool.shutdown(wait=False)  # what is queued still runs: the node is not destroyed yet
    deadline = time.monotonic() + timeout_s
    threads = list(getattr(pool, '_threads', ()))
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


class LeanMultiThreadedExecutor(MultiThreadedExecutor):
    """rclpy 7.1.6's MultiThreadedExecutor with one fix. Its _spin_once_impl appends the
    handler it runs to a list each time and scans that whole list on every wake-up; a coroutine
    task that waits (an action's result request waits for its goal) is handed out again at each
    wake-up and so appended again, and the list grows by one per wake-up while it waits:
    scanning it took a third of the skill server's CPU (py-spy, 150 wake-ups a second). Here
    each handler is tracked once.

    And callbacks of a MutuallyExclusiveCallbackGroup run on the spinning thread itself: they
    are short by this project's rule (control ticks, timers, /clock, parameters); a hand-off to
    the pool per callback cost the skill server a fifth of its CPU while a goal ran (about
    7 -> 6 % of a core, AMD EPYC). Reentrant callbacks and tasks (an action's execute, which
    waits for its goal) still go to the pool."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tracked: Dict[int, Any] = {}

    def _spin_once_impl(self, timeout_sec: Any = None,
                        wait_condition: Callable[[], bool] = lambda: False) -> None:
        from rclpy.executors import ConditionReachedException, ShutdownException, TimeoutException
        try:
            handler, entity, _ = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ExternalShutdownException, ShutdownException, TimeoutException,
                ConditionReachedException):
            return
        if isinstance(getattr(entity, 'callback_group', None), MutuallyExclusiveCallbackGroup):
            handler()
            if handler.done():
                handler.result()  # raise what the callback raised
                return
        else:
            self._executor.submit(handler)
        self._tracked[id(handler)] = handler
        for key, future in list(self._tracked.items()):
            if future.done():
                del self._tracked[key]
                future.result()  # raise what a callback raised


@dataclass(frozen=True)
class Component:
    """A node class and what running it needs, alone in its process (`run_component`) or beside
    other nodes in one (`run_nodes`, behind `llm-agent up --one-process`): the executor threads
    it needs (a number, or a function of the made node) and the constructor's exceptions that are
    a user's error (a bad parameter or file), logged as such instead of a traceback.

    1 thread: the node's callbacks only hand work to a LatestWorker or return at once; more: its
    callbacks block (an action's execute waits for its goal)."""

    make: Callable[..., Node]
    threads: Union[int, Callable[[Node], int]] = 1
    fatal: Tuple[type, ...] = ()

    def thread_count(self, node: Node) -> int:
        return int(self.threads(node)) if callable(self.threads) else int(self.threads)


def executor_for(threads: int, context: Any = None) -> Any:
    """The executor for nodes that need `threads` threads in all: 1 a SingleThreadedExecutor
    (the cheapest), more a LeanMultiThreadedExecutor of that size."""
    from rclpy.executors import SingleThreadedExecutor
    if threads <= 1:
        return SingleThreadedExecutor(context=context)
    return LeanMultiThreadedExecutor(num_threads=threads, context=context)


def run_node(make_node: Callable[[], Node], args=None,
             threads: Union[int, Callable[[Node], int]] = 1,
             fatal: Tuple[type, ...] = ()) -> int:
    """Run one node until SIGINT or SIGTERM and shut it down cleanly; the process exit code."""
    return run_nodes([(Component(make_node, threads, fatal), {})], args)


def run_component(component: Component, args=None) -> int:
    """A node module's main(): its Component alone in this process."""
    return run_nodes([(component, {})], args)


def run_nodes(parts: Sequence[Tuple[Component, Dict[str, Any]]], args=None) -> int:
    """Run nodes on one executor in this process until SIGINT or SIGTERM and shut them down
    cleanly; the process exit code. Each part's keyword arguments go to its constructor (a
    container gives each node its own `cli_args`).

    The executor has as many threads as the nodes need alone, summed: 1 in all spins a
    SingleThreadedExecutor (the cheapest), more a MultiThreadedExecutor of that size.

    rclpy's own signal handler shuts the context down under running callbacks (they then fail
    on destroyed publishers and the log cannot reach rosout); here the signal only ends the
    spin, then each node's `close()` stops its threads, callbacks in flight finish, and only then
    are the nodes and the context destroyed.
    """
    from rclpy.exceptions import ParameterException
    from rclpy.signals import SignalHandlerOptions

    heap = keep_large_buffers()   # before DDS starts its threads and their arenas
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = _StopRequest()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    watchdog = _start_shutdown_watchdog()
    held = held_stop()   # a stop that came while the node's modules or rclpy were loading
    if held:
        print(f'{held} while starting: not started', file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        _delete_participant()
        return 0
    nodes: List[Node] = []
    executor: Any = None
    stuck = False
    try:
        for component, kwargs in parts:
            try:
                nodes.append(component.make(**kwargs))
            except (ParameterException, *component.fatal) as exc:
                rclpy.logging.get_logger('run_node').fatal(f'{type(exc).__name__}: {exc}')
                return 1
        nodes[0].get_logger().debug(heap)
        executor = executor_for(sum(c.thread_count(n) for (c, _), n in zip(parts, nodes)))
        for node in nodes:
            executor.add_node(node)
        watchdog.wake = executor.wake
        failures = 0
        while rclpy.ok() and not stop.signal:
            try:
                executor.spin_once()
            except (KeyboardInterrupt, ExternalShutdownException):
                raise
            except Exception as exc:  # noqa: BLE001 - rclpy's own callbacks (our callbacks are
                failures += 1         # guarded by GuardedNode): one failure must not end the node
                if failures <= 3 or failures % 100 == 0:
                    nodes[0].get_logger().error(f'executor: {type(exc).__name__}: {exc} '
                                                f'({failures} so far; the node carries on)')
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            close = getattr(node, 'close', None)
            if close is not None:
                close()  # stop the node's own threads first, so none publishes on a destroyed node
        if executor is not None:
            stuck = not _wait_for_callbacks(executor, CALLBACKS_WAIT_S)
            executor.shutdown(timeout_sec=1.0)
        # The nodes' work is over: what is left is DDS teardown in C++ under the GIL, which was
        # seen to block on a loaded machine. Past its bound the process leaves with status 0.
        sys.stdout.flush()
        sys.stderr.flush()
        exit_after(DDS_TEARDOWN_LIMIT_S, 0)
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()
        _delete_participant()
    if stuck or any(getattr(node, 'leave_now', False) for node in nodes):
        # A thread a node could not stop (torch loading a model, a callback still running):
        # Python's exit would wait for it or abort under it; everything is closed, so leave.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
