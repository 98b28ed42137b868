"""A bare Decide echo in a process of its own, made with the nodes' own toolkit (GuardedNode,
run_node): the floor of a service round trip between two processes, which the decision
node's fast paths are measured against (bench section 2)."""
from __future__ import annotations

import sys

from llm_agent_common.node import GuardedNode, run_node

from llm_agent_interfaces.srv import Decide

SERVICE = 'bench/echo_process'


class EchoServer(GuardedNode):
    """Answer every Decide request with an empty response."""

    def __init__(self) -> None:
        super().__init__('bench_echo_process')
        self.create_service(Decide, SERVICE, lambda request, response: response)


def main(args=None) -> int:
    """Serve until Ctrl-C."""
    return run_node(EchoServer, args)


if __name__ == '__main__':
    sys.exit(main())
