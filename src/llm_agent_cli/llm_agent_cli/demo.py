"""`llm-agent demo`: the agent drives episodes in the built-in world, and the run is measured.

The whole graph runs as child processes (as `llm-agent up` starts it); this process only watches
over ROS: it resets the world with each episode's seed, gives the instruction, and records
events, decisions and the trajectory. Per episode: success, collisions, time to goal, decisions
by source, decision latency p50/p95 per source, LLM calls; then a summary.
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
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
from llm_agent_bringup.client import AgentClient
from llm_agent_bringup.graph import default_config_dir, load_graph, select
from llm_agent_bringup.launcher import Launcher
from llm_agent_bringup.sim_config import GENERATED, world_for_plot

DEFAULT_INSTRUCTION = 'go to the red target'



def add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--episodes', type=int, default=3, help='number of episodes (default 3)')
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the first episode; episode i uses seed+i")
    p.add_argument('--episode-timeout', type=float, default=90.0,
                   help='sim seconds before an episode counts as failed (default 90)')
    p.add_argument('--instruction', default=DEFAULT_INSTRUCTION, help='the goal in plain language')
    p.add_argument('--speed', type=float, default=1.0,
                   help='world speed factor (sim seconds per wall second)')
    p.add_argument('--out', default=None, help='folder for metrics.json and a trajectory PNG per episode')
    p.add_argument('--json', default=None, metavar='PATH', help='write the summary as JSON here')
    p.add_argument('--verbose', action='store_true',
                   help='the nodes log to this terminal (default: one file each in OUT/logs, '
                        'or a temporary folder, so that the progress lines stay readable)')
    p.add_argument('--config', default=None, help='config folder (default: installed)')
    p.add_argument('--namespace', default='', help='ROS namespace of the graph')
    p.add_argument('--world', default='',
                   help="world file or name in config/worlds; 'generated' = a new world from each "
                        "episode's seed (default: sim.yaml's world_file)")
    p.add_argument('--backend', default=None,
                   help='brain backend override (auto|llamacpp|transformers|openai)')
    p.add_argument('--brain-param', action='append', default=[], metavar='NAME:=VALUE',
                   help='extra decision_node parameter, e.g. enable_tree:=false (repeatable)')
    p.add_argument('--brain-data', default=None, metavar='DIR',
                   help='where the brain keeps its decision log and tree; reuse a folder to '
                        'start from what earlier runs learnt (default: a fresh one per run)')
    p.add_argument('--ready-timeout', type=float, default=600.0,
                   help='wall seconds to wait for the brain to load its model')
    p.add_argument('--record', default=None, metavar='PATH',
                   help="record the agent's topics to this MCAP file (see `llm-agent record`)")


@dataclass
class Episode:
    """What one episode recorded."""

    index: int
    seed: int
    success: bool = False
    collisions: int = 0
    time_to_goal_s: Optional[float] = None
    duration_s: float = 0.0
    wall_s: float = 0.0  # wall seconds of the episode (duration_s is sim time)
    decisions: List[dict] = field(default_factory=list)
    trajectory: List[List[float]] = field(default_factory=list)
    collision_points: List[List[float]] = field(default_factory=list)
    goal: Optional[List[float]] = None

    def by_source(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for d in self.decisions:
            out[d['source']] = out.get(d['source'], 0) + 1
        return out

    def row(self) -> dict:
        return {'episode': self.index, 'seed': self.seed, 'success': self.success,
                'collisions': self.collisions, 'time_to_goal_s': self.time_to_goal_s,
                'duration_s': round(self.duration_s, 2), 'wall_s': round(self.wall_s, 2),
                'decisions': len(self.decisions),
                'decisions_by_source': self.by_source(),
                'latency_ms': latency_table(self.decisions),
                'llm_calls': self.by_source().get('llm', 0)}


def latency_table(decisions: List[dict]) -> Dict[str, Dict[str, float]]:
    """Decision latency p50/p95 (ms) per source."""
    table: Dict[str, Dict[str, float]] = {}
    for source in sorted({d['source'] for d in decisions}):
        values = [d['latency_ms'] for d in decisions if d['source'] == source]
        table[source] = {'p50': round(float(np.percentile(values, 50)), 3),
                         'p95': round(float(np.percentile(values, 95)), 3), 'n': len(values)}
    return table


def summarise(episodes: List[Episode]) -> dict:
    decisions = [d for e in episodes for d in e.decisions]
    by_source: Dict[str, int] = {}
    for d in decisions:
        by_source[d['source']] = by_source.get(d['source'], 0) + 1
    times = [e.time_to_goal_s for e in episodes if e.time_to_goal_s is not None]
    return {'episodes': len(episodes), 'successes': sum(e.success for e in episodes),
            'collisions': sum(e.collisions for e in episodes),
            'mean_time_to_goal_s': round(float(np.mean(times)), 2) if times else None,
            'decisions': len(decisions), 'decisions_by_source': by_source,
            'llm_share': round(by_source.get('llm', 0) / len(decisions), 3) if decisions else None,
            'latency_ms': latency_table(decisions), 'llm_calls': by_source.get('llm', 0),
            'per_episode': [e.row() for e in episodes]}


def print_table(episodes: List[Episode], summary: dict, out=sys.stdout) -> None:
    sources = ('rule', 'tree', 'cache', 'llm', 'fallback')
    head = f'{"ep":>3} {"seed":>5} {"result":>8} {"coll":>4} {"t_goal":>7} ' + \
        ' '.join(f'{s:>8}' for s in sources) + f' {"llm p50/p95 ms":>16}'
    print(head, file=out)
    for e in episodes:
        row = e.row()
        llm = row['latency_ms'].get('llm')
        llm_txt = f'{llm["p50"]:.0f}/{llm["p95"]:.0f}' if llm else '-'
        t_goal = f'{e.time_to_goal_s:.1f}' if e.time_to_goal_s is not None else '-'
        print(f'{e.index:>3} {e.seed:>5} {"success" if e.success else "failed":>8} '
              f'{e.collisions:>4} {t_goal:>7} '
              + ' '.join(f'{row["decisions_by_source"].get(s, 0):>8}' for s in sources)
              + f' {llm_txt:>16}', file=out)
    print(f'\n{summary["successes"]}/{summary["episodes"]} episodes reached the goal, '
          f'{summary["collisions"]} collision(s), {summary["decisions"]} decisions, '
          f'{summary["llm_calls"]} LLM call(s) (share {summary["llm_share"]})', file=out)
    print('decision latency ms (p50 / p95 per source): ' + ', '.join(
        f'{s} {v["p50"]:.2f}/{v["p95"]:.2f}' for s, v in summary['latency_ms'].items()), file=out)


def plot_episode(episode: Episode, path: str, world=None) -> None:
    """Write the trajectory of one episode as a PNG (world outline when known)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 5))
    if world is not None:
        for (x0, y0, x1, y1), rgb in zip(world.segments, world.rgb):
            ax.plot([x0, x1], [y0, y1], color=tuple(int(c) / 255.0 for c in rgb), lw=2)
    if episode.trajectory:
        xy = np.asarray(episode.trajectory)
        ax.plot(xy[:, 0], xy[:, 1], color='tab:blue', lw=1.5, label='robot')
        ax.plot(xy[0, 0], xy[0, 1], 'o', color='tab:blue', label='start')
    if episode.goal:
        ax.plot(*episode.goal, '*', color='tab:red', ms=14, label='goal')
    for x, y in episode.collision_points:
        ax.plot(x, y, 'x', color='k', ms=10)
    ax.set_aspect('equal')
    ax.set_title(f'episode {episode.index} (seed {episode.seed}): '
                 f'{"success" if episode.success else "failed"}, {episode.collisions} collision(s)')
    ax.legend(loc='best', fontsize=8)
    fig.savefig(path, dpi=90, bbox_inches='tight')
    plt.close(fig)


