"""Section 4: closed loop. The built-in world on fixed seeds and generated worlds, three brains:

  hybrid      the product default (rules -> tree -> caches -> LLM), after one warm-up episode;
  LLM only    no rules, no tree, no caches: every decision goes to the real 4-bit LLM (the
              baseline: what LLM-on-ROS agents do);
  rules only  no LLM at all (decision_node `enable_llm: false`): the product's safety rules plus
              a few hand-written goal-seeking rules, what one writes without an LLM.

Each brain is one `llm-agent demo` subprocess (every node its own process, DDS on this host),
so a crash costs one row, not the report. The actuation's safety guard is on in all three.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .core import BenchContext, Section, Table, figure, quantiles, ratio_or_none, save_plot

BASELINE = 'llm_only'
LABELS = {'hybrid': 'hybrid (rules → tree → caches → LLM)',
          'hybrid_stop': 'hybrid, stop at every late LLM answer (the policy before hold_max_s)',
          'llm_only': 'LLM only', 'rules_only': 'rules only (no LLM)'}
QUICK_BRAINS = ('hybrid', BASELINE)  # a quick run compares the product with its baseline only
SOURCES = ('rule', 'tree', 'cache', 'llm', 'fallback')
SEED = 1  # the hybrid's warm-up episode; every brain is scored on seeds SEED+1 ...

# Appended to the product's rules for the rules-only brain: turn to the goal when that side is
# clear, else drive ahead (along the obstacle), else turn to the open side. Purely reactive.
GOAL_CONSTANTS = {'clear_ahead': 0.6}  # m: closer than this ahead, do not drive on
GOAL_RULES: List[Dict[str, Any]] = [
    {'name': 'face_goal_left', 'description': 'Goal on the left and that way is clear; face it.',
     'when': {'goal_bearing': {'gt': 0.3}, 'front_left_range': {'gt': 'clear_ahead'},
              'goal_distance': {'gt': 0.0}},
     'skill': 'turn', 'params': {'angle': {'ref': 'goal_bearing'}}},
    {'name': 'face_goal_right', 'description': 'Goal on the right and that way is clear; face it.',
     'when': {'goal_bearing': {'lt': -0.3}, 'front_right_range': {'gt': 'clear_ahead'},
              'goal_distance': {'gt': 0.0}},
     'skill': 'turn', 'params': {'angle': {'ref': 'goal_bearing'}}},
    {'name': 'drive', 'description': 'Clear ahead: drive up to the goal or the obstacle.',
     'when': {'front_range': {'gt': 'clear_ahead'}, 'goal_distance': {'gt': 0.0}},
     'skill': 'move_forward',
     'params': {'distance': {'if': {'goal_distance': {'lt': 'front_range'}},
                             'then': {'ref': 'goal_distance'},
                             'else': {'ref': 'front_range', 'offset': -0.3}}}},
    {'name': 'blocked', 'description': 'Blocked ahead; turn to the more open side.',
     'when': {'front_range': {'le': 'clear_ahead'}},
     'skill': 'turn', 'params': {'angle': {'if': {'left_range': {'ge': 'right_range'}},
                                           'then': 1.0, 'else': -1.0}}},
]


# ------------------------------------------------------------------ pure figures
def latency_stats(values: Sequence[float]) -> Optional[Dict[str, float]]:
    """mean, p50, p95 (ms) and n; None when there is no decision of that kind."""
    if not values:
        return None
    q = quantiles(values, (50, 95))
    return {'mean': float(np.mean(values)), 'p50': q['p50'], 'p95': q['p95'], 'n': len(values)}


def per_minute(count: float, seconds: float) -> Optional[float]:
    return 60.0 * count / seconds if seconds > 0 else None


def missed_deadline(decision: Dict[str, Any]) -> bool:
    """A fallback because the LLM answered too late: the model was called all the same."""
    return decision['source'] == 'fallback' and 'deadline' in decision.get('rationale', '')


def brain_figures(episodes: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Figures of a brain over its scored episodes (rows of the demo's metrics.json)."""
    decisions = [d for e in episodes for d in e['decisions']]
    by_source = {s: sum(d['source'] == s for d in decisions) for s in SOURCES}
    llm_calls = by_source['llm'] + sum(map(missed_deadline, decisions))
    sim_s = sum(e['duration_s'] for e in episodes)
    wall_s = sum(e.get('wall_s', 0.0) for e in episodes)
    times = [e['time_to_goal_s'] for e in episodes if e['success'] and e['time_to_goal_s'] is not None]
    n = len(episodes)
    return {
        'episodes': n, 'seeds': [e['seed'] for e in episodes],
        'successes': sum(bool(e['success']) for e in episodes),
        'success_rate': sum(bool(e['success']) for e in episodes) / n if n else None,
        'collisions': sum(e['collisions'] for e in episodes),
        'time_to_goal_mean_s': float(np.mean(times)) if times else None,
        'episode_time_mean_s': sim_s / n if n else None,
        'sim_s': sim_s, 'wall_s': wall_s,
        'decisions': len(decisions), 'decisions_by_source': by_source,
        'llm_calls': llm_calls, 'llm_missed_deadline': llm_calls - by_source['llm'],
        'llm_calls_per_min_sim': per_minute(llm_calls, sim_s),
        'llm_calls_per_min_wall': per_minute(llm_calls, wall_s),
        'decisions_per_min_sim': per_minute(len(decisions), sim_s),
        'latency_ms': latency_stats([d['latency_ms'] for d in decisions]),
        'llm_latency_ms': latency_stats([d['latency_ms'] for d in decisions if d['source'] == 'llm']),
    }


