"""One parameter mechanism on a real rclpy node: live changes validated and applied, read-only
ones refused with the reason, out-of-range ones refused."""
import time

from llm_agent_common.node import Param, Params
from rclpy.node import Node
from rclpy.parameter import Parameter


def test_live_read_only_and_out_of_range(ros_context):
    node = Node('params_probe', context=ros_context)
    seen = []
    try:
        params = Params(node, [Param('rate_hz', 5.0, 'rate', range=(0.1, 50.0)),
                               Param('model', '', 'model', read_only=True)],
                        on_change=lambda v: seen.append(dict(v)))
        ok = node.set_parameters([Parameter('rate_hz', value=10.0)])[0]
        assert ok.successful and params['rate_hz'] == 10.0 and seen[-1]['rate_hz'] == 10.0
        bad = node.set_parameters([Parameter('rate_hz', value=500.0)])[0]
        assert not bad.successful and params['rate_hz'] == 10.0
        ro = node.set_parameters([Parameter('model', value='other')])[0]
        assert not ro.successful and 'read-only' in ro.reason and params['model'] == ''
    finally:
        node.destroy_node()


def test_a_callback_that_raises_is_counted_and_the_node_carries_on(ros_context, spin_until):
    from llm_agent_common.node import GuardedNode
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    node = GuardedNode('guarded_probe', context=ros_context)
    got = []

    def fragile(msg):
        if msg.data == 'boom':
            raise RuntimeError('a bad message')
        got.append(msg.data)

    node.create_subscription(String, 'probe', fragile, 10)
    pub = node.create_publisher(String, 'probe', 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 5.0)
        for text in ('boom', 'boom', 'fine'):
            pub.publish(String(data=text))
        assert spin_until(executor, lambda: got == ['fine'], 5.0)
        assert node.callback_errors.total == 2
        assert node.callback_errors.key_values()['callback_errors_probe'] == '2'
    finally:
        executor.shutdown()
        node.destroy_node()


def test_incompatible_qos_is_told_once_without_event_handlers(ros_context):
    """GuardedNode leaves out rclpy's per-endpoint QoS event handlers (polled at every executor
    wake-up) and its QosWatch tells a best-effort publisher / reliable subscription pair."""
    from llm_agent_common.node import GuardedNode, latched_qos
    from rclpy.event_handler import EventHandler
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    best_effort = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    talker = GuardedNode('qos_talker', context=ros_context)
    listener = GuardedNode('qos_listener', context=ros_context)
    warnings = []
    try:
        talker.create_publisher(String, 'qos_probe', best_effort)
        talker.create_publisher(String, 'qos_fine', 10)
        talker.create_publisher(String, 'qos_either', 10)                      # volatile
        listener.create_subscription(String, 'qos_probe', lambda m: None, 10)   # reliable
        listener.create_subscription(String, 'qos_fine', lambda m: None, best_effort)
        # latched and volatile: the volatile publisher reaches the second, no warning
        listener.create_subscription(String, 'qos_either', lambda m: None, latched_qos())
        listener.create_subscription(String, 'qos_either', lambda m: None, 10)
        assert not [w for w in listener.waitables if isinstance(w, EventHandler)]
        listener.get_logger().warning = warnings.append
        deadline = time.monotonic() + 10.0
        while not warnings and time.monotonic() < deadline:
            listener.qos_watch.check()
            time.sleep(0.1)
        listener.qos_watch.check()   # told once, not at every check
        assert len(warnings) == 1 and listener.qos_watch.incompatible == 1, warnings
        assert '/qos_talker publishes /qos_probe' in warnings[0]
        assert 'best-effort publisher, reliable subscription' in warnings[0]
        # and nothing about the compatible pair, whose profiles come back from the graph with
        # deadline and liveliness filled in
        assert not [w for w in warnings if 'qos_fine' in w or 'qos_either' in w]
    finally:
        talker.destroy_node()
        listener.destroy_node()


def test_qos_incompatibility_reads_reliability_and_durability_only():
    """What the graph says of a remote endpoint: deadline and liveliness lease at their
    'infinite' maxima. rclpy's qos_check_compatible called that an error against a default
    profile; it is not, and our check says nothing."""
    from llm_agent_common.node import qos_incompatibility
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    forever = Duration(seconds=2147483647, nanoseconds=4294967295)
    remote = QoSProfile(depth=1, deadline=forever, liveliness_lease_duration=forever)
    assert qos_incompatibility(QoSProfile(depth=10), remote) == ''
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    assert qos_incompatibility(best_effort, remote) == 'best-effort publisher, reliable subscription'
    assert qos_incompatibility(QoSProfile(depth=1), latched) == \
        'volatile publisher, transient-local subscription'
    assert qos_incompatibility(latched, best_effort) == ''


def test_lean_executor_runs_short_callbacks_inline_and_blocking_ones_in_its_pool(ros_context):
    """A MutuallyExclusive group's callbacks run on the spinning thread (no hand-off per control
    tick); a Reentrant group's go to the pool, so one that blocks holds up nothing else."""
    import threading

    from llm_agent_common.node import LeanMultiThreadedExecutor
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup

    node = Node('lean_executor_probe', context=ros_context)
    executor = LeanMultiThreadedExecutor(num_threads=2, context=ros_context)
    ran = {}
    release = threading.Event()

    def blocking():
        ran.setdefault('blocking', threading.get_ident())
        release.wait(5.0)

    try:
        node.create_timer(0.01, lambda: ran.setdefault('short', threading.get_ident()),
                          callback_group=MutuallyExclusiveCallbackGroup())
        node.create_timer(0.01, blocking, callback_group=ReentrantCallbackGroup())
        executor.add_node(node)
        deadline = time.monotonic() + 5.0
        while len(ran) < 2 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert ran.get('short') == threading.get_ident(), 'a short callback went to the pool'
        assert ran.get('blocking') not in (None, threading.get_ident()), \
            'a reentrant callback ran on the spinning thread'
    finally:
        release.set()
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
