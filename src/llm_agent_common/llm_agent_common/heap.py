"""Keep large message buffers in the heap instead of mapping fresh pages for each (glibc).

A camera frame is a 0.6-0.9 MB buffer several times over on its way through rclpy (DDS sample,
C message, bytes, array). Above 128 kB glibc's malloc maps each such buffer with mmap and
unmaps it on free, and trims the heap's top back to the system past 128 kB: every frame then
costs ~150 page faults per buffer, freshly zeroed by the kernel. A Python node subscribed to a
640x480 depth stream at 30 Hz spent 6.0-6.7 % of a core doing nothing with the frames, and
2.9 % with both thresholds raised (AMD EPYC, 2 vCPU; both are needed: fixing either one turns
off glibc's own adjustment of the other).

Memory kept: at most what the process used at its peak, the buffers being reused frame after
frame. A threshold set in the environment (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_,
GLIBC_TUNABLES) is the user's choice and left alone; elsewhere than glibc this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1   # mallopt parameters, glibc's malloc.h
M_MMAP_THRESHOLD = -3
# Buffers up to 32 MB (a 1920x1080 rgb8 frame is 6 MB) come from the heap, and up to 64 MB free
# at its top stays there for the next frame.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
USER_SETTINGS = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'GLIBC_TUNABLES')


def keep_large_buffers() -> str:
    """Raise malloc's mmap and trim thresholds for this process; a line saying what was done."""
    chosen = [name for name in USER_SETTINGS if name in os.environ]
    if chosen:
        return f'malloc thresholds left as set in the environment ({", ".join(chosen)})'
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return 'malloc thresholds unchanged (no glibc mallopt here)'
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
            and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)):
        return 'malloc thresholds unchanged (mallopt refused them)'
    return (f'malloc keeps buffers up to {MMAP_THRESHOLD_BYTES >> 20} MB in the heap '
            f'(trim at {TRIM_THRESHOLD_BYTES >> 20} MB)')