def ratios_to(fig: Dict[str, Any], base: Dict[str, Any]) -> Dict[str, Optional[float]]:
    def lat(f: Dict[str, Any], key: str, stat: str) -> Optional[float]:
        return f[key][stat] if f.get(key) else None
    return {
        'success_rate': ratio_or_none(fig['success_rate'], base['success_rate']),
        'collisions': ratio_or_none(fig['collisions'], base['collisions']),
        'time_to_goal': ratio_or_none(fig['time_to_goal_mean_s'], base['time_to_goal_mean_s']),
        'llm_calls_per_min_sim': ratio_or_none(fig['llm_calls_per_min_sim'],
                                            base['llm_calls_per_min_sim']),
        'latency_mean': ratio_or_none(lat(fig, 'latency_ms', 'mean'), lat(base, 'latency_ms', 'mean')),
        'latency_p95': ratio_or_none(lat(fig, 'latency_ms', 'p95'), lat(base, 'latency_ms', 'p95')),
    }


# ------------------------------------------------------------------ running the demos
def stop_demo(proc: subprocess.Popen) -> None:
    """SIGTERM first: the demo then stops its node processes (their own sessions) in order."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rules_only_file(config_dir: Optional[str], workdir: str) -> str:
    """The product's rules (the ones the brain would load) with GOAL_RULES appended."""
    import yaml
    path = os.path.join(config_dir, 'rules.yaml') if config_dir else ''
    if not os.path.isfile(path):
        from llm_agent_brain.rules import default_rules_path
        path = default_rules_path()
    with open(path, encoding='utf-8') as f:
        data = yaml.safe_load(f)
    data.setdefault('constants', {}).update(GOAL_CONSTANTS)
    data['rules'] = list(data.get('rules') or []) + GOAL_RULES
    out = os.path.join(workdir, 'rules_only.yaml')
    with open(out, 'w', encoding='utf-8') as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return out


def brain_params(brain: str, config_dir: Optional[str], workdir: str) -> List[str]:
    """decision_node parameters (NAME:=VALUE) of a brain; files it needs go to workdir."""
    params: List[str] = []
    if brain == 'llm_only':
        no_rules = os.path.join(workdir, 'no_rules.yaml')
        with open(no_rules, 'w', encoding='utf-8') as f:
            f.write('rules: []\n')
        params = ['enable_tree:=false', 'enable_cache:=false', 'enable_semantic_cache:=false',
                  f'rules_file:={no_rules}']
    elif brain == 'hybrid_stop':
        params = ['hold_max_s:=0.0']
    elif brain == 'rules_only':
        # Tree and caches would only learn from the rules' own decisions: off, rules alone.
        params = ['enable_llm:=false', 'enable_tree:=false', 'enable_cache:=false',
                  'enable_semantic_cache:=false', f'rules_file:={rules_only_file(config_dir, workdir)}']
    return params


def brain_args(brain: str, ctx: BenchContext, workdir: str) -> List[str]:
    return [a for p in brain_params(brain, ctx.config_dir, workdir) for a in ('--brain-param', p)]


