"""Shared by sections 5 and 6: run part of the graph, sample its processes, watch its topics.

`RunningGraph` starts graph.yaml nodes (one process each, parameter overrides, a namespace) with
their output in log files; `ProcessSampler` measures each process over a window (CPU % of one
core from cpu_times, RSS and USS sampled once a second); `Probe` is an rclpy node per namespace
in this process that stamps every message it receives with its own monotonic clock.

End-to-end latency, as measured here (cmd_vel is unstamped, and stamps are sim time):
  capture   wall time at which the world's sim clock reached the camera frame's stamp (the
            probe maps sim to wall time from the `clock` messages it received, interpolated
            between the two around the stamp)
  frame     the probe receives the frame's camera_info (published with the image, same stamp)
  (receives: the time DDS delivered the message to the probe, `arrival`, not when its
  callback ran; the same for the clock messages, observations, decisions and cmd_vel)
  obs       the probe receives the Observation; its frame = the newest frame received before it
            (the observer publishes the newest detection on a timer and does not say which frame)
  decision  the probe receives the Decision whose stamp equals the Observation's stamp
  goal      the action status first shows the skill goal that decision sent as executing
  cmd       the probe receives the first cmd_vel after that
Only decisions that start a skill goal have a cmd_vel they cause (the brain does not resend a
goal that already runs); the pure matching functions below are unit-tested.
"""
from __future__ import annotations

import bisect
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from llm_agent_bringup.graph import clock_topic, default_config_dir, load_graph, select
from llm_agent_bringup.launcher import Launcher

from .core import quantiles

PERCEPTION = ('sim_world', 'scan_filter', 'image_compressor', 'depth_compressor', 'observer')
STAGES = ('capture_to_frame', 'frame_to_observation', 'observation_to_decision',
          'decision_to_goal', 'goal_to_cmd')
MATCH_LIMIT_S = 2.0   # links of one chain further apart than this are not the same chain


# ---------------------------------------------------------------- pure helpers (unit-tested)

def cpu_percent(cpu_s0: float, cpu_s1: float, wall_s: float) -> float:
    """CPU seconds used over a wall interval as % of one core."""
    return 100.0 * (cpu_s1 - cpu_s0) / wall_s if wall_s > 0 else 0.0


def wall_at(clock: Sequence[Tuple[float, float]], sim_t: float) -> Optional[float]:
    """Wall time at which the sim clock reached `sim_t`, interpolated between the receipts of
    the (wall, sim) clock samples around it; None outside the samples (sim time must be
    increasing). A 30 Hz frame falls between two 20 Hz samples: the first sample after it came
    up to 50 ms later, which made frames look younger than they were."""
    sims = [s for _, s in clock]
    i = bisect.bisect_left(sims, sim_t - 1e-6)   # the first sample at or after sim_t
    if i >= len(clock):
        return None
    w1, s1 = clock[i]
    if s1 - sim_t <= 1e-6:
        return w1
    if i == 0:   # before the probe listened
        return None
    w0, s0 = clock[i - 1]
    return w0 + (sim_t - s0) * (w1 - w0) / (s1 - s0)


def newest_at_or_before(walls: Sequence[float], t: float) -> Optional[int]:
    """Index of the last sorted wall time <= t, or None."""
    i = bisect.bisect_right(walls, t) - 1
    return i if i >= 0 else None


def first_after(walls: Sequence[float], t: float) -> Optional[int]:
    """Index of the first sorted wall time > t, or None."""
    i = bisect.bisect_right(walls, t)
    return i if i < len(walls) else None


@dataclass
class Records:
    """What the probe received in one namespace, each entry led by its monotonic receipt time."""

    clock: List[Tuple[float, float]] = field(default_factory=list)          # wall, sim s
    frames: List[Tuple[float, float]] = field(default_factory=list)         # wall, stamp s
    observations: List[Tuple[float, float]] = field(default_factory=list)   # wall, stamp s
    decisions: List[Tuple[float, float, str, float]] = field(default_factory=list)  # + source, ms
    goals: List[Tuple[float, str]] = field(default_factory=list)  # wall first seen executing, id
    cmds: List[float] = field(default_factory=list)
    diags: List[Tuple[float, str, Dict[str, str]]] = field(default_factory=list)

    def snapshot(self) -> 'Records':
        return Records(*(list(getattr(self, f)) for f in self.__dataclass_fields__))


