"""Benchmark the brain's fast path: `agent/decide` round trips answered by rule, tree and cache.

Each is printed as a ratio to a bare rclpy service echo round trip (same service type, same
nodes, same executor: the floor a ROS service cannot beat) and to the LLM path (the real
SmolLM2 backend through the same service), all measured side by side in this one run.

The `agent/decide` server here is a thin in-process stand-in that calls
`DecisionPipeline.fast_decide()` / `llm_decide()` exactly as `decision_node` does; it is used
because it lets the echo and the decide services live on one node (a like-for-like floor).

    .venv/bin/python benchmarks/bench_fastpath.py [--rounds 300] [--llm-calls 5] [--no-llm]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')  # DDS stays on this machine
os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 100 + 101))
os.environ.setdefault('HF_HUB_OFFLINE', '1')

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))


class PolicyBackend:
    """A scripted LLM used only to warm the tree and the cache quickly (the LLM path below uses
    the real model)."""

    name = 'policy'

    def choose(self, situation, catalog):
        from llm_agent_brain.types import Choice
        f = situation.features
        if f['front_range'] > 1.5:
            return Choice('move_forward', {'distance': 0.5, 'speed': 0.3})
        return Choice('turn', {'angle': 1.0 if f['left_range'] > f['right_range'] else -1.0})


def features(rng, **kw):
    f = dict(front_range=rng.uniform(0.5, 8), front_left_range=8.0, front_right_range=8.0,
             left_range=rng.uniform(0.5, 8), right_range=rng.uniform(0.5, 8), rear_range=8.0,
             goal_distance=5.0, goal_bearing=0.0, speed=0.2, yaw_rate=0.0)
    f.update(kw)
    return f


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rounds', type=int, default=300)
    ap.add_argument('--llm-calls', type=int, default=5)
    ap.add_argument('--no-llm', action='store_true', help='skip the real model (no LLM ratios)')
    args = ap.parse_args()

    import rclpy
    from llm_agent_actuation.catalog import load_catalog
    from llm_agent_brain.pipeline import DecisionPipeline, FastPathConfig
    from llm_agent_brain.types import Situation
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    from llm_agent_interfaces.msg import Decision, Observation
    from llm_agent_interfaces.srv import Decide

    catalog = load_catalog(os.path.join(ROOT, 'config', 'skills.yaml'))
    data_dir = tempfile.mkdtemp(prefix='bench_fastpath_')
    pipeline = DecisionPipeline(catalog, FastPathConfig(
        rules_file=os.path.join(ROOT, 'config', 'rules.yaml'), data_dir=data_dir,
        retrain_every_n=100000, tree_min_samples=5), PolicyBackend())
    # Warm-up episode with the scripted policy: the tree for "explore", the cache for "patrol".
    # The tree is trained before "patrol" is seen, so "patrol" is answered by the cache only.
    rng = random.Random(0)
    for instruction in ('explore the room', 'patrol the corridor'):
        for _ in range(300):
            s = Situation(features(rng), '', instruction)
            pipeline.fast_decide(s) or pipeline.llm_decide(s)
        if instruction.startswith('explore'):
            pipeline.train_now()

    context = Context()
    rclpy.init(context=context)
    server = rclpy.create_node('bench_decide_server', context=context)
    client_node = rclpy.create_node('bench_decide_client', context=context)
    sources_seen = {}

    def on_echo(req, resp):
        return resp

    def on_decide(req, resp):
        t0 = time.perf_counter()
        obs = req.observation
        s = Situation(dict(zip(obs.feature_names, (float(v) for v in obs.feature_values))),
                      obs.summary, req.instruction)
        c = pipeline.fast_decide(s) or pipeline.llm_decide(s)
        d = Decision(header=obs.header, skill=c.skill, params_json=json.dumps(c.params),
                     confidence=float(c.confidence), source=c.source, rationale=c.rationale)
        d.latency_ms = (time.perf_counter() - t0) * 1000.0
        resp.decision = d
        return resp

    server.create_service(Decide, 'bench/echo', on_echo)
    server.create_service(Decide, 'agent/decide', on_decide)
    srv_exec = SingleThreadedExecutor(context=context)
    srv_exec.add_node(server)
    spin = threading.Thread(target=srv_exec.spin, daemon=True)
    spin.start()
    cli_exec = SingleThreadedExecutor(context=context)
    cli_exec.add_node(client_node)
    echo_cli = client_node.create_client(Decide, 'bench/echo')
    decide_cli = client_node.create_client(Decide, 'agent/decide')
    for c in (echo_cli, decide_cli):
        if not c.wait_for_service(timeout_sec=10.0):
            print('service did not appear', file=sys.stderr)
            return 1

    def request(f, instruction):
        req = Decide.Request()
        req.observation = Observation(feature_names=list(f), feature_values=[float(v) for v in f.values()])
        req.instruction = instruction
        return req

    def call(cli, req):
        t0 = time.perf_counter()
        fut = cli.call_async(req)
        cli_exec.spin_until_future_complete(fut, timeout_sec=120.0)
        dt = time.perf_counter() - t0
        res = fut.result()
        if cli is decide_cli:
            sources_seen.setdefault(res.decision.source, 0)
            sources_seen[res.decision.source] += 1
        return dt, res

    cases = {
        'echo': (echo_cli, lambda: request(features(rng), 'explore the room'), None),
        'rule': (decide_cli, lambda: request(features(rng, front_range=0.3), 'explore the room'), 'rule'),
        'tree': (decide_cli, lambda: request(features(rng, front_range=6.0), 'explore the room'), 'tree'),
        'cache': (decide_cli, lambda: request(features(rng, front_range=6.0), 'patrol the corridor'),
                  'cache'),
    }
    times = {k: [] for k in cases}
    wrong = {k: 0 for k in cases}
    for cli, make, _ in cases.values():   # warm the DDS paths
        for _ in range(10):
            call(cli, make())
    for _ in range(args.rounds):               # interleaved so that load changes hit all alike
        for k, (cli, make, want) in cases.items():
            dt, res = call(cli, make())
            times[k].append(dt)
            if want and res.decision.source != want:
                wrong[k] += 1
    med = {k: statistics.median(v) for k, v in times.items()}

    llm_med = None
    llm_note = 'skipped (--no-llm)'
    if not args.no_llm:
        try:
            from llm_agent_brain.backends import make_backend
            backend = make_backend('transformers', quantization='fp32')
            t0 = time.perf_counter()
            backend.load()
            load_s = time.perf_counter() - t0
            pipeline.backend = backend
            llm_times = []
            for i in range(args.llm_calls + 1):
                pipeline.clear_cache()   # force the LLM: unique instruction, no tree, empty caches
                dt, res = call(decide_cli, request(features(rng, front_range=6.0), f'look around, take {i}'))
                if res.decision.source != 'llm':
                    wrong.setdefault('llm', 0)
                    wrong['llm'] = wrong.get('llm', 0) + 1
                if i:
                    llm_times.append(dt)   # the first call pays one-off costs
            llm_med = statistics.median(llm_times)
            llm_note = (f'SmolLM2-135M fp32 via TransformersBackend (load {load_s:.1f} s, '
                        f'{args.llm_calls} calls)')
        except Exception as exc:  # noqa: BLE001 - the fast-path ratios are still worth printing
            llm_note = f'unavailable: {exc}'

    print(f'# agent/decide round trips, median of {args.rounds} interleaved calls each '
          f'(2-core machine: ratios, not absolute times)')
    print(f'{"path":8} {"median_ms":>10} {"x echo":>8} {"/ LLM":>10}  wrong_source')
    for k in ('echo', 'rule', 'tree', 'cache'):
        vs_llm = f'{med[k] / llm_med:10.5f}' if llm_med else f'{"n/a":>10}'
        print(f'{k:8} {med[k] * 1000:10.3f} {med[k] / med["echo"]:8.2f} {vs_llm}  {wrong.get(k, 0)}')
    if llm_med:
        print(f'{"llm":8} {llm_med * 1000:10.1f} {llm_med / med["echo"]:8.1f} {1.0:10.5f}  '
              f'{wrong.get("llm", 0)}')
    print(f'# LLM path: {llm_note}')
    print(f'# sources seen: {sources_seen}')
    print('# pipeline stats: ' + json.dumps({k: round(v, 3) for k, v in pipeline.stats().items()
                                               if k.startswith(('exact_hit_rate', 'semantic_hit_rate',
                                                                'tree_', 'decisions_', 'llm_share'))}))
    pipeline.close()
    srv_exec.shutdown()
    spin.join(timeout=10.0)
    server.destroy_node()
    client_node.destroy_node()
    rclpy.try_shutdown(context=context)
    return 0


if __name__ == '__main__':
    sys.exit(main())
