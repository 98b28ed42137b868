"""Shared logic of the launch files in launch/: turn config/graph.yaml into launch_ros Nodes.

The launch tests in test/launch/ run the launch files for real (`make test`; `launch` comes
from a ROS install or ../shared/ros2-tools); tests/test_launch_graph.py unit-tests the pure part
(`node_specs`) against what `llm-agent up` passes to the same nodes.

The node list, parameter files and the sim-time rule come from `llm_agent_bringup.graph` (the same
code `llm-agent up` uses): this module adds no node of its own. It is split in two:
  * a pure part (no `launch` import): `resolve_config_dir`, `parse_bool`, `node_specs` -- what
    each node gets, testable anywhere;
  * a launch part: `declare_arguments` and `generate`, which import `launch`/`launch_ros` only
    when called.
Each launch file is then three lines: its GROUPS and `generate(GROUPS, launch_dir=...)`.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from llm_agent_brain.backends.base import BACKEND_CHOICES

from llm_agent_bringup.container import CONTAINER, container_args
from llm_agent_bringup.graph import (
    GraphError,
    NodeEntry,
    clock_topic,
    dds_env,
    default_config_dir,
    file_parameters,
    load_graph,
    normalise_namespace,
    select,
)

# Launch arguments passed as parameter overrides to one node of the graph: the brain's backend
# and model. Keyed by node name so a second node in the brain group does not receive them.
# tests/test_launch_graph.py checks that this node exists and declares these parameters.
OVERRIDE_NODE = 'decision_node'
OVERRIDE_PARAMETERS = ('backend', 'model')

# Launch arguments that set a parameter on every selected node whose parameter files set it,
# so the nodes that must agree do: cmd_vel_stamped on the skill server (it publishes cmd_vel)
# and on the built-in world (it reads it). Empty: the parameter files' value.
SHARED_PARAMETERS = {'cmd_vel_stamped': 'publish and read cmd_vel as '
                                        'geometry_msgs/TwistStamped (true) or Twist (false)'}

_TRUE = ('true', '1', 'yes', 'on')
_FALSE = ('false', '0', 'no', 'off')


def parse_bool(name: str, value: str) -> bool:
    """Read a launch argument as a boolean; say which argument is wrong otherwise."""
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise GraphError(f'launch argument {name}:={value!r} must be true or false')


def resolve_config_dir(value: str = '', launch_dir: str = '') -> str:
    """The config folder: the argument, else config/ beside launch/, else the installed one."""
    if value:
        path = os.path.abspath(os.path.expanduser(value))
        if not os.path.isfile(os.path.join(path, 'graph.yaml')):
            raise GraphError(f'launch argument config:={value!r}: no graph.yaml in {path}')
        return path
    beside = os.path.normpath(os.path.join(launch_dir, '..', 'config')) if launch_dir else ''
    if beside and os.path.isfile(os.path.join(beside, 'graph.yaml')):
        return beside
    return default_config_dir()


def brain_overrides(backend: str = '', model: str = '') -> Dict[str, str]:
    """Parameter overrides for OVERRIDE_NODE; an empty argument keeps the parameter file's value."""
    backend = backend.strip()
    if backend and backend not in BACKEND_CHOICES:
        raise GraphError(f'launch argument backend:={backend!r}: '
                         f'choose one of {", ".join(BACKEND_CHOICES)}')
    values = dict(zip(OVERRIDE_PARAMETERS, (backend, model.strip()), strict=True))
    return {k: v for k, v in values.items() if v}


def _selection(config_dir: str, groups: Sequence[str], use_sim: bool, use_sim_time: bool,
               only: Iterable[str], without: Iterable[str],
               overrides: Optional[Mapping[str, Mapping[str, Any]]],
               shared: Optional[Mapping[str, Any]]) -> List[Tuple[NodeEntry, bool, Dict[str, Any]]]:
    """(entry, follows /clock, parameter overrides) of each selected node, in graph order."""
    entries = load_graph(config_dir)
    if groups:
        entries = select(entries, only=groups)
    entries = select(entries, only=list(only), without=list(without), use_sim=use_sim)
    picked = []
    for entry in entries:
        extra = dict((overrides or {}).get(entry.name, {}))
        if shared:
            declared = file_parameters(entry, config_dir)
            extra.update({k: v for k, v in shared.items() if k in declared})
        picked.append((entry, entry.uses_sim_time(use_sim_time), extra))
    return picked


