"""Section 4: closed loop. `llm-agent eval` (the instruction suite in the built-in world) run by
three brains:

  hybrid      the product default (rules -> tree -> caches -> LLM), after one warm-up pass on
              other seeds and paraphrases than the scored ones;
  LLM only    no rules, no tree, no caches: every decision goes to the real LLM (the baseline:
              what LLM-on-ROS agents do);
  rules only  no LLM at all (decision_node `enable_llm: false`): the product's safety rules plus
              a few hand-written goal-seeking rules, what one writes without an LLM.

The eval runs as one subprocess (every node its own process, DDS on this host), so a crash costs
this section, not the report; its own folder (summary.json, episodes.json, report.md, plot) is
kept under eval/ in the report folder. The actuation's safety guard is on in every brain. This
module also holds what the eval and the section share: the brains' parameters and figures.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .core import BenchContext, Section, Table, figure, quantiles, ratio_or_none, save_plot

BASELINE = 'llm_only'
LABELS = {'hybrid': 'hybrid (rules → tree → caches → LLM)',
          'hybrid_stop': 'hybrid, stop at every late LLM answer (the policy before hold_max_s)',
          'llm_only': 'LLM only', 'rules_only': 'rules only (no LLM)'}
QUICK_BRAINS = ('hybrid', BASELINE)  # a quick run compares the product with its baseline only
FULL_BRAINS = ('hybrid', BASELINE, 'rules_only')
QUICK_KIND = 'go_to_colour'          # the quick run's one kind: the structure, not the scores
EVAL_SEEDS = 3                       # scored seeds per kind in the full run (issue: >= 3)
SOURCES = ('rule', 'tree', 'cache', 'llm', 'fallback')

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
    """Figures of a brain over its scored episodes (rows of the eval's or the demo's records)."""
    decisions = [d for e in episodes for d in e['decisions']]
    by_source = {s: sum(d['source'] == s for d in decisions) for s in SOURCES}
    llm_calls = by_source['llm'] + sum(map(missed_deadline, decisions))
    sim_s = sum(e['duration_s'] for e in episodes)
    wall_s = sum(e.get('wall_s', 0.0) for e in episodes)
    times = [e['time_to_goal_s'] for e in episodes if e['success'] and e.get('time_to_goal_s') is not None]
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




# ------------------------------------------------------------------ the brains
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


# ------------------------------------------------------------------ running the eval
def run_eval(ctx: BenchContext, brains: Sequence[str], out_dir: str) -> Dict[str, Any]:
    """One `llm-agent eval` subprocess: {'summary': ..., 'episodes': ..., 'wall_s': ...}, or
    {'error': ..., 'tail': ...} when it wrote no summary. A brain that failed inside the eval is
    named in the summary; the other brains still count."""
    ready_s = ctx.pick(300.0, 600.0)  # wall s for a brain to load its model
    cmd = [sys.executable, '-m', 'llm_agent_cli.cli', 'eval', '--brains', ','.join(brains),
           '--out', out_dir, '--ready-timeout', str(ready_s)]
    cmd += ['--quick', '--kinds', QUICK_KIND] if ctx.quick else ['--seeds', str(EVAL_SEEDS)]
    cmd += ['--config', ctx.config_dir] if ctx.config_dir else []
    ctx.log(f'[closed_loop] {" ".join(cmd[3:])}')
    os.makedirs(out_dir, exist_ok=True)
    log_path = os.path.join(out_dir, 'eval.log')
    t0 = time.monotonic()
    with open(log_path, 'w', encoding='utf-8') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=ctx.pick(900.0, 3 * 3600.0))
        except subprocess.TimeoutExpired:
            code = None
            stop_child(proc)
        except BaseException:  # Ctrl-C or SIGTERM of the bench: no graph left behind
            stop_child(proc)
            raise
    wall_s = time.monotonic() - t0
    summary_path, episodes_path = (os.path.join(out_dir, n) for n in ('summary.json', 'episodes.json'))
    if os.path.isfile(summary_path) and os.path.isfile(episodes_path):
        with open(summary_path, encoding='utf-8') as f, open(episodes_path, encoding='utf-8') as g:
            return {'summary': json.load(f), 'episodes': json.load(g), 'wall_s': wall_s,
                    'exit_code': code}
    with open(log_path, encoding='utf-8', errors='replace') as f:
        tail = f.read()[-1500:]
    return {'error': 'timed out' if code is None else f'exit code {code}, no summary',
            'tail': tail, 'wall_s': wall_s}


def stop_child(proc: subprocess.Popen) -> None:
    """SIGTERM first: the eval then stops its graph (node processes in their own sessions)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ report
def _fmt(x: Optional[float], spec: str = '.3g') -> Any:
    return None if x is None else float(format(x, spec))


def _short(brain: str) -> str:
    return LABELS[brain].split(' (')[0]


