"""An agent/decide client for bench section 2, in the bench process (the LLM row) or in a process
of its own (the fast paths: the decision node then has its process to itself, as under `llm-agent
up`, and its round trips compare with the bare echo between two processes).

  python -m llm_agent_bench.decide_client < plan.json > times.json

plan: {"services": {key: service name}, "calls": [[key, features, summary, instruction], ...]};
out: [[ms, source], ...] per call, in order (source '' for an echo).
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Dict, List, Mapping, Tuple

SERVICE_WAIT_S = 20.0


def request(features: Mapping[str, float], summary: str, instruction: str) -> Any:
    from llm_agent_interfaces.msg import Observation
    from llm_agent_interfaces.srv import Decide
    req = Decide.Request()
    req.observation = Observation(feature_names=list(features), summary=summary,
                                  feature_values=[float(v) for v in features.values()])
    req.instruction = instruction
    return req


class DecideClient:
    """A client node on its own SingleThreadedExecutor, one client per service."""

    def __init__(self, context: Any, services: Mapping[str, str]) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from llm_agent_interfaces.srv import Decide
        self.node = rclpy.create_node('bench_decide_client', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.clients = {k: self.node.create_client(Decide, name) for k, name in services.items()}

    def wait(self) -> None:
        for key, cli in self.clients.items():
            if not cli.wait_for_service(timeout_sec=SERVICE_WAIT_S):
                raise RuntimeError(f'service {key} did not appear within {SERVICE_WAIT_S:g} s')

    def call(self, key: str, req: Any, timeout_s: float = 600.0) -> Tuple[float, Any]:
        """(round trip ms, response)."""
        t0 = time.perf_counter()
        fut = self.clients[key].call_async(req)
        # spin_once in a loop, not spin_until_future_complete: with a timeout, that one cost
        # 2.5-3.7 ms a call by itself here (a bare echo between processes: 3.4 ms against
        # 0.7 ms), and it made the floor that every fast path was reported against.
        deadline = t0 + timeout_s
        while not fut.done() and time.perf_counter() < deadline:
            self.executor.spin_once(timeout_sec=1.0)
        ms = (time.perf_counter() - t0) * 1000.0
        if not fut.done():
            raise RuntimeError(f'{key} did not answer within {timeout_s:g} s')
        return ms, fut.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def run_plan(plan: Dict[str, Any]) -> List[List[Any]]:
    """Make the plan's calls in order, once every service is there."""
    import rclpy
    from rclpy.context import Context
    context = Context()
    rclpy.init(args=[], context=context)
    client = DecideClient(context, plan['services'])
    try:
        client.wait()
        calls = [(key, request(f, summary, instruction)) for key, f, summary, instruction
                 in plan['calls']]
        out = []
        for key, req in calls:
            ms, resp = client.call(key, req)
            out.append([ms, resp.decision.source])
        return out
    finally:
        client.close()
        rclpy.try_shutdown(context=context)


def main() -> int:
    print(json.dumps(run_plan(json.load(sys.stdin))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
