"""Section 6: cost as the work grows, one curve per load: image size, camera rate, robots.

Image size and camera rate run the world and the perception nodes only (the brain does not see
images); robots run complete graphs, one namespace each, on this machine. Each curve's baseline
is its smallest point, measured in the same run; the 640x480 30 Hz window is a point of both the
size and the rate curve.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from typing import Any, Dict, List, Sequence, Tuple

from . import graph_probe as gp
from .core import BenchContext, Section, Table, figure, ratio_or_none, save_plot

CHAIN = gp.PERCEPTION                       # the nodes the image size and rate curves load
FULL = ('sim', 'perception', 'brain', 'actuation')
SIZE_RATE_HZ = 30.0


def run(ctx: BenchContext) -> Section:
    window_s = ctx.pick(4.0, 20.0)
    sizes = ctx.pick([(320, 240), (640, 480)], [(320, 240), (640, 480), (1280, 720)])
    rates = ctx.pick([5.0, SIZE_RATE_HZ], [5.0, 10.0, 15.0, SIZE_RATE_HZ])
    robots = ctx.pick(2, 3)
    size_points, rate_points = perception_curves(ctx, sizes, rates, window_s)
    robot_points = robot_curve(ctx, robots, window_s)
    data = {'window_s': window_s, 'image_size': size_points, 'camera_rate': rate_points,
            'robots': robot_points}
    return report(ctx, data)


# ---------------------------------------------------------------- measuring

def perception_point(rec: gp.Records, t0: float, t1: float, usage: Dict[str, Dict[str, float]],
                     rate_hz: float) -> Dict[str, Any]:
    frames = gp.frame_counts(rec, t0, t1, rate_hz)
    chain_cpu = sum(usage[n]['cpu_percent'] for n in CHAIN)
    out_hz = frames['image_compressor_out_hz']
    return {'cpu_percent': {n: usage[n]['cpu_percent'] for n in CHAIN},
            'chain_cpu_percent': chain_cpu,
            'chain_pss_mb': sum(usage[n]['pss_mb_mean'] for n in CHAIN),
            'frames_hz': frames,
            # CPU-milliseconds the chain spends per frame that made it through: the cost
            # per frame stays comparable when a point saturates and drops frames.
            'chain_cpu_ms_per_frame': ratio_or_none(10.0 * chain_cpu, out_hz or None),
            'capture_to_observation_ms': gp.spread(gp.observation_ages(rec, t0, t1))}


def perception_curves(ctx: BenchContext, sizes: Sequence[Tuple[int, int]],
                      rates: Sequence[float], window_s: float
                      ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    size_points, rate_points = [], []
    for width, height in sizes:
        # The rate curve runs on the 640x480 graph; its 30 Hz window is also the size point.
        point_rates = rates if (width, height) == (640, 480) else [SIZE_RATE_HZ]
        params = {'sim_world': {'image_width': width, 'image_height': height,
                                'camera_rate_hz': point_rates[0]}}
        graph = gp.RunningGraph(CHAIN, params=params, config_dir=ctx.config_dir, log=ctx.log)
        probe = None
        try:
            probe = gp.Probe([''])
            probe.wait_for(lambda p=probe: p.streaming('', CHAIN[1:]), 120, 'perception', [graph])
            # Read the compressed image and depth as a viewer would: the compressors are lazy
            # and encode nothing for nobody (the curves measured no compression before).
            probe.read_compressed('', True)
            time.sleep(2.0)   # past start-up: discovery, first frames through every node
            for rate in point_rates:
                probe.set_param('', 'sim_world', 'camera_rate_hz', rate)
                time.sleep(1.0)
                ctx.log(f'[scaling] {width}x{height} camera {rate:g} Hz for {window_s:g} s')
                t0, t1, usage = gp.measure(probe, [graph], window_s)
                point = perception_point(probe.snapshot(''), t0, t1, usage, rate)
                point.update(width=width, height=height, camera_rate_hz=rate)
                if rate == SIZE_RATE_HZ:
                    size_points.append(dict(point))   # copies: each curve adds its own ratios
                if (width, height) == (640, 480):
                    rate_points.append(dict(point))
        finally:
            if probe is not None:
                probe.close()
            graph.stop()
    add_ratios(size_points, ('chain_cpu_percent', 'chain_cpu_ms_per_frame', 'chain_pss_mb'))
    add_ratios(rate_points, ('chain_cpu_percent', 'chain_cpu_ms_per_frame', 'chain_pss_mb'))
    return size_points, rate_points


def robot_curve(ctx: BenchContext, robots: int, window_s: float) -> List[Dict[str, Any]]:
    """Start every robot at once (the brains load in parallel), measure with all of them, then
    stop one at a time and measure again: the same processes at each point, one model load."""
    namespaces = [f'robot{i + 1}' for i in range(robots)]
    brain_dirs = [tempfile.mkdtemp(prefix='llm_agent_bench_brain_') for _ in namespaces]
    ctx.log(f'[scaling] starting {robots} complete graphs and waiting for their brains ...')
    graphs: List[gp.RunningGraph] = []
    probe = None
    points = []
    try:
        for ns, d in zip(namespaces, brain_dirs):
            graphs.append(gp.RunningGraph(FULL, namespace=ns, config_dir=ctx.config_dir,
                                          log=ctx.log, params={'decision_node': {'data_dir': d}}))
        probe = gp.Probe(namespaces)
        probe.wait_for(lambda: all(probe.brain_ready(ns) for ns in namespaces),
                       ctx.pick(300, 900), 'the brains', graphs)
        while graphs:
            for ns in namespaces[:len(graphs)]:
                probe.reset_world(ns)
            time.sleep(1.0)
            ctx.log(f'[scaling] {len(graphs)} robot(s) for {window_s:g} s')
            t0, t1, usage = gp.measure(probe, graphs, window_s)
            points.append(robot_point(probe, namespaces[:len(graphs)], t0, t1, usage))
            graphs.pop().stop()
    finally:
        if probe is not None:
            probe.close()
        for g in graphs:
            g.stop()
        for d in brain_dirs:
            shutil.rmtree(d, ignore_errors=True)
    points.reverse()
    add_ratios(points, ('cpu_percent', 'pss_mb', 'rss_mb', 'decision_p95_ms',
                        'capture_to_observation_p50_ms', 'e2e_p50_ms'))
    return points


def robot_point(probe: gp.Probe, namespaces: Sequence[str], t0: float, t1: float,
                usage: Dict[str, Dict[str, float]]) -> Dict[str, Any]:
    recs = [probe.snapshot(ns) for ns in namespaces]
    decisions = [d for r in recs for d in r.decisions if t0 <= d[0] < t1]
    chains = [c for r in recs for c in gp.chains(r, t0, t1)]
    ages = [a for r in recs for a in gp.observation_ages(r, t0, t1)]
    sources: Dict[str, int] = {}
    for d in decisions:
        sources[d[2]] = sources.get(d[2], 0) + 1
    brains = [u for name, u in usage.items() if name.endswith('decision_node')]
    return {'robots': len(namespaces), 'processes': len(usage),
            'cpu_percent': sum(u['cpu_percent'] for u in usage.values()),
            'brain_cpu_percent': sum(u['cpu_percent'] for u in brains),
            'pss_mb': sum(u['pss_mb_mean'] for u in usage.values()),
            'rss_mb': sum(u['rss_mb_mean'] for u in usage.values()),
            'decision_p95_ms': gp.spread([d[3] for d in decisions], (95,))['p95'],
            'decisions': len(decisions), 'decisions_by_source': sources,
            'capture_to_observation_p50_ms': gp.spread(ages)['p50'],
            'e2e_p50_ms': gp.spread([c['e2e'] for c in chains])['p50'], 'e2e_n': len(chains)}


def add_ratios(points: List[Dict[str, Any]], keys: Sequence[str]) -> None:
    """`<key>_ratio` on every point: its value over the first (smallest) point's."""
    for p in points:
        for k in keys:
            p[f'{k}_ratio'] = ratio_or_none(p[k], points[0][k]) if points else None


