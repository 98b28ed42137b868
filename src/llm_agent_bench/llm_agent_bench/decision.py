"""Section 2: decision latency by path. `agent/decide` round trips answered by the real decision
node's rules, tree, cache and LLM, against a bare rclpy service echo in a process of its own (the
floor between two processes, which no ROS service call beats) and one on the node's executor;
then, on the same model and situations, scored choice with the prefix cache against scoring
without it and against free JSON generation."""
from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Tuple

from llm_agent_brain.backends.scripted import ScriptedBackend
from llm_agent_brain.decision_types import Situation
from llm_agent_brain.node_params import backend_from_params

from .core import (
    BenchContext,
    Section,
    Table,
    busy_factor,
    figure,
    quantiles,
    ratio,
    ratio_or_none,
    save_plot,
)
from .echo_server import SERVICE as ECHO_SERVICE

TREE_INSTRUCTION = 'explore the room'      # warmed, then the tree is trained on it
CACHE_INSTRUCTION = 'patrol the corridor'  # warmed after training: only the cache knows it
PATHS = ('echo', 'echo_process', 'rule', 'tree', 'cache', 'llm')
LLAMA_ROW = 'compact, llama.cpp'
ECHOES = ('echo', 'echo_process')   # served by bare echoes, not by the decision node
MODES = (('scored_cached', 'scored choice + prefix cache'),
         ('scored_nocache', 'scored choice, no prefix cache'),
         ('generate', 'free JSON generation'))


def features(rng: random.Random, **fixed: float) -> Dict[str, float]:
    """A plausible scan summary with random ranges ahead and to the sides."""
    f = dict(front_range=rng.uniform(0.5, 8), front_left_range=8.0, front_right_range=8.0,
             left_range=rng.uniform(0.5, 8), right_range=rng.uniform(0.5, 8), rear_range=8.0,
             goal_distance=5.0, goal_bearing=0.0, speed=0.2, yaw_rate=0.0)
    f.update(fixed)
    return f


def path_rows(times: Dict[str, List[float]], wrong: Dict[str, int]) -> Dict[str, Dict[str, Any]]:
    """Per path: n, median and p95 ms, ratios to the echo and to the LLM path (None without
    one), and answers from the wrong source."""
    med = {k: statistics.median(v) for k, v in times.items() if v}
    rows = {}
    for path, values in times.items():
        if not values:
            continue
        q = quantiles(values, (95,))
        rows[path] = {'n': len(values), 'median_ms': med[path], 'p95_ms': q['p95'],
                      'x_echo': ratio(med[path], med['echo']) if 'echo' in med else None,
                      'x_echo_process': ratio(med[path], med['echo_process'])
                      if 'echo_process' in med else None,
                      'x_llm': ratio(med[path], med['llm']) if 'llm' in med else None,
                      'wrong_source': int(wrong.get(path, 0))}
    return rows


