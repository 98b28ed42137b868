"""Section 5: each node's CPU and memory with the camera at 30 Hz 640x480 and the scan at 10 Hz,
end-to-end latency from a camera frame to the cmd_vel it causes, and frames dropped.

The whole graph runs as `llm-agent up` starts it (real nodes, the packaged model, a fresh brain
folder); the baseline is the same graph with the camera at 10 Hz (sim.yaml's rate), in windows
alternating with the 30 Hz ones in the same run. Each window starts a new episode (sim/reset,
same seed) so the brain meets the same drive in both. In those windows the probe reads the
compressed image and depth topics (a viewer or recorder: the compressors encode only while
someone reads them); one more 30 Hz window without that reader shows the graph as the agent
alone runs it. LLM decisions (`agent/decide` with the caches cleared) are timed twice in the same
run: the brain alone (no other node), then inside the whole graph at 30 Hz.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any, Dict, List, Tuple

from . import graph_probe as gp
from .core import BenchContext, Section, Table, figure, ratio_or_none, save_plot

LOAD_HZ, BASE_HZ = 30.0, 10.0
NO_READER = 'no reader'                        # the 30 Hz window nobody reads compressed topics in
# The nodes issue 15's CPU target counts: perception (not the world) and actuation.
WORKERS = ('scan_filter', 'image_compressor', 'depth_compressor', 'observer', 'skill_server')
NODES = gp.PERCEPTION + ('decision_node', 'skill_server')


def llm_rounds(probe: 'gp.Probe', n: int) -> List[float]:
    """ms of n LLM-answered `agent/decide` calls over section 2's situations (warm-up first)."""
    from llm_agent_brain.decision_types import Situation

    from .model_bench import SITUATIONS
    # An instruction of its own: the graph's brain has learnt a tree for the one it drives by,
    # and the tree, not the LLM, would answer.
    # One instruction for all: a decision under a new one builds its prompt cache (seconds), and
    # the brain keeps only a few; that first call is section 2's figure, not this one.
    sits = [Situation(s.features, s.summary, 'bench: ' + s.instruction) for s in SITUATIONS
            if s.instruction == SITUATIONS[0].instruction]
    for sit in sits[:1]:                  # the instruction's prompt cache, built once
        probe.llm_decision_ms('', sit)
    out, sources = [], {}
    for i in range(n):
        ms, source = probe.llm_decision_ms('', sits[i % len(sits)])
        sources[source] = sources.get(source, 0) + 1
        if source == 'llm':
            out.append(ms)
    if not out:
        raise RuntimeError(f'no LLM answer among {n} decisions: {sources}')
    return out


def brain_alone(ctx: BenchContext, n: int) -> List[float]:
    """LLM decisions of the brain with no other node running: the baseline of the graph's."""
    brain_dir = tempfile.mkdtemp(prefix='llm_agent_bench_brain_')
    # No world, so no /clock: the brain runs on wall time.
    graph = gp.RunningGraph(('brain',), params={'decision_node': {'data_dir': brain_dir}},
                            config_dir=ctx.config_dir, log=ctx.log, use_sim_time=False)
    probe = None
    try:
        probe = gp.Probe([''])
        probe.wait_for(lambda: probe.brain_ready(''), ctx.pick(240, 600), 'the brain', [graph])
        ctx.log(f'[resources] {n} LLM decisions, the brain alone ...')
        return llm_rounds(probe, n)
    finally:
        if probe is not None:
            probe.close()
        graph.stop()
        shutil.rmtree(brain_dir, ignore_errors=True)


# The one-process comparison runs the graph without the brain: its LLM calls come in bursts that
# would swamp a difference of a few percent; the brain's model is in memory either way.
MODE_GROUPS = ('sim', 'perception', 'actuation')
MODES = ('per_process', 'one_process')