# ---------------------------------------------------------------- report

def report(ctx: BenchContext, data: Dict[str, Any]) -> Section:
    sizes, rates, robots = data['image_size'], data['camera_rate'], data['robots']
    size_table = Table(
        f'Image size, camera {SIZE_RATE_HZ:g} Hz: CPU % of a core per node (ratio to the '
        f'{sizes[0]["width"]}x{sizes[0]["height"]} point)',
        ['image'] + list(CHAIN) + ['chain', 'ratio', 'frames out/s', 'CPU ms per frame', 'ratio'],
        [[f'{p["width"]}x{p["height"]}'] + [p['cpu_percent'][n] for n in CHAIN]
         + [p['chain_cpu_percent'], p['chain_cpu_percent_ratio'],
            p['frames_hz']['image_compressor_out_hz'], p['chain_cpu_ms_per_frame'],
            p['chain_cpu_ms_per_frame_ratio']] for p in sizes])
    rate_table = Table(
        f'Camera rate, 640x480: CPU % of a core per node (ratio to the {rates[0]["camera_rate_hz"]:g} '
        'Hz point)',
        ['camera Hz'] + list(CHAIN) + ['chain', 'ratio', 'frames out/s', 'capture->obs p50 ms'],
        [[p['camera_rate_hz']] + [p['cpu_percent'][n] for n in CHAIN]
         + [p['chain_cpu_percent'], p['chain_cpu_percent_ratio'],
            p['frames_hz']['image_compressor_out_hz'], p['capture_to_observation_ms']['p50']]
         for p in rates])
    robot_table = Table(
        'Robots (complete graphs, one namespace each) on this machine (ratio to 1 robot)',
        ['robots', 'CPU % total', 'ratio', 'brains CPU %', 'PSS MB', 'ratio', 'decisions',
         'decision p95 ms', 'capture->obs p50 ms', 'ratio', 'e2e p50 ms (n)'],
        [[p['robots'], p['cpu_percent'], p['cpu_percent_ratio'], p['brain_cpu_percent'],
          p['pss_mb'], p['pss_mb_ratio'], p['decisions'], p['decision_p95_ms'],
          p['capture_to_observation_p50_ms'], p['capture_to_observation_p50_ms_ratio'],
          None if p['e2e_p50_ms'] is None else f'{p["e2e_p50_ms"]:.0f} ({p["e2e_n"]})'] for p in robots])
    return Section('scaling', 'Scaling', 'the smallest point of each curve, measured in the same run',
                   tables=[size_table, rate_table, robot_table], plots=[plot(ctx, data)],
                   findings=findings(data), notes=NOTES, data=data)


