"""keep_large_buffers: a frame-sized buffer allocated and freed again and again reuses heap pages
instead of faulting in fresh ones (each case runs in a fresh Python process: malloc's settings
are per process and cannot be undone)."""
import os
import subprocess
import sys

import pytest

LOOP = """
import resource, sys
from llm_agent_common.heap import keep_large_buffers
if sys.argv[1] == 'keep':
    print(keep_large_buffers())
else:
    print('default malloc')
frame = 640 * 480 * 3            # a bgr8 frame, as rclpy hands it over
def one_frame():                 # the message's copies on the way in (sample, C, Python)
    copies = [bytearray(frame) for _ in range(3)]
    del copies
for _ in range(5):
    one_frame()                  # warm-up: the heap grows once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    one_frame()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode, **env):
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith('MALLOC_') and k != 'GLIBC_TUNABLES'}
    out = subprocess.run([sys.executable, '-c', LOOP, mode], env={**environ, **env},
                         capture_output=True, text=True, check=True, timeout=60).stdout.split('\n')
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc is Linux only')
def test_frame_buffers_reuse_heap_pages():
    said, kept = _faults('keep')
    assert 'keeps buffers up to 32 MB' in said
    _, default = _faults('default')
    # 100 frames, 3 copies of 0.9 MB each: with malloc's defaults the heap's top is trimmed after
    # each frame and its ~660 pages faulted in again for the next.
    assert default > 10_000, f'the control case faulted only {default} times: nothing to show'
    assert kept < 1_000, f'{kept} page faults for 100 frames with the thresholds raised'


def test_a_threshold_set_in_the_environment_is_left_alone():
    said, _ = _faults('keep', MALLOC_TRIM_THRESHOLD_='131072')
    assert said == 'malloc thresholds left as set in the environment (MALLOC_TRIM_THRESHOLD_)'
