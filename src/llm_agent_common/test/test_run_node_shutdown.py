"""run_node's shutdown is bounded: a node whose main thread never comes back from a callback
(what a DDS call that blocks looks like from Python) is still gone SHUTDOWN_LIMIT_S after one
Ctrl-C, with every thread's stack on stderr, instead of waiting for launch's SIGKILL; and a
Ctrl-C that comes while the node still imports ends it cleanly (llm_agent_common.entry)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

from llm_agent_common.node import DDS_TEARDOWN_LIMIT_S, SHUTDOWN_LIMIT_S

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


TEARDOWN_BLOCKS = textwrap.dedent('''
    import ctypes, sys
    from llm_agent_common.node import GuardedNode, run_node

    class BlocksInTeardown(GuardedNode):
        def __init__(self):
            super().__init__('teardown_probe')
            self.create_timer(0.1, lambda: print('spinning', flush=True))

        def destroy_node(self):
            print('tearing down', flush=True)
            ctypes.PyDLL(None).sleep(60)   # C that holds the GIL, as rcl's node fini does
            print('teardown came back', flush=True)
            super().destroy_node()

    sys.exit(run_node(BlocksInTeardown))
''')


def test_a_dds_teardown_that_blocks_under_the_gil_ends_with_status_0(ros_env):
    """The node's work is over when its DDS entities are torn down: a teardown that blocks in C
    with the GIL held (seen in CI: rcl's node fini, past launch's SIGTERM) ends the process with
    status 0 after DDS_TEARDOWN_LIMIT_S instead of the shutdown watchdog's status 1."""
    proc = subprocess.Popen([sys.executable, '-c', TEARDOWN_BLOCKS], env=ros_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == 'spinning', proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(SHUTDOWN_LIMIT_S + 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = proc.stdout.read(), proc.stderr.read()
    assert 'tearing down' in out, out + err
    assert 'teardown came back' not in out, 'the teardown did not block: nothing was tested'
    assert code == 0, err
    assert 'most recent call first' not in err, 'the shutdown watchdog ended it, not the bound'
    assert DDS_TEARDOWN_LIMIT_S < SHUTDOWN_LIMIT_S


SLOW_TO_IMPORT = textwrap.dedent('''
    import time
    print('importing', flush=True)
    time.sleep(3)   # what the seconds of rclpy, numpy or torch imports on 2 cores look like
    from llm_agent_common.node import GuardedNode, run_node

    def main(args=None):
        print('node starts', flush=True)
        return run_node(lambda: GuardedNode('slow_probe'), args)
''')


def test_a_ctrl_c_while_the_node_imports_ends_it_cleanly_without_starting(ros_env, tmp_path):
    (tmp_path / 'slow_probe_node.py').write_text(SLOW_TO_IMPORT)
    env = dict(ros_env, PYTHONPATH=os.pathsep.join(
        [str(tmp_path)] + [p for p in [ros_env.get('PYTHONPATH')] if p]))
    proc = subprocess.Popen([sys.executable, '-m', 'llm_agent_common.entry', 'slow_probe_node'],
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == 'importing', proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = proc.stdout.read(), proc.stderr.read()
    assert 'KeyboardInterrupt' not in err, err
    assert code == 0, err
    assert 'SIGINT while starting: not started' in err, err
    assert 'node starts' in out, 'run_node is what ends it (main ran, the node did not)'


def test_entry_without_a_module_says_how_to_call_it(ros_env):
    done = subprocess.run([sys.executable, '-m', 'llm_agent_common.entry'], env=ros_env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and 'usage: python -m llm_agent_common.entry MODULE' in done.stderr
