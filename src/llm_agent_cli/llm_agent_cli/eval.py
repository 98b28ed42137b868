"""`llm-agent eval`: the instruction suite, run by each brain in the built-in world.

Per brain one graph (every node its own process, DDS on this host, as `llm-agent demo` starts
it). Each episode resets the world with its seed, gives one paraphrase of a kind's instruction,
records odometry, collisions and what the robot said, and ends at the kind's time limit or once
its checks are met and the robot has rested 2 s; the checks are then judged on that record
(llm_agent_bench.instructions). The hybrid first runs a warm-up pass on other seeds and with
another paraphrase than the scored ones, so that its tree and caches have something to learn
from; the report says so.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from llm_agent_bench.closed_loop import LABELS, brain_figures, brain_params, per_kind
from llm_agent_bench.machine import cpu_model
from llm_agent_bringup.client import AgentClient
from llm_agent_bringup.graph import default_config_dir, load_graph, select
from llm_agent_bringup.launcher import Launcher
from llm_agent_bringup.sim_config import GENERATED, world_for_plot
from llm_agent_common.angles import yaw_from_quaternion

from llm_agent_bench import instructions as suite_core

from .demo import Episode, EpisodeRecorder, _dead_node_code, _wait_ready

BRAINS = ('hybrid', 'llm_only', 'rules_only')
QUICK_KINDS = ('go_to_colour', 'turn_left_90', 'stay_put')
QUICK_LIMIT_S = 10.0          # sim seconds per quick episode: the structure, not the scores
SETTLE_S = 2.0                # at rest this long with its checks met: the episode is over
WARMUP_SEED = 100             # the hybrid's warm-up seeds; scored seeds are 1 ..
POSE_PERIOD_S = 0.1           # odometry kept at 10 Hz: enough for every check


def default_suite() -> str:
    import llm_agent_bench
    return os.path.join(os.path.dirname(llm_agent_bench.__file__), 'data', 'instruction_suite.yaml')


def add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--suite', default=None, help='instruction suite YAML (default: the packaged one)')
    p.add_argument('--brains', default=','.join(BRAINS),
                   help=f'comma-separated brains of {", ".join(BRAINS)} (default all)')
    p.add_argument('--seeds', type=int, default=3, help='scored seeds per kind (default 3)')
    p.add_argument('--kinds', default='', help='comma-separated kinds to run (default all)')
    p.add_argument('--quick', action='store_true',
                   help=f'a structural run: kinds {", ".join(QUICK_KINDS)} (those in the suite), '
                        f'1 seed, {QUICK_LIMIT_S:g} s each, no warm-up')
    p.add_argument('--out', default='eval_out', help='folder for summary.json, report.md, a plot')
    p.add_argument('--config', default=None, help='config folder (default: installed)')
    p.add_argument('--ready-timeout', type=float, default=600.0,
                   help='wall seconds to wait for a brain to load its model')
    p.add_argument('--verbose', action='store_true', help='the nodes log to this terminal')


@dataclass
class Plan:
    """One episode to run: which kind, which words, which seed, scored or warm-up."""

    kind: suite_core.Kind
    phrase: str
    seed: int
    limit_s: float
    scored: bool = True


def plan_episodes(kinds: List[suite_core.Kind], brain: str, seeds: int, quick: bool) -> List[Plan]:
    """Scored episodes use seeds 1..N and paraphrases 2.. in turn; the hybrid's warm-up uses the
    first paraphrase on seeds the scored pass never sees."""
    def limit(kind: suite_core.Kind) -> float:
        return min(kind.time_limit_s, QUICK_LIMIT_S) if quick else kind.time_limit_s
    plans: List[Plan] = []
    if brain == 'hybrid' and not quick:
        plans += [Plan(kind, kind.paraphrases[0], WARMUP_SEED + i, limit(kind), False)
                  for i, kind in enumerate(kinds)]
    for kind in kinds:
        others = kind.paraphrases[1:]
        plans += [Plan(kind, others[s % len(others)], 1 + s, limit(kind)) for s in range(seeds)]
    return plans


class TraceRecorder(EpisodeRecorder):
    """The demo's recorder, plus the poses with yaw and speeds and what the robot said."""

    def __init__(self, client: AgentClient):
        super().__init__(client)
        self.trace: Optional[suite_core.Trace] = None

    def begin_trace(self, episode: Episode, trace: suite_core.Trace) -> None:
        with self.lock:
            self.trace = trace
        self.begin(episode)

    def _on_odom(self, msg) -> None:
        super()._on_odom(msg)
        with self.lock:
            tr, start = self.trace, self.episode_start
            if tr is None or start is None or self.episode is None:
                return
            t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 - start
            if t < 0 or (tr.t and t - tr.t[-1] < POSE_PERIOD_S):
                return
            p, q, tw = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
            tr.add_pose(t, p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w),
                        tw.linear.x, tw.angular.z)

    def _on_decision(self, msg) -> None:
        super()._on_decision(msg)
        if msg.skill != 'speak':
            return
        try:
            text = str(json.loads(msg.params_json).get('text', ''))
        except (ValueError, AttributeError):
            return
        with self.lock:
            if self.trace is not None and self.episode_start is not None:
                self.trace.said.append((self.client.now_s() - self.episode_start, text))


