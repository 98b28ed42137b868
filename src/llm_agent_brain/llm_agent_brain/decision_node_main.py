"""Entry point of the `decision_node` executable.

The node's modules (torch, transformers, the interfaces) take seconds to import on a 2-core
machine, before run_node has installed its signal handlers: a Ctrl-C in that window raised
KeyboardInterrupt out of an import (a traceback and exit -2 under `ros2 launch`). Here a stop
that comes while importing is remembered and the process then ends cleanly without starting."""
from __future__ import annotations

import signal
import sys
from typing import Any, List


def main(args: Any = None) -> int:
    """Import the node with SIGINT/SIGTERM held, then run it unless a stop came meanwhile."""
    stops: List[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stops.append(signum))
    from llm_agent_brain.decision_node import main as run
    if stops:
        print(f'[decision_node] {signal.Signals(stops[0]).name} while starting: not started',
              file=sys.stderr)
        return 0
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