def arrival(info: Dict[str, Any], monotonic_now: Optional[float] = None,
            wall_now_ns: Optional[int] = None) -> float:
    """The probe's monotonic time at which DDS delivered a message (rmw's received_timestamp,
    wall clock), not when its callback ran: a cmd_vel and the goal status published just before
    it, taken by the executor in the other order, made the goal look later than its first
    command (then the "first command after it" was the watchdog's, 0.5 s on)."""
    mono = time.monotonic() if monotonic_now is None else monotonic_now
    wall_ns = time.time_ns() if wall_now_ns is None else wall_now_ns
    waited_s = (wall_ns - int(info.get('received_timestamp') or wall_ns)) * 1e-9
    return mono - min(max(waited_s, 0.0), MATCH_LIMIT_S)   # a clock step is not a delay


def chains(rec: Records, t0: float, t1: float) -> List[Dict[str, Any]]:
    """One record per skill goal that started in [t0, t1): the stages of the chain that caused it
    (module docstring), in milliseconds, and the decision's source; chains with a missing or
    implausibly distant link are left out."""
    frame_w = [w for w, _ in rec.frames]
    dec_w = [d[0] for d in rec.decisions]
    cmds = rec.cmds
    obs_by_stamp: Dict[float, float] = {}
    for w, stamp in rec.observations:
        obs_by_stamp.setdefault(stamp, w)
    out = []
    for t_goal, _ in rec.goals:
        if not t0 <= t_goal < t1:
            continue
        i = newest_at_or_before(dec_w, t_goal)
        j = first_after(cmds, t_goal)
        if i is None or j is None:
            continue
        t_dec, stamp, source, _ = rec.decisions[i]
        t_obs = obs_by_stamp.get(stamp)
        if t_obs is None or t_obs > t_dec:
            continue
        k = newest_at_or_before(frame_w, t_obs)
        if k is None:
            continue
        t_frame, frame_stamp = rec.frames[k]
        t_cap = wall_at(rec.clock, frame_stamp)
        t_cmd = cmds[j]
        if t_cap is None or t_cap > t_frame or max(t_cmd - t_goal, t_goal - t_dec,
                                                   t_dec - t_obs, t_obs - t_frame) > MATCH_LIMIT_S:
            continue
        ms = [1000.0 * d for d in (t_frame - t_cap, t_obs - t_frame, t_dec - t_obs,
                                   t_goal - t_dec, t_cmd - t_goal)]
        out.append({**dict(zip(STAGES, ms)), 'e2e': 1000.0 * (t_cmd - t_cap), 'source': source})
    return out


def observation_ages(rec: Records, t0: float, t1: float) -> List[float]:
    """Per observation received in [t0, t1): ms from the capture of the newest camera frame
    before it to its receipt (the perception part of the chain, whatever the brain does)."""
    frame_w = [w for w, _ in rec.frames]
    out = []
    for t_obs, _ in rec.observations:
        k = newest_at_or_before(frame_w, t_obs) if t0 <= t_obs < t1 else None
        t_cap = None if k is None else wall_at(rec.clock, rec.frames[k][1])
        if t_cap is not None and 0 <= t_obs - t_cap <= MATCH_LIMIT_S:
            out.append(1000.0 * (t_obs - t_cap))
    return out