def mode_rows(modes: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Per LLM mode: n, median wall and CPU ms, their ratios to scored + prefix cache, share of
    usable answers."""
    base = {k: statistics.median(modes['scored_cached'][k]) for k in ('times_ms', 'cpu_ms')}
    rows = {}
    for key, m in modes.items():
        median, cpu = statistics.median(m['times_ms']), statistics.median(m['cpu_ms'])
        rows[key] = {'n': len(m['times_ms']), 'median_ms': median, 'median_cpu_ms': cpu,
                     'x_scored_cached': ratio(median, base['times_ms']),
                     'cpu_x_scored_cached': ratio(cpu, base['cpu_ms']),
                     'usable_share': m['usable'] / len(m['times_ms']), 'skills': m['skills']}
    return rows


class DecideBench:
    """The real decision node and a bare echo node on the node's own executor (its COMPONENT's
    threads, as in its own process), spun in a thread of this process; a bare echo in a process
    of its own; a client node here (the LLM row) or in a process of its own (the fast paths)."""

    SERVICES = {'echo': 'bench/echo', 'echo_process': ECHO_SERVICE, 'decide': 'agent/decide'}

    def __init__(self, config_dir: str, data_dir: str) -> None:
        import rclpy
        from llm_agent_brain.decision_node import COMPONENT, DecisionNode
        from llm_agent_common.node import executor_for
        from rclpy.context import Context
        from rclpy.parameter import Parameter

        from llm_agent_interfaces.srv import Decide

        from .decide_client import DecideClient
        self.context = Context()
        # The node reads the same parameter file as `llm-agent up`; overrides below.
        rclpy.init(args=['bench', '--ros-args', '--params-file',
                         os.path.join(config_dir, 'brain.yaml')], context=self.context)
        self.nodes: List[Any] = []
        overrides = {
            'data_dir': data_dir, 'rules_file': os.path.join(config_dir, 'rules.yaml'),
            'skills_file': os.path.join(config_dir, 'skills.yaml'),
            'cache_ttl_s': 86400.0,        # cached answers must outlive the run
            'retrain_every_n': 100000,     # the tree is trained once, explicitly
            'decision_timeout_s': 300.0,   # a slow LLM on a busy machine is timed, not a fallback
            'execute_decisions': False}    # no actuation in this graph
        try:
            self.node = DecisionNode(backend=ScriptedBackend(), context=self.context, parameter_overrides=[
                Parameter(k, value=v) for k, v in overrides.items()])
        except Exception:  # a bad config: leave no initialised context behind for later sections
            rclpy.try_shutdown(context=self.context)
            raise
        self.nodes.append(self.node)
        self.echo_node = rclpy.create_node('bench_echo', context=self.context)
        self.echo_node.create_service(Decide, self.SERVICES['echo'], lambda req, resp: resp)
        self.nodes.append(self.echo_node)
        # The floor between two processes: the decision node serves other processes.
        self.echo_process = subprocess.Popen(
            [sys.executable, '-m', 'llm_agent_bench.echo_server'], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self.threads = COMPONENT.thread_count(self.node)
        self.server_exec = executor_for(self.threads, context=self.context)
        self.server_exec.add_node(self.node)
        self.server_exec.add_node(self.echo_node)
        self.spin_thread = threading.Thread(target=self.server_exec.spin, daemon=True)
        self.client = DecideClient(self.context, self.SERVICES)

    def start(self) -> None:
        self.spin_thread.start()
        self.client.wait()

    def call(self, service: str, sit: Situation, timeout_s: float = 600.0) -> Tuple[float, Any]:
        """(round trip ms, response) from the client in this process."""
        from .decide_client import request
        return self.client.call(service, request(sit.features, sit.summary, sit.instruction),
                                timeout_s)

    def calls_from_another_process(self, calls: List[Tuple[str, Situation]]
                                   ) -> List[Tuple[float, str]]:
        """(ms, source) of each call, made in order by a client in a process of its own."""
        import json
        plan = {'services': self.SERVICES,
                'calls': [[key, s.features, s.summary, s.instruction] for key, s in calls]}
        done = subprocess.run([sys.executable, '-m', 'llm_agent_bench.decide_client'],
                              input=json.dumps(plan), capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f'the decide client failed ({done.returncode}): {done.stderr[-1500:]}')
        return [(float(ms), source) for ms, source in json.loads(done.stdout)]

    def close(self) -> None:
        import rclpy
        self.echo_process.send_signal(signal.SIGINT)
        try:
            self.echo_process.wait(10.0)
        except subprocess.TimeoutExpired:
            self.echo_process.kill()
        self.server_exec.shutdown()
        if self.spin_thread.is_alive():
            self.spin_thread.join(timeout=10.0)
        self.client.close()
        for node in self.nodes:
            node.destroy_node()  # the decision node joins its LLM worker here
        rclpy.try_shutdown(context=self.context)


def warm_fast_path(pipeline: Any, rng: random.Random, n: int) -> List[Situation]:
    """Fill the node's tree and cache through its own pipeline with the scripted backend;
    returns the cache instruction's situations that were answered (and cached) by it."""
    for _ in range(n):
        s = Situation(features(rng), '', TREE_INSTRUCTION)
        pipeline.fast_decide(s) or pipeline.llm_decide(s)
    pipeline.train_now()
    cached = []
    for _ in range(n):
        s = Situation(features(rng), '', CACHE_INSTRUCTION)
        if (pipeline.fast_decide(s) or pipeline.llm_decide(s)).source == 'llm':
            cached.append(s)
    return cached