def run_demo(ctx: BenchContext, brain: str, seed: int, episodes: int, timeout_s: float,
             workdir: str) -> Dict[str, Any]:
    """One `llm-agent demo` run: {'episodes': [...], 'wall_s': ...} or {'error': ..., 'tail': ...}."""
    import json
    out_dir = os.path.join(workdir, brain)
    ready_s = ctx.pick(120.0, 600.0)  # wall s for the model to load
    cmd = [sys.executable, '-m', 'llm_agent_cli.cli', 'demo', '--world', 'generated',
           '--seed', str(seed), '--episodes', str(episodes), '--episode-timeout', str(timeout_s),
           '--ready-timeout', str(ready_s), '--out', out_dir,
           '--json', os.path.join(out_dir, 'summary.json')]
    cmd += (['--config', ctx.config_dir] if ctx.config_dir else []) + brain_args(brain, ctx, workdir)
    ctx.log(f'[closed_loop] {brain}: {" ".join(cmd[3:])}')
    log_path = os.path.join(workdir, f'{brain}.log')
    t0 = time.monotonic()
    with open(log_path, 'w', encoding='utf-8') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=ready_s + episodes * (10 * timeout_s + 60) + 60)
        except subprocess.TimeoutExpired:
            code = None
            stop_demo(proc)
        except BaseException:  # Ctrl-C or SIGTERM of the bench: no demo left behind
            stop_demo(proc)
            raise
    wall_s = time.monotonic() - t0
    metrics = os.path.join(out_dir, 'metrics.json')
    if code == 0 and os.path.isfile(metrics):
        with open(metrics, encoding='utf-8') as f:
            return {'episodes': json.load(f)['episodes'], 'wall_s': wall_s}
    with open(log_path, encoding='utf-8', errors='replace') as f:
        tail = f.read()[-1500:]
    return {'error': 'timed out' if code is None else f'exit code {code}', 'exit_code': code,
            'tail': tail, 'wall_s': wall_s}


# ------------------------------------------------------------------ report
def _fmt(x: Optional[float], spec: str = '.3g') -> Any:
    return None if x is None else float(format(x, spec))


def _trajectories(ctx: BenchContext, results: Dict[str, Dict[str, Any]], seed: int) -> Optional[str]:
    """One panel per brain: its episode on `seed` drawn over the generated world."""
    from llm_agent_bringup.graph import default_config_dir
    from llm_agent_bringup.sim_config import world_for_plot
    runs = {b: next((e for e in r.get('episodes', []) if e['seed'] == seed), None)
            for b, r in results.items()}
    runs = {b: e for b, e in runs.items() if e is not None}
    if not runs:
        return None
    try:
        segments = world_for_plot(ctx.config_dir or default_config_dir(), 'generated', seed)
        segments = list(zip(segments.segments, segments.rgb))
    except Exception as exc:  # noqa: BLE001 - the paths alone are still worth a plot
        ctx.log(f'[closed_loop] no world outline in the trajectory plot: {exc}')
        segments = []
    fig, axes = figure(1, len(runs), figsize=(4.2 * len(runs), 4.4), squeeze=False)
    for ax, (brain, e) in zip(axes[0], runs.items()):
        for (x0, y0, x1, y1), rgb in segments:
            ax.plot([x0, x1], [y0, y1], color=tuple(int(c) / 255.0 for c in rgb), lw=2)
        xy = np.asarray(e['trajectory']) if e['trajectory'] else np.zeros((0, 2))
        if len(xy):
            ax.plot(xy[:, 0], xy[:, 1], color='tab:blue', lw=1.5)
            ax.plot(xy[0, 0], xy[0, 1], 'o', color='tab:blue')
        if e.get('goal'):
            ax.plot(*e['goal'], '*', color='tab:red', ms=14)
        for x, y in e.get('collision_points', []):
            ax.plot(x, y, 'x', color='k', ms=10)
        ax.set_aspect('equal')
        result = f'goal in {e["time_to_goal_s"] or 0:.0f} s' if e['success'] else 'no goal'
        ax.set_title(f'{LABELS[brain]}\nseed {seed}: {result}, {e["collisions"]} collision(s)',
                     fontsize=9)
    return save_plot(ctx, fig, 'closed_loop_trajectories.png')


def _bars(ctx: BenchContext, figs: Dict[str, Dict[str, Any]]) -> str:
    brains = list(figs)
    metrics = [('success rate', lambda f: f['success_rate'] or 0.0, False),
               ('LLM calls per sim minute', lambda f: f['llm_calls_per_min_sim'] or 0.0, False),
               ('p95 decision latency, ms (log)',
                lambda f: f['latency_ms']['p95'] if f['latency_ms'] else 0.0, True)]
    colors = {'hybrid': 'tab:green', 'hybrid_stop': 'tab:olive', 'llm_only': 'tab:red',
              'rules_only': 'tab:gray'}
    fig, axes = figure(1, len(metrics), figsize=(12, 3.8))
    for ax, (title, get, log) in zip(axes, metrics):
        values = [get(figs[b]) for b in brains]
        bars = ax.bar(range(len(brains)), values, color=[colors.get(b, 'tab:blue') for b in brains])
        ax.bar_label(bars, labels=[f'{v:.3g}' for v in values], fontsize=8)
        ax.set_xticks(range(len(brains)), [LABELS[b].split(' (')[0] for b in brains])
        ax.set_title(title, fontsize=10)
        if log and any(v > 0 for v in values):
            ax.set_yscale('log')
        else:
            ax.set_ylim(0, 1.15 * max(values + [1e-9]) if any(values) else 1.0)
    return save_plot(ctx, fig, 'closed_loop_bars.png')