def process_modes(ctx: BenchContext, seconds: float) -> Dict[str, Any]:
    """The graph without the brain, camera at 30 Hz and the compressed topics read, started as
    a process per node and as one process (`llm-agent up --one-process`), in turn (ABBA):
    CPU and memory summed over its processes, and the compressed frames it delivered."""
    runs: Dict[str, List[Dict[str, float]]] = {m: [] for m in MODES}
    for mode in (MODES + MODES[::-1]):
        graph = gp.RunningGraph(MODE_GROUPS, params={'sim_world': {'camera_rate_hz': LOAD_HZ}},
                                config_dir=ctx.config_dir, log=ctx.log,
                                one_process=mode == 'one_process')
        probe = None
        try:
            probe = gp.Probe([''])
            probe.wait_for(lambda p=probe: p.streaming('', WORKERS[:-1]), 120, 'the graph', [graph])
            probe.read_compressed('', True)
            time.sleep(2.0)
            ctx.log(f'[resources] {mode.replace("_", " ")}: camera {LOAD_HZ:g} Hz for {seconds:g} s')
            t0, t1, usage = gp.measure(probe, [graph], seconds)
            rec = probe.snapshot('')
        finally:
            if probe is not None:
                probe.close()
            graph.stop()
        encoded = gp.diag_delta(rec.diags, 'image_compressor', 'messages_out', t0, t1)
        runs[mode].append({
            'cpu_percent': sum(u['cpu_percent'] for u in usage.values()),
            'pss_mb_mean': sum(u['pss_mb_mean'] for u in usage.values()),
            'uss_mb_mean': sum(u['uss_mb_mean'] for u in usage.values()),
            'processes': len(usage),
            'compressed_hz': encoded[0] / (encoded[2] - encoded[1]) if encoded and
            encoded[2] > encoded[1] else None})
    out: Dict[str, Any] = {m: {k: _mean_or_none([r[k] for r in runs[m]]) for k in runs[m][0]}
                           for m in MODES}
    out['ratio_one_to_per'] = {k: ratio_or_none(out['one_process'][k], out['per_process'][k])
                               for k in ('cpu_percent', 'pss_mb_mean', 'uss_mb_mean')}
    out['nodes'] = list(MODE_GROUPS)
    return out


def run(ctx: BenchContext) -> Section:
    window_s = ctx.pick(6.0, 30.0)
    n_llm = ctx.pick(3, 16)
    llm_alone = brain_alone(ctx, n_llm)
    order = ctx.pick([BASE_HZ, LOAD_HZ], [BASE_HZ, LOAD_HZ, LOAD_HZ, BASE_HZ])  # ABBA: no drift
    brain_dir = tempfile.mkdtemp(prefix='llm_agent_bench_brain_')
    params = {'sim_world': {'camera_rate_hz': BASE_HZ, 'scan_rate_hz': 10.0},
              'decision_node': {'data_dir': brain_dir}}
    ctx.log('[resources] starting the graph and waiting for the brain to load its model ...')
    t_start = time.monotonic()
    graph = gp.RunningGraph(('sim', 'perception', 'brain', 'actuation'), params=params,
                            config_dir=ctx.config_dir, log=ctx.log)
    probe = None
    windows: List[Tuple[float, float, float, Dict[str, Dict[str, float]]]] = []
    try:
        probe = gp.Probe([''])
        probe.wait_for(lambda: probe.brain_ready(''), ctx.pick(240, 600), 'the brain', [graph])
        ready_s = time.monotonic() - t_start
        probe.read_compressed('', True)
        for rate in order:
            probe.set_param('', 'sim_world', 'camera_rate_hz', rate)
            probe.reset_world('')
            time.sleep(1.0)   # let the new rate reach every node
            ctx.log(f'[resources] camera {rate:g} Hz for {window_s:g} s')
            windows.append((rate,) + gp.measure(probe, [graph], window_s))
        probe.read_compressed('', False)
        probe.set_param('', 'sim_world', 'camera_rate_hz', LOAD_HZ)
        probe.reset_world('')
        time.sleep(2.5)   # the compressors notice within a second that nobody reads them
        ctx.log(f'[resources] camera {LOAD_HZ:g} Hz, nobody reading the compressed topics, '
                f'for {window_s:g} s')
        windows.append((NO_READER,) + gp.measure(probe, [graph], window_s))
        probe.read_compressed('', True)
        ctx.log(f'[resources] {n_llm} LLM decisions inside the graph at {LOAD_HZ:g} Hz ...')
        llm_graph = llm_rounds(probe, n_llm)
        rec = probe.snapshot('')
    finally:
        if probe is not None:
            probe.close()
        graph.stop()
        shutil.rmtree(brain_dir, ignore_errors=True)
    data = summarise(rec, windows)
    data.update(window_s=window_s, windows_per_rate=len(order) // 2, brain_ready_s=ready_s,
                image=[640, 480], scan_rate_hz=10.0,
                llm_ms={'alone': gp.spread(llm_alone, (50, 95)),
                        'graph_30hz': gp.spread(llm_graph, (50, 95))})
    data['llm_ms']['ratio_p50'] = ratio_or_none(data['llm_ms']['graph_30hz']['p50'],
                                                data['llm_ms']['alone']['p50'])
    if not ctx.quick:   # the tests start the graph both ways (tests/test_cli_up.py)
        data['process_modes'] = process_modes(ctx, window_s)
    return report(ctx, data)


