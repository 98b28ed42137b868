"""The suite's node graph (config/graph.yaml): one source of truth for `llm-agent up` and launch/.

Pure Python, no rclpy: it reads the node list, picks part of it, and builds each node's
`--ros-args` (namespace, parameter files, use_sim_time) the same way the launch files do.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from llm_agent_common.config import installed_config, read_yaml


class GraphError(ValueError):
    """graph.yaml is malformed, or a selection names a node or group that does not exist."""


@dataclass(frozen=True)
class NodeEntry:
    """One node of the graph, run in its own process."""

    name: str
    package: str
    executable: str
    module: str
    group: str
    params: Tuple[str, ...]
    # False for the world (the clock's source) and for stream filters that read no clock
    # (their outputs carry their inputs' stamps): following /clock would only wake them.
    follows_clock: bool = True

    def uses_sim_time(self, use_sim_time: bool) -> bool:
        """The node's use_sim_time when the graph runs on sim time or not."""
        return use_sim_time and self.follows_clock

    def param_files(self, config_dir: str) -> List[str]:
        """Absolute paths of this node's parameter files in `config_dir`."""
        return [os.path.join(config_dir, p) for p in self.params]


DDS_PROFILE = 'fastdds.xml'
DDS_PROFILE_VARS = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')


def dds_env(config_dir: str, environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The variables to add to a node's environment so Fast DDS reads config/fastdds.xml
    (shared memory big enough for camera frames; see the file). Empty when the user chose a
    profile, another RMW runs, or the config folder has no profile."""
    environ = os.environ if environ is None else environ
    profile = os.path.join(config_dir, DDS_PROFILE)
    rmw = environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') or 'rmw_fastrtps_cpp'
    if any(environ.get(v) for v in DDS_PROFILE_VARS) or not rmw.startswith('rmw_fastrtps') \
            or not os.path.isfile(profile):
        return {}
    return {DDS_PROFILE_VARS[0]: profile}


def default_config_dir() -> str:
    """The installed config folder (share/llm_agent_bringup/config, a copy or link of config/)."""
    return installed_config()


def load_graph(config_dir: Optional[str] = None) -> List[NodeEntry]:
    """Read graph.yaml from `config_dir`; errors name the file and the field."""
    config_dir = config_dir or default_config_dir()
    path = os.path.join(config_dir, 'graph.yaml')
    data = read_yaml(path, GraphError)
    nodes = data.get('nodes') if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not nodes:
        raise GraphError(f'{path}: needs a non-empty list `nodes`')
    entries, seen = [], set()
    for i, raw in enumerate(nodes):
        where = f'{path}: nodes[{i}]'
        if not isinstance(raw, dict):
            raise GraphError(f'{where} must be a mapping')
        for key in ('name', 'package', 'executable', 'module', 'group'):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise GraphError(f'{where}.{key} must be a non-empty string')
        params = raw.get('params', [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise GraphError(f'{where}.params must be a list of file names')
        for p in params:
            if not os.path.isfile(os.path.join(config_dir, p)):
                raise GraphError(f'{where}.params: {p} not found in {config_dir}')
        follows_clock = raw.get('follows_clock', True)
        if not isinstance(follows_clock, bool):
            raise GraphError(f'{where}.follows_clock must be true or false')
        if raw['name'] in seen:
            raise GraphError(f'{where}.name {raw["name"]!r} appears twice')
        seen.add(raw['name'])
        entries.append(NodeEntry(raw['name'], raw['package'], raw['executable'], raw['module'],
                                 raw['group'], tuple(params), follows_clock))
    return entries


def file_parameters(entry: NodeEntry, config_dir: str) -> List[str]:
    """The parameters the node's own files set (its `/**/<name>` or `<name>` section)."""
    names: List[str] = []
    for path in entry.param_files(config_dir):
        data = read_yaml(path, GraphError)
        for key in (f'/**/{entry.name}', entry.name):
            section = data.get(key) if isinstance(data, dict) else None
            values = section.get('ros__parameters') if isinstance(section, dict) else None
            if isinstance(values, dict):
                names += [k for k in values if k not in names]
    return names


def select(nodes: Sequence[NodeEntry], only: Iterable[str] = (), without: Iterable[str] = (),
           use_sim: bool = True) -> List[NodeEntry]:
    """Pick nodes by name or group: `only` keeps, `without` drops, `use_sim=False` drops `sim`."""
    only, without = [s for s in only if s], [s for s in without if s]
    known = {n.name for n in nodes} | {n.group for n in nodes}
    unknown = sorted(set(only + without) - known)
    if unknown:
        raise GraphError(f'unknown node or group {", ".join(unknown)}; known: {", ".join(sorted(known))}')
    picked = [n for n in nodes if not only or n.name in only or n.group in only]
    picked = [n for n in picked if n.name not in without and n.group not in without]
    if not use_sim:
        picked = [n for n in picked if n.group != 'sim']
    return picked


def ros_args(entry: NodeEntry, config_dir: str, namespace: str = '', use_sim_time: bool = False,
             extra: Sequence[str] = ()) -> List[str]:
    """The `--ros-args` of a node: name, namespace, parameter files, use_sim_time, extras."""
    args = ['--ros-args', '-r', f'__node:={entry.name}']
    if namespace:
        args += ['-r', f'__ns:={normalise_namespace(namespace)}',
                 '-r', f'/clock:={clock_topic(namespace)}']
    for path in entry.param_files(config_dir):
        args += ['--params-file', path]
    args += ['-p', f'use_sim_time:={"true" if entry.uses_sim_time(use_sim_time) else "false"}']
    return args + list(extra)


def clock_topic(namespace: str) -> str:
    """The sim clock of a namespace: each robot's world runs its own time on one ROS graph.

    /clock is an absolute name; two built-in worlds publishing it would make every node's time
    jump between them, so a namespaced graph remaps it to <namespace>/clock.
    """
    return normalise_namespace(namespace) + '/clock'


def normalise_namespace(namespace: str) -> str:
    """'robot1' -> '/robot1'; '' stays ''."""
    namespace = namespace.strip().strip('/')
    return '/' + namespace if namespace else ''
