"""`llm-agent up` starts the graph, one process per node or all in one (--one-process), and stops
it with no process left."""
import os
import shutil
import signal
import subprocess
import sys

import psutil
import pytest
import yaml
from llm_agent_bringup.graph import default_config_dir, load_graph, select
from rclpy.executors import SingleThreadedExecutor

LLM_AGENT = os.path.join(os.path.dirname(sys.executable), 'llm-agent')


def _descendants(pid: int):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize('one_process', [False, True], ids=['process_per_node', 'one_process'])
def test_up_starts_every_node_and_ctrl_c_leaves_nothing(ros_context, ros_env, spin_until,
                                                        one_process):
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import LaserScan
    # The brain loads an LLM (tens of seconds); its own tests cover it. Everything else starts.
    expected = {e.name for e in select(load_graph(), without=['brain'])}
    proc = subprocess.Popen([LLM_AGENT, 'up', '--without', 'brain']
                            + (['--one-process'] if one_process else []), env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node('up_probe', context=ros_context)
    filtered = []   # the world's scan through scan_filter: the nodes work, not only exist
    node.create_subscription(LaserScan, '/scan/filtered', filtered.append, qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    children = []
    try:
        seen = lambda: expected <= set(node.get_node_names()) and filtered  # noqa: E731
        assert spin_until(executor, seen, timeout_s=60.0, step_s=0.2), node.get_node_names()
        children = _descendants(proc.pid)
        if one_process:
            assert len(children) == 1, children
        else:
            assert len(children) >= len(expected)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
        assert proc.returncode == 0, out
        assert 'Traceback' not in out, out
        assert f'stopped {1 if one_process else len(expected)} node(s)' in out
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f'left behind: {alive}'


def test_a_dying_node_is_reported_with_its_exit_code(tmp_path, ros_env):
    config = tmp_path / 'config'
    shutil.copytree(default_config_dir(), config, symlinks=False)
    graph = {'nodes': [{'name': 'quitter', 'package': 'llm_agent_sim', 'executable': 'quitter',
                        'module': 'exit_node', 'group': 'test', 'params': []}]}
    (config / 'graph.yaml').write_text(yaml.safe_dump(graph))
    env = dict(ros_env, PYTHONPATH=os.path.join(os.path.dirname(__file__), 'fixtures'))
    result = subprocess.run([LLM_AGENT, 'up', '--config', str(config)], env=env, text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 3
    assert 'node quitter exited with code 3' in result.stdout


def test_selection_errors_are_clear(ros_env):
    result = subprocess.run([LLM_AGENT, 'up', '--only', 'teleporter'], env=ros_env, text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 2
    assert 'unknown node or group teleporter' in result.stderr


@pytest.mark.parametrize('only,without,use_sim,names', [
    (['sim', 'actuation'], [], True, ['sim_world', 'skill_server']),
    ([], ['perception', 'brain'], False, ['skill_server']),
])
def test_select_picks_by_group_and_name(only, without, use_sim, names):
    picked = select(load_graph(), only=only, without=without, use_sim=use_sim)
    assert [e.name for e in picked] == names