def summarise(rec: gp.Records, windows: List[Tuple[float, float, float, Dict[str, Any]]]
              ) -> Dict[str, Any]:
    """Figures per camera rate ('load' 30 Hz, 'baseline' 10 Hz) and their ratios."""
    out: Dict[str, Any] = {'camera_rate_hz': {'load': LOAD_HZ, 'baseline': BASE_HZ}}
    per: Dict[str, Dict[str, Any]] = {}
    for key, rate in (('load', LOAD_HZ), ('baseline', BASE_HZ)):
        mine = [w for w in windows if w[0] == rate]
        chains = [c for _, t0, t1, _ in mine for c in gp.chains(rec, t0, t1)]
        frames = [gp.frame_counts(rec, t0, t1, rate) for _, t0, t1, _ in mine]
        sources: Dict[str, int] = {}
        for wall, _, source, _ in rec.decisions:
            if any(t0 <= wall < t1 for _, t0, t1, _ in mine):
                sources[source] = sources.get(source, 0) + 1
        ages = [a for _, t0, t1, _ in mine for a in gp.observation_ages(rec, t0, t1)]
        per[key] = {'usage': {n: gp.mean_usage([w[3][n] for w in mine]) for n in NODES},
                    'latency_ms': {**gp.latency_figures(chains),
                                   'capture_to_observation': gp.spread(ages)},
                    'decision_latency_ms': gp.spread([d[3] for d in rec.decisions if any(
                        t0 <= d[0] < t1 for _, t0, t1, _ in mine)], (50, 95)),
                    'frames_hz': {k: _mean_or_none([f[k] for f in frames]) for k in frames[0]},
                    'decisions_by_source': sources}
    out.update(per)
    out['ratios'] = {n: {k: ratio_or_none(per['load']['usage'][n][k], per['baseline']['usage'][n][k])
                         for k in ('cpu_percent', 'uss_mb_mean', 'rss_mb_peak')} for n in NODES}
    for key in ('load', 'baseline'):
        usage = per[key]['usage']
        per[key]['total'] = {k: sum(usage[n][k] for n in NODES)
                             for k in ('cpu_percent', 'uss_mb_mean', 'pss_mb_mean')}
    out['ratios']['total'] = {k: ratio_or_none(per['load']['total'][k], per['baseline']['total'][k])
                              for k in per['load']['total']}
    idle = [w for w in windows if w[0] == NO_READER]
    if idle:
        usage = {n: gp.mean_usage([w[3][n] for w in idle]) for n in NODES}
        out['no_reader'] = {'usage': usage,
                            'total_cpu_percent': sum(u['cpu_percent'] for u in usage.values())}
    return out


