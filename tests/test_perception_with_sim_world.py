"""The observer on the built-in world (llm_agent_sim): the robot starts facing the red target."""
import math

import pytest

from llm_agent_perception import features
from llm_agent_sim import sim_world_node


def test_observer_sees_red_target_ahead_in_room_world(ros_context, spin_until):
    import rclpy
    from llm_agent_common.node import LeanMultiThreadedExecutor
    from llm_agent_perception.observer_node import Observer
    from llm_agent_perception.scan_filter_node import ScanFilter
    from rclpy.parameter import Parameter

    from llm_agent_interfaces.msg import Observation

    executor = LeanMultiThreadedExecutor(num_threads=3, context=ros_context)
    # room.yaml: robot at (-2, 0) facing +x; red target box (0.3 m) centred at (2.4, 0); the
    # goal is the target.
    world = sim_world_node.SimWorldNode(context=ros_context, parameter_overrides=[
        Parameter('world_file', value='room.yaml')])
    nodes = [world, ScanFilter(context=ros_context), Observer(context=ros_context)]
    tester = rclpy.create_node('perception_sim_tester', context=ros_context)
    got = []
    tester.create_subscription(Observation, 'agent/observation', got.append, 10)
    for node in nodes + [tester]:
        executor.add_node(node)
    try:
        def ready():
            if not got:
                return False
            f = dict(zip(got[-1].feature_names, got[-1].feature_values, strict=False))
            return f['target_visible'] == 1.0 and f['goal_distance'] >= 0
        assert spin_until(executor, ready, 30.0), got[-1:] or 'no observation'
        f = dict(zip(got[-1].feature_names, got[-1].feature_values, strict=False))
        assert tuple(got[-1].feature_names) == features.FEATURE_NAMES
        assert all(math.isfinite(v) for v in got[-1].feature_values)
        assert f['goal_distance'] == pytest.approx(4.4, abs=0.1)
        assert abs(f['goal_bearing']) < 0.05
        assert abs(f['target_bearing']) < math.radians(3)
        assert 0.0 < f['target_size'] < 0.2
        # The front sector spans +-30 deg: the brown box's corner (-0.4, 0.9) is at 29.4 deg,
        # 1.84 m away, nearer than the target's face 4.25 m straight ahead.
        assert f['front_range'] == pytest.approx(math.hypot(1.6, 0.9), abs=0.08)
        # Nothing behind the robot but the wall at x = -3 (1 m).
        assert f['rear_range'] == pytest.approx(1.0, abs=0.08)
        assert f['speed'] == pytest.approx(0.0, abs=0.01)
        assert 'red target visible' in got[-1].summary
    finally:
        executor.shutdown()  # first, so no callback runs on a node being destroyed
        for node in nodes:
            if hasattr(node, 'close'):
                node.close()
            node.destroy_node()
        tester.destroy_node()
