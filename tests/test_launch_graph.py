"""The launch files, config/graph.yaml, the packages and the launch tests agree.

The launch files run for real in the launch tests of test/launch/ (launch_testing's pytest plugin;
`make test` collects them). What they cannot show is checked here, without importing `launch`:
  * the launch files' source is read as an AST: they name no node, build nodes only through the
    helper llm_agent_bringup.launch_graph, which takes them from llm_agent_bringup.graph (load_graph/select);
  * the helper's pure part (`node_specs`, the keyword arguments of each launch_ros Node) is run
    for real and compared with graph.ros_args, what `llm-agent up` passes to the same nodes;
  * every graph entry is checked against its package: console script in setup.py, module with
    `main`, parameter files in ROS's format keyed `/**/<node>`, ament index markers installed;
  * each launch test in test/launch/ is well formed (it launches files that exist, waits with
    ReadyToTest and checks exit codes after shutdown).
"""
import ast
import glob
import importlib
import importlib.util
import os
import re
import shutil
import subprocess

import pytest
import yaml

from llm_agent_bringup import graph

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, 'config')
LAUNCH_DIR = os.path.join(REPO, 'launch')
HELPER_PATH = os.path.join(REPO, 'src', 'llm_agent_bringup', 'llm_agent_bringup', 'launch_graph.py')
LAUNCH_FILES = sorted(glob.glob(os.path.join(LAUNCH_DIR, '*.launch.py')))
SUBSYSTEM_FILES = [f for f in LAUNCH_FILES if os.path.basename(f) != 'agent.launch.py']
LAUNCH_TESTS = sorted(glob.glob(os.path.join(REPO, 'test', 'launch', 'test_*_launch.py')))

ENTRIES = graph.load_graph(CONFIG)
PACKAGES = sorted({e.package for e in ENTRIES})
PARAM_FILES = sorted({p for e in ENTRIES for p in e.params})


# Its pure part imports no `launch`: importing it here runs what the launch files run.
helper = importlib.import_module('llm_agent_bringup.launch_graph')


def _tree(path):
    with open(path, encoding='utf-8') as f:
        return ast.parse(f.read(), filename=path)


def _strings(tree):
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _calls(tree, name):
    """Calls of `name(...)` or `x.name(...)` in a tree."""
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            f = n.func
            if ((isinstance(f, ast.Name) and f.id == name)
                    or (isinstance(f, ast.Attribute) and f.attr == name)):
                out.append(n)
    return out


def _groups_of(path):
    """The literal module-level GROUPS tuple of a launch file."""
    for node in _tree(path).body:
        targets = [t.id for t in getattr(node, 'targets', []) if isinstance(t, ast.Name)]
        if isinstance(node, ast.Assign) and 'GROUPS' in targets:
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple) and all(isinstance(g, str) for g in value), path
            return value
    raise AssertionError(f'{path}: no module-level GROUPS = (...) literal')


def _graph_identifiers():
    return ({e.name for e in ENTRIES} | {e.executable for e in ENTRIES} |
            {e.package for e in ENTRIES} | {e.module for e in ENTRIES})



# --- the launch files --------------------------------------------------------------------------

def test_launch_folder_has_the_agent_and_one_file_per_group():
    names = {os.path.basename(f) for f in LAUNCH_FILES}
    expected = {'agent.launch.py'} | {f'{e.group}.launch.py' for e in ENTRIES}
    assert expected <= names, f'missing launch files: {sorted(expected - names)}'


@pytest.mark.parametrize('path', LAUNCH_FILES + [HELPER_PATH], ids=os.path.basename)
def test_launch_file_compiles(path):
    with open(path, encoding='utf-8') as f:
        compile(f.read(), path, 'exec')


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=os.path.basename)
def test_launch_file_names_no_node_and_uses_the_helper(path):
    tree = _tree(path)
    assert not _calls(tree, 'Node'), f'{path} builds a Node itself; nodes come from graph.yaml'
    named = _strings(tree) & _graph_identifiers()
    assert not named, f'{path} hard-codes {sorted(named)}; take them from config/graph.yaml'
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                and n.module == 'llm_agent_bringup.launch_graph' for a in n.names}
    assert 'generate' in imported, f'{path} does not use llm_agent_bringup.launch_graph.generate'
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    generate = _calls(tree, 'generate')
    first = generate[0].args[0] if generate and generate[0].args else None
    assert isinstance(first, ast.Name) and first.id == 'GROUPS', \
        f'{path} must return the helper\'s generate(GROUPS)'


