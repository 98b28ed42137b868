"""Run graph nodes as child processes: start, watch, forward Ctrl-C/SIGTERM, stop them all.

No rclpy here: a node that dies is reported with its exit code and brings the graph down (no
silent restart), so a supervisor above (systemd, docker restart policy) sees the failure.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from .container import CONTAINER, container_args
from .graph import NodeEntry, dds_env, ros_args

Log = Callable[[str], None]


@dataclass
class Child:
    """One running node process."""

    entry: NodeEntry
    process: subprocess.Popen
    started: float = field(default_factory=time.monotonic)


def node_command(entry: NodeEntry, config_dir: str, namespace: str, use_sim_time: bool,
                 extra: Sequence[str] = ()) -> List[str]:
    """`python -m llm_agent_common.entry <module> --ros-args ...` with this interpreter (the
    venv's): the node's executable without its console script."""
    return [sys.executable, '-m', 'llm_agent_common.entry', entry.module] + ros_args(
        entry, config_dir, namespace=namespace, use_sim_time=use_sim_time, extra=extra)


def container_command(entries: Sequence[NodeEntry], config_dir: str, namespace: str,
                      use_sim_time: bool, extra_args: Dict[str, List[str]]) -> List[str]:
    """`python -m llm_agent_common.entry llm_agent_bringup.container ...`: the nodes in one process."""
    return [sys.executable, '-m', 'llm_agent_common.entry', CONTAINER.module] + container_args(
        entries, config_dir, namespace=namespace, use_sim_time=use_sim_time, extra_args=extra_args)


class Launcher:
    """Start a set of nodes, one process each (or all in one with one_process), and stop every
    one of them on the way out."""

    def __init__(self, log: Log = print, stop_timeout_s: float = 10.0,
                 log_dir: Optional[str] = None):
        self.children: List[Child] = []
        self.log = log
        # None: the nodes write to this terminal; else one <node>.log file each in this folder.
        self.log_dir = log_dir
        self.stop_timeout_s = stop_timeout_s
        self._stopping = False

    def start(self, entries: Sequence[NodeEntry], config_dir: str, namespace: str = '',
              use_sim_time: bool = False, extra_args: Optional[Dict[str, List[str]]] = None,
              env: Optional[Dict[str, str]] = None, one_process: bool = False) -> None:
        extra_args = extra_args or {}
        base = dict(os.environ if env is None else env)
        env = dict(base, **dds_env(config_dir, base))
        if one_process and entries:
            commands = [(CONTAINER, container_command(entries, config_dir, namespace, use_sim_time,
                                                      extra_args))]
            self.log(f'[llm-agent] one process for {", ".join(e.name for e in entries)}')
        else:
            commands = [(e, node_command(e, config_dir, namespace, use_sim_time,
                                         extra_args.get(e.name, []))) for e in entries]
        for entry, cmd in commands:
            out = None
            if self.log_dir:
                os.makedirs(self.log_dir, exist_ok=True)
                out = open(os.path.join(self.log_dir, f'{entry.name}.log'), 'ab')
            # Own session: a terminal's Ctrl-C reaches us once and we stop children in order.
            proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=out,
                                    stderr=subprocess.STDOUT if out else None)
            if out is not None:
                out.close()  # the child holds its own descriptor
            self.children.append(Child(entry, proc))
            self.log(f'[llm-agent] started {entry.name} (pid {proc.pid})')

    def poll_dead(self) -> Optional[Child]:
        """Return the first child that has exited, if any."""
        for child in self.children:
            if child.process.poll() is not None:
                return child
        return None

    def wait(self, duration_s: Optional[float] = None, interval_s: float = 0.2) -> int:
        """Watch the children until one dies, `duration_s` passes, or a signal stops us.

        Returns 0 when stopped by time or signal, else the dead node's exit code (or 1).
        """
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not self._stopping:
            dead = self.poll_dead()
            if dead is not None:
                code = dead.process.returncode
                self.log(f'[llm-agent] node {dead.entry.name} exited with code {code}; '
                         'stopping the graph (no restart)')
                return code if code not in (0, None) else 1
            if deadline is not None and time.monotonic() >= deadline:
                return 0
            time.sleep(interval_s)
        return 0

    def request_stop(self, signum: int = signal.SIGINT, _frame=None) -> None:
        """Signal handler: make wait() return; stop() then brings the children down."""
        self._stopping = True

    def stop(self) -> None:
        """SIGINT every child, then SIGTERM, then SIGKILL those that outlive the timeout."""
        live = [c for c in self.children if c.process.poll() is None]
        for sig, grace in ((signal.SIGINT, self.stop_timeout_s), (signal.SIGTERM, 3.0),
                           (signal.SIGKILL, 3.0)):
            for child in live:
                _signal_group(child.process, sig)
            deadline = time.monotonic() + grace
            while live and time.monotonic() < deadline:
                live = [c for c in live if c.process.poll() is None]
                time.sleep(0.05)
            if not live:
                break
            self.log(f'[llm-agent] {", ".join(c.entry.name for c in live)} still running '
                     f'after {signal.Signals(sig).name}')
        for child in self.children:
            code = child.process.wait()
            if code not in (0, -signal.SIGINT, -signal.SIGTERM):
                self.log(f'[llm-agent] {child.entry.name} exited with code {code}')
        self.log(f'[llm-agent] stopped {len(self.children)} node(s)')


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