class EpisodeRecorder:
    """Record each episode from what an AgentClient hears: events, decisions, the trajectory."""

    def __init__(self, client: AgentClient):
        self.client = client
        self.lock = client.lock
        self.episode: Optional[Episode] = None
        # Sim time of the episode's reset, from the world's own `reset` event: the reset answer
        # reaches us later, while the skill running before it keeps driving, and timing from
        # the answer gave a brain that was already moving a head start.
        self.episode_start: Optional[float] = None
        client.add_listener('event', self._on_event)
        client.add_listener('decision', self._on_decision)
        client.add_listener('odom', self._on_odom)

    def begin(self, episode: Episode) -> None:
        with self.lock:
            self.episode, self.episode_start = episode, None

    def end(self) -> None:
        with self.lock:
            if self.episode is not None:
                self.episode.goal = self.client.goal
            self.episode = None

    def _on_event(self, event: dict) -> None:
        with self.lock:
            ep = self.episode
            if ep is None:
                return
            if event.get('type') == 'reset':
                if self.episode_start is None:
                    self.episode_start = float(event.get('t', self.client.now_s()))
                return
            if self.episode_start is None:
                return  # an event of the episode before the reset
            if event.get('type') == 'collision':
                ep.collisions += 1
                ep.collision_points.append([event.get('x', 0.0), event.get('y', 0.0)])
            elif event.get('type') == 'goal_reached' and not ep.success:
                ep.success = True
                ep.time_to_goal_s = round(float(event.get('t', self.client.now_s()))
                                          - self.episode_start, 2)

    def _on_decision(self, msg) -> None:
        with self.lock:
            if self.episode is not None and self.episode_start is not None:
                self.episode.decisions.append({
                    't': round(self.client.now_s() - self.episode_start, 3), 'skill': msg.skill,
                    'params': msg.params_json, 'source': msg.source,
                    'latency_ms': float(msg.latency_ms), 'rationale': msg.rationale})

    def _on_odom(self, msg) -> None:
        with self.lock:
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            if self.episode is not None and self.episode_start is not None \
                    and stamp >= self.episode_start:
                p = msg.pose.pose.position
                traj = self.episode.trajectory
                if not traj or (p.x - traj[-1][0]) ** 2 + (p.y - traj[-1][1]) ** 2 > 1e-4:
                    traj.append([p.x, p.y])