def measure_fast_paths(bench: DecideBench, makers: Dict[str, Callable[[], Situation]], rounds: int,
                       times: Dict[str, List[float]], wrong: Counter, seen: Counter) -> None:
    """Interleaved round trips per path (load changes hit every path alike), made by a client in
    a process of its own; the first round per path only warms the DDS paths."""
    warm = 10 * len(makers)
    calls = [(path, make()) for _ in range(10 + rounds) for path, make in makers.items()]
    answers = bench.calls_from_another_process(
        [(path if path in ECHOES else 'decide', sit) for path, sit in calls])
    for (path, _), (ms, source) in list(zip(calls, answers))[warm:]:
        times[path].append(ms)
        if path not in ECHOES:
            seen[source] += 1
            wrong[path] += source != path


def _ms(v: float) -> str:
    return f'{v / 1000:.2f} s' if v >= 1000 else f'{v:.3g} ms'


def _plot(ctx: BenchContext, paths: Dict[str, Dict[str, Any]], modes: Dict[str, Dict[str, Any]]) -> str:
    fig, (ax, ax2) = figure(1, 2, figsize=(10, 4.4), gridspec_kw={'width_ratios': [5, 3]})
    names = [p for p in PATHS if p in paths]
    med = [paths[p]['median_ms'] for p in names]
    err = [[0] * len(names), [paths[p]['p95_ms'] - paths[p]['median_ms'] for p in names]]
    ax.bar(names, med, yerr=err, capsize=3,
                  color=['grey', 'tab:green', 'tab:olive', 'tab:cyan', 'tab:red'][:len(names)])
    for i, p in enumerate(names):  # above the p95 whisker
        x_echo = paths[p]['x_echo']
        ax.text(i, paths[p]['p95_ms'] * 1.15, f'{_ms(paths[p]["median_ms"])}\n'
                f'{x_echo:.{0 if x_echo >= 10 else 2}f}x echo', ha='center', va='bottom', fontsize=7)
    ax.set_yscale('log')
    ax.set_ylim(top=max(paths[p]['p95_ms'] for p in names) * 8)
    ax.set_ylabel('agent/decide round trip, ms (log; median, whisker p95)')
    ax.set_title('Round trip by the path that answered')
    if modes:
        keys = [k for k, _ in MODES if k in modes]
        bars = ax2.bar([dict(MODES)[k].replace(', ', ',\n').replace(' + ', ' +\n').replace('JSON ', 'JSON\n')
                        for k in keys], [modes[k]['x_scored_cached'] for k in keys],
                       color=['tab:red', 'tab:orange', 'tab:purple'][:len(keys)])
        ax2.bar_label(bars, labels=[f'{modes[k]["x_scored_cached"]:.2g}x, {_ms(modes[k]["median_ms"])}\n'
                                    f'usable {modes[k]["usable_share"]:.0%}' for k in keys], fontsize=7)
        ax2.set_ylim(top=max(modes[k]['x_scored_cached'] for k in keys) * 1.25)
        ax2.tick_params(axis='x', labelsize=7)
        ax2.set_ylabel('time per decision x scored + prefix cache')
        ax2.set_title('Same model: how the LLM answers')
    else:
        ax2.set_axis_off()
    return save_plot(ctx, fig, 'decision_latency_paths.png')