def _mean_or_none(values: List[Any]) -> Any:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def report(ctx: BenchContext, data: Dict[str, Any]) -> Section:
    load, base, ratios = data['load'], data['baseline'], data['ratios']
    idle = data.get('no_reader', {'usage': {}, 'total_cpu_percent': None})
    rows = [[n, load['usage'][n]['cpu_percent'], base['usage'][n]['cpu_percent'],
             ratios[n]['cpu_percent'], idle['usage'].get(n, {}).get('cpu_percent'),
             load['usage'][n]['uss_mb_mean'], load['usage'][n]['rss_mb_peak'],
             ratios[n]['uss_mb_mean']] for n in NODES]
    rows.append(['all nodes (USS; PSS total in results.json)', load['total']['cpu_percent'],
                 base['total']['cpu_percent'], ratios['total']['cpu_percent'],
                 idle['total_cpu_percent'], load['total']['uss_mb_mean'], None,
                 ratios['total']['uss_mb_mean']])
    usage_table = Table('Per node, camera 30 Hz 640x480 and scan 10 Hz (ratio = 30 Hz / 10 Hz '
                        'camera, same run; the probe reads the compressed topics, except in '
                        'the "nobody reads" column)',
                        ['node', 'CPU % of a core @30', 'CPU % @10', 'CPU ratio',
                         'CPU % @30, nobody reads compressed', 'USS MB mean @30',
                         'RSS MB peak @30', 'USS ratio'], rows)
    lat_rows = []
    for stage in ('capture_to_observation',) + gp.STAGES + ('e2e',):
        a, b = load['latency_ms'][stage], base['latency_ms'][stage]
        lat_rows.append([stage, a['p50'], a['p99'], a['n'], b['p50'], b['p99'],
                         ratio_or_none(a['p50'], b['p50'])])
    for source, a in load['latency_ms']['e2e_by_source'].items():
        b = base['latency_ms']['e2e_by_source'].get(source, {'p50': None, 'p99': None, 'n': 0})
        lat_rows.append([f'e2e, {source} decisions', a['p50'], a['p99'], a['n'], b['p50'],
                         b['p99'], ratio_or_none(a['p50'], b['p50'])])
    latency_table = Table('Camera frame capture -> cmd_vel, ms (probe wall clock; ratio = p50 '
                          '@30 / p50 @10)',
                          ['stage', 'p50 @30', 'p99 @30', 'n @30', 'p50 @10', 'p99 @10',
                           'p50 ratio'], lat_rows)
    frame_rows = [[label, load['frames_hz'][k], base['frames_hz'][k], where]
                  for k, label, where in FRAME_ROWS]
    frame_table = Table('Camera frames per second through the chain', ['count', '@30 Hz',
                                                                      '@10 Hz', 'counted by'],
                        frame_rows)
    llm = data.get('llm_ms')
    tables = [usage_table, latency_table, frame_table]
    if llm:
        tables.append(Table(
            'LLM decisions (agent/decide, caches cleared, section 2\'s situations), ms; baseline '
            '= the brain with no other node running, same run',
            ['where', 'n', 'p50', 'p95', 'x alone (p50)'],
            [['the brain alone', llm['alone']['n'], llm['alone']['p50'], llm['alone']['p95'], 1.0],
             [f'inside the graph, camera {LOAD_HZ:g} Hz', llm['graph_30hz']['n'],
              llm['graph_30hz']['p50'], llm['graph_30hz']['p95'], llm['ratio_p50']]]))
    modes = data.get('process_modes')
    if modes:
        q = modes['ratio_one_to_per']
        tables.append(Table(
            f'A process per node vs one process (--one-process): {", ".join(modes["nodes"])} '
            f'(no brain), camera {LOAD_HZ:g} Hz read compressed, summed over the processes; '
            'ratio = one / per process, same run (ABBA)',
            ['mode', 'processes', 'CPU % of a core', 'PSS MB', 'USS MB', 'compressed images / s'],
            [[m.replace('_', ' '), modes[m]['processes'], modes[m]['cpu_percent'],
              modes[m]['pss_mb_mean'], modes[m]['uss_mb_mean'], modes[m]['compressed_hz']]
             for m in MODES] + [['ratio', None, q['cpu_percent'], q['pss_mb_mean'],
                                 q['uss_mb_mean'], None]]))
    return Section('resources', 'Throughput and resources',
                   f'the same graph with the camera at {BASE_HZ:g} Hz (sim.yaml), windows '
                   'alternating with the 30 Hz ones',
                   tables=tables,
                   plots=[plot(ctx, data)], findings=findings(data), notes=NOTES, data=data)


FRAME_ROWS = (
    ('expected_hz', 'expected (rate x sim time)', 'sim clock'),
    ('published_hz', 'published by sim_world', "probe's camera_info count"),
    ('image_compressor_in_hz', 'received by image_compressor', 'its diagnostics messages_in'),
    ('image_compressor_out_hz', 'compressed images out', 'its diagnostics messages_out'),
    ('depth_compressor_in_hz', 'received by depth_compressor', 'its diagnostics messages_in'),
    ('depth_compressor_out_hz', 'compressed depth out', 'its diagnostics messages_out'),
    ('observer_detected_hz', 'detected on by the observer (newest, per observation)',
     'observer frames_detected'),
    ('observations_hz', 'observations out (timer, 5 Hz)', "probe's count"),
    ('sim_dropped_fraction', 'fraction the sim did not render', '1 - published / expected'),
    ('image_dropped_fraction', 'fraction not compressed', '1 - image out / published'),
    ('depth_dropped_fraction', 'fraction of depth not compressed', '1 - depth out / published'),
)

