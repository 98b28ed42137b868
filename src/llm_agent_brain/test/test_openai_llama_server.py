"""The openai backend against a real OpenAI-compatible server: llama-cpp-python's own server
(`python -m llama_cpp.server`) running the packaged GGUF on loopback, as a user would start it.

It refuses `response_format` json_schema (HTTP 500, a validation error) and takes json_object
with a schema; the backend must move there on the first refusal, keep that way, and get its
decisions from the model, not as fallbacks."""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from llm_agent_brain.backends import make_backend
from llm_agent_brain.decision_types import BackendError, Situation
from llm_agent_common.catalog import load_catalog

from llm_agent_brain import model_store

CATALOG = load_catalog('config/skills.yaml')
SITUATIONS = [
    Situation({'front_range': 2.0, 'target_visible': 1.0, 'target_bearing': 0.4}, 'a red ball',
              'go to the red target'),
    Situation({'front_range': 0.3, 'target_visible': 0.0, 'left_range': 2.0}, 'a wall',
              'go to the red target'),
    Situation({'front_range': 4.0, 'target_visible': 0.0}, 'an open room', 'stop now'),
    Situation({'front_range': 3.0, 'target_visible': 0.0}, 'a hallway', 'drive forward'),
]


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def llama_server(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp('server') / 'server.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'llama_cpp.server', '--model', model_store.packaged_gguf_path(),
             '--host', '127.0.0.1', '--port', str(port), '--n_ctx', '2048', '--n_threads', '1',
             '--verbose', 'false'],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f'http://127.0.0.1:{port}/v1'
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + '/models', timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, f'the server exited:\n{log.read_text()[-2000:]}'
            assert time.monotonic() < deadline, f'no server after 60 s:\n{log.read_text()[-2000:]}'
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_a_real_llama_cpp_server_is_asked_as_it_takes_guided_output(llama_server):
    logs = []
    b = make_backend('openai', base_url=llama_server, timeout_s=60.0, max_retries=1,
                     log=logs.append)
    b.load()
    chosen = []
    for sit in SITUATIONS:
        try:
            choice = b.choose(sit, CATALOG)
        except BackendError as exc:   # an answer the catalogue refuses: a fallback, counted
            chosen.append(('', str(exc)))
            continue
        assert choice.skill in CATALOG.names and choice.source == 'llm'
        assert CATALOG.validate(choice.skill, choice.params)[1] == ''
        chosen.append((choice.skill, choice.rationale))
    # json_schema was refused once, then json_object kept for this server.
    assert b.way == 'json_object' and b.way_confirmed, (b.way, logs)
    assert len([m for m in logs if 'refused guided output' in m]) == 1, logs
    assert b.failures == 0 and b.requests == len(SITUATIONS) + 1
    # The server applied the schema (as a grammar): every answer names an allowed skill with
    # the parameters it requires and no others (before the per-skill schema the 135M model
    # answered speak without a text and invented parameters: 0 of 4 usable). Its grammar does
    # not bound numbers: an angle out of range is refused by the backend, a fallback.
    refused = [why for skill, why in chosen if not skill]
    assert all('outside' in why or 'out of' in why for why in refused), chosen
    assert len(refused) <= 1, chosen