def run_episode(client: AgentClient, recorder: TraceRecorder, launcher: Launcher,
                stop: threading.Event, plan: Plan, config_dir: str, index: int) -> Dict[str, Any]:
    world_file = '' if plan.kind.world == GENERATED else plan.kind.world
    world = world_for_plot(config_dir, plan.kind.world, plan.seed)
    visible = suite_core.Visibility(world)
    trace = suite_core.Trace(goal=world.goal, targets={c: ob.center for c, ob in world.targets().items()})
    episode = Episode(index=index, seed=plan.seed)
    client.set_sim_seed(plan.seed, world_file=world_file)
    # The software stop ends the last episode's skill: nothing drives on after the reset.
    client.set_estop(True)
    time.sleep(0.3)
    recorder.begin_trace(episode, trace)
    client.reset()
    if not client.wait_until(lambda: recorder.episode_start is not None, 10.0):
        raise RuntimeError('the world answered the reset but sent no reset event on sim/events')
    client.set_estop(False)
    client.instruct(plan.phrase)
    wall0 = time.monotonic()
    verdict = suite_core.Verdict(False, 'not judged')
    while not stop.is_set():
        code = _dead_node_code(launcher)
        if code:
            raise RuntimeError(f'a node of the graph died (exit code {code})')
        time.sleep(0.5)
        with recorder.lock:
            elapsed = client.now_s() - recorder.episode_start
            trace.collisions = episode.collisions
            snapshot = suite_core.Trace(**{k: list(v) if isinstance(v, list) else v
                                           for k, v in vars(trace).items()})
        done = elapsed >= plan.limit_s
        if snapshot.t and (done or snapshot.at_rest_for(SETTLE_S)):
            verdict = suite_core.judge(plan.kind.steps, snapshot, visible)
            if verdict.ok or done:
                break
        if time.monotonic() - wall0 > 10 * plan.limit_s + 60:
            verdict = suite_core.Verdict(False, 'the world clock stopped')
            break
    with recorder.lock:
        episode.duration_s = client.now_s() - recorder.episode_start
    episode.wall_s = time.monotonic() - wall0
    recorder.end()
    return {'kind': plan.kind.name, 'phrase': plan.phrase, 'seed': plan.seed,
            'scored': plan.scored, 'success': verdict.ok, 'why': verdict.why,
            'collisions': episode.collisions, 'duration_s': round(episode.duration_s, 2),
            'wall_s': round(episode.wall_s, 2), 'decisions': episode.decisions,
            'said': [text for _, text in trace.said]}


def brain_summary(rows: List[Dict[str, Any]], kinds: List[str]) -> Dict[str, Any]:
    """What the suite asks of each brain, over its scored episodes."""
    scored = [r for r in rows if r['scored']]
    f = brain_figures(scored)
    latency = f['latency_ms']
    return {
        'episodes': f['episodes'], 'successes': f['successes'], 'success_rate': f['success_rate'],
        'collisions': f['collisions'], 'llm_calls': f['llm_calls'],
        'llm_missed_deadline': f['llm_missed_deadline'],
        'llm_calls_per_min': f['llm_calls_per_min_sim'],
        'decisions_by_source': f['decisions_by_source'],
        'latency_ms': {'p50': latency['p50'], 'p95': latency['p95']} if latency else None,
        'sim_s': round(f['sim_s'], 1), 'warmup_episodes': len(rows) - len(scored),
        'per_kind': per_kind(scored, kinds),
    }


