"""The fast path in the built-in world: how many decisions still reach the LLM after a warm-up.

Two runs of `llm-agent demo` on the same seeds and generated worlds, each with a fresh brain:
  fast path  rules -> tree -> caches -> LLM (the product's default);
  LLM only   every decision goes to the LLM (no rules, no tree, no caches), as LLM-on-ROS agents
             do today. The actuation's safety guard stays on in both.
Episode 0 of each run is the warm-up; the figures are over the episodes after it.
Usage: python benchmarks/bench_agent_world.py [--episodes 4] [--seed 1]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

LLM_AGENT = os.path.join(os.path.dirname(sys.executable), 'llm-agent')


def run(label: str, episodes: int, seed: int, extra: list, workdir: str) -> dict:
    out = os.path.join(workdir, label.replace(' ', '_'))
    cmd = [LLM_AGENT, 'demo', '--episodes', str(episodes), '--seed', str(seed),
           '--world', 'generated', '--episode-timeout', '90', '--json', out + '.json'] + extra
    print(f'[bench] {label}: {" ".join(cmd[1:])}', flush=True)
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        print(result.stdout[-3000:])
        raise SystemExit(f'{label}: llm-agent demo exited with {result.returncode}')
    with open(out + '.json', encoding='utf-8') as f:
        return json.load(f)


def after_warmup(summary: dict) -> dict:
    rows = summary['per_episode'][1:]
    decisions = sum(r['decisions'] for r in rows)
    llm = sum(r['decisions_by_source'].get('llm', 0) for r in rows)
    return {'episodes': len(rows), 'successes': sum(r['success'] for r in rows),
            'collisions': sum(r['collisions'] for r in rows), 'decisions': decisions,
            'llm_calls': llm, 'llm_share': llm / decisions if decisions else float('nan'),
            'time_to_goal': [r['time_to_goal_s'] for r in rows]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--episodes', type=int, default=4, help='episodes per run, warm-up included')
    parser.add_argument('--seed', type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    with tempfile.TemporaryDirectory() as workdir:
        no_rules = os.path.join(workdir, 'no_rules.yaml')
        with open(no_rules, 'w', encoding='utf-8') as f:
            f.write('rules: []\n')
        fast = run('fast path', args.episodes, args.seed, [], workdir)
        llm_only = run('LLM only', args.episodes, args.seed, [
            '--brain-param', 'enable_tree:=false', '--brain-param', 'enable_cache:=false',
            '--brain-param', 'enable_semantic_cache:=false',
            '--brain-param', f'rules_file:={no_rules}'], workdir)
    a, b = after_warmup(fast), after_warmup(llm_only)
    print(f'\nAfter one warm-up episode, {a["episodes"]} episodes each, same seeds '
          f'({args.seed + 1}..{args.seed + args.episodes - 1}), generated worlds:')
    print(f'{"":12s} {"success":>8s} {"collisions":>10s} {"decisions":>9s} {"LLM calls":>9s} '
          f'{"LLM share":>9s}  time to goal (s)')
    for label, r in (('fast path', a), ('LLM only', b)):
        print(f'{label:12s} {r["successes"]:>4d}/{r["episodes"]:<3d} {r["collisions"]:>10d} '
              f'{r["decisions"]:>9d} {r["llm_calls"]:>9d} {r["llm_share"]:>9.2f}  {r["time_to_goal"]}')
    for label, s in (('fast path', fast), ('LLM only', llm_only)):
        lat = ', '.join(f'{k} {v["p50"]:.2f}/{v["p95"]:.2f}' for k, v in s['latency_ms'].items())
        print(f'decision latency ms p50/p95, {label}: {lat}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
