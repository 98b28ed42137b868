"""run_node's shutdown is bounded: a node whose main thread never comes back from a callback
(what a DDS call that blocks looks like from Python) is still gone SHUTDOWN_LIMIT_S after one
Ctrl-C, with every thread's stack on stderr, instead of waiting for launch's SIGKILL."""
import signal
import subprocess
import sys
import textwrap
import time

from llm_agent_common.node import SHUTDOWN_LIMIT_S

STUCK_NODE = textwrap.dedent('''
    import sys, threading
    from llm_agent_common.node import GuardedNode, run_node

    class Stuck(GuardedNode):
        def __init__(self):
            super().__init__('stuck_probe')
            self.create_timer(0.1, self.hang_in_callback)

        def hang_in_callback(self):
            print('in the callback', flush=True)
            threading.Event().wait()   # never set: the main thread does not come back

    sys.exit(run_node(Stuck))
''')


def test_one_ctrl_c_ends_a_node_stuck_in_a_callback_and_says_where(ros_env):
    proc = subprocess.Popen([sys.executable, '-c', STUCK_NODE], env=ros_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == 'in the callback', proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        code = proc.wait(SHUTDOWN_LIMIT_S + 10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert code == 1, err
    assert took >= SHUTDOWN_LIMIT_S - 0.5, 'the watchdog must leave the clean shutdown its time'
    assert 'most recent call first' in err and 'hang_in_callback' in err, err
