"""Several nodes of the graph in one process, on one executor: ROS 2's composition idea in rclpy,
behind `llm-agent up --one-process` and the launch files' `one_process:=true`.

Each node gets exactly the `--ros-args` it would get in its own process (graph.ros_args: its
name, namespace, parameter files, use_sim_time, extras), as its own `cli_args`, so parameters
and remappings stay per node. The executor has the threads the nodes need alone, summed
(each node module's COMPONENT says how many). What one process saves: one Python interpreter,
one copy of rclpy, numpy and OpenCV, one DDS participant (bench section 5 measures it against
the process per node). What it costs: a node that crashes the process takes the others with it.

  python -m llm_agent_common.entry llm_agent_bringup.container --config DIR --nodes a,b,...
      [--namespace NS] [--use-sim-time] [--extra-json '{"node": ["-p", "name:=value"]}']
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .graph import GraphError, NodeEntry, load_graph, ros_args, select

NAME = 'agent_container'   # the process's name in `llm-agent up` logs and the launch files
# The one process, shown in logs and exit reports as if it were a node of the graph.
CONTAINER = NodeEntry(NAME, 'llm_agent_bringup', NAME, __name__, 'container', ())


def container_args(entries: Sequence[NodeEntry], config_dir: str, namespace: str = '',
                   use_sim_time: bool = False,
                   extra_args: Optional[Dict[str, List[str]]] = None) -> List[str]:
    """The container's command-line arguments for these nodes (what main() parses)."""
    args = ['--config', config_dir, '--nodes', ','.join(e.name for e in entries)]
    args += ['--namespace', namespace] if namespace else []
    args += ['--use-sim-time'] if use_sim_time else []
    extra = {e.name: list(extra_args[e.name]) for e in entries if (extra_args or {}).get(e.name)}
    return args + (['--extra-json', json.dumps(extra)] if extra else [])


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=NAME, description=__doc__.split('\n\n')[0])
    p.add_argument('--config', required=True, help='folder with graph.yaml and the parameter files')
    p.add_argument('--nodes', required=True, help='comma-separated nodes of graph.yaml to run')
    p.add_argument('--namespace', default='', help='ROS namespace of every node')
    p.add_argument('--use-sim-time', action='store_true', help='follow /clock (not the world)')
    p.add_argument('--extra-json', default='{}',
                   help='JSON object: node name -> list of extra --ros-args for that node')
    # `ros2 launch` appends --ros-args (for a node it does not know is a container): not ours.
    args, _rest = p.parse_known_args(list(argv))
    return args


def plan(args: argparse.Namespace) -> List[Tuple[NodeEntry, List[str]]]:
    """(entry, its --ros-args) per node, in graph order; errors name the bad node or field."""
    try:
        extra = json.loads(args.extra_json)
    except ValueError as exc:
        raise GraphError(f'--extra-json is not JSON: {exc}') from None
    if not isinstance(extra, dict) or not all(
            isinstance(v, list) and all(isinstance(a, str) for a in v) for v in extra.values()):
        raise GraphError('--extra-json must map node names to lists of strings')
    names = [n.strip() for n in args.nodes.split(',') if n.strip()]
    entries = load_graph(args.config)
    known = {e.name for e in entries}
    unknown = sorted(set(names) - known) + sorted(set(extra) - set(names))
    if unknown or not names:
        raise GraphError(f'unknown or unselected node(s) {", ".join(unknown) or "(none given)"}; '
                         f'graph nodes: {", ".join(sorted(known))}')
    return [(e, ros_args(e, args.config, namespace=args.namespace,
                         use_sim_time=args.use_sim_time, extra=extra.get(e.name, ())))
            for e in select(entries, only=names)]


def component_of(entry: NodeEntry) -> Any:
    """The node module's COMPONENT (llm_agent_common.node.Component)."""
    component = getattr(importlib.import_module(entry.module), 'COMPONENT', None)
    if component is None:
        raise GraphError(f'{entry.module} (node {entry.name}) has no COMPONENT: it cannot run '
                         'in a container')
    return component


def main(argv: Optional[Sequence[str]] = None) -> int:
    from llm_agent_common.node import run_nodes
    try:
        parts = [(component_of(entry), {'cli_args': node_args, 'use_global_arguments': False})
                 for entry, node_args in plan(parse(sys.argv[1:] if argv is None else argv))]
    except GraphError as exc:
        print(f'{NAME}: {exc}', file=sys.stderr)
        return 2
    return run_nodes(parts, args=[])
