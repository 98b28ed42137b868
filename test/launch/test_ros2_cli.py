"""The `ros2` command against the running graph, as users use it (ros2cli from a ROS install or
../shared/ros2-tools): node/topic/service/action/param/interface verbs on the whole graph started
by `ros2 launch llm_agent_bringup agent.launch.py`. The commands go through the `ros2` daemon, as
a user's do (it keeps the graph discovered between commands); the test starts it on its own DDS
domain and stops it at the end."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

NODES = ('sim_world', 'scan_filter', 'image_compressor', 'depth_compressor', 'observer',
         'decision_node', 'skill_server')
TOPICS = ('/scan', '/scan/filtered', '/odom', '/camera/image_raw', '/camera/camera_info',
          '/camera/image_raw/compressed', '/agent/observation', '/agent/decision', '/cmd_vel')
ROS2 = os.path.join(os.path.dirname(sys.executable), 'ros2')
STARTUP_S = 60.0
DISCOVERY_TRIES = 3


def ros2(*args: str, env: dict, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([ROS2, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope='module')
def graph():
    """The whole graph under `ros2 launch`, on a DDS domain of its own; Ctrl-C at the end."""
    # The run's domain shifted by a fixed offset: tests run one after another, so nothing else
    # of this run uses it meanwhile.
    domain = (int(os.environ.get('ROS_DOMAIN_ID') or 1) + 150) % 232 + 1
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    log = open(os.path.join(os.environ.get('TMPDIR', '/tmp'),
                            f'ros2_cli_launch_{os.getpid()}.log'), 'w+')
    proc = subprocess.Popen([ROS2, 'launch', 'llm_agent_bringup', 'agent.launch.py'], env=env,
                            stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        ros2('daemon', 'start', env=env)
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            names = ros2('node', 'list', env=env).stdout.split()
            if all(f'/{n}' in names for n in NODES):
                break
            time.sleep(1.0)
        yield env
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        ros2('daemon', 'stop', env=env)
        log.close()


def test_node_list(graph):
    names = ros2('node', 'list', env=graph).stdout.split()
    assert sorted(f'/{n}' for n in NODES) == sorted(n for n in names if n[1:] in NODES), names


def test_topic_list(graph):
    names = ros2('topic', 'list', env=graph).stdout.split()
    assert [t for t in TOPICS if t not in names] == []


@pytest.mark.parametrize('topic,field', [('/camera/image_raw', 'encoding'),
                                         ('/scan', 'range_max'),
                                         ('/agent/observation', 'feature_names')])
def test_topic_echo_once(graph, topic, field):
    out = ros2('topic', 'echo', '--once', '--field', field, topic,
               env=graph, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and out.stdout.strip() != '---', out.stdout
    if topic == '/agent/observation':
        assert 'front_range' in out.stdout


@pytest.mark.parametrize('topic', ['/camera/image_raw', '/scan', '/agent/observation'])
def test_topic_hz(graph, topic):
    # `ros2 topic hz` runs until stopped: give it a few seconds, then read its average.
    proc = subprocess.Popen([ROS2, 'topic', 'hz', topic, '--window', '20'], env=graph,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(8.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    rates = [float(r) for r in re.findall(r'average rate: ([0-9.]+)', out)]
    assert rates and rates[-1] > 0.5, out


def test_action_send_goal_with_feedback(graph):
    out = ros2('action', 'send_goal', '--feedback', '/agent/execute_skill',
               'llm_agent_interfaces/action/ExecuteSkill',
               '{skill: wait, params_json: \'{"seconds": 1.0}\'}', env=graph, timeout=60)
    assert 'Goal accepted' in out.stdout, out.stdout + out.stderr
    assert 'Feedback:' in out.stdout and 'progress' in out.stdout, out.stdout
    assert 'outcome:' in out.stdout, out.stdout


def test_action_send_goal_run_instruction_ends_with_a_result(graph):
    # A short time limit: the goal ends (timed out, or done if the robot was already there)
    # and `ros2 action` prints how, with the decisions' feedback on the way.
    out = ros2('action', 'send_goal', '--feedback', '/agent/run_instruction',
               'llm_agent_interfaces/action/RunInstruction',
               "{instruction: 'go to the red target', timeout_s: 3.0}", env=graph, timeout=60)
    assert 'Goal accepted' in out.stdout, out.stdout + out.stderr
    assert re.search(r"outcome: (timed_out|goal_reached|settled)", out.stdout), out.stdout
    assert 'elapsed_s:' in out.stdout and 'decisions:' in out.stdout, out.stdout


def test_service_call_decide(graph):
    out = ros2('service', 'call', '/agent/decide', 'llm_agent_interfaces/srv/Decide',
               '{observation: {feature_names: [front_range], feature_values: [0.2]}, '
               'instruction: explore}', env=graph, timeout=60)
    assert out.returncode == 0, out.stderr
    skill = re.search(r"skill='([a-z_]+)'", out.stdout)
    assert skill, out.stdout
    assert skill.group(1) != 'move_forward', 'drove forward into a wall 0.2 m ahead'


def test_lifecycle_get_says_when_the_brain_is_ready(graph):
    # decision_node drives itself to active once its model has loaded: `ros2 launch` alone.
    deadline = time.monotonic() + 180.0
    out = None
    while time.monotonic() < deadline:
        out = ros2('lifecycle', 'get', '/decision_node', env=graph)
        if out.stdout.startswith('active'):
            break
        assert out.returncode == 0 and out.stdout.startswith('inactive'), out.stdout + out.stderr
        time.sleep(2.0)
    assert out.stdout.startswith('active [3]'), out.stdout + out.stderr


def param(*args: str, env: dict) -> subprocess.CompletedProcess:
    """`ros2 param ...`, run again when it gave up finding the node's parameter services:
    ros2param allows a fresh process 5 s for that, which a loaded 2-core machine can pass (a
    user would run the command again)."""
    for _ in range(DISCOVERY_TRIES):
        out = ros2('param', *args, env=env)
        if 'Wait for service timed out' not in out.stderr:
            break
    return out


def _describe(node: str, env: dict) -> str:
    names = param('list', f'/{node}', env=env).stdout.split()
    names = [n for n in names if n not in ('use_sim_time', 'start_type_description_service')]
    assert names, f'/{node} lists no parameters of its own'
    out = param('describe', f'/{node}', *names, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize('node', NODES)
def test_param_list_get_describe_and_refused_set(graph, node):
    text = _describe(node, graph)
    assert 'Description:' in text
    # The first parameter with a numeric range: set it past its maximum.
    blocks = text.split('Parameter name: ')[1:]
    ranged = [b for b in blocks if 'Max value:' in b]
    assert ranged, f'/{node} has no parameter with a range'
    # One that can change if the node has it (the range is then what refuses the value).
    ranged.sort(key=lambda b: 'Read only: true' in b)
    name = ranged[0].split()[0]
    top = float(re.search(r'Max value: ([-0-9.e+]+)', ranged[0]).group(1))
    integer = 'Type: integer' in ranged[0]
    got = param('get', f'/{node}', name, env=graph)
    assert got.returncode == 0 and 'value is' in got.stdout, got.stdout + got.stderr
    bad = str(int(top) + 1) if integer else repr(top * 2 + 1.0)
    out = param('set', f'/{node}', name, bad, env=graph)
    said = out.stdout + out.stderr
    assert 'Setting parameter failed' in said, said
    assert any(w in said for w in ('out of range', 'outside', 'read-only')), said
    again = param('get', f'/{node}', name, env=graph)
    assert again.returncode == 0, f'param get after the refused set: {again.stderr}'
    assert again.stdout == got.stdout, 'a refused set changed the value'


@pytest.mark.parametrize('interface', ['llm_agent_interfaces/msg/Observation',
                                       'llm_agent_interfaces/msg/Decision',
                                       'llm_agent_interfaces/srv/Decide',
                                       'llm_agent_interfaces/action/ExecuteSkill',
                                       'llm_agent_interfaces/action/RunInstruction'])
def test_interface_show(interface):
    out = ros2('interface', 'show', interface, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