NOTES = [
    'Image size and camera rate: the world and the perception nodes only (sim_world renders the '
    'camera; it stands in for a camera driver). CPU is % of one core over the window; the chain '
    'is the sum over these nodes. The probe reads the compressed image and depth (the '
    'compressors encode only for a reader). CPU ms per frame = chain CPU / compressed frames out.',
    'Robots: each robot is a complete graph in its own namespace with its own brain (a fresh '
    'data_dir each), all started together; the points are measured with all of them running, '
    'then after stopping one at a time. Memory is PSS (shared pages split among the processes '
    'sharing them, so it adds up; USS would drop as more brains share libraries). Decision '
    'latency is the brain\'s own (observation in -> decision out); e2e is as in section 5.',
    'A 2-core machine saturates: past that point CPU stops growing and frames are dropped '
    'instead (frames out/s), so read CPU together with the delivered rate.',
]


def findings(data: Dict[str, Any]) -> List[str]:
    sizes, rates, robots = data['image_size'], data['camera_rate'], data['robots']
    out = []
    s0, s1 = sizes[0], sizes[-1]
    px = (s1['width'] * s1['height']) / (s0['width'] * s0['height'])
    out.append(f'Image size {s0["width"]}x{s0["height"]} -> {s1["width"]}x{s1["height"]} '
               f'({px:.0f}x the pixels): perception chain CPU {s0["chain_cpu_percent"]:.0f} -> '
               f'{s1["chain_cpu_percent"]:.0f} % ({_x(s1["chain_cpu_percent_ratio"])}), CPU per '
               f'delivered frame {_x(s1["chain_cpu_ms_per_frame_ratio"])}.')
    r0, r1 = rates[0], rates[-1]
    out.append(f'Camera {r0["camera_rate_hz"]:g} -> {r1["camera_rate_hz"]:g} Hz: chain CPU '
               f'{r0["chain_cpu_percent"]:.0f} -> {r1["chain_cpu_percent"]:.0f} % '
               f'({_x(r1["chain_cpu_percent_ratio"])} for {r1["camera_rate_hz"] / r0["camera_rate_hz"]:.0f}x '
               f'the frames), compressed frames out {_f(r1["frames_hz"]["image_compressor_out_hz"])}/s.')
    b0, b1 = robots[0], robots[-1]
    out.append(f'1 -> {b1["robots"]} robots: total CPU {b0["cpu_percent"]:.0f} -> '
               f'{b1["cpu_percent"]:.0f} % ({_x(b1["cpu_percent_ratio"])}), memory (PSS) '
               f'{b0["pss_mb"]:.0f} -> {b1["pss_mb"]:.0f} MB ({_x(b1["pss_mb_ratio"])}), '
               f'decisions in the window {b0["decisions"]} -> {b1["decisions"]} (p95 '
               f'{_f(b0["decision_p95_ms"])} -> {_f(b1["decision_p95_ms"])} ms), '
               f'capture->observation p50 {_f(b0["capture_to_observation_p50_ms"])} -> '
               f'{_f(b1["capture_to_observation_p50_ms"])} ms.')
    return out