def node_specs(config_dir: str, groups: Sequence[str] = (), *, namespace: str = '',
               use_sim: bool = True, use_sim_time: bool = False,
               only: Iterable[str] = (), without: Iterable[str] = (),
               overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
               shared: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Any]]:
    """The keyword arguments of launch_ros.actions.Node for each selected node of the graph.

    `groups` restricts the graph to those groups (a per-subsystem launch file), then `only` and
    `without` select as `llm-agent up --only/--without` does. Parameters are the node's files in
    order, then use_sim_time, then its overrides: later entries win, as with `--ros-args -p`.
    `shared` values go to every node whose parameter files set that parameter.
    """
    ns = normalise_namespace(namespace).lstrip('/')
    added_env = dds_env(config_dir)
    specs = []
    for entry, follows_clock, extra in _selection(config_dir, groups, use_sim, use_sim_time,
                                                  only, without, overrides, shared):
        parameters: List[Any] = list(entry.param_files(config_dir))
        parameters.append({'use_sim_time': follows_clock})
        if extra:
            parameters.append(extra)
        spec: Dict[str, Any] = {
            'package': entry.package,
            'executable': entry.executable,
            'name': entry.name,
            'parameters': parameters,
            'output': 'screen',
            'emulate_tty': True,
        }
        if added_env:
            spec['additional_env'] = dict(added_env)
        if ns:
            # Relative on purpose: an including file's PushRosNamespace still prefixes it.
            spec['namespace'] = ns
            spec['remappings'] = [('/clock', clock_topic(ns))]  # one sim clock per robot
        specs.append(spec)
    return specs


