"""The entry of every node's executable: the node is imported with SIGINT/SIGTERM held.

A node's modules (rclpy, the interfaces, numpy, torch for the brain) take seconds to import on a
2-core machine, before run_node installs its own signal handlers. A Ctrl-C in that window raised
KeyboardInterrupt out of an import: a traceback and exit -2 under `ros2 launch`. Here a stop that
comes while the node imports (or while rclpy starts) is held; run_node sees it and ends the
process cleanly without starting the node.

This module imports nothing heavy on purpose: it runs before the node's imports.

  - console scripts: `<name> = <package>.executables:<name>`, each `executable('<module>')`;
  - `python -m llm_agent_common.entry <module> [--ros-args ...]` (what `llm-agent up` runs).
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any, Callable, List, NoReturn

_held: List[int] = []


def _hold(signum: int, _frame: Any) -> None:
    _held.append(signum)


def hold_stop_signals() -> None:
    """From now until run_node installs its own handlers, SIGINT and SIGTERM are only noted."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _hold)


def held_stop() -> str:
    """The name of the first stop signal that came while the node was starting, or ''."""
    return signal.Signals(_held[0]).name if _held else ''


def start(module: str, args: Any = None) -> int:
    """Import `module` with the stop signals held and run its main(args); the exit code."""
    hold_stop_signals()
    code = importlib.import_module(module).main(args)
    return 0 if code is None else int(code)


def leave(code: int) -> NoReturn:
    """End the node's process with `code` once main() has shut the node down: run_node has
    deleted the DDS participant; what remains of a normal exit (interpreter teardown, the C++
    static destructors of the DDS libraries) is skipped, as it was seen to hang for minutes."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def executable(module: str) -> Callable[..., NoReturn]:
    """The console-script function of the node in `module` (which has a main(args) -> int);
    it ends the process with main's exit code."""
    def main(args: Any = None) -> NoReturn:
        leave(start(module, args))
    main.module = module  # type: ignore[attr-defined]  # graph.yaml's entries are checked on it
    main.__doc__ = f'Run {module}.main with the stop signals held while it imports.'
    return main


if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1].startswith('-'):
        sys.exit('usage: python -m llm_agent_common.entry MODULE [--ros-args ...]')
    # Through the imported module: run as __main__ this file is a second copy, whose _held
    # run_node would not see.
    from llm_agent_common.entry import start as start_imported
    leave(start_imported(sys.argv.pop(1)))