def _x(v: Any) -> str:
    return 'n/a' if v is None else f'{v:.2f}x'


def _f(v: Any) -> str:
    return 'n/a' if v is None else f'{v:.0f}'


def plot(ctx: BenchContext, data: Dict[str, Any]) -> str:
    fig, axes = figure(1, 3, figsize=(13, 4))
    sizes, rates, robots = data['image_size'], data['camera_rate'], data['robots']
    curves = (
        (axes[0], [p['width'] * p['height'] / 1e6 for p in sizes], sizes,
         'image size (megapixels), camera 30 Hz'),
        (axes[1], [p['camera_rate_hz'] for p in rates], rates, 'camera rate (Hz), 640x480'),
    )
    for ax, x, points, xlabel in curves:
        ax.plot(x, [p['chain_cpu_percent'] for p in points], 'o-', label='perception chain CPU %')
        for n in CHAIN:
            ax.plot(x, [p['cpu_percent'][n] for p in points], '.--', lw=1, label=n)
        frames = [p['frames_hz']['image_compressor_out_hz'] or 0.0 for p in points]
        ax2 = ax.twinx()
        ax2.plot(x, frames, 's:', color='k', label='compressed frames out/s (right)')
        ax2.set_ylabel('frames/s')
        # Headroom: the curves stay under the legend (CPU) and in the lower half (frames).
        ax.set_ylim(0, 1.9 * max([p['chain_cpu_percent'] for p in points] + [1.0]))
        ax2.set_ylim(0, 2.2 * max(frames + [1.0]))
        ax.set_xlabel(xlabel)
        ax.set_ylabel('CPU % of one core')
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc='upper left',
                  ncol=2)
    ax = axes[2]
    n = [p['robots'] for p in robots]
    ax.plot(n, [p['cpu_percent'] for p in robots], 'o-', label='total CPU %')
    ax.plot(n, [p['brain_cpu_percent'] for p in robots], '.--', label='brains CPU %')
    ax.set_xlabel('robots (complete graphs)')
    ax.set_ylabel('CPU % of one core')
    ax.set_xticks(n)
    ax2 = ax.twinx()
    ax2.plot(n, [p['pss_mb'] for p in robots], 's:', color='k', label='PSS MB (right)')
    ax2.set_ylabel('MB')
    ax.legend(fontsize=7, loc='upper left')
    ax2.legend(fontsize=7, loc='lower right')
    fig.suptitle('Cost as the work grows (baseline: the first point of each curve)')
    return save_plot(ctx, fig, 'scaling_curves.png')