def _bars(ctx: BenchContext, figs: Dict[str, Dict[str, Any]]) -> str:
    brains = list(figs)
    metrics = [('success rate', lambda f: f['success_rate'] or 0.0, False),
               ('LLM calls per sim minute', lambda f: f['llm_calls_per_min_sim'] or 0.0, False),
               ('p95 decision latency, ms (log)',
                lambda f: f['latency_ms']['p95'] if f['latency_ms'] else 0.0, True)]
    colors = {'hybrid': 'tab:green', 'llm_only': 'tab:red', 'rules_only': 'tab:gray'}
    fig, axes = figure(1, len(metrics), figsize=(12, 3.8))
    for ax, (title, get, log) in zip(axes, metrics):
        values = [get(figs[b]) for b in brains]
        bars = ax.bar(range(len(brains)), values, color=[colors.get(b, 'tab:blue') for b in brains])
        ax.bar_label(bars, labels=[f'{v:.3g}' for v in values], fontsize=8)
        ax.set_xticks(range(len(brains)), [_short(b) for b in brains])
        ax.set_title(title, fontsize=10)
        if log and any(v > 0 for v in values):
            ax.set_yscale('log')
        else:
            ax.set_ylim(0, 1.15 * max(values + [1e-9]) if any(values) else 1.0)
    return save_plot(ctx, fig, 'closed_loop_bars.png')