def run_brain(brain: str, plans: List[Plan], args: argparse.Namespace, config_dir: str,
              workdir: str, stop: threading.Event) -> Dict[str, Any]:
    """Start one graph with this brain, run its episodes, stop it."""
    os.makedirs(workdir, exist_ok=True)
    entries = select(load_graph(config_dir))
    brain_cfg = ['-p', f'data_dir:={os.path.join(workdir, "brain_data")}']
    for item in brain_params(brain, config_dir, workdir):
        brain_cfg += ['-p', item]
    log_dir = None if args.verbose else os.path.join(workdir, 'logs')
    launcher = Launcher(log=print if args.verbose else (lambda _m: None), log_dir=log_dir)
    previous = {s: signal.signal(s, lambda *_: (stop.set(), launcher.request_stop()))
                for s in (signal.SIGINT, signal.SIGTERM)}
    client, rows, t0 = None, [], time.monotonic()
    try:
        launcher.start(entries, config_dir, use_sim_time=True,
                       extra_args={'decision_node': brain_cfg})
        client = AgentClient(node_name='eval_monitor')
        recorder = TraceRecorder(client)
        print(f'[eval] {brain}: waiting for the brain ...', flush=True)
        if _wait_ready(client, launcher, stop, args.ready_timeout):
            return {'error': 'the brain did not get ready', 'episodes': rows}
        for i, plan in enumerate(plans):
            if stop.is_set():
                break
            row = run_episode(client, recorder, launcher, stop, plan, config_dir, i)
            rows.append(row)
            print(f'[eval] {brain} {"scored" if plan.scored else "warm-up"} {plan.kind.name} '
                  f'seed {plan.seed} "{plan.phrase}": {"success" if row["success"] else "failed"} '
                  f'({row["why"]})', flush=True)
    except RuntimeError as exc:
        print(f'[eval] {brain}: {exc}', file=sys.stderr)
        return {'error': str(exc), 'episodes': rows}
    finally:
        if client is not None:
            client.close()
        launcher.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    return {'episodes': rows, 'wall_s': round(time.monotonic() - t0, 1)}


def write_report(out: str, summary: Dict[str, Any]) -> None:
    brains, kinds = list(summary['brains']), summary['kinds']
    lines = [f'# Instruction suite: {len(kinds)} kinds, {summary["seeds"]} seed(s) each',
             '', f'Suite: `{summary["suite"]}`. CPU: {summary["cpu"]}. '
             + ('Quick (structural) run: time limits cut, no warm-up; the scores mean little. '
                if summary['quick'] else
                'The hybrid first ran one warm-up episode per kind (first paraphrase, seeds '
                f'{WARMUP_SEED}+), in the same graph. ')
             + 'Scored episodes use seeds 1..N and the paraphrases after the first, in turn.',
             '', '| kind | ' + ' | '.join(LABELS.get(b, b) for b in brains) + ' |',
             '|---|' + '---|' * len(brains)]
    for k in kinds:
        cells = []
        for b in brains:
            pk = summary['brains'][b].get('per_kind', {}).get(k)
            cells.append(f'{pk["successes"]}/{pk["episodes"]}' if pk else '-')
        lines.append(f'| {k} | ' + ' | '.join(cells) + ' |')
    for label, key, fmt in (('success rate', 'success_rate', '{:.0%}'),
                            ('collisions', 'collisions', '{}'),
                            ('LLM calls per sim minute', 'llm_calls_per_min', '{:.1f}')):
        cells = []
        for b in brains:
            v = summary['brains'][b].get(key)
            cells.append('-' if v is None else fmt.format(v))
        lines.append(f'| **{label}** | ' + ' | '.join(cells) + ' |')
    errors = {b: s['error'] for b, s in summary['brains'].items() if s.get('error')}
    if errors:
        lines += [''] + [f'- **{b} failed:** {e}' for b, e in errors.items()]
    lines += ['', '![success per kind](eval_success.png)', '']
    with open(os.path.join(out, 'report.md'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))


