"""The guard through the real nodes: sim_world and skill_server as processes over DDS, boxes put
in the robot's path (several off the centre line, where the old ±0.35 rad cone looked past them)
and `move_forward` sent as a goal. The robot must stop before every box: no collision event.
The in-process trials (test_guard_placements.py, bench section 7) run the thousands."""
import json
import subprocess
import sys
import time

import rclpy
import yaml
from action_msgs.msg import GoalStatus
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import String
from std_srvs.srv import Trigger

from llm_agent_interfaces.action import ExecuteSkill

# (centre ahead m, offset left m, size x, size y, speed m/s): the robot starts at (0, 0) facing +x.
PLACEMENTS = [(1.0, 0.0, 0.3, 0.3, 0.5), (1.1, 0.15, 0.06, 0.06, 0.5),
              (1.2, -0.16, 0.1, 0.1, 0.4), (0.9, 0.3, 0.2, 0.2, 0.3),
              (1.4, -0.25, 0.1, 0.3, 0.5), (1.0, 0.12, 0.04, 0.04, 0.4)]


def _world_file(tmp_path, i, box):
    x, y, sx, sy, _ = box
    data = {'name': f'placement{i}', 'wall_height_m': 1.0,
            'room': {'min': [-4.0, -4.0], 'max': [4.0, 4.0], 'colour': 'grey'},
            'boxes': [{'center': [x, y], 'size': [sx, sy], 'colour': 'blue', 'height': 0.5}],
            'target': {'center': [3.5, 3.5], 'size': [0.3, 0.3], 'colour': 'red', 'height': 0.4},
            'goal': {'x': 3.5, 'y': 3.5}, 'start': {'x': 0.0, 'y': 0.0, 'yaw': 0.0}}
    path = tmp_path / f'placement{i}.yaml'
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _start(module, params, env):
    args = [sys.executable, '-m', module, '--ros-args']
    for k, v in params.items():
        args += ['-p', f'{k}:={v}']
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _stop(proc):
    proc.send_signal(2)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def test_the_real_nodes_stop_before_every_box_in_the_path(ros_env, ros_context, tmp_path):
    files = [_world_file(tmp_path, i, b) for i, b in enumerate(PLACEMENTS)]
    world = _start('llm_agent_sim.sim_world_node',
                   {'world_file': files[0], 'image_width': 64, 'image_height': 48,
                    'camera_rate_hz': 1.0, 'scan_noise_std_m': 0.0}, ros_env)
    # scan_timeout_s as in the skill server's own tests: a loaded 2-core machine delays scans,
    # and a refusal for a stale scan would not test the corridor.
    server = _start('llm_agent_actuation.skill_server_node',
                    {'use_sim_time': 'true', 'scan_timeout_s': 3.0}, ros_env)
    node = rclpy.create_node('placement_test', context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    events, state = [], {'odom': None}
    node.create_subscription(String, 'sim/events', lambda m: events.append(json.loads(m.data)),
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(Odometry, 'odom', lambda m: state.__setitem__('odom', m),
                             qos_profile_sensor_data)
    client = ActionClient(node, ExecuteSkill, 'agent/execute_skill')
    reset = node.create_client(Trigger, 'sim/reset')
    set_params = node.create_client(SetParameters, 'sim_world/set_parameters')

    def spin_until(pred, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not pred():
            ex.spin_once(timeout_sec=0.02)
        return bool(pred())

    def call(cli, req):
        fut = cli.call_async(req)
        assert spin_until(fut.done, 10), f'no answer from {cli.srv_name}'
        return fut.result()

    try:
        assert spin_until(lambda: client.server_is_ready() and reset.service_is_ready()
                          and set_params.service_is_ready() and state['odom'] is not None, 60)
        outcomes = []
        for path, (_x, _y, _sx, _sy, speed) in zip(files, PLACEMENTS):
            value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=path)
            res = call(set_params, SetParameters.Request(
                parameters=[Parameter(name='world_file', value=value)]))
            assert res.results[0].successful, res.results[0].reason
            assert call(reset, Trigger.Request()).success
            n_events = len(events)
            spin_until(lambda: False, 0.6)   # scans of the new world reach the guard (10 Hz)
            fut = client.send_goal_async(ExecuteSkill.Goal(
                skill='move_forward', params_json=json.dumps({'distance': 3.0, 'speed': speed})))
            assert spin_until(fut.done, 10)
            handle = fut.result()
            def collisions(since=n_events):
                return [e for e in events[since:] if e.get('type') == 'collision']
            if handle.accepted:
                rfut = handle.get_result_async()
                spin_until(lambda f=rfut: f.done() or collisions(), 30)
                assert not collisions(), (path, collisions())
                assert rfut.done(), 'no result'
                result = rfut.result()
                outcomes.append((result.status, result.result.message))
                assert not (result.status == GoalStatus.STATUS_SUCCEEDED
                            and result.result.success), 'drove 3 m through a box'
            else:
                outcomes.append(('rejected', ''))
            assert spin_until(lambda: abs(state['odom'].twist.twist.linear.x) < 1e-3, 5)
            assert not collisions(), (path, collisions(), outcomes[-1])
        # The guard (not a stale scan) stopped the robot on the way, at least most of the time.
        guarded = [m for _s, m in outcomes if 'safety guard' in m or 'blocked' in m]
        assert len(guarded) >= len(PLACEMENTS) // 2, outcomes
    finally:
        client.destroy()
        ex.shutdown()
        node.destroy_node()
        assert _stop(server) == 0
        _stop(world)
