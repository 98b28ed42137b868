"""Shared node glue: parameters with descriptors, diagnostics, bad-input counting, worker, main."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from .stats import Percentiles, RateMeter, compression_ratio


def sensor_qos(depth: int = 1) -> QoSProfile:
    """Best effort, keep-last `depth`: a slow consumer gets the newest frame, never a queue."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> QoSProfile:
    """Reliable, transient-local, depth 1: late joiners get the last message (e.g. goal_pose)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass
class Param:
    """One parameter: default, description and its bounds or allowed values."""

    name: str
    default: Any
    description: str
    range: Optional[Tuple[float, float]] = None
    allowed: Optional[Sequence[str]] = None
    check: Optional[Callable[[Any], str]] = None  # returns '' when the value is fine


class Params:
    """Declare parameters with ParameterDescriptors, validate changes, keep a current copy."""

    def __init__(self, node: Node, specs: Iterable[Param],
                 on_change: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
        self._specs = {s.name: s for s in specs}
        self._on_change = on_change
        self.values: Dict[str, Any] = {}
        node.add_on_set_parameters_callback(self._validate)
        for spec in self._specs.values():
            desc = ParameterDescriptor(description=spec.description)
            if spec.allowed:
                desc.additional_constraints = 'one of: ' + ', '.join(spec.allowed)
            if spec.range is not None:
                lo, hi = spec.range
                if isinstance(spec.default, bool):
                    pass
                elif isinstance(spec.default, int):
                    desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
                elif isinstance(spec.default, float):
                    desc.floating_point_range = [FloatingPointRange(
                        from_value=float(lo), to_value=float(hi), step=0.0)]
            self.values[spec.name] = node.declare_parameter(spec.name, spec.default, desc).value
            problem = self._problem(spec.name, self.values[spec.name])
            if problem:
                raise ValueError(problem)
        node.add_post_set_parameters_callback(self._store)

    def _problem(self, name: str, value: Any) -> str:
        spec = self._specs.get(name)
        if spec is None:
            return ''
        if spec.allowed and value not in spec.allowed:
            return f'{name} must be one of {list(spec.allowed)}, got {value!r}'
        if spec.check is not None:
            return spec.check(value)
        return ''

    def _validate(self, params) -> SetParametersResult:
        for p in params:
            problem = self._problem(p.name, p.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def _store(self, params) -> None:
        for p in params:
            if p.name in self._specs:
                self.values[p.name] = p.value
        if self._on_change is not None:
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
    """Figures of one in -> out stream, as shown on diagnostics."""

    rate_in: RateMeter = field(default_factory=RateMeter)
    rate_out: RateMeter = field(default_factory=RateMeter)
    encode_ms: Percentiles = field(default_factory=Percentiles)
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
        kv.update(self.encode_ms.summary('encode_time'))
        return kv


class Diagnostics:
    """Publish one DiagnosticStatus named after the node on `diagnostics`, about once a second."""

    def __init__(self, node: Node, values: Callable[[], Dict[str, str]], bad: BadInputs,
                 period_s: float = 1.0, callback_group=None) -> None:
        self._node = node
        self._values = values
        self._bad = bad
        self._pub = node.create_publisher(DiagnosticArray, 'diagnostics', 10)
        self._last_bad = 0
        self._timer = node.create_timer(period_s, self.publish, callback_group=callback_group)

    def publish(self) -> None:
        """Publish the current figures; WARN when bad inputs arrived since the last report."""
        status = DiagnosticStatus(name=self._node.get_name(),
                                  hardware_id=self._node.get_fully_qualified_name())
        kv = dict(self._values())
        bad_total = self._bad.total
        kv['bad_inputs'] = str(bad_total)
        for kind, count in sorted(self._bad.counts.items()):
            kv[f'bad_inputs_{kind}'] = str(count)
        if bad_total > self._last_bad:
            status.level, status.message = DiagnosticStatus.WARN, 'bad inputs seen'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'ok'
        self._last_bad = bad_total
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


def run_node(make_node: Callable[[], Node], args=None, threads: int = 2) -> int:
    """Init rclpy, spin the node on a MultiThreadedExecutor, and shut down cleanly on Ctrl-C."""
    rclpy.init(args=args)
    node = None
    executor = None
    try:
        node = make_node()
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close = getattr(node, 'close', None)
        if close is not None:
            close()  # stop worker threads first, so none publishes on a destroyed node
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