def run(ctx: BenchContext) -> Section:
    episodes = ctx.pick(1, 3)                 # scored episodes per brain
    timeout_s = ctx.pick(12.0, 90.0)          # sim seconds before an episode counts as failed
    warmup = ctx.pick(0, 1)                   # hybrid only: its tree and caches learn here
    first = SEED + 1
    results: Dict[str, Dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix='bench_closed_loop_') as workdir:
        for brain in ctx.pick(QUICK_BRAINS, tuple(LABELS)):
            extra = warmup if brain.startswith('hybrid') else 0
            run_ = run_demo(ctx, brain, first - extra, episodes + extra, timeout_s, workdir)
            if 'episodes' in run_:
                run_['episodes'] = [e for e in run_['episodes'] if e['seed'] >= first]
            results[brain] = run_
    figs = {b: brain_figures(r['episodes']) for b, r in results.items() if 'episodes' in r}
    plots = [_bars(ctx, figs)] if figs else []
    traj = _trajectories(ctx, results, first)
    plots += [traj] if traj else []
    base = figs.get(BASELINE)
    data: Dict[str, Any] = {
        'seeds': list(range(first, first + episodes)), 'episode_timeout_s': timeout_s,
        'hybrid_warmup_episodes': warmup, 'calls_per_minute_of': 'sim time',
        'brains': {b: {**figs[b], 'demo_wall_s': results[b]['wall_s'],
                       # start-up (graph, model load) and shut-down: the demo's wall minus episodes
                       'overhead_wall_s': results[b]['wall_s'] - figs[b]['wall_s'],
                       'ratio_to_llm_only': ratios_to(figs[b], base) if base else None}
                   if b in figs else {k: v for k, v in results[b].items() if k != 'tail'}
                   for b in results}}
    return Section('closed_loop', 'Closed loop: hybrid brain vs LLM only vs rules only',
                   f'{LABELS[BASELINE]} (every decision to the 4-bit LLM), same seeds and worlds',
                   tables=_tables(figs, results), plots=plots, findings=_findings(figs),
                   notes=_notes(results, episodes, timeout_s, warmup, first), data=data)


def _tables(figs: Dict[str, Dict[str, Any]], results: Dict[str, Dict[str, Any]]) -> List[Table]:
    base = figs.get(BASELINE)
    outcome, decide = [], []
    for brain, r in results.items():
        if brain not in figs:
            outcome.append([LABELS[brain], f'failed: {r["error"]}'] + [None] * 5)
            continue
        f = figs[brain]
        q = ratios_to(f, base) if base else {}
        outcome.append([LABELS[brain], f'{f["successes"]}/{f["episodes"]}', f['collisions'],
                        _fmt(f['time_to_goal_mean_s']), _fmt(q.get('time_to_goal')),
                        _fmt(f['episode_time_mean_s']), _fmt(r['wall_s'], '.0f')])
        lat, llm = f['latency_ms'] or {}, f['llm_latency_ms'] or {}
        decide.append([LABELS[brain], f['decisions'],
                       ' / '.join(str(f['decisions_by_source'][s]) for s in SOURCES),
                       _fmt(f['llm_calls_per_min_sim']), _fmt(q.get('llm_calls_per_min_sim')),
                       _fmt(lat.get('p50')), _fmt(lat.get('mean')), _fmt(lat.get('p95')),
                       _fmt(q.get('latency_p95')),
                       _fmt(llm.get('mean')), _fmt(llm.get('p95'))])
    return [Table('Outcomes over the scored episodes (time to goal: mean over successes, sim s)',
                  ['brain', 'success', 'collisions', 'time to goal s', '× LLM only',
                   'episode s (sim)', 'demo wall s'], outcome),
            Table('Decisions (latency: every source; LLM: decisions the model made)',
                  ['brain', 'decisions', f'by source ({" / ".join(SOURCES)})',
                   'LLM calls / sim min', '× LLM only', 'p50 ms', 'mean ms', 'p95 ms',
                   'p95 × LLM only',
                   'LLM mean ms', 'LLM p95 ms'], decide)]