def run_demo(args: argparse.Namespace) -> int:
    config_dir = os.path.abspath(args.config) if args.config else default_config_dir()
    entries = select(load_graph(config_dir))
    extra = {'sim_world': ['-p', f'speed:={args.speed}', '-p', f'seed:={args.seed}']}
    if args.world:
        # An empty world_file makes the world generate itself from the seed.
        world_file = '' if args.world == GENERATED else args.world
        extra['sim_world'] += ['-p', f'world_file:="{world_file}"']
    # A fresh brain folder by default: the run's figures then do not depend on earlier runs.
    brain_data = args.brain_data or tempfile.mkdtemp(prefix='llm_agent_brain_')
    brain = ['-p', f'default_instruction:={args.instruction}', '-p', f'data_dir:={brain_data}']
    if args.backend:
        brain += ['-p', f'backend:={args.backend}']
    for item in args.brain_param:
        brain += ['-p', item]
    extra['decision_node'] = brain
    log_dir = None
    if not args.verbose:
        log_dir = os.path.join(args.out, 'logs') if args.out else \
            tempfile.mkdtemp(prefix='llm_agent_demo_logs_')
        print(f'[demo] node logs: {log_dir}', flush=True)
    launcher = Launcher(log=print if args.verbose else (lambda _msg: None), log_dir=log_dir)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: (stop.set(), launcher.request_stop()))
                for s in (signal.SIGINT, signal.SIGTERM)}
    client: Optional[AgentClient] = None
    recorder = None
    episodes: List[Episode] = []
    code = 0
    try:
        launcher.start(entries, config_dir, namespace=args.namespace, use_sim_time=True,
                       extra_args=extra)
        client = AgentClient(args.namespace, node_name='demo_monitor')
        recorder_of_episodes = EpisodeRecorder(client)
        if getattr(args, 'record', None):
            from .record import Recorder
            recorder = Recorder(args.record, args.namespace)
        print('[demo] waiting for the brain (first run converts the model once) ...', flush=True)
        code = _wait_ready(client, launcher, stop, args.ready_timeout)
        for i in range(args.episodes if code == 0 else 0):
            if stop.is_set():
                break
            episode = Episode(index=i, seed=args.seed + i)
            client.set_sim_seed(episode.seed)
            recorder_of_episodes.begin(episode)
            client.reset()
            if not client.wait_until(lambda: recorder_of_episodes.episode_start is not None, 10.0):
                print('[demo] the world answered the reset but sent no reset event on '
                      'sim/events', file=sys.stderr)
                code = 1
                break
            client.instruct(args.instruction)
            code = _run_episode(recorder_of_episodes, launcher, stop, episode, args.episode_timeout)
            recorder_of_episodes.end()
            episodes.append(episode)
            print(f'[demo] episode {i} (seed {episode.seed}): '
                  f'{"success" if episode.success else "failed"}, {episode.collisions} collision(s), '
                  f'{len(episode.decisions)} decisions {episode.by_source()}', flush=True)
            if code != 0:
                break
    finally:
        if recorder is not None:
            recorder.close()
            print(f'[demo] recorded {recorder.sink.messages} messages to {args.record}', flush=True)
        if client is not None:
            client.close()
        launcher.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    if not episodes:
        print('[demo] no episode ran', file=sys.stderr)
        return code or 1
    summary = summarise(episodes)
    print()
    print_table(episodes, summary)
    _write_outputs(args, episodes, summary)
    return code