def test_helper_builds_nodes_only_from_load_graph_and_select():
    tree = _tree(HELPER_PATH)
    imported = {a.name for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module == 'llm_agent_bringup.graph'
                for a in n.names}
    assert {'load_graph', 'select'} <= imported
    assert _calls(tree, 'load_graph') and _calls(tree, 'select')
    node_calls = _calls(tree, 'Node')
    assert len(node_calls) == 1, 'one Node(...) call, fed by node_specs'
    call = node_calls[0]
    assert not call.args and [k.arg for k in call.keywords] == [None], 'Node(**spec) only'
    # In node_specs, package/executable/name are the graph entry's fields, never literals.
    specs_fn = next(n for n in ast.walk(tree)
                    if isinstance(n, ast.FunctionDef) and n.name == 'node_specs')
    fields = {'package', 'executable', 'name'}
    spec_dicts = [d for d in ast.walk(specs_fn) if isinstance(d, ast.Dict)
                  and fields <= {k.value for k in d.keys if isinstance(k, ast.Constant)}]
    assert len(spec_dicts) == 1
    for key, value in zip(spec_dicts[0].keys, spec_dicts[0].values, strict=True):
        if isinstance(key, ast.Constant) and key.value in ('package', 'executable', 'name'):
            assert isinstance(value, ast.Attribute) and value.attr == key.value, key.value
    # The one node name the helper may spell is the target of the backend/model overrides.
    assert _strings(tree) & _graph_identifiers() <= {helper.OVERRIDE_NODE}


def test_subsystem_launch_files_cover_the_graph():
    assert _groups_of(os.path.join(LAUNCH_DIR, 'agent.launch.py')) == (), 'agent starts all'
    graph_groups = {e.group for e in ENTRIES}
    covered = set()
    for path in SUBSYSTEM_FILES:
        groups = _groups_of(path)
        assert groups and set(groups) <= graph_groups, f'{path}: GROUPS {groups} not in the graph'
        covered |= set(groups)
        picked = [s['name'] for s in helper.node_specs(CONFIG, groups)]
        assert picked == [e.name for e in ENTRIES if e.group in groups]
    assert covered == graph_groups, f'no launch file starts {sorted(graph_groups - covered)}'


def _ros_args_view(args):
    """(parameter files, use_sim_time, namespace) out of a graph.ros_args list."""
    files = [args[i + 1] for i, a in enumerate(args) if a == '--params-file']
    pairs = list(zip(args, args[1:], strict=False))  # each flag with its value
    sim_time = [v for a, v in pairs if a == '-p' and v.startswith('use_sim_time:=')]
    ns = [v[len('__ns:='):] for a, v in pairs if a == '-r' and v.startswith('__ns:=')]
    return files, sim_time[-1] == 'use_sim_time:=true', ns[0] if ns else ''


CLOCK_READERS = {'observer', 'decision_node', 'skill_server'}


@pytest.mark.parametrize('namespace', ['', 'robot1', '/fleet/robot2/'])
@pytest.mark.parametrize('use_sim_time', [False, True])
def test_node_specs_agree_with_llm_agent_up(namespace, use_sim_time):
    specs = helper.node_specs(CONFIG, namespace=namespace, use_sim_time=use_sim_time)
    assert [s['name'] for s in specs] == [e.name for e in ENTRIES]
    for spec, entry in zip(specs, ENTRIES, strict=True):
        args = graph.ros_args(entry, CONFIG, namespace, use_sim_time)
        files, follows_clock, ns = _ros_args_view(args)
        assert (spec['package'], spec['executable']) == (entry.package, entry.executable)
        assert spec['parameters'][:-1] == files
        assert spec['parameters'][-1] == {'use_sim_time': follows_clock}
        assert graph.normalise_namespace(spec.get('namespace', '')) == ns
        if entry.group == 'sim':
            assert follows_clock is False, 'the world never follows /clock'
        # Only the nodes that read a clock follow /clock: the stream filters would just wake.
        assert follows_clock == (use_sim_time and entry.name in CLOCK_READERS), entry.name