def diag_delta(diags: Sequence[Tuple[float, str, Dict[str, str]]], name: str, key: str,
               t0: float, t1: float) -> Optional[Tuple[float, float, float]]:
    """(counter increase, first wall, last wall) of a cumulative diagnostics figure of node
    `name` between its first and last report inside [t0, t1]; None with fewer than 2 reports."""
    points = [(w, float(kv[key])) for w, n, kv in diags
              if n == name and t0 <= w <= t1 and kv.get(key, '') not in ('', None)]
    if len(points) < 2:
        return None
    return points[-1][1] - points[0][1], points[0][0], points[-1][0]


def count_between(walls: Sequence[float], t0: float, t1: float) -> int:
    """Sorted wall times in (t0, t1]."""
    return bisect.bisect_right(walls, t1) - bisect.bisect_right(walls, t0)


def sim_seconds(clock: Sequence[Tuple[float, float]], t0: float, t1: float) -> float:
    """Sim time that passed between two wall times (from the clock samples inside)."""
    sims = [s for w, s in clock if t0 <= w <= t1]
    return sims[-1] - sims[0] if len(sims) >= 2 else 0.0


def frame_counts(rec: Records, t0: float, t1: float, camera_rate_hz: float) -> Dict[str, Any]:
    """Camera frames over a window at each step of the perception chain, per second of wall
    time, with where each count comes from; None where a node sent too few diagnostics."""
    wall = max(t1 - t0, 1e-9)
    frame_w = [w for w, _ in rec.frames]
    out: Dict[str, Any] = {
        'expected_hz': camera_rate_hz * sim_seconds(rec.clock, t0, t1) / wall,
        'published_hz': count_between(frame_w, t0, t1) / wall,
        'observations_hz': count_between([w for w, _ in rec.observations], t0, t1) / wall}
    for node, key, name in (('image_compressor', 'messages_in', 'image_compressor_in_hz'),
                            ('image_compressor', 'messages_out', 'image_compressor_out_hz'),
                            ('depth_compressor', 'messages_in', 'depth_compressor_in_hz'),
                            ('depth_compressor', 'messages_out', 'depth_compressor_out_hz'),
                            ('observer', 'frames_detected', 'observer_detected_hz')):
        delta = diag_delta(rec.diags, node, key, t0, t1)
        out[name] = None if delta is None or delta[2] <= delta[1] else delta[0] / (delta[2] - delta[1])
    out['image_dropped_fraction'] = _lost(out['published_hz'], out['image_compressor_out_hz'])
    out['depth_dropped_fraction'] = _lost(out['published_hz'], out['depth_compressor_out_hz'])
    out['sim_dropped_fraction'] = _lost(out['expected_hz'], out['published_hz'])
    return out


def _lost(before: Optional[float], after: Optional[float]) -> Optional[float]:
    if not before or after is None:
        return None
    return max(0.0, 1.0 - after / before)


def usage_summary(cpu: float, rss: Sequence[int], uss: Sequence[int],
                  pss: Sequence[int] = ()) -> Dict[str, float]:
    """One process's figures over a window: CPU % of one core, memory mean and peak in MB
    (RSS counts shared pages in full, USS not at all, PSS split among the sharers: PSS sums)."""
    mb = 1.0 / 2**20
    out = {'cpu_percent': cpu}
    for name, values in (('rss', rss), ('uss', uss), ('pss', pss)):
        out[f'{name}_mb_mean'] = mb * sum(values) / len(values) if values else 0.0
        out[f'{name}_mb_peak'] = mb * max(values) if values else 0.0
    return out


def spread(values: Sequence[float], qs: Sequence[float] = (50, 99)) -> Dict[str, Any]:
    """{'p50': .., 'p99': .., 'n': ..}; the quantiles are None without samples."""
    out: Dict[str, Any] = quantiles(values, qs) or {f'p{q:g}': None for q in qs}
    out['n'] = len(values)
    return out


