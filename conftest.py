"""Shared pytest fixtures: every ROS test gets its own DDS domain, and DDS stays on loopback."""
import itertools
import os
import sys
import time
from typing import Callable

import pytest

# DDS must not leave this machine in any test (platform.md), whoever runs pytest.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

# Fast DDS accepts domain ids 0..232. Start from this run's id (the Makefile picks one per run)
# and give each test the next one, so tests and concurrent runs do not see each other.
_MAX_DOMAIN = 232
_run_base = int(os.environ.get('ROS_DOMAIN_ID') or (os.getpid() % 100 + 1))
_domains = itertools.count()


def _next_domain() -> int:
    return 1 + (_run_base - 1 + next(_domains)) % _MAX_DOMAIN


def _scheduling_policies() -> tuple:
    """This thread's policy as the kernel has it and as glibc remembers it for new threads."""
    import ctypes
    libc = ctypes.CDLL(None)
    libc.pthread_self.restype = ctypes.c_ulong
    libc.pthread_getschedparam.argtypes = [ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p]
    policy, priority = ctypes.c_int(-1), ctypes.c_int(0)
    libc.pthread_getschedparam(libc.pthread_self(), ctypes.byref(policy), ctypes.byref(priority))
    return os.sched_getscheduler(0), policy.value


@pytest.fixture(autouse=True)
def _stays_time_shared():
    """Fail the test that leaves this process real-time: every node, tool and DDS thread started
    later would inherit it (SVT-AV1 did, and whole graphs spun at SCHED_FIFO 99 until CI timed
    out)."""
    yield
    if sys.platform.startswith('linux'):
        assert _scheduling_policies() == (os.SCHED_OTHER, os.SCHED_OTHER), \
            'this test left pytest real-time (kernel, glibc)'


@pytest.fixture
def ros_domain_id(monkeypatch: pytest.MonkeyPatch) -> int:
    """Give the test a DDS domain of its own; child processes inherit it through the env."""
    domain = _next_domain()
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    return domain


@pytest.fixture
def ros_env(ros_domain_id: int) -> dict:
    """Environment for child processes of this test (its domain, loopback discovery)."""
    return dict(os.environ)


@pytest.fixture
def ros_context(ros_domain_id: int):
    """An initialised rclpy context on the test's own domain, shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


@pytest.fixture
def spin_until() -> Callable:
    """Spin an executor until a predicate holds or a timeout passes; return the predicate."""
    def _spin_until(executor, predicate: Callable[[], bool], timeout_s: float = 10.0,
                    step_s: float = 0.02) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            executor.spin_once(timeout_sec=step_s)
        return bool(predicate())
    return _spin_until
