"""Any OpenAI-compatible `/v1/chat/completions` server (vLLM, llama.cpp server, Ollama).

Stdlib HTTP only. The answer is constrained the way the server takes it, trying in turn:
`response_format` json_schema (OpenAI, vLLM >= 0.6, Ollama >= 0.5, LM Studio, llama.cpp's C++
server), then `response_format` json_object with the schema inside (llama-cpp-python's server,
which answers the first with HTTP 500; older vLLM gives plain JSON), then plain chat. No
server-specific field (vLLM's `guided_json`) is sent: OpenAI refuses unknown fields, and a
server that ignores one would seem to accept a constraint it never applied. Until a guided
request has once succeeded, any HTTP error to it moves to the next way at once (no retry); the
way that works is remembered for the server. Every answer is parsed and validated; timeouts and
HTTP errors are retried a bounded number of times, then become a BackendError (the node's
fallback).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict

from llm_agent_brain import prompt
from llm_agent_brain.backends import scoring
from llm_agent_brain.backends.base import BackendBase
from llm_agent_brain.decision_types import BackendError, Choice, Situation

LOG = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 1 << 20


# The ways to ask for a constrained answer, most precise first (see the module's docstring).
GUIDED_WAYS = ('json_schema', 'json_object', 'plain')


_JSON_TYPES = {'float': 'number', 'int': 'integer', 'str': 'string', 'bool': 'boolean'}


def _param_schema(p: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {'type': _JSON_TYPES.get(p.type, 'string')}
    if p.min is not None:
        out['minimum'] = p.min
    if p.max is not None:
        out['maximum'] = p.max
    if p.max_length:
        out['maxLength'] = p.max_length
    return out


def answer_schema(catalog: Any) -> Dict[str, Any]:
    """JSON schema of an answer: one allowed skill and, for that skill, its parameters with
    their types and bounds (required ones required, no others). A server that applies it (as a
    grammar) cannot answer `speak` without a text or invent a parameter."""
    options = []
    for name in catalog.names:
        spec = catalog[name]
        params = {'type': 'object',
                  'properties': {p.name: _param_schema(p) for p in spec.params.values()},
                  'required': [p.name for p in spec.params.values() if p.required],
                  'additionalProperties': False}
        options.append({'type': 'object',
                        'properties': {'skill': {'const': name}, 'params': params},
                        'required': ['skill'] + (['params'] if params['required'] else []),
                        'additionalProperties': False})
    return {'anyOf': options}


class OpenAIBackend(BackendBase):
    """Choose with a remote chat-completions server."""

    name = 'openai'

    def __init__(self, base_url: str = 'http://localhost:8000/v1', model: str = '',
                 api_key_env: str = 'OPENAI_API_KEY', timeout_s: float = 10.0,
                 max_retries: int = 2, retry_backoff_s: float = 0.2, guided: bool = True,
                 margin_m: float = scoring.DEFAULT_MARGIN_M, max_instruction_chars: int = 500,
                 scenario: str = prompt.DEFAULT_SCENARIO, max_tokens: int = 96,
                 log: Callable[[str], None] = LOG.info) -> None:
        super().__init__()
        self.base_url = base_url.rstrip('/')
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.retry_backoff_s = retry_backoff_s
        self.guided = guided
        # The way this server takes guided output; confirmed once a request that way succeeded.
        self.way = GUIDED_WAYS[0] if guided else 'plain'
        self.way_confirmed = not guided
        self.margin_m = margin_m
        self.max_instruction_chars = max_instruction_chars
        self.scenario = scenario
        self.max_tokens = max_tokens
        self._log = log
        self.requests = 0
        self.failures = 0
        self.retries = 0
        self.last_error = ''

    @property
    def url(self) -> str:
        base = self.base_url
        return base + '/chat/completions' if base.endswith('/v1') else base + '/v1/chat/completions'

    @property
    def shown_url(self) -> str:
        """The URL as logs and diagnostics show it: credentials in it are masked."""
        return redacted(self.url)

    def load(self) -> None:
        """Nothing to load: the server is asked at every decision."""
        self.ready = True

    def info(self) -> Dict[str, Any]:
        out = super().info()
        out.update({'model': self.model or '(server default)', 'url': self.shown_url,
                    'quantization': 'server', 'guided': self.guided, 'guided_way': self.way,
                    'requests': self.requests, 'failures': self.failures,
                    'retries': self.retries, 'last_error': self.last_error})
        return out

    def _headers(self) -> Dict[str, str]:
        headers = {'Content-Type': 'application/json', 'Accept': 'application/json'}
        key = os.environ.get(self.api_key_env, '') if self.api_key_env else ''
        if key:
            headers['Authorization'] = f'Bearer {key}'
        return headers

    def request_body(self, situation: Situation, catalog: Any, way: str) -> Dict[str, Any]:
        """The chat-completions request for one decision, guided `way` (GUIDED_WAYS)."""
        user = prompt.user_text(situation, self.max_instruction_chars)
        body: Dict[str, Any] = {
            'messages': prompt.messages(catalog, user, self.scenario, examples=False,
                                        json_answer=True),
            'temperature': 0.0, 'max_tokens': self.max_tokens, 'stream': False}
        if self.model:
            body['model'] = self.model
        schema = answer_schema(catalog)
        if way == 'json_schema':
            # strict: OpenAI's strict mode takes only an object at the root, not anyOf.
            body['response_format'] = {'type': 'json_schema',
                                       'json_schema': {'name': 'decision', 'schema': schema,
                                                       'strict': False}}
        elif way == 'json_object':
            body['response_format'] = {'type': 'json_object', 'schema': schema}
        return body

    def _post(self, body: Dict[str, Any]) -> Dict[str, Any]:
        data = json.dumps(body).encode('utf-8')
        req = urllib.request.Request(self.url, data=data, headers=self._headers(), method='POST')
        with _OPENER.open(req, timeout=self.timeout_s) as resp:
            raw = resp.read(MAX_RESPONSE_BYTES + 1)
        if len(raw) > MAX_RESPONSE_BYTES:
            raise BackendError(f'answer larger than {MAX_RESPONSE_BYTES} bytes')
        try:
            return json.loads(raw.decode('utf-8'))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BackendError(f'server answered malformed JSON: {exc}') from exc

    def complete(self, situation: Situation, catalog: Any) -> str:
        """The model's answer text, with bounded retries; raise BackendError on failure."""
        attempt = 0
        while True:
            self.requests += 1
            try:
                data = self._post(self.request_body(situation, catalog, self.way))
                text = _content(data)
                self.way_confirmed = True
                return text
            except urllib.error.HTTPError as exc:
                detail = exc.read(300).decode('utf-8', 'replace') if exc.fp else ''
                if not self.way_confirmed:
                    # This server does not take guided output this way: the next way, now.
                    way = GUIDED_WAYS[GUIDED_WAYS.index(self.way) + 1]
                    self._log(f'{self.shown_url} refused guided output as {self.way} '
                              f'(HTTP {exc.code}: {detail[:80]}); asking as {way} from now on')
                    self.way = way
                    self.way_confirmed = way == 'plain'
                    continue
                error = f'HTTP {exc.code} from {self.shown_url}: {detail[:120]}'
                retry = exc.code >= 500 or exc.code == 429
            except (socket.timeout, TimeoutError) as exc:
                error, retry = f'timeout after {self.timeout_s:g} s ({exc})', True
            except urllib.error.URLError as exc:
                timed_out = isinstance(exc.reason, (socket.timeout, TimeoutError))
                error = (f'timeout after {self.timeout_s:g} s' if timed_out
                         else f'cannot reach {self.shown_url}: {exc.reason}')
                retry = True
            except (OSError, ValueError) as exc:  # connection reset, bad status line...
                error, retry = f'{type(exc).__name__}: {exc}', True
            except BackendError as exc:
                error, retry = str(exc), True
            self.last_error = error
            if not retry or attempt >= self.max_retries:
                self.failures += 1
                raise BackendError(f'openai backend: {error} (after {attempt + 1} attempt(s))')
            attempt += 1
            self.retries += 1
            time.sleep(self.retry_backoff_s * attempt)

    def choose(self, situation: Situation, catalog: Any) -> Choice:
        text = self.complete(situation, catalog)
        return scoring.choice_from_answer(text, situation, catalog, self.margin_m,
                                          f'{self.model or "server"} answered')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: urllib would resend the Authorization header to wherever they point."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None  # urllib then raises HTTPError for the 3xx: an error, never a resend


_OPENER = urllib.request.build_opener(_NoRedirect)


def redacted(url: str) -> str:
    """`url` with any user:password@ replaced by ***@."""
    parts = urllib.parse.urlsplit(url)
    if '@' not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc='***@' + parts.netloc.rsplit('@', 1)[1]))


def _content(data: Any) -> str:
    """The first choice's message content of a chat-completions answer."""
    try:
        content = data['choices'][0]['message']['content']
    except (KeyError, IndexError, TypeError) as exc:
        raise BackendError(f'answer lacks choices[0].message.content: {str(data)[:120]}') from exc
    if not isinstance(content, str):
        raise BackendError('answer content is not text')
    return content