def latency_figures(chain_list: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """p50/p99 of each stage and of the whole chain, and the whole chain by decision source."""
    out: Dict[str, Any] = {k: spread([c[k] for c in chain_list]) for k in STAGES + ('e2e',)}
    out['e2e_by_source'] = {s: spread([c['e2e'] for c in chain_list if c['source'] == s])
                            for s in sorted({c['source'] for c in chain_list})}
    return out


def mean_usage(windows: Sequence[Dict[str, float]]) -> Dict[str, float]:
    """One process's figures over several windows: means, and the peak of the peaks."""
    return {k: (max if k.endswith('peak') else _mean)([w[k] for w in windows]) for k in windows[0]}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


# ---------------------------------------------------------------- processes

class RunningGraph:
    """Nodes of graph.yaml started in one namespace with parameter overrides (`-p` per node), a
    process each or all in one (`one_process`, as `llm-agent up --one-process`); their output
    goes to log files, shown when a node dies."""

    def __init__(self, only: Sequence[str], namespace: str = '',
                 params: Optional[Dict[str, Dict[str, Any]]] = None,
                 config_dir: Optional[str] = None, log: Callable[[str], None] = print,
                 use_sim_time: bool = True, one_process: bool = False):
        self.config_dir = config_dir or default_config_dir()
        self.namespace = namespace
        self.log = log
        self.log_dir = tempfile.mkdtemp(prefix='llm_agent_bench_logs_')
        # As `llm-agent up` and the launch files run them (the launcher adds the Fast DDS
        # profile: without it 0.9 MB frames went over UDP fragments and half were lost).
        self.launcher = Launcher(log=lambda _msg: None, log_dir=self.log_dir)
        extra = {node: [a for name, value in values.items() for a in ('-p', f'{name}:={value}')]
                 for node, values in (params or {}).items()}
        try:
            self.launcher.start(select(load_graph(self.config_dir), only=only), self.config_dir,
                                namespace=namespace, use_sim_time=use_sim_time, extra_args=extra,
                                one_process=one_process)
        except BaseException:
            self.stop()   # no node left behind when a later one cannot start
            raise

    @property
    def pids(self) -> Dict[str, int]:
        return {c.entry.name: c.process.pid for c in self.launcher.children}

    def check_alive(self) -> None:
        """Raise with the log's tail when a node has exited."""
        dead = self.launcher.poll_dead()
        if dead is None:
            return
        with open(os.path.join(self.log_dir, f'{dead.entry.name}.log'), 'rb') as f:
            tail = f.read()[-1500:].decode('utf-8', 'replace')
        raise RuntimeError(f'{dead.entry.name} ({self.namespace or "/"}) exited with code '
                           f'{dead.process.returncode}:\n{tail}')

    def stop(self) -> None:
        self.launcher.stop()
        shutil.rmtree(self.log_dir, ignore_errors=True)


class ProcessSampler:
    """CPU and memory of named processes over a window: start(), then stop() -> figures."""

    def __init__(self, pids: Dict[str, int], interval_s: float = 1.0):
        import psutil
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.interval_s = interval_s
        self.mem: Dict[str, Tuple[List[int], ...]] = {n: ([], [], []) for n in self.procs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _cpu(self) -> Dict[str, float]:
        return {n: sum(p.cpu_times()[:2]) for n, p in self.procs.items()}

    def _sample(self) -> None:
        while True:
            for name, proc in self.procs.items():
                info = proc.memory_full_info()
                self.mem[name][0].append(info.rss)
                self.mem[name][1].append(info.uss)
                self.mem[name][2].append(getattr(info, 'pss', info.uss))   # PSS: Linux only
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> 'ProcessSampler':
        self._t0, self._cpu0 = time.monotonic(), self._cpu()
        self._thread.start()
        return self

    def stop(self) -> Dict[str, Dict[str, float]]:
        cpu1, wall = self._cpu(), time.monotonic() - self._t0
        self._stop.set()
        self._thread.join()
        return {n: usage_summary(cpu_percent(self._cpu0[n], cpu1[n], wall), *self.mem[n])
                for n in self.procs}


# ---------------------------------------------------------------- the probe node

def measure(probe: 'Probe', graphs: Sequence[RunningGraph], seconds: float
            ) -> Tuple[float, float, Dict[str, Dict[str, float]]]:
    """Sample every process of `graphs` for `seconds`: (wall start, wall end, figures per
    process named `<namespace>/<node>` or `<node>`)."""
    pids = {f'{g.namespace}/{n}' if g.namespace else n: pid for g in graphs
            for n, pid in g.pids.items()}
    sampler = ProcessSampler(pids).start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        for g in graphs:
            g.check_alive()
        time.sleep(min(0.5, max(0.0, seconds - (time.monotonic() - t0))))
    t1 = time.monotonic()
    try:
        return t0, t1, sampler.stop()
    except Exception:
        for g in graphs:   # a node that died in the last instant: say which, with its log
            g.check_alive()
        raise


class Probe:
    """One rclpy context in this process with a node per namespace recording `Records`."""

    def __init__(self, namespaces: Sequence[str]):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        self._viewers: Dict[str, List[Any]] = {}
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: Dict[str, Any] = {}
        self.records: Dict[str, Records] = {}
        self._lock = threading.Lock()
        for ns in namespaces:
            self.add(ns)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def add(self, ns: str) -> None:
        """Watch one more namespace."""
        import rclpy
        from action_msgs.msg import GoalStatus, GoalStatusArray
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist
        from rclpy.qos import qos_profile_sensor_data
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CameraInfo

        from llm_agent_interfaces.msg import Decision, Observation
        node = rclpy.create_node(f'bench_probe_{len(self.nodes)}', namespace=ns or '/',
                                 context=self.context)
        rec, seen = Records(), set()
        now = time.monotonic

        def stamp(msg: Any) -> float:
            return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec

        def on_status(msg: Any, info: Dict[str, Any]) -> None:
            t = arrival(info)
            for s in msg.status_list:
                gid = bytes(s.goal_info.goal_id.uuid).hex()
                if s.status == GoalStatus.STATUS_EXECUTING and gid not in seen:
                    seen.add(gid)
                    rec.goals.append((t, gid))

        def on_diag(msg: Any) -> None:
            t = now()
            for s in msg.status:
                rec.diags.append((t, s.name, {kv.key: kv.value for kv in s.values}
                                  | {'_message': s.message}))

        sensor = qos_profile_sensor_data
        node.create_subscription(Clock, clock_topic(ns) if ns else '/clock', lambda m, i: rec.clock.append(
            (arrival(i), m.clock.sec + 1e-9 * m.clock.nanosec)), sensor)
        node.create_subscription(CameraInfo, 'camera/camera_info',
                                 lambda m, i: rec.frames.append((arrival(i), stamp(m))), sensor)
        node.create_subscription(Observation, 'agent/observation',
                                 lambda m, i: rec.observations.append((arrival(i), stamp(m))),
                                 sensor)
        node.create_subscription(Decision, 'agent/decision', lambda m, i: rec.decisions.append(
            (arrival(i), stamp(m), m.source, float(m.latency_ms))), 50)
        node.create_subscription(Twist, 'cmd_vel', lambda m, i: rec.cmds.append(arrival(i)), 50)
        node.create_subscription(GoalStatusArray, 'agent/execute_skill/_action/status', on_status,
                                 10)
        node.create_subscription(DiagnosticArray, 'diagnostics', on_diag, 50)
        with self._lock:
            self.nodes[ns] = node
            self.records[ns] = rec
        self.executor.add_node(node)

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except (ExternalShutdownException, Exception):  # the context went down with close()
            pass

    def snapshot(self, ns: str) -> Records:
        return self.records[ns].snapshot()

    def last_diag(self, ns: str, name: str) -> Optional[Dict[str, str]]:
        for _, n, kv in reversed(self.records[ns].diags[-50:]):
            if n == name:
                return kv
        return None

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str,
                 graphs: Sequence[RunningGraph] = ()) -> None:
        """Poll until predicate() holds; raise if a node dies or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            for g in graphs:
                g.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f'timed out after {timeout_s:.0f} s waiting for {what}')
            time.sleep(0.2)

    def streaming(self, ns: str, nodes: Sequence[str]) -> bool:
        """Camera frames arrive and each of `nodes` has reported on diagnostics."""
        rec = self.records[ns]
        names = {n for _, n, _ in rec.diags[-200:]}
        return len(rec.frames) > 5 and all(n in names for n in nodes)

    def brain_ready(self, ns: str) -> bool:
        kv = self.last_diag(ns, 'decision_node')
        return kv is not None and kv.get('_message') == 'ready'

    def set_param(self, ns: str, node_name: str, name: str, value: Any,
                  timeout_s: float = 10.0) -> None:
        from rclpy.parameter import Parameter
        from rclpy.parameter_client import AsyncParameterClient
        client = AsyncParameterClient(self.nodes[ns], node_name)
        if not client.wait_for_services(timeout_sec=timeout_s):
            raise RuntimeError(f'{node_name} parameter services not available')
        result = self.wait_future(client.set_parameters([Parameter(name, value=value)]),
                                  timeout_s, f'{node_name} to set {name}').results[0]
        if not result.successful:
            raise RuntimeError(f'{node_name} refused {name}={value}: {result.reason}')

    @staticmethod
    def wait_future(future: Any, timeout_s: float, what: str) -> Any:
        """The future's result as soon as it is done (wait_for's 0.2 s polling would round a
        timed call up to the next 0.2 s)."""
        done = threading.Event()
        future.add_done_callback(lambda _future: done.set())
        if not done.wait(timeout_s):
            raise RuntimeError(f'timed out after {timeout_s:.0f} s waiting for {what}')
        return future.result()

    def _call(self, ns: str, srv_type: Any, name: str, request: Any, timeout_s: float
              ) -> Tuple[Any, float]:
        """(response, ms from the request sent to the response received)."""
        client = self.nodes[ns].create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout_s):
                raise RuntimeError(f'{name} is not available')
            t0 = time.perf_counter()
            response = self.wait_future(client.call_async(request), timeout_s, name)
            return response, (time.perf_counter() - t0) * 1000.0
        finally:
            self.nodes[ns].destroy_client(client)

    def llm_decision_ms(self, ns: str, situation: Any, timeout_s: float = 120.0
                        ) -> Tuple[float, str]:
        """One `agent/decide` round trip the LLM must answer (the brain's caches cleared just
        before): (ms, source of the answer)."""
        from std_srvs.srv import Trigger

        from llm_agent_interfaces.msg import Observation
        from llm_agent_interfaces.srv import Decide
        self._call(ns, Trigger, 'agent/clear_cache', Trigger.Request(), timeout_s)
        req = Decide.Request(instruction=situation.instruction)
        req.observation = Observation(feature_names=list(situation.features),
                                      feature_values=[float(v) for v in
                                                      situation.features.values()],
                                      summary=situation.summary)
        resp, ms = self._call(ns, Decide, 'agent/decide', req, timeout_s)
        return ms, resp.decision.source

    def read_compressed(self, ns: str, on: bool) -> None:
        """Read (raw, no decoding) or stop reading the compressed image and depth topics, as a
        viewer or a recorder would: the compressors encode only while someone reads them."""
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage
        node = self.nodes[ns]
        subs = self._viewers.pop(ns, [])
        for sub in subs:
            node.destroy_subscription(sub)
        if on:
            self._viewers[ns] = [
                node.create_subscription(CompressedImage, topic, lambda _raw: None,
                                         qos_profile_sensor_data, raw=True)
                for topic in ('camera/image_raw/compressed',
                              'camera/depth/image_raw/compressedDepth')]

    def reset_world(self, ns: str, timeout_s: float = 10.0) -> None:
        """Start a new episode (the same seed): every window then sees the same drive."""
        from std_srvs.srv import Trigger
        self._call(ns, Trigger, 'sim/reset', Trigger.Request(), timeout_s)

    def close(self) -> None:
        import rclpy
        self.executor.shutdown(timeout_sec=1.0)
        for node in self.nodes.values():
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)
