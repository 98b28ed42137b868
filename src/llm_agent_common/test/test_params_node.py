"""One parameter mechanism on a real rclpy node: live changes validated and applied, read-only
ones refused with the reason, out-of-range ones refused."""
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