def container_spec(config_dir: str, groups: Sequence[str] = (), *, namespace: str = '',
                   use_sim: bool = True, use_sim_time: bool = False,
                   only: Iterable[str] = (), without: Iterable[str] = (),
                   overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                   shared: Optional[Mapping[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """`one_process:=true`: the launch_ros.actions.Node keyword arguments of one agent_container
    running the nodes node_specs() would start (same selection, overrides as `-p`); None when
    the selection is empty. Each node gets the --ros-args of its own process (graph.ros_args),
    so its namespace is absolute: an including file's PushRosNamespace does not reach it."""
    picked = _selection(config_dir, groups, use_sim, use_sim_time, only, without, overrides,
                        shared)
    if not picked:
        return None
    extra = {e.name: [a for k, v in x.items() for a in ('-p', f'{k}:={_param_text(v)}')]
             for e, _, x in picked if x}
    spec: Dict[str, Any] = {
        'package': CONTAINER.package, 'executable': CONTAINER.executable,
        'arguments': container_args([e for e, _, _ in picked], config_dir, namespace=namespace,
                                    use_sim_time=use_sim_time, extra_args=extra),
        'output': 'screen', 'emulate_tty': True,
    }
    added_env = dds_env(config_dir)
    if added_env:
        spec['additional_env'] = dict(added_env)
    return spec


def _param_text(value: Any) -> str:
    """A parameter value as `-p name:=value` writes it (YAML: true/false for booleans)."""
    return ('true' if value else 'false') if isinstance(value, bool) else str(value)


# --- launch part: imports launch/launch_ros only when a launch file is loaded ----------------

def declare_arguments(*, sim_switch: bool, sim_time: bool, brain: bool, selection: bool) -> list:
    """DeclareLaunchArgument actions shared by the launch files (each takes what applies)."""
    from launch.actions import DeclareLaunchArgument

    args = [
        DeclareLaunchArgument('namespace', default_value='',
                              description='ROS namespace of every node (one per robot), '
                                          'e.g. robot1'),
        DeclareLaunchArgument('config', default_value='',
                              description='folder with graph.yaml and the parameter files '
                                          '(default: config/ beside launch/, else '
                                          'share/llm_agent_bringup/config)'),
    ]
    if sim_switch:
        args += [
            DeclareLaunchArgument('use_sim', default_value='true', choices=['true', 'false'],
                                  description='start the built-in world and follow its /clock'),
            DeclareLaunchArgument('use_sim_time', default_value='',
                                  choices=['', 'true', 'false'],
                                  description='follow /clock (default: the value of use_sim); '
                                              'true with use_sim:=false when the world runs '
                                              'elsewhere'),
        ]
    elif sim_time:
        args.append(DeclareLaunchArgument('use_sim_time', default_value='false',
                                          choices=['true', 'false'],
                                          description='follow /clock from a simulator '
                                                      '(the built-in world never does)'))
    if brain:
        args += [
            DeclareLaunchArgument('backend', default_value='',
                                  choices=[''] + list(BACKEND_CHOICES),
                                  description='LLM backend of the decision node '
                                              '(empty: the value in brain.yaml)'),
            DeclareLaunchArgument('model', default_value='',
                                  description='model id, path or remote model name for the '
                                              'backend (empty: the value in brain.yaml)'),
        ]
    args += [DeclareLaunchArgument(name, default_value='', choices=['', 'true', 'false'],
                                   description=f'{text} (empty: the parameter files\' value)')
             for name, text in SHARED_PARAMETERS.items()]
    args.append(DeclareLaunchArgument('one_process', default_value='false',
                                      choices=['true', 'false'],
                                      description='run the nodes in one process on one executor '
                                                  '(agent_container: less memory; a crash stops '
                                                  'them all)'))
    if selection:
        args += [
            DeclareLaunchArgument('only', default_value='',
                                  description='comma-separated nodes or groups to start only'),
            DeclareLaunchArgument('without', default_value='',
                                  description='comma-separated nodes or groups to leave out'),
        ]
    return args


def _nodes(context, groups: Sequence[str], sim_switch: bool, brain: bool, selection: bool,
           launch_dir: str) -> list:
    """OpaqueFunction body: resolve the arguments, then one Node per selected graph entry (or
    one agent_container for them all with one_process:=true)."""
    from launch_ros.actions import Node

    def arg(name: str) -> str:
        return context.launch_configurations.get(name, '')

    use_sim = parse_bool('use_sim', arg('use_sim')) if sim_switch else True
    # Unset (the world alone, or use_sim_time:='' with the whole graph) follows use_sim.
    sim_time_text = arg('use_sim_time')
    use_sim_time = parse_bool('use_sim_time', sim_time_text) if sim_time_text else use_sim
    overrides = {}
    if brain:
        overrides[OVERRIDE_NODE] = brain_overrides(arg('backend'), arg('model'))
    shared = {name: parse_bool(name, arg(name)) for name in SHARED_PARAMETERS if arg(name)}
    split = (lambda text: [s.strip() for s in text.split(',') if s.strip()])
    config_dir = resolve_config_dir(arg('config'), launch_dir)
    how = dict(namespace=arg('namespace'), use_sim=use_sim, use_sim_time=use_sim_time,
               only=split(arg('only')) if selection else (),
               without=split(arg('without')) if selection else (),
               overrides=overrides, shared=shared)
    if parse_bool('one_process', arg('one_process') or 'false'):
        spec = container_spec(config_dir, groups, **how)
        specs = [spec] if spec else []
    else:
        specs = node_specs(config_dir, groups, **how)
    if not specs:
        raise GraphError('the selection is empty: nothing to launch')
    return [Node(**spec) for spec in specs]


def generate(groups: Sequence[str] = (), launch_dir: str = ''):
    """The LaunchDescription of the graph, or of `groups` of it (a per-subsystem file).

    `launch_dir` is the calling launch file's folder: config/ beside it is the default config.
    """
    from launch.actions import OpaqueFunction

    from launch import LaunchDescription

    whole = not groups
    sim_switch = whole                                  # use_sim where the world is optional
    sim_time = whole or any(g != 'sim' for g in groups)  # the world never follows /clock
    brain = whole or 'brain' in groups                  # backend/model where the brain runs
    actions = declare_arguments(sim_switch=sim_switch, sim_time=sim_time, brain=brain,
                                selection=whole)
    actions.append(OpaqueFunction(function=_nodes,
                                  args=[tuple(groups), sim_switch, brain, whole, launch_dir]))
    return LaunchDescription(actions)