def _wait_ready(client: AgentClient, launcher: Launcher, stop: threading.Event,
                timeout_s: float) -> int:
    """Wait until the brain has its model loaded (diagnostics OK) and makes decisions.

    A rule firing while the model still loads is no sign of readiness: the episode would then
    start on fallbacks. An LLM slower than its deadline still gets ready (and is measured so).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        code = _dead_node_code(launcher)
        if code:
            return code
        with client.lock:
            ready = client.brain_ready and client.decisions_seen > 0
        if ready:
            return 0
        time.sleep(0.2)
    if stop.is_set():
        return 0
    print(f'[demo] the brain was not ready (model loaded, deciding) in {timeout_s:.0f} s', file=sys.stderr)
    return 1


def _dead_node_code(launcher: Launcher) -> int:
    """The exit code of a node of the graph that died (said on stderr), else 0."""
    dead = launcher.poll_dead()
    if dead is None:
        return 0
    print(f'[demo] node {dead.entry.name} exited with code {dead.process.returncode}',
          file=sys.stderr)
    return dead.process.returncode or 1


def _run_episode(monitor: EpisodeRecorder, launcher: Launcher, stop: threading.Event,
                 episode: Episode, timeout_s: float) -> int:
    wall_start = time.monotonic()
    while not stop.is_set():
        code = _dead_node_code(launcher)
        if code:
            return code
        with monitor.lock:
            elapsed = monitor.client.now_s() - monitor.episode_start
            if episode.success or elapsed >= timeout_s:
                episode.duration_s = elapsed
                episode.wall_s = time.monotonic() - wall_start
                return 0
        time.sleep(0.1)
        if time.monotonic() - wall_start > timeout_s * 10 + 60:  # the clock stopped moving
            print('[demo] the world clock stopped; ending the episode', file=sys.stderr)
            return 1
    return 0


def _write_outputs(args: argparse.Namespace, episodes: List[Episode], summary: dict) -> None:
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump({k: v for k, v in summary.items()}, f, indent=2)
        print(f'[demo] summary written to {args.json}')
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, 'metrics.json'), 'w', encoding='utf-8') as f:
            json.dump({'summary': summary, 'episodes': [
                {**e.row(), 'trajectory': e.trajectory, 'decisions': e.decisions,
                 'goal': e.goal, 'collision_points': e.collision_points} for e in episodes]},
                f, indent=1)
        config_dir = os.path.abspath(args.config) if args.config else default_config_dir()
        for e in episodes:
            try:
                world = world_for_plot(config_dir, args.world, e.seed)
            except Exception as exc:  # noqa: BLE001 - the trajectory alone is still worth a plot
                print(f'[demo] no world outline in the plot: {exc}', file=sys.stderr)
                world = None
            plot_episode(e, os.path.join(args.out, f'episode_{e.index:02d}.png'), world)
        print(f'[demo] metrics.json and {len(episodes)} trajectory plot(s) in {args.out}')