def plot(out: str, summary: Dict[str, Any]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    brains, kinds = list(summary['brains']), summary['kinds']
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(kinds) * len(brains) ** 0.5), 4.0))
    width = 0.8 / max(1, len(brains))
    for i, b in enumerate(brains):
        per = summary['brains'][b].get('per_kind', {})
        rates = [per[k]['successes'] / per[k]['episodes'] if per.get(k, {}).get('episodes') else 0
                 for k in kinds]
        ax.bar(np.arange(len(kinds)) + i * width, rates, width, label=LABELS.get(b, b))
    ax.set_xticks(np.arange(len(kinds)) + 0.4 - width / 2, kinds, rotation=40, ha='right')
    ax.set_ylabel('success rate')
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    fig.savefig(os.path.join(out, 'eval_success.png'), dpi=90, bbox_inches='tight')
    plt.close(fig)


def write_outputs(out: str, suite_path: str, quick: bool, seeds: int,
                  kinds: List[suite_core.Kind], results: Dict[str, Any]) -> Dict[str, Any]:
    names = [k.name for k in kinds]
    summary = {'suite': suite_path, 'quick': bool(quick), 'seeds': seeds, 'kinds': names,
               'cpu': f'{cpu_model()}, {os.cpu_count()} logical cores', 'brains': {}}
    for brain, res in results.items():
        summary['brains'][brain] = dict(brain_summary(res['episodes'], names),
                                        **({'error': res['error']} if res.get('error') else {}))
    with open(os.path.join(out, 'summary.json'), 'w', encoding='utf-8') as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(out, 'episodes.json'), 'w', encoding='utf-8') as f:
        json.dump({b: r['episodes'] for b, r in results.items()}, f, indent=1)
    write_report(out, summary)
    plot(out, summary)
    return summary


def run_eval(args: argparse.Namespace) -> int:
    config_dir = os.path.abspath(args.config) if args.config else default_config_dir()
    suite_path = args.suite or default_suite()
    brains = [b.strip() for b in args.brains.split(',') if b.strip()]
    unknown = [b for b in brains if b not in BRAINS]
    try:
        kinds = suite_core.load_suite(suite_path)
    except suite_core.SuiteError as exc:
        print(f'llm-agent eval: {exc}', file=sys.stderr)
        return 2
    wanted = [k.strip() for k in args.kinds.split(',') if k.strip()]
    missing = [k for k in wanted if k not in {x.name for x in kinds}]
    if unknown or not brains or missing or args.seeds < 1:
        print('llm-agent eval: ' + (f'unknown brain(s) {", ".join(unknown)} (expected '
                                    f'{", ".join(BRAINS)})' if unknown or not brains else
                                    f'unknown kind(s) {", ".join(missing)}' if missing else
                                    '--seeds must be at least 1'), file=sys.stderr)
        return 2
    if wanted:
        kinds = [k for k in kinds if k.name in wanted]
    elif args.quick:    # the packaged suite's quick kinds, or a user suite's first ones
        kinds = [k for k in kinds if k.name in QUICK_KINDS] or kinds[:len(QUICK_KINDS)]
    seeds = 1 if args.quick else args.seeds
    os.makedirs(args.out, exist_ok=True)
    workroot = tempfile.mkdtemp(prefix='llm_agent_eval_')
    stop = threading.Event()
    results: Dict[str, Any] = {}
    summary: Dict[str, Any] = {'brains': {}}
    for brain in brains:
        if stop.is_set():
            break
        plans = plan_episodes(kinds, brain, seeds, args.quick)
        results[brain] = run_brain(brain, plans, args, config_dir,
                                   os.path.join(workroot, brain), stop)
        # Written after each brain: a long run stopped half-way keeps what it measured.
        summary = write_outputs(args.out, suite_path, args.quick, seeds, kinds, results)
    for b, s in summary['brains'].items():
        rate = '-' if s['success_rate'] is None else f'{s["success_rate"]:.0%}'
        print(f'[eval] {b}: {s["successes"]}/{s["episodes"]} ({rate}), {s["collisions"]} '
              f'collision(s), {s["llm_calls"]} LLM call(s)')
    print(f'[eval] summary.json, episodes.json, report.md and eval_success.png in {args.out}')
    return 1 if any(s.get('error') for s in summary['brains'].values()) or stop.is_set() else 0
