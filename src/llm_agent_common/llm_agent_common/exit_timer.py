"""End the process after a delay from a thread that needs neither the GIL nor the main thread.

A node process tears its DDS entities down last, once its own work is over. That teardown is
C++ (rcl, rmw, Fast DDS) called with the GIL held, and on a loaded machine it was seen to block
(CI: an image compressor with nothing to compress, in rcl's node fini, for more than 8 s, until
launch's SIGTERM and the shutdown watchdog's exit status 1). No Python thread can run then, so
the bound comes from a POSIX timer whose expiry glibc handles on a thread of its own
(SIGEV_THREAD) calling `_exit(status)` directly.
"""
from __future__ import annotations

import ctypes
import sys

CLOCK_MONOTONIC = 1
SIGEV_THREAD = 2


class _SigEvent(ctypes.Structure):
    # glibc's struct sigevent on 64-bit Linux (64 bytes): sigev_value, sigev_signo, sigev_notify,
    # then the SIGEV_THREAD member of the union (function, attributes) and the union's padding.
    _fields_ = [('value', ctypes.c_void_p), ('signo', ctypes.c_int), ('notify', ctypes.c_int),
                ('function', ctypes.c_void_p), ('attributes', ctypes.c_void_p),
                ('padding', ctypes.c_byte * 32)]


class _TimeSpec(ctypes.Structure):
    _fields_ = [('sec', ctypes.c_long), ('nsec', ctypes.c_long)]


class _ITimerSpec(ctypes.Structure):
    _fields_ = [('interval', _TimeSpec), ('value', _TimeSpec)]


def exit_after(seconds: float, status: int = 0) -> bool:
    """Arm a one-shot timer that ends the process with `status` after `seconds` (glibc's
    `_exit`: no atexit handlers, no buffers flushed, so flush first). False where it cannot be
    armed (not glibc on 64-bit Linux): the caller's other bounds then apply."""
    if not sys.platform.startswith('linux') or ctypes.sizeof(ctypes.c_void_p) != 8:
        return False
    try:
        libc = ctypes.CDLL(None)
        timer_create, timer_settime, exit_now = libc.timer_create, libc.timer_settime, libc._exit
    except (OSError, AttributeError):
        return False
    # The notify function gets sigev_value as its one argument: the status, in the register
    # an int argument takes.
    event = _SigEvent(value=int(status), signo=0, notify=SIGEV_THREAD,
                      function=ctypes.cast(exit_now, ctypes.c_void_p).value, attributes=None)
    timer = ctypes.c_void_p()
    timer_create.argtypes = [ctypes.c_int, ctypes.POINTER(_SigEvent), ctypes.POINTER(ctypes.c_void_p)]
    if timer_create(CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(timer)) != 0:
        return False
    whole = int(seconds)
    spec = _ITimerSpec(_TimeSpec(0, 0), _TimeSpec(whole, int((seconds - whole) * 1e9)))
    timer_settime.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_ITimerSpec),
                              ctypes.c_void_p]
    return timer_settime(timer, 0, ctypes.byref(spec), None) == 0