def run(ctx: BenchContext) -> Section:
    from llm_agent_brain.decision_types import BackendError
    from llm_agent_bringup.graph import default_config_dir

    from llm_agent_bench.model_bench import (
        PROMPT_CONFIGS,
        SITUATIONS,
        compare_modes,
        compare_prompts,
        labelled_cases,
        quiet_model_logs,
    )
    quiet_model_logs()
    config_dir = ctx.config_dir or default_config_dir()
    rounds, warm_n = ctx.pick(40, 300), ctx.pick(150, 300)
    # Quick: each mode costs seconds per call on 2 cores (section budget 45 s).
    llm_calls, mode_n = ctx.pick(2, 8), ctx.pick(1, len(SITUATIONS))
    rng = random.Random(0)
    data_dir = tempfile.mkdtemp(prefix='bench_decision_')
    times: Dict[str, List[float]] = {p: [] for p in PATHS}
    wrong: Counter = Counter()
    seen: Counter = Counter()
    notes: List[str] = []
    backend: Optional[Any] = None
    llm_info: Dict[str, Any] = {}
    bench = DecideBench(config_dir, data_dir)
    try:
        ctx.log('  warming the tree and the cache (scripted backend) ...')
        cached = warm_fast_path(bench.node.pipeline, rng, warm_n)
        makers = {'echo': lambda: Situation(features(rng), '', TREE_INSTRUCTION),
                  'echo_process': lambda: Situation(features(rng), '', TREE_INSTRUCTION),
                  'rule': lambda: Situation(features(rng, front_range=0.3), '', TREE_INSTRUCTION),
                  'tree': lambda: Situation(features(rng, front_range=rng.uniform(3, 8)), '',
                                            TREE_INSTRUCTION),
                  'cache': lambda: rng.choice(cached)}
        bench.start()
        ctx.log(f'  {rounds} interleaved round trips per fast path ...')
        measure_fast_paths(bench, makers, rounds, times, wrong, seen)
        ctx.log('  loading the real model the node is configured with ...')
        backend = backend_from_params(bench.node.params.values)  # what the node would load
        t0 = time.perf_counter()
        try:
            backend.load()
        except BackendError as exc:
            notes.append(f'LLM row missing: the model could not load here: {exc}')
            backend = None
        if backend is not None:
            llm_info = {'load_s': time.perf_counter() - t0, **backend.info()}
            bench.node.backend = bench.node.pipeline.backend = backend
            ctx.log(f'  {llm_calls} LLM round trips (+1 warm-up) ...')
            for i in range(llm_calls + 1):
                bench.node.pipeline.clear_cache()  # no cached answer: the model must decide
                sit = SITUATIONS[i % len(SITUATIONS)]
                backend.prepare(bench.node.catalog, sit.instruction)  # as on agent/instruction
                ms, resp = bench.call('decide', sit)
                seen[resp.decision.source] += 1
                if i:  # the first call pays the one-off prefix cache build
                    times['llm'].append(ms)
                    wrong['llm'] += resp.decision.source != 'llm'
        stats = bench.node.pipeline.stats()
    finally:
        bench.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    modes: Dict[str, Dict[str, Any]] = {}
    prompts: Dict[str, Dict[str, Any]] = {}
    if backend is not None:
        # The answering modes and prompt styles are the transformers backend's (nf4, the CPU
        # default before llama.cpp); the node's own runtime is scored on the same cases.
        reference = backend_from_params({**bench.node.params.values, 'backend': 'transformers'})
        try:
            reference.load()
        except BackendError as exc:
            notes.append(f'Prompt and mode rows missing: nf4 could not load here: {exc}')
            reference = None
        cases = labelled_cases()
        cases = cases if not ctx.quick else cases[::16]
        raw: Dict[str, Dict[str, Any]] = {}
        if reference is not None:
            ctx.log(f'  LLM answering modes on {mode_n} situations ...')
            modes = mode_rows(compare_modes(reference, bench.node.catalog, SITUATIONS[:mode_n]))
            ctx.log(f'  prompt styles on {len(cases)} labelled decisions ...')
            configs = PROMPT_CONFIGS if not ctx.quick else \
                [c for c in PROMPT_CONFIGS if c[0] != 'compact, two passes']
            raw.update(compare_prompts(reference, bench.node.catalog, cases, configs))
            reference.close()
        if getattr(backend, 'name', '') == 'llamacpp':
            ctx.log(f'  llama.cpp on {len(cases)} labelled decisions ...')
            raw.update(compare_prompts(backend, bench.node.catalog, cases,
                                       ((LLAMA_ROW, 'compact', True),)))
        prompts = prompt_rows(raw)
        backend.close()
    paths = path_rows(times, wrong)
    section = _section(ctx, paths, modes, llm_info, dict(seen), stats, notes, rounds, warm_n,
                       len(cached), bench.threads)
    if prompts:
        _add_prompt_rows(section, prompts)
    return section