@pytest.mark.parametrize('namespace', ['', 'robot1'])
@pytest.mark.parametrize('use_sim_time', [False, True])
def test_one_process_gives_each_node_the_args_of_its_own_process(namespace, use_sim_time):
    from llm_agent_bringup import container
    overrides = {helper.OVERRIDE_NODE: {'backend': 'openai'}}
    shared = {'cmd_vel_stamped': True}
    spec = helper.container_spec(CONFIG, namespace=namespace, use_sim_time=use_sim_time,
                                 overrides=overrides, shared=shared)
    assert (spec['package'], spec['executable']) == ('llm_agent_bringup', 'agent_container')
    planned = container.plan(container.parse(spec['arguments']))
    specs = helper.node_specs(CONFIG, namespace=namespace, use_sim_time=use_sim_time,
                              overrides=overrides, shared=shared)
    assert [e.name for e, _ in planned] == [s['name'] for s in specs]
    for (entry, args), node_spec in zip(planned, specs, strict=True):
        extra = node_spec['parameters'][-1]
        extra = {} if set(extra) == {'use_sim_time'} else extra
        expected = graph.ros_args(entry, CONFIG, namespace, use_sim_time,
                                  [a for k, v in extra.items()
                                   for a in ('-p', f'{k}:={str(v).lower() if isinstance(v, bool) else v}')])
        assert args == expected, entry.name
    assert helper.container_spec(CONFIG, only=['sim'], without=['sim']) is None


@pytest.mark.parametrize('argv, message', [
    (['--nodes', 'observer,teleporter'], 'unknown or unselected node(s) teleporter'),
    (['--nodes', 'observer', '--extra-json', '{"decision_node": ["-p", "x:=1"]}'],
     'unknown or unselected node(s) decision_node'),
    (['--nodes', 'observer', '--extra-json', '{"observer": "-p x:=1"}'], 'lists of strings'),
    (['--nodes', 'observer', '--extra-json', '{oops'], 'not JSON'),
])
def test_container_refuses_what_it_cannot_run(argv, message):
    from llm_agent_bringup import container
    with pytest.raises(graph.GraphError, match=re.escape(message)):
        container.plan(container.parse(['--config', CONFIG] + argv))


@pytest.mark.parametrize('entry', ENTRIES, ids=lambda e: e.name)
def test_every_graph_node_can_run_in_a_container(entry):
    from llm_agent_common.node import Component
    from rclpy.node import Node

    from llm_agent_bringup import container
    component = container.component_of(entry)
    assert isinstance(component, Component) and issubclass(component.make, Node), entry.module


def test_use_sim_false_leaves_the_world_out():
    names = [s['name'] for s in helper.node_specs(CONFIG, use_sim=False)]
    assert names == [e.name for e in ENTRIES if e.group != 'sim']


def test_backend_and_model_reach_only_the_decision_node():
    target = [e for e in ENTRIES if e.name == helper.OVERRIDE_NODE]
    assert target, f'{helper.OVERRIDE_NODE} is not in config/graph.yaml'
    overrides = {helper.OVERRIDE_NODE: helper.brain_overrides('openai', 'gpt-4o-mini')}
    for spec in helper.node_specs(CONFIG, overrides=overrides):
        last = spec['parameters'][-1]
        if spec['name'] == helper.OVERRIDE_NODE:
            assert last == {'backend': 'openai', 'model': 'gpt-4o-mini'}
        else:
            assert set(last) == {'use_sim_time'}
    assert helper.brain_overrides('', '') == {}, 'empty arguments keep brain.yaml\'s values'
    assert helper.brain_overrides('transformers', '') == {'backend': 'transformers'}
    assert helper.brain_overrides('llamacpp', '') == {'backend': 'llamacpp'}
    with pytest.raises(graph.GraphError, match='backend'):
        helper.brain_overrides('onnx', '')
    with pytest.raises(graph.GraphError, match='use_sim'):
        helper.parse_bool('use_sim', 'maybe')


def test_cmd_vel_stamped_reaches_the_nodes_whose_files_set_it():
    # The publisher of cmd_vel and the world that reads it must agree on its type.
    specs = helper.node_specs(CONFIG, shared={'cmd_vel_stamped': True})
    got = {s['name'] for s in specs if s['parameters'][-1].get('cmd_vel_stamped') is True}
    assert got == {'skill_server', 'sim_world'}
    for spec in specs:
        if spec['name'] not in got:
            assert set(spec['parameters'][-1]) == {'use_sim_time'}, spec['name']
    assert set(helper.SHARED_PARAMETERS) == {'cmd_vel_stamped'}
    with pytest.raises(graph.GraphError, match='cmd_vel_stamped'):
        helper.parse_bool('cmd_vel_stamped', 'stamped')


