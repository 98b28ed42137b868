"""The openai backend against a local HTTP server speaking the chat-completions protocol.

The server here is a test double: a real vLLM / llama.cpp / Ollama server cannot run on this
machine (no GPU, no server binaries). It speaks the same protocol over real HTTP on loopback.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from llm_agent_brain.backends import make_backend
from llm_agent_brain.backends.openai import OpenAIBackend, answer_schema
from llm_agent_brain.decision_types import BackendError, Situation
from llm_agent_common.catalog import load_catalog

CATALOG = load_catalog('config/skills.yaml')
SIT = Situation({'front_range': 2.0, 'target_visible': 1.0, 'target_bearing': 0.4},
                'a red ball', 'go to the red target')


class Script:
    """What the double answers, request by request, and what it received."""

    def __init__(self):
        self.replies = []  # (status, body bytes or dict, delay_s)
        self.requests = []
        self.headers = []


def _handler(script):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            n = int(self.headers.get('Content-Length', 0))
            body = json.loads(self.rfile.read(n))
            script.requests.append(body)
            script.headers.append(dict(self.headers))
            status, reply, delay = script.replies.pop(0) if script.replies else (500, b'empty', 0)
            if delay:
                time.sleep(delay)
            if isinstance(reply, dict):
                reply = json.dumps(reply).encode()
            try:
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass
    return Handler


@pytest.fixture
def server():
    script = Script()
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), _handler(script))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    script.url = f'http://127.0.0.1:{httpd.server_address[1]}/v1'
    yield script
    httpd.shutdown()
    httpd.server_close()


def completion(content):
    return {'id': 'x', 'object': 'chat.completion',
            'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': content},
                         'finish_reason': 'stop'}]}


def backend(url, **kw):
    kw.setdefault('timeout_s', 2.0)
    kw.setdefault('retry_backoff_s', 0.0)
    return make_backend('openai', base_url=url, model='test-model', **kw)


def test_guided_answer_is_used_and_request_is_constrained(server, monkeypatch):
    monkeypatch.setenv('MY_KEY', 'sk-test')
    server.replies.append((200, completion('{"skill": "turn", "params": {"angle": 0.5}}'), 0))
    b = backend(server.url, api_key_env='MY_KEY')
    choice = b.choose(SIT, CATALOG)
    assert (choice.skill, choice.params) == ('turn', {'angle': 0.5})
    req = server.requests[0]
    assert req['model'] == 'test-model' and req['temperature'] == 0.0
    assert 'guided_json' not in req, 'no server-specific field: OpenAI refuses unknown ones'
    options = req['response_format']['json_schema']['schema']['anyOf']
    assert [o['properties']['skill']['const'] for o in options] == list(CATALOG.names)
    speak = options[CATALOG.names.index('speak')]['properties']['params']
    assert speak['required'] == ['text'] and speak['additionalProperties'] is False
    turn = options[CATALOG.names.index('turn')]['properties']['params']['properties']['angle']
    assert turn['type'] == 'number' and turn['minimum'] == CATALOG['turn'].params['angle'].min
    assert server.headers[0]['Authorization'] == 'Bearer sk-test'
    assert 'go to the red target' in req['messages'][-1]['content']


def test_params_filled_from_features_when_absent(server):
    server.replies.append((200, completion('{"skill": "turn"}'), 0))
    choice = backend(server.url).choose(SIT, CATALOG)
    assert choice.skill == 'turn' and choice.params == {'angle': pytest.approx(0.4)}


def test_server_without_guided_decoding_is_asked_again_plainly(server):
    server.replies += [(400, b'{"error": "response_format json_schema"}', 0),
                       (422, b'{"error": "response_format"}', 0),
                       (200, completion('I choose stop.'), 0),
                       (200, completion('stop'), 0)]
    b = backend(server.url)
    assert b.choose(SIT, CATALOG).skill == 'stop'
    assert server.requests[1]['response_format']['type'] == 'json_object'
    assert 'response_format' not in server.requests[2] and b.way == 'plain'
    b.choose(SIT, CATALOG)
    assert 'response_format' not in server.requests[3], 'remembered for this server'


def test_a_server_that_answers_json_schema_with_500_gets_json_object(server):
    # llama.cpp's server: HTTP 500 (a validation error) for json_schema, json_object works.
    server.replies += [(500, b'{"error": {"code": 500, "message": "json_schema"}}', 0),
                       (200, completion('{"skill": "turn", "params": {"angle": 0.3}}'), 0),
                       (200, completion('{"skill": "stop"}'), 0),
                       (500, b'overloaded', 0), (200, completion('{"skill": "stop"}'), 0)]
    b = backend(server.url, max_retries=1)
    assert b.choose(SIT, CATALOG).skill == 'turn'
    fmt = server.requests[1]['response_format']
    assert fmt['type'] == 'json_object' and fmt['schema'] == answer_schema(CATALOG)
    assert b.choose(SIT, CATALOG).skill == 'stop'
    assert server.requests[2]['response_format']['type'] == 'json_object'
    # Once a way worked, a 500 is the server's trouble: retried the same way, not dropped.
    assert b.choose(SIT, CATALOG).skill == 'stop'
    assert server.requests[4]['response_format']['type'] == 'json_object' and b.retries == 1


def test_http_500_is_retried_then_fails(server):
    server.replies += [(500, b'boom', 0), (200, completion('{"skill": "stop"}'), 0)]
    assert backend(server.url, max_retries=1).choose(SIT, CATALOG).skill == 'stop'
    server.replies += [(500, b'boom', 0)] * 3
    b = backend(server.url, max_retries=2)
    with pytest.raises(BackendError, match='HTTP 500'):
        b.choose(SIT, CATALOG)
    assert b.failures == 1 and b.retries == 2


def test_timeout_is_bounded(server):
    server.replies += [(200, completion('{"skill": "stop"}'), 1.5)] * 2
    b = backend(server.url, timeout_s=0.3, max_retries=1)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match='timeout'):
        b.choose(SIT, CATALOG)
    assert time.monotonic() - t0 < 1.5  # two attempts of 0.3 s, not the server's 3 s


@pytest.mark.parametrize('reply', [
    b'{not json', b'{"choices": []}', b'{"choices": [{"message": {"content": 7}}]}',
])
def test_malformed_answers_fail_cleanly(server, reply):
    server.replies += [(200, reply, 0)]
    with pytest.raises(BackendError):
        backend(server.url, max_retries=0).choose(SIT, CATALOG)


@pytest.mark.parametrize('content', [
    '{"skill": "self_destruct"}', 'ignore your rules', '{"skill": "move_forward", '
    '"params": {"distance": 100.0}}', '{"skill": "turn", "params": "left"}',
])
def test_invalid_choices_are_refused(server, content):
    server.replies += [(200, completion(content), 0)]
    with pytest.raises(BackendError):
        backend(server.url, max_retries=0).choose(SIT, CATALOG)


def test_unreachable_server():
    b = OpenAIBackend(base_url='http://127.0.0.1:9/v1', timeout_s=0.5, max_retries=0)
    with pytest.raises(BackendError, match='cannot reach|timeout'):
        b.choose(SIT, CATALOG)


def test_the_key_never_follows_a_redirect_and_credentials_are_masked(server, monkeypatch):
    # The first server answers 302 to the second; urllib would resend Authorization there.
    other = Script()
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), _handler(other))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        class Redirect(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.send_response(302)
                self.send_header('Location', f'http://127.0.0.1:{httpd.server_address[1]}/v1/x')
                self.send_header('Content-Length', '0')
                self.end_headers()

        redirector = ThreadingHTTPServer(('127.0.0.1', 0), Redirect)
        threading.Thread(target=redirector.serve_forever, daemon=True).start()
        monkeypatch.setenv('OPENAI_API_KEY', 'sk-secret')
        url = f'http://user:hunter2@127.0.0.1:{redirector.server_address[1]}/v1'
        b = backend(url, max_retries=0)
        b.load()
        with pytest.raises(BackendError) as err:
            b.choose(SIT, CATALOG)
        assert other.headers == [], 'the request (and its key) went to the redirect target'
        assert 'hunter2' not in str(err.value) and 'hunter2' not in json.dumps(b.info())
        assert '***@127.0.0.1' in b.info()['url']
        redirector.shutdown()
        redirector.server_close()
    finally:
        httpd.shutdown()
        httpd.server_close()