def _findings(figs: Dict[str, Dict[str, Any]]) -> List[str]:
    out = []
    if figs:
        out.append('Reached the goal: ' + ', '.join(
            f'{LABELS[b].split(" (")[0]} {f["successes"]}/{f["episodes"]} '
            f'({f["collisions"]} collision(s))' for b, f in figs.items()) + '.')
    hyb, base = figs.get('hybrid'), figs.get(BASELINE)
    if hyb and base:
        q = ratios_to(hyb, base)
        if q['llm_calls_per_min_sim'] is not None:
            out.append(f'The hybrid called the LLM {hyb["llm_calls_per_min_sim"]:.1f} times per sim '
                       f'minute, ×{q["llm_calls_per_min_sim"]:.2f} of LLM only '
                       f'({base["llm_calls_per_min_sim"]:.1f}/min); {hyb["decisions"]} decisions, '
                       f'{hyb["llm_calls"]} reached the model.')
        if q['latency_p95'] is not None and q['latency_mean'] is not None:
            h, b = hyb['latency_ms'], base['latency_ms']
            out.append(f'Decision latency (every source): hybrid p50 {h["p50"]:.3g} ms, mean '
                       f'{h["mean"]:.0f} ms (×{q["latency_mean"]:.3f} of LLM only\'s {b["mean"]:.0f} ms), '
                       f'p95 {h["p95"]:.0f} ms (×{q["latency_p95"]:.2f} of {b["p95"]:.0f} ms).')
    late = [f'{LABELS[b].split(" (")[0]} {f["llm_missed_deadline"]} of {f["llm_calls"]}'
            for b, f in figs.items() if f['llm_calls']]
    if late:
        out.append('LLM answers later than decision_timeout_s (a `stop` fallback instead): '
                   + ', '.join(late) + '.')
    stop = figs.get('hybrid_stop')
    if hyb and stop:
        def t(f: Dict[str, Any]) -> str:
            return f'{f["time_to_goal_mean_s"]:.1f} s' if f.get('time_to_goal_mean_s') else 'n/a'
        out.append(f'Keep going while it thinks: the hybrid reached the goal {hyb["successes"]}/'
                   f'{hyb["episodes"]} (mean time to goal {t(hyb)}) against {stop["successes"]}/'
                   f'{stop["episodes"]} ({t(stop)}) when every late LLM answer stops the robot.')
    rules = figs.get('rules_only')
    if rules and rules['latency_ms']:
        out.append(f'Rules only: no model, p95 decision latency {rules["latency_ms"]["p95"]:.2f} ms, '
                   f'{rules["decisions_by_source"]["fallback"]} fallback(s) where no rule applied.')
    return out


def _notes(results: Dict[str, Dict[str, Any]], episodes: int, timeout_s: float, warmup: int,
           first: int) -> List[str]:
    notes = [f'Every brain: `llm-agent demo --world generated`, a fresh brain folder, scored on '
             f'seeds {first}..{first + episodes - 1} with a {timeout_s:g} s (sim) episode timeout; '
             f'the hybrid first ran {warmup} warm-up episode(s) on seed {first - warmup} '
             f'(not scored).' if warmup else
             f'Every brain: `llm-agent demo --world generated`, a fresh brain folder, seed {first}, '
             f'{episodes} episode(s) of at most {timeout_s:g} s (sim), no warm-up; the quick run '
             f'has the hybrid and its baseline only.',
             'LLM calls = decisions the LLM made plus LLM answers that missed decision_timeout_s '
             '(published as a `stop` fallback; the model ran all the same); per minute of sim time '
             '(the world may run slower than wall time on a loaded machine; the wall figure is in '
             'results.json).',
             'Rules only is `enable_llm: false` (no model loaded) with the product rules plus four '
             'hand-written goal-seeking rules from this section (face the goal when that side is '
             'clear, drive ahead, turn to the open side); a situation no rule covers is a `stop` '
             'fallback.',
             'Decision latency is from observation to decision inside decision_node (Decision.'
             'latency_ms); the robot keeps acting on its last decision while the LLM thinks, '
             'and a `stop` fallback comes every decision_timeout_s while it is late.',
             'An episode\'s clock starts at the world\'s own reset event (sim time): a skill '
             'still running from the episode before gives no head start.']
    for brain, r in results.items():
        if 'error' in r:
            notes.append(f'{LABELS[brain]} failed ({r["error"]}); the end of its output: '
                         + ' '.join(r['tail'].split())[-600:])
    return notes