def test_decision_node_declares_the_overridden_parameters():
    entry = next(e for e in ENTRIES if e.name == helper.OVERRIDE_NODE)
    # The node declares them: as names in its module, or in its section of its parameter files
    # (a node may declare its parameters from a table it reads there).
    known = _strings(_tree(importlib.util.find_spec(entry.module).origin))
    for name in entry.params:
        with open(os.path.join(CONFIG, name), encoding='utf-8') as f:
            section = (yaml.safe_load(f) or {}).get(f'/**/{entry.name}') or {}
        known |= set(dict(_flatten(section.get('ros__parameters') or {})))
    missing = set(helper.OVERRIDE_PARAMETERS) - known
    assert not missing, (f'{entry.module} declares no parameter {sorted(missing)}, which the '
                         'launch arguments backend/model override')



def test_graph_refuses_a_follows_clock_that_is_not_a_boolean(tmp_path):
    for name in os.listdir(CONFIG):
        if name.endswith('.yaml'):
            shutil.copy(os.path.join(CONFIG, name), tmp_path / name)
    text = (tmp_path / 'graph.yaml').read_text(encoding='utf-8')
    text = text.replace('    follows_clock: false', "    follows_clock: 'no'", 1)
    (tmp_path / 'graph.yaml').write_text(text, encoding='utf-8')
    with pytest.raises(graph.GraphError, match=r'nodes\[0\]\.follows_clock must be true or false'):
        graph.load_graph(str(tmp_path))


def test_config_argument_resolution(tmp_path):
    assert helper.resolve_config_dir('', LAUNCH_DIR) == CONFIG, 'default: config/ beside launch/'
    with pytest.raises(graph.GraphError, match='graph.yaml'):
        helper.resolve_config_dir(str(tmp_path))
    # Launch files installed elsewhere with no config/ beside them fall back to the install.
    assert helper.resolve_config_dir('', str(tmp_path / 'launch')) == graph.default_config_dir()


# --- graph entries against their packages ------------------------------------------------------

def _console_scripts(package):
    tree = _tree(os.path.join(REPO, 'src', package, 'setup.py'))
    for call in _calls(tree, 'setup'):
        for kw in call.keywords:
            if kw.arg == 'entry_points':
                scripts = ast.literal_eval(kw.value).get('console_scripts', [])
                return {s.split('=')[0].strip(): s.split('=')[1].strip() for s in scripts}
    return {}


@pytest.mark.parametrize('entry', ENTRIES, ids=lambda e: e.name)
def test_executable_is_a_console_script_of_its_package(entry):
    scripts = _console_scripts(entry.package)
    assert entry.executable in scripts, f'{entry.package}/setup.py declares no {entry.executable}'
    # The console script is the entry factory's function for the graph's module
    # (llm_agent_common.entry: the node imports with the stop signals held).
    target, _, attr = scripts[entry.executable].partition(':')
    assert target == f'{entry.package}.executables', scripts[entry.executable]
    run = getattr(importlib.import_module(target), attr)
    assert getattr(run, 'module', None) == entry.module, \
        f'{entry.executable} runs {getattr(run, "module", run)}, graph.yaml says {entry.module}'


@pytest.mark.parametrize('entry', ENTRIES, ids=lambda e: e.name)
def test_node_module_imports_and_has_main(entry):
    module = importlib.import_module(entry.module)
    assert callable(getattr(module, 'main', None)), f'{entry.module} has no main()'


def _ros_leaf_ok(value):
    scalar = (bool, int, float, str)
    if isinstance(value, scalar):
        return True
    # rcl's YAML parser wants non-empty lists of one type (ints and floats do not mix).
    return (isinstance(value, list) and value and isinstance(value[0], scalar)
            and all(type(v) is type(value[0]) for v in value))


