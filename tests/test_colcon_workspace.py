"""colcon, as a robot builds the workspace: `colcon build --symlink-install` of a workspace with
this repository under src/, then `colcon test` of one package, against the venv standing in for
/opt/ros/jazzy (the Jazzy wheels and ament_cmake are installed there; colcon comes from PyPI).

The whole `colcon test` runs every package's tests again (as long as `make test`), so only
llm_agent_common's is run here; the README gives the full command.
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import distribution
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.name for p in (REPO / 'src').iterdir() if (p / 'package.xml').is_file())


def _venv_env() -> dict:
    """What sourcing /opt/ros/jazzy/setup.bash gives on a robot: the underlay's prefix paths."""
    env = dict(os.environ)
    env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env.get("PATH", "")}'
    env['AMENT_PREFIX_PATH'] = sys.prefix
    env['CMAKE_PREFIX_PATH'] = sys.prefix
    return env


def _sourced(workspace: Path, command: str) -> subprocess.CompletedProcess:
    """Run a shell command after `source install/setup.bash`, as a user of the overlay does."""
    return subprocess.run(['bash', '-c', f'source install/setup.bash && {command}'], cwd=workspace,
                          env=_venv_env(), capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp('colcon_ws')
    (ws / 'src').mkdir()
    (ws / 'src' / 'llm_agent').symlink_to(REPO)  # the repository cloned into the workspace
    build = subprocess.run(['colcon', 'build', '--symlink-install'], cwd=ws, env=_venv_env(),
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    assert f'{len(PACKAGES)} packages finished' in build.stdout, build.stdout[-2000:]
    return ws


def test_colcon_finds_every_package_of_the_repository(workspace):
    listed = subprocess.run(['colcon', 'list', '--names-only'], cwd=workspace, env=_venv_env(),
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == PACKAGES


def test_install_holds_every_node_launch_file_and_config(workspace):
    install = workspace / 'install'
    # Node packages install their executables where `ros2 run` and launch_ros look
    # (setup.cfg's script_dir); the llm-agent command goes to bin/, on PATH once sourced.
    node_packages = [p for p in PACKAGES if (REPO / 'src' / p / 'setup.cfg').is_file()]
    assert {'llm_agent_brain', 'llm_agent_perception', 'llm_agent_actuation'} <= set(node_packages)
    for package in node_packages:
        scripts = [e.name for e in distribution(package).entry_points
                   if e.group == 'console_scripts']
        assert scripts, package
        for name in scripts:
            exe = install / package / 'lib' / package / name
            assert os.access(exe, os.X_OK), f'{exe} is not an executable'
    which = _sourced(workspace, 'command -v llm-agent')
    assert Path(which.stdout.strip()) == install / 'llm_agent_cli' / 'bin' / 'llm-agent'
    share = install / 'llm_agent_bringup' / 'share' / 'llm_agent_bringup'
    launch_files = sorted(p.name for p in (REPO / 'launch').glob('*.launch.py'))
    assert launch_files and sorted(p.name for p in (share / 'launch').glob('*.launch.py')) \
        == launch_files
    assert sorted(p.name for p in (share / 'config').glob('*.yaml')) \
        == sorted(p.name for p in (REPO / 'config').glob('*.yaml'))


def test_sourced_overlay_resolves_packages_and_interfaces_from_the_install(workspace):
    probe = _sourced(workspace, (
        'python -c "'
        'from ament_index_python.packages import get_package_prefix as p; '
        'import llm_agent_interfaces.action as a; '
        "print(p('llm_agent_brain')); print(p('llm_agent_interfaces')); print(a.__file__)\""))
    assert probe.returncode == 0, probe.stderr
    brain, interfaces, module = probe.stdout.split()
    install = workspace / 'install'
    assert Path(brain) == install / 'llm_agent_brain'
    assert Path(interfaces) == install / 'llm_agent_interfaces'
    assert Path(module).is_relative_to(install / 'llm_agent_interfaces')


def test_colcon_test_of_one_package_runs_and_passes(workspace):
    run = _sourced(workspace, 'colcon test --packages-select llm_agent_common '
                              '--event-handlers console_direct-')
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = _sourced(workspace, 'colcon test-result --all')
    assert result.returncode == 0, result.stdout  # non-zero when a test failed or errored
    suite = ET.parse(workspace / 'build' / 'llm_agent_common' / 'pytest.xml').getroot()
    suite = suite if suite.tag == 'testsuite' else suite.find('testsuite')
    assert int(suite.get('tests')) > 0
    assert int(suite.get('failures')) == 0 and int(suite.get('errors')) == 0
