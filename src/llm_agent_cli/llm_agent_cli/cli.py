"""`llm-agent`: start the suite's graph (`up`), list it (`nodes`), run the demo (`demo`),
record the agent's topics to MCAP (`record`), run the instruction suite (`eval`), measure it
all (`bench`)."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import List, Optional

from llm_agent_bringup.graph import GraphError, default_config_dir, load_graph, select
from llm_agent_bringup.launcher import Launcher


def _csv(text: str) -> List[str]:
    return [s.strip() for s in text.split(',') if s.strip()]


def _add_graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--namespace', default='', help='ROS namespace for every node (one per robot)')
    p.add_argument('--config', default=None,
                   help='config folder with graph.yaml and parameter files (default: installed)')
    p.add_argument('--no-sim', action='store_true',
                   help='do not start the built-in world (a real robot or Gazebo provides topics)')
    p.add_argument('--only', type=_csv, default=[], metavar='NODE,...',
                   help='start only these nodes or groups (sim, perception, brain, actuation)')
    p.add_argument('--without', type=_csv, default=[], metavar='NODE,...',
                   help='start all but these nodes or groups')


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='llm-agent', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    up = sub.add_parser('up', help='start the graph, one process per node; Ctrl-C stops it all')
    _add_graph_args(up)
    up.add_argument('--one-process', action='store_true',
                    help='run the selected nodes in one process on one executor (less memory: '
                         'one interpreter and DDS participant; a crash then stops them all)')
    up.add_argument('--sim-time', action='store_true',
                    help='nodes follow /clock even without the built-in world in this run '
                         '(the world or Gazebo runs in another process)')
    up.add_argument('--duration', type=float, default=None,
                    help='stop after this many seconds (default: run until Ctrl-C)')
    nodes = sub.add_parser('nodes', help='list the nodes of the graph and their commands')
    _add_graph_args(nodes)
    demo = sub.add_parser('demo', help='run episodes of the agent in the built-in world')
    from .demo import add_demo_args
    add_demo_args(demo)
    record = sub.add_parser('record', help="record the agent's topics to an MCAP file "
                                           "(ros2 bag and Foxglove open it)")
    record.add_argument('--out', default='agent.mcap', metavar='PATH',
                        help='MCAP file to write (default agent.mcap)')
    record.add_argument('--namespace', default='', help='ROS namespace of the robot to record')
    record.add_argument('--duration', type=float, default=None,
                        help='stop after this many seconds (default: record until Ctrl-C)')
    record.add_argument('--no-video', action='store_true',
                        help='leave out the camera video stream (recording it makes the image '
                        'compressor encode it)')
    evaluate = sub.add_parser('eval', help='run the instruction suite with each brain and write '
                                           'summary.json, report.md and a plot')
    from .eval import add_eval_args
    add_eval_args(evaluate)
    bench = sub.add_parser('bench', help='run the benchmarks and write a report folder '
                                         '(report.md, results.json, PNG plots)')
    from llm_agent_bench.report import add_bench_args
    add_bench_args(bench)
    return parser


def _selected(args: argparse.Namespace):
    config_dir = os.path.abspath(args.config) if args.config else default_config_dir()
    entries = select(load_graph(config_dir), only=args.only, without=args.without,
                     use_sim=not args.no_sim)
    return config_dir, entries


def run_up(args: argparse.Namespace) -> int:
    """Start the selected nodes and supervise them until Ctrl-C, SIGTERM, a death or --duration."""
    config_dir, entries = _selected(args)
    if not entries:
        print('llm-agent: the selection is empty: nothing to start', file=sys.stderr)
        return 2
    launcher = Launcher()
    # Sim time follows the built-in world's /clock only when the world is part of this run.
    use_sim_time = args.sim_time or any(e.group == 'sim' for e in entries)
    previous = {s: signal.signal(s, launcher.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        launcher.start(entries, config_dir, namespace=args.namespace, use_sim_time=use_sim_time,
                       one_process=args.one_process)
        return launcher.wait(args.duration)
    finally:
        launcher.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_nodes(args: argparse.Namespace) -> int:
    from llm_agent_bringup.launcher import node_command
    config_dir, entries = _selected(args)
    for e in entries:
        cmd = node_command(e, config_dir, args.namespace, any(n.group == 'sim' for n in entries))
        print(f'{e.name:18s} {e.group:11s} ros2 run {e.package} {e.executable}\n    {" ".join(cmd)}')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == 'up':
            return run_up(args)
        if args.command == 'nodes':
            return run_nodes(args)
        if args.command == 'bench':
            from llm_agent_bench.report import run_bench
            return run_bench(args)
        if args.command == 'eval':
            from .eval import run_eval
            return run_eval(args)
        if args.command == 'record':
            from .record import run_record
            return run_record(args)
        from .demo import run_demo
        return run_demo(args)
    except GraphError as exc:
        print(f'llm-agent: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
