"""use_sim_time on a GuardedNode: /clock is taken on a thread of its own, not by the executor,
and the node's clock and its ROS-time timers still follow it (real rclpy nodes over DDS)."""
import threading

from builtin_interfaces.msg import Time as TimeMsg
from llm_agent_common.node import GuardedNode
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock


def _clock_threads():
    return [t for t in threading.enumerate() if t.name == 'clock_input' and t.is_alive()]


def test_sim_clock_is_read_off_the_executor_and_still_drives_time_and_timers(ros_context,
                                                                            spin_until):
    node = GuardedNode('sim_clock_probe', context=ros_context,
                       parameter_overrides=[Parameter('use_sim_time', value=True)])
    world = Node('sim_clock_world', context=ros_context)
    pub = world.create_publisher(Clock, '/clock',
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    fired = []
    node.create_timer(0.5, lambda: fired.append(node.get_clock().now().nanoseconds))
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        # The executor never waits on /clock (a wake-up per clock message), yet the node reads it.
        assert '/clock' not in [s.topic_name for s in node.subscriptions]
        assert len(_clock_threads()) == 1
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10.0)
        sim_s = [10.0]

        def tick():
            sim_s[0] += 0.1
            sec = int(sim_s[0])
            pub.publish(Clock(clock=TimeMsg(sec=sec, nanosec=int(round((sim_s[0] - sec) * 1e9)))))
            return False

        # A clock message rclpy cannot read (negative time) is counted; the thread carries on.
        pub.publish(Clock(clock=TimeMsg(sec=-5, nanosec=0)))
        assert spin_until(executor, lambda: node.callback_errors.total == 1, 5.0)
        assert len(_clock_threads()) == 1

        # Sim time advances only with /clock: ten ticks of 0.1 s pass a 0.5 s timer at least once.
        assert spin_until(executor, lambda: tick() or len(fired) >= 2, 10.0, step_s=0.02)
        assert all(9.9e9 < t < sim_s[0] * 1e9 + 1 for t in fired)
        assert spin_until(executor, lambda: abs(node.get_clock().now().nanoseconds
                                                - sim_s[0] * 1e9) < 1e6, 5.0)

        # use_sim_time off: the thread ends and the clock is the system's again.
        assert node.set_parameters([Parameter('use_sim_time', value=False)])[0].successful
        assert spin_until(executor, lambda: not _clock_threads(), 5.0)
        assert node.get_clock().now().nanoseconds > 1e18   # wall time, 2001 onwards
    finally:
        executor.shutdown()
        world.destroy_node()
        node.destroy_node()