def prompt_rows(raw: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Per prompt style: accuracy, tokens, ms (cached, and the first call of an instruction),
    and ratios to the verbose prompt (the one before)."""
    rows = {}
    for style, r in raw.items():
        rows[style] = {'n': r['n'], 'accuracy': r['accuracy'], 'right': r['right'],
                       'tokens_p50': statistics.median(r['tokens']) if r['tokens'] else None,
                       'tokens_max': max(r['tokens']) if r['tokens'] else None,
                       'cached_ms': statistics.median(r['cached_ms']) if r['cached_ms'] else None,
                       'cached_cpu_ms': (statistics.median(r['cached_cpu_ms'])
                                         if r['cached_cpu_ms'] else None),
                       'first_ms': statistics.median(r['first_ms']) if r['first_ms'] else None}
    base = rows.get('verbose')
    one = raw.get('compact')
    for style, r in rows.items():
        if one is not None:
            r['same_as_one_pass'] = sum(a == b for a, b in zip(raw[style]['skills'],
                                                                one['skills']))
    for r in rows.values():
        r['x_verbose_ms'] = ratio_or_none(r['cached_ms'], base and base['cached_ms'])
        r['x_verbose_cpu'] = ratio_or_none(r['cached_cpu_ms'], base and base['cached_cpu_ms'])
    return rows


def _add_prompt_rows(section: Section, rows: Dict[str, Dict[str, Any]]) -> None:
    names = {'verbose': 'verbose, two passes (features as a table, instruction in the '
                        'dynamic part; the default before 2026-12-02)',
             'compact, two passes': 'compact, two passes (the observation, then the candidates '
                                    'as a batch)',
             'compact': 'compact, one pass (instruction in the cached prefix, one observation '
                        'line, candidates as a prefix tree)',
             LLAMA_ROW: 'compact, one pass, on llama.cpp (Q8_0, requantized from the GGUF): the CPU '
                        'default'}
    section.tables.append(Table(
        'Prompt styles and scoring on the labelled decisions (data/labelled_decisions.yaml), '
        'same model: ratios to the verbose prompt in two passes',
        ['prompt', 'cases', 'right', 'accuracy', 'new tokens p50', 'new tokens max',
         'ms/decision (cached)', 'x verbose', 'CPU x verbose', 'first call of an instruction ms'],
        [[names.get(s, s), r['n'], r['right'], f'{r["accuracy"]:.0%}', r['tokens_p50'],
          r['tokens_max'], r['cached_ms'], r['x_verbose_ms'], r['x_verbose_cpu'], r['first_ms']]
         for s, r in rows.items()]))
    c, v = rows.get('compact'), rows.get('verbose')
    if c and v:
        section.findings.append(
            f'compact prompt: {c["tokens_p50"]:.0f} new tokens per decision (max '
            f'{c["tokens_max"]:.0f}) against {v["tokens_p50"]:.0f}; '
            f'{c["x_verbose_cpu"] or float("nan"):.2f}x the verbose prompt\'s CPU time per decision; '
            f'accuracy {c["accuracy"]:.0%} against {v["accuracy"]:.0%} on {c["n"]} labelled cases; '
            f'the first decision under a new instruction takes {c["first_ms"]:.0f} ms (it builds '
            f'that instruction\'s cache; the node does that when the instruction arrives)')
        two = rows.get('compact, two passes')
        if two:
            x_two = ratio_or_none(c['cached_ms'], two['cached_ms']) or float('nan')
            section.findings.append(
                f'one scoring pass instead of two: {c["cached_ms"]:.0f} against '
                f'{two["cached_ms"]:.0f} ms per decision ({x_two:.2f}x), '
                f'the same answer on {two["same_as_one_pass"]} of {two["n"]} cases; against the '
                f'verbose prompt in two passes {c["x_verbose_ms"] or float("nan"):.2f}x the wall '
                f'time (target 0.3x)')
    q = rows.get(LLAMA_ROW)
    if q and v and c:
        section.findings.append(
            f'llama.cpp (the CPU default): {q["cached_ms"]:.0f} ms per decision, '
            f'{q["x_verbose_ms"] or float("nan"):.2f}x the nf4 verbose prompt\'s wall time '
            f'(target 0.3x) and {ratio_or_none(q["cached_ms"], c["cached_ms"]) or float("nan"):.2f}x '
            f'nf4 on the same compact prompt; accuracy {q["accuracy"]:.0%} (nf4 compact '
            f'{c["accuracy"]:.0%}); a new instruction\'s first decision {q["first_ms"]:.0f} ms')
    section.data['prompts'] = rows


def _section(ctx: BenchContext, paths: Dict[str, Dict[str, Any]], modes: Dict[str, Dict[str, Any]],
             llm_info: Dict[str, Any], seen: Dict[str, int], stats: Dict[str, float],
             notes: List[str], rounds: int, warm_n: int, n_cached: int, threads: int) -> Section:
    model = (f'SmolLM2-135M {llm_info.get("quantization", "?")}' if llm_info else 'no model')
    answered = {'echo': 'bare rclpy echo on the decision node\'s executor',
                'echo_process': 'bare echo in another process (floor between processes)',
                'rule': 'safety/heuristic rule',
                'tree': 'distilled decision tree', 'cache': 'exact cache',
                'llm': f'LLM ({model}, scored)'}
    rows = [[p, answered[p], r['n'], r['median_ms'], r['p95_ms'], r['x_echo'],
             r['x_echo_process'], r['x_llm'], r['wrong_source']]
            for p, r in ((p, paths[p]) for p in PATHS if p in paths)]
    tables = [Table('agent/decide round trip by the path that answered: ratios to the bare echoes '
                    'and to the LLM path', ['path', 'answered by', 'n', 'median ms', 'p95 ms',
                                            'x echo', 'x echo (2 processes)', 'x LLM',
                                            'wrong source'], rows)]
    findings = []
    fast = [p for p in ('rule', 'tree', 'cache') if p in paths]
    if fast and 'echo_process' in paths:
        x_proc = [paths[p]['x_echo_process'] for p in fast]
        medians = ' / '.join(f'{paths[p]["median_ms"]:.2f}' for p in fast)
        findings.append(
            f'{" / ".join(fast)} answer in {medians} ms median over DDS from another process, '
            f'{min(x_proc):.2f}-{max(x_proc):.2f}x the floor between two processes '
            f'({paths["echo_process"]["median_ms"]:.2f} ms median, a bare echo of our node '
            f'toolkit; target 1.2x: {"met" if max(x_proc) <= 1.2 else "not met"})' +
            (f' and {max(paths[p]["x_llm"] for p in fast):.4f}x or less of the LLM path'
             if 'llm' in paths else ''))
    if fast and 'echo' in paths:
        x_echo = [paths[p]['x_echo'] for p in fast]
        findings.append(f'against a bare echo on the decision node\'s own executor '
                        f'({paths["echo"]["median_ms"]:.2f} ms): {min(x_echo):.2f}-{max(x_echo):.2f}x '
                        '(what rules, tree and cache add to a service call)')
    if 'llm' in paths:
        findings.append(f'LLM path ({model}) through the real node: {paths["llm"]["median_ms"]:.0f} ms '
                        f'median, {paths["llm"]["x_echo"]:.0f}x the echo')
    n_wrong = sum(r['wrong_source'] for r in paths.values())
    findings.append(f'answers from the wrong source: {n_wrong} of '
                    f'{sum(r["n"] for p, r in paths.items() if p not in ECHOES)}')
    busy = busy_factor([m['median_ms'] for m in modes.values()],
                       [m['median_cpu_ms'] for m in modes.values()]) if modes else None
    if modes:
        g, nc = modes['generate'], modes['scored_nocache']
        findings.append(f'free JSON generation takes {g["x_scored_cached"]:.1f}x the time of scored '
                        f'choice with the prefix cache ({g["median_ms"]:.0f} vs '
                        f'{modes["scored_cached"]["median_ms"]:.0f} ms; CPU time '
                        f'{g["cpu_x_scored_cached"]:.1f}x) and gave a usable answer in '
                        f'{round(g["usable_share"] * g["n"])}/{g["n"]} situation(s); scoring without '
                        f'the prefix cache takes {nc["x_scored_cached"]:.1f}x (CPU '
                        f'{nc["cpu_x_scored_cached"]:.1f}x)')
        if busy > 1.5:
            notes.append(f'This machine was busy: model calls took {busy:.1f}x their CPU time in wall '
                         'time (one torch thread: about 1x when idle); trust the CPU-time ratios.')
        tables.append(Table(f'LLM answering modes, same model ({model}), same {g["n"]} situation(s): '
                            'ratios to scored choice + prefix cache',
                            ['mode', 'n', 'median ms', 'x scored + cache', 'CPU ms', 'CPU x scored + cache',
                             'usable answers'],
                            [[name, modes[k]['n'], modes[k]['median_ms'], modes[k]['x_scored_cached'],
                              modes[k]['median_cpu_ms'], modes[k]['cpu_x_scored_cached'],
                              f'{modes[k]["usable_share"]:.0%}'] for k, name in MODES]))
    notes = [
        'The real decision node (llm_agent_brain.decision_node.DecisionNode) runs in this process '
        f'on the executor of its own process (its COMPONENT: {threads} thread(s)) with a bare echo '
        'node serving the same Decide type; the fast paths\' client is a process of its own '
        '(llm_agent_bench.decide_client), so the node has this process to itself, as under '
        '`llm-agent up`; the LLM row\'s client is a node in this process. All over Fast DDS on '
        'loopback. Parameters: the config\'s brain.yaml, with data_dir a temporary folder, '
        'cache_ttl_s 86400 (cached answers outlive the run), retrain_every_n 100000 (the tree is '
        'trained once, before measuring), decision_timeout_s 300 (a slow LLM answer on a busy '
        'machine is timed, not turned into a fallback) and execute_decisions false (no actuation).',
        f'Stand-in: the tree and the cache are warmed through the node\'s own pipeline by a scripted '
        f'backend (forward when clear ahead, else turn to the open side), {warm_n} decisions for '
        f'"{TREE_INSTRUCTION}" (the tree is trained on them) and {warm_n} for "{CACHE_INSTRUCTION}" '
        f'(after training, so only the cache knows it; {n_cached} cached); the real model would '
        'take minutes to produce as many. The LLM row then swaps in the backend the node builds '
        'from its parameters (the packaged model), clears the caches before each call so the '
        'model decides, and does not count the first call (it builds the prefix cache).',
        'The answering modes are timed on the loaded backend directly (no ROS), the three modes in '
        'turn for each situation; CPU ms is the deciding thread\'s CPU time, which load from other '
        'processes does not inflate; "usable" = an allowed skill with usable parameters.',
    ] + notes
    data = {'paths': paths, 'modes': modes, 'llm_backend': llm_info, 'sources_seen': seen,
            'node_executor_threads': threads,
            'llm_busy_factor': busy,
            'rounds': rounds, 'warm_decisions': warm_n, 'cached_situations': n_cached,
            'pipeline': {k: v for k, v in stats.items()
                         if k.startswith(('tree_', 'exact_', 'semantic_', 'decisions_', 'llm_share'))}}
    return Section('decision_latency', 'Decision latency by path',
                   'a bare rclpy service echo of the same Decide type in a process of its own '
                   '(the floor between two processes)',
                   tables=tables, plots=[_plot(ctx, paths, modes)], findings=findings, notes=notes,
                   data=data)