def per_kind(rows: List[Dict[str, Any]], kinds: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Scored episodes, successes and the most frequent reason of failure, per kind."""
    out = {}
    for kind in kinds:
        mine = [r for r in rows if r['kind'] == kind]
        whys = Counter(r['why'] for r in mine if not r['success'])
        out[kind] = {'episodes': len(mine), 'successes': sum(bool(r['success']) for r in mine),
                     'top_failure': whys.most_common(1)[0][0] if whys else None}
    return out


def run(ctx: BenchContext) -> Section:
    brains = ctx.pick(QUICK_BRAINS, FULL_BRAINS)
    eval_dir = ctx.path('eval')
    res = run_eval(ctx, brains, eval_dir)
    if 'error' in res:
        raise RuntimeError(f'llm-agent eval failed ({res["error"]}): '
                           + ' '.join(res['tail'].split())[-800:])
    summary = res['summary']
    kinds = summary['kinds']
    scored = {b: [r for r in rows if r['scored']] for b, rows in res['episodes'].items()}
    figs = {b: brain_figures(rows) for b, rows in scored.items() if rows}
    kind_rows = {b: per_kind(rows, kinds) for b, rows in scored.items()}
    errors = {b: s['error'] for b, s in summary['brains'].items() if s.get('error')}
    base = figs.get(BASELINE)
    plots = [_bars(ctx, figs)] if figs else []
    if os.path.isfile(os.path.join(eval_dir, 'eval_success.png')):
        plots.append('eval/eval_success.png')
    data: Dict[str, Any] = {
        'kinds': kinds, 'seeds_per_kind': summary['seeds'], 'quick': summary['quick'],
        'hybrid_warmup_episodes': summary['brains'].get('hybrid', {}).get('warmup_episodes', 0),
        'calls_per_minute_of': 'sim time', 'eval_wall_s': res['wall_s'], 'errors': errors,
        'brains': {b: {**f, 'per_kind': kind_rows[b],
                       'ratio_to_llm_only': ratios_to(f, base) if base else None}
                   for b, f in figs.items()}}
    return Section('closed_loop', 'Closed loop: the instruction suite, hybrid vs LLM only vs rules only',
                   f'{LABELS[BASELINE]} (every decision to the LLM), same kinds, seeds and paraphrases',
                   tables=_tables(figs, kind_rows, kinds, errors), plots=plots,
                   findings=_findings(figs, kind_rows, kinds),
                   notes=_notes(summary, res['wall_s'], errors), data=data)


def _tables(figs: Dict[str, Dict[str, Any]], kind_rows: Dict[str, Dict[str, Any]],
            kinds: Sequence[str], errors: Dict[str, str]) -> List[Table]:
    base = figs.get(BASELINE)
    brains = list(kind_rows)
    success = [[k] + [f'{kind_rows[b][k]["successes"]}/{kind_rows[b][k]["episodes"]}' for b in brains]
               + [kind_rows['hybrid'][k]['top_failure'] if 'hybrid' in kind_rows else None]
               for k in kinds]
    overall, decide = [], []
    for brain in brains:
        if brain not in figs:
            overall.append([LABELS[brain], f'failed: {errors.get(brain, "no scored episode")}']
                           + [None] * 4)
            continue
        f = figs[brain]
        q = ratios_to(f, base) if base else {}
        overall.append([LABELS[brain], f'{f["successes"]}/{f["episodes"]}', _fmt(f['success_rate']),
                        f['collisions'], _fmt(f['episode_time_mean_s']), _fmt(f['wall_s'], '.0f')])
        lat, llm = f['latency_ms'] or {}, f['llm_latency_ms'] or {}
        decide.append([LABELS[brain], f['decisions'],
                       ' / '.join(str(f['decisions_by_source'][s]) for s in SOURCES),
                       f['llm_calls'], f['llm_missed_deadline'],
                       _fmt(f['llm_calls_per_min_sim']), _fmt(q.get('llm_calls_per_min_sim')),
                       _fmt(lat.get('p50')), _fmt(lat.get('p95')), _fmt(q.get('latency_p95')),
                       _fmt(llm.get('mean')), _fmt(llm.get('p95'))])
    return [Table('Successes per instruction kind (scored episodes)',
                  ['kind'] + [_short(b) for b in brains] + ['why the hybrid failed (most often)'],
                  success),
            Table('Outcomes over every scored episode',
                  ['brain', 'success', 'rate', 'collisions', 'episode s (sim)', 'episodes wall s'],
                  overall),
            Table('Decisions (latency: every source; LLM: decisions the model made)',
                  ['brain', 'decisions', f'by source ({" / ".join(SOURCES)})', 'LLM calls',
                   'late LLM answers', 'LLM calls / sim min', '× LLM only', 'p50 ms', 'p95 ms',
                   'p95 × LLM only', 'LLM mean ms', 'LLM p95 ms'], decide)]


def _findings(figs: Dict[str, Dict[str, Any]], kind_rows: Dict[str, Dict[str, Any]],
              kinds: Sequence[str]) -> List[str]:
    """The section against the suite's goals: hybrid >= LLM only on every kind and >= 80 %
    overall, its LLM calls <= 0.1x LLM only's, no collision, rules only failing what no rule covers."""
    out = []
    if figs:
        out.append('Succeeded: ' + ', '.join(
            f'{_short(b)} {f["successes"]}/{f["episodes"]} ({f["success_rate"]:.0%}, '
            f'{f["collisions"]} collision(s))' for b, f in figs.items()) + '.')
    hyb, base = figs.get('hybrid'), figs.get(BASELINE)
    if hyb:
        out.append(f'Hybrid overall {hyb["success_rate"]:.0%} against the goal of 80 %'
                   + (' (met).' if hyb['success_rate'] >= 0.8 else
                      f' ({0.8 - hyb["success_rate"]:.0%} short).'))
    if hyb and base:
        worse = [f'{k} ({kind_rows["hybrid"][k]["successes"]} vs {kind_rows[BASELINE][k]["successes"]})'
                 for k in kinds if kind_rows['hybrid'][k]['successes'] < kind_rows[BASELINE][k]['successes']]
        out.append('Hybrid at least as good as LLM only on every kind.' if not worse else
                   f'Hybrid below LLM only on {len(worse)} of {len(kinds)} kind(s): {", ".join(worse)}.')
        q = ratios_to(hyb, base)['llm_calls_per_min_sim']
        if q is not None:
            out.append(f'The hybrid called the LLM {hyb["llm_calls_per_min_sim"]:.1f} times per sim '
                       f'minute, ×{q:.3f} of LLM only ({base["llm_calls_per_min_sim"]:.1f}/min; goal '
                       f'≤ ×0.1): {hyb["decisions"]} decisions, {hyb["llm_calls"]} reached the model.')
    late = [f'{_short(b)} {f["llm_missed_deadline"]} of {f["llm_calls"]}' for b, f in figs.items()
            if f['llm_calls']]
    if late:
        out.append('LLM answers later than decision_timeout_s (a `stop` fallback instead): '
                   + ', '.join(late) + '.')
    if 'rules_only' in kind_rows:
        rules = kind_rows['rules_only']
        failed = [k for k in kinds if rules[k]['episodes'] and not rules[k]['successes']]
        passed = [k for k in kinds if rules[k]['successes']]
        out.append(f'Rules only failed every episode of {len(failed)} kind(s) ({", ".join(failed) or "none"})'
                   f'; it succeeded at least once on {", ".join(passed) or "none"}.')
    nobody = [k for k in kinds if not any(kr[k]['successes'] for kr in kind_rows.values())]
    if nobody:
        out.append(f'No brain succeeded on {len(nobody)} kind(s): {", ".join(nobody)}.')
    return out


def _notes(summary: Dict[str, Any], wall_s: float, errors: Dict[str, str]) -> List[str]:
    notes = [f'`llm-agent eval` on {len(summary["kinds"])} kind(s) of the packaged suite, '
             f'{summary["seeds"]} scored seed(s) per kind, {wall_s / 60:.0f} min in all; '
             + ('a quick run: one kind, time limits cut, no warm-up: the scores mean little.'
                if summary['quick'] else
                'the hybrid first ran one warm-up episode per kind on other seeds and with another '
                'paraphrase than the scored ones, in the same graph (its tree and caches learn there).'),
             'Its own report, summary.json and every episode with its verdict and why: eval/.',
             'LLM calls = decisions the LLM made plus LLM answers that missed decision_timeout_s '
             '(published as a `stop` fallback; the model ran all the same); per minute of sim time.',
             'Rules only is `enable_llm: false` (no model loaded) with the product rules plus four '
             'hand-written goal-seeking rules from this section (face the goal when that side is '
             'clear, drive ahead, turn to the open side): no rule tuned to the suite.',
             'Decision latency is from observation to decision inside decision_node (Decision.'
             'latency_ms); the robot keeps acting on its last decision while the LLM thinks.']
    notes += [f'{LABELS[b]} failed: {e}' for b, e in errors.items()]
    return notes