NOTES = [
    'CPU is % of one core (psutil cpu_times of each node process over the window); USS is '
    'the memory only that process holds, RSS includes shared libraries counted once per process.',
    'End-to-end: from the instant the sim clock reached the frame\'s stamp (the probe maps sim to '
    'wall time from the clock messages) to the first cmd_vel after the skill goal that the '
    'decision on the observation carrying that frame started (action status). cmd_vel and the '
    'Observation do not say which frame they come from: the frame of an observation is the newest '
    'one the probe received before it. Only decisions that start a skill goal are counted; '
    'capture_to_observation is measured for every observation, whatever the brain does.',
    'All timings come from one probe node in the benchmark process; on a 2-core machine the '
    'LLM, when called, takes the cores the other nodes need, which shows in every figure.',
    'The brain starts with an empty decision log and tree (a fresh data_dir), as `llm-agent '
    'demo` does, so the fast path has only its rules and the cache at first.',
]


def _per_frame(load: Dict[str, Any], base: Dict[str, Any]) -> str:
    """The world's CPU per published camera frame (rendering, physics and publishing; the
    marginal cost between the two rates is the frame's own)."""
    cpu = [w['usage']['sim_world']['cpu_percent'] for w in (load, base)]
    hz = [w['frames_hz']['published_hz'] for w in (load, base)]
    if not (hz[0] and hz[1]) or hz[0] <= hz[1]:
        return ''
    return (f': {cpu[0] * 10.0 / hz[0]:.1f} ms of CPU per published frame @30 Hz, '
            f'{(cpu[0] - cpu[1]) * 10.0 / (hz[0] - hz[1]):.1f} ms per extra frame between the rates')


def findings(data: Dict[str, Any]) -> List[str]:
    load, base = data['load'], data['baseline']
    perception = [n for n in gp.PERCEPTION if n != 'sim_world']
    cpu30 = sum(load['usage'][n]['cpu_percent'] for n in perception)
    cpu10 = sum(base['usage'][n]['cpu_percent'] for n in perception)
    out = [f'Perception nodes together: {cpu30:.0f} % of a core at 30 Hz vs {cpu10:.0f} % at '
           f'10 Hz ({_x(ratio_or_none(cpu30, cpu10))}); the sim world (camera renderer) '
           f'{load["usage"]["sim_world"]["cpu_percent"]:.0f} % vs '
           f'{base["usage"]["sim_world"]["cpu_percent"]:.0f} %'
           + _per_frame(load, base) + '.',
           f'Brain: {load["usage"]["decision_node"]["cpu_percent"]:.0f} % of a core and '
           f'{load["usage"]["decision_node"]["uss_mb_mean"]:.0f} MB USS (the 4-bit model); every '
           f'other node {min(load["usage"][n]["uss_mb_mean"] for n in NODES[:5] + NODES[6:]):.0f}-'
           f'{max(load["usage"][n]["uss_mb_mean"] for n in NODES[:5] + NODES[6:]):.0f} MB; '
           f'decisions @30 Hz by source {load["decisions_by_source"]}.']
    work30 = sum(load['usage'][n]['cpu_percent'] for n in WORKERS)
    idle = data.get('no_reader')
    out.append(f'Perception and actuation nodes together @30 Hz: {work30:.0f} % of a core while '
               'someone reads the compressed image and depth'
               + ('' if idle is None else
                  f', {sum(idle["usage"][n]["cpu_percent"] for n in WORKERS):.0f} % while nobody '
                  'does (the compressors then read no frames: '
                  + ', '.join(f'{n} {idle["usage"][n]["cpu_percent"]:.1f} %'
                              for n in ('image_compressor', 'depth_compressor')) + ')')
               + '; target 25 %.')
    llm = data.get('llm_ms')
    if llm and llm['alone']['n'] and llm['graph_30hz']['n']:
        out.append(f'LLM decision inside the graph @30 Hz: p50 {llm["graph_30hz"]["p50"]:.0f} ms '
                   f'against {llm["alone"]["p50"]:.0f} ms with the brain alone '
                   f'({_x(llm["ratio_p50"])}; target 1.3x).')
    e2e, age = load['latency_ms']['e2e'], load['latency_ms']['capture_to_observation']
    if age['n']:
        out.append(f'Camera frame capture -> observation @30 Hz (every observation): p50 '
                   f'{age["p50"]:.0f} ms, p99 {age["p99"]:.0f} ms (n {age["n"]}; @10 Hz p50 '
                   f'{_ms(base["latency_ms"]["capture_to_observation"]["p50"])}).')
    if e2e['n']:
        out.append(f'Camera frame -> cmd_vel @30 Hz: p50 {e2e["p50"]:.0f} ms, p99 {e2e["p99"]:.0f} '
                   f'ms over {e2e["n"]} skill goals (@10 Hz: p50 '
                   f'{_ms(base["latency_ms"]["e2e"]["p50"])}, n {base["latency_ms"]["e2e"]["n"]}).')
    else:
        out.append('No decision started a skill goal inside the 30 Hz windows: no end-to-end '
                   'figure (the brain was waiting for the LLM).')
    f = load['frames_hz']
    out.append(f'Frames @30 Hz: {_hz(f["published_hz"])} published of {_hz(f["expected_hz"])} '
               f'expected; image_compressor received {_hz(f["image_compressor_in_hz"])} and '
               f'compressed {_hz(f["image_compressor_out_hz"])} '
               f'({_pct(f["image_dropped_fraction"])} dropped), depth '
               f'{_hz(f["depth_compressor_out_hz"])} ({_pct(f["depth_dropped_fraction"])} dropped).')
    lost = transport_loss(f)
    if lost is not None:
        busy = sum(u['cpu_percent'] for u in load['usage'].values())
        cores = os.cpu_count() or 1
        why = (f'the graph used {busy:.0f} % of {cores} core(s): a callback waiting for a CPU '
               'finds its frames replaced by newer ones (sensor-data QoS keeps the newest)'
               if busy >= 85 * cores else
               'the machine had CPU to spare, so look at the DDS transport (config/fastdds.xml '
               'gives Fast DDS the shared memory these 0.9 MB frames need)')
        out.append(f'image_compressor compressed every frame it received but received only '
                   f'{100 * (1 - lost):.0f} % of those published: {why}.')
    modes = data.get('process_modes')
    if modes:
        q, per, one = modes['ratio_one_to_per'], modes['per_process'], modes['one_process']
        out.append(f'One process (--one-process) for {", ".join(modes["nodes"])}: PSS '
                   f'{one["pss_mb_mean"]:.0f} MB vs {per["pss_mb_mean"]:.0f} MB (x{q["pss_mb_mean"]:.2f}), '
                   f'CPU {one["cpu_percent"]:.0f} % vs {per["cpu_percent"]:.0f} % of a core '
                   f'(x{q["cpu_percent"]:.2f}), {_hz(one["compressed_hz"])} vs '
                   f'{_hz(per["compressed_hz"])} compressed images; the process per node stays '
                   'the default (a crash in one process stops every node).')
    return out