def _flatten(params, prefix=''):
    for key, value in params.items():
        if isinstance(value, dict):
            yield from _flatten(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


@pytest.mark.parametrize('name', PARAM_FILES)
def test_parameter_file_is_a_ros_parameter_file_of_graph_nodes(name):
    path = os.path.join(CONFIG, name)
    with open(path, encoding='utf-8') as f:
        data = yaml.safe_load(f) or {}
    assert isinstance(data, dict), f'{path}: top level must be a mapping'
    users = {e.name for e in ENTRIES if name in e.params}
    # A package may ship a node the graph does not start (e.g. image_decompressor, run on the
    # receiving side): its section may live in the package's file, named after its console script.
    shipped = {s for e in ENTRIES if name in e.params for s in _console_scripts(e.package)}
    for key, body in data.items():
        assert isinstance(key, str) and key.startswith('/**/'), \
            f'{path}: key {key!r} must be /**/<node>'
        node = key[len('/**/'):]
        assert node in users | shipped, \
            f'{path}: {key} is neither a graph node reading this file ({sorted(users)}) ' \
            'nor a node its packages ship'
        assert isinstance(body, dict) and set(body) == {'ros__parameters'}, \
            f'{path}: {key} needs ros__parameters:'
        params = body['ros__parameters'] or {}
        assert isinstance(params, dict), f'{path}: {key}.ros__parameters must be a mapping'
        for pname, value in _flatten(params):
            assert _ros_leaf_ok(value), \
                f'{path}: {node}.{pname} = {value!r} is not a ROS parameter value'
    # Every node of the graph has its section in its parameter files.
    written = {e.name for e in ENTRIES if name in e.params}
    sections = {k[len('/**/'):] for k in data}
    assert written <= sections, f'{path}: no /**/ section for {sorted(written - sections)}'


# --- what is installed -------------------------------------------------------------------------

@pytest.mark.parametrize('package', PACKAGES + ['llm_agent_interfaces'])
def test_package_is_installed_in_the_ament_index(package):
    from ament_index_python.packages import get_package_share_directory
    from ament_index_python.resources import get_resource
    get_resource('packages', package)  # raises LookupError when the marker is missing
    share = get_package_share_directory(package)
    assert os.path.isfile(os.path.join(share, 'package.xml')), f'{share}/package.xml missing'
    if package != 'llm_agent_interfaces':  # ament_cmake writes its marker itself
        assert os.path.isfile(os.path.join(REPO, 'src', package, 'resource', package))
    assert os.path.isfile(os.path.join(graph.default_config_dir(), 'graph.yaml')), \
        'share/llm_agent_bringup/config/graph.yaml: the launch files\' fallback'


@pytest.mark.parametrize('entry', ENTRIES, ids=lambda e: e.name)
def test_executable_is_installed_where_launch_ros_looks(entry):
    from ament_index_python.packages import get_package_prefix
    lib = os.path.join(get_package_prefix(entry.package), 'lib', entry.package)
    assert os.access(os.path.join(lib, entry.executable), os.X_OK), \
        f'{lib}/{entry.executable} missing'


# --- the launch tests --------------------------------------------------------------------------

@pytest.mark.parametrize('path', LAUNCH_TESTS, ids=os.path.basename)
def test_launch_test_file_is_well_formed(path):
    tree = _tree(path)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_test_description' in functions
    assert _calls(tree, 'ReadyToTest')
    assert _calls(tree, 'assertExitCodes') or _calls(tree, 'assert_clean_exit')
    assert _calls(tree, 'post_shutdown_test')
    launched = {s for s in _strings(tree) if s.endswith('.launch.py')}
    assert launched and all(os.path.isfile(os.path.join(LAUNCH_DIR, s)) for s in launched), launched


# --- Docker and CI files (no Docker engine here: they are parsed, not run) ---------------------

def test_docker_and_ci_yaml_parse():
    with open(os.path.join(REPO, 'docker', 'compose.yaml'), encoding='utf-8') as f:
        compose = yaml.safe_load(f)
    assert {'world', 'agent'} <= set(compose['services'])
    with open(os.path.join(REPO, '.github', 'workflows', 'ci.yml'), encoding='utf-8') as f:
        ci = yaml.safe_load(f)
    assert len(ci['jobs']) >= 2


@pytest.mark.parametrize('script', sorted(glob.glob(os.path.join(REPO, 'docker', '*.sh'))),
                         ids=os.path.basename)
def test_docker_shell_scripts_parse(script):
    assert subprocess.run(['bash', '-n', script]).returncode == 0


DOCKERFILES = sorted(glob.glob(os.path.join(REPO, 'docker', 'Dockerfile*')))


@pytest.mark.parametrize('dockerfile', DOCKERFILES, ids=os.path.basename)
def test_dockerfile_uses_the_repo_requirements(dockerfile):
    with open(dockerfile, encoding='utf-8') as f:
        text = f.read()
    for name in ('torch.txt', 'runtime.txt', 'models.txt'):
        assert f'requirements/{name}' in text or 'install_deps.sh' in text, f'{dockerfile}: {name}'
    for ref in set(re.findall(r'requirements/[\w.]+\.txt', text)):
        assert os.path.isfile(os.path.join(REPO, ref)), f'{dockerfile} names a missing {ref}'