def transport_loss(frames: Dict[str, Any]) -> Any:
    """Fraction of published frames the image compressor never received, when it kept up with
    what it did receive (out >= 90 % of in) and missed more than 20 %; else None."""
    pub, got, out = (frames[k] for k in ('published_hz', 'image_compressor_in_hz',
                                         'image_compressor_out_hz'))
    if not pub or not got or out is None or out < 0.9 * got or got > 0.8 * pub:
        return None
    return 1.0 - got / pub


def _x(v: Any) -> str:
    return 'n/a' if v is None else f'{v:.2f}x'


def _ms(v: Any) -> str:
    return 'n/a' if v is None else f'{v:.0f} ms'


def _hz(v: Any) -> str:
    return 'n/a' if v is None else f'{v:.1f}/s'


def _pct(v: Any) -> str:
    return 'n/a' if v is None else f'{100 * v:.0f} %'


def plot(ctx: BenchContext, data: Dict[str, Any]) -> str:
    import numpy as np
    fig, (ax_cpu, ax_mem) = figure(1, 2, figsize=(11, 4))
    x = np.arange(len(NODES))
    for i, (key, label) in enumerate((('baseline', f'camera {BASE_HZ:g} Hz'),
                                      ('load', f'camera {LOAD_HZ:g} Hz'))):
        usage = data[key]['usage']
        ax_cpu.bar(x + (i - 0.5) * 0.4, [usage[n]['cpu_percent'] for n in NODES], 0.4, label=label)
        ax_mem.bar(x + (i - 0.5) * 0.4, [usage[n]['uss_mb_mean'] for n in NODES], 0.4, label=label)
    for ax, ylabel in ((ax_cpu, 'CPU % of one core'), (ax_mem, 'USS MB (log)')):
        ax.set_xticks(x)
        ax.set_xticklabels(NODES, rotation=30, ha='right', fontsize=8)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    ax_mem.set_yscale('log')
    ax_cpu.set_title('CPU per node (640x480 camera, 10 Hz scan)')
    ax_mem.set_title('Memory per node')
    return save_plot(ctx, fig, 'resources_nodes.png')
