"""A GGUF model run by llama.cpp (llama-cpp-python): the CPU runtime of the decision node.

It scores like the transformers backend (the log-likelihood of each allowed skill's name after
the prompt, all candidates in one pass, the answer always an allowed skill), but with llama.cpp's
CPU kernels on the GGUF's weights (requantized once to 8-bit Q8_0 by default: on the shipped
Q4_1 it chose as fp32 did on every labelled case, and ran faster than Q4_1 on AVX2), without
torch in the process (about 230 MB instead of 1.7 GB).

The prompt caches are llama.cpp sequences in one key/value store:
- sequence 0 holds the common prefix (system text, catalogue, examples), computed once;
- each cached instruction has a sequence: the common prefix shared with it (a sequence copy
  tags cells, it computes nothing), then the instruction's own ~20 tokens; so a new instruction
  costs its own tokens only, and the least recently used is dropped;
- a decision copies the instruction's sequence to one work sequence per candidate and feeds,
  in one batch, the observation (in every work sequence) and the candidates' tokens as a prefix
  tree (each tree token in the sequences of the candidates that pass through it: llama.cpp's
  per-sequence attention is the tree mask); the work sequences are then dropped.
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from llm_agent_brain import model_store, prompt
from llm_agent_brain.backends import scoring
from llm_agent_brain.backends.base import BackendBase, cpu_threads
from llm_agent_brain.decision_types import BackendError, Choice, Situation

LOG = logging.getLogger(__name__)
COMMON_SEQ = 0
BATCH_TOKENS = 512
# Tokens per compute pass: its buffer holds a logits row per token (49k floats each for
# SmolLM2): 128 keeps it at ~26 MB instead of ~100 MB at 512, and a decision (the observation
# and the candidates, 40-80 tokens) still fits one pass.
PASS_TOKENS = 128
# Candidates scored in one pass (each needs a work sequence); more are scored in several passes.
WORK_SEQS = 32
# llama.cpp's CPU matrix kernels run a batch of a multiple of 64 tokens much faster than a batch
# a little short of it (on the 2-core AVX2 EPYC measured: 63 tokens 421 ms, 64 tokens 249 ms;
# 40 tokens 265 ms). A decision of PAD_FROM..PAD_TO-1 tokens is padded to PAD_TO with tokens
# of a scratch sequence that no other sequence attends to, so the scores do not change.
PAD_TO = 64
PAD_FROM = 40
_BACKEND_INIT = threading.Lock()
_backend_ready = False


def _llama() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendError('the llamacpp backend needs llama-cpp-python (make setup installs '
                           'it; pip install llama-cpp-python)') from exc
    return llama_cpp


def gguf_path(model: str) -> str:
    """The GGUF file to load: `model` when it names one, the packaged SmolLM2 when empty."""
    if not model:
        return model_store.packaged_gguf_path()
    path = os.path.expanduser(model)
    if not (path.endswith('.gguf') and os.path.isfile(path)):
        raise BackendError(f'the llamacpp backend loads a .gguf file; {model!r} is not one '
                           '(a Hugging Face id or folder loads with backend transformers)')
    return path


class LlamaCppBackend(BackendBase):
    """Choose with a GGUF model on llama.cpp's CPU kernels."""

    name = 'llamacpp'

    def __init__(self, model: str = '', margin_m: float = scoring.DEFAULT_MARGIN_M,
                 max_instruction_chars: int = 500, scenario: str = prompt.DEFAULT_SCENARIO,
                 num_threads: int = 0, examples: bool = True, prompt_style: str = 'compact',
                 instruction_caches: int = 4, context_tokens: int = 2048,
                 gguf_type: str = 'Q8_0', model_cache_dir: str = '',
                 log: Callable[[str], None] = LOG.info) -> None:
        super().__init__()
        if prompt_style not in prompt.STYLES:
            raise ValueError(f'prompt_style must be one of {prompt.STYLES}, got {prompt_style!r}')
        self.model_name = model
        self.margin_m = margin_m
        self.max_instruction_chars = max_instruction_chars
        self.scenario = scenario
        self.num_threads = num_threads
        self.examples = examples
        self.prompt_style = prompt_style
        self.instruction_caches = max(1, int(instruction_caches))
        self._pad_seq = 1 + self.instruction_caches + WORK_SEQS  # after the work sequences
        self._pad_token = 0
        self.context_tokens = int(context_tokens)
        if gguf_type not in model_store.GGUF_TYPES:
            raise ValueError(f'gguf_type must be one of {model_store.GGUF_TYPES}, got {gguf_type!r}')
        self.gguf_type = gguf_type
        self.model_cache_dir = model_cache_dir
        self.mode = 'score'
        self._log = log
        self.path = ''
        self._load_lock = threading.Lock()
        self._lib: Any = None
        self._model: Any = None
        self._ctx: Any = None
        self._vocab: Any = None
        self._batch: Any = None
        self._mem: Any = None
        self._n_vocab = 0
        self._end: Optional[int] = None
        self._formatter: Any = None
        self._desc = ''
        self._size_mb = 0.0
        # The common prefix in sequence 0: (its text, its token count).
        self._common: Tuple[str, int] = ('', 0)
        # Cached instructions: (common text, head text) -> (sequence id, prefix length, after).
        self._prefix: 'OrderedDict[Tuple[str, str], Tuple[int, int, str]]' = OrderedDict()
        self.calls = 0
        self.prefix_builds = 0
        self.last_new_tokens = 0

    # ----------------------------------------------------------------- loading
    def load(self) -> None:
        """Load the GGUF with llama.cpp and make a context with room for the prompt caches."""
        global _backend_ready
        with self._load_lock:
            if self.ready:
                return
            try:
                lib = _llama()
                self.path = model_store.requantized_gguf(gguf_path(self.model_name),
                                                         self.gguf_type, self.model_cache_dir,
                                                         log=self._log)
                with _BACKEND_INIT:
                    if not _backend_ready:
                        lib.llama_backend_init()
                        _backend_ready = True
                self._quiet(lib)
                mp = lib.llama_model_default_params()
                self._model = lib.llama_model_load_from_file(self.path.encode(), mp)
                if not self._model:
                    raise BackendError(f'llama.cpp could not load {self.path}')
                threads = cpu_threads(self.num_threads)
                cp = lib.llama_context_default_params()
                cp.n_ctx = self.context_tokens
                cp.n_batch, cp.n_ubatch = BATCH_TOKENS, PASS_TOKENS
                cp.n_seq_max = 1 + self.instruction_caches + WORK_SEQS + 1  # + the pad's
                cp.kv_unified = True        # sequences share the prefix cells
                cp.n_threads = cp.n_threads_batch = threads
                self._ctx = lib.llama_init_from_model(self._model, cp)
                if not self._ctx:
                    raise BackendError('llama.cpp could not create a context '
                                       f'({self.context_tokens} tokens)')
                self._lib = lib
                self._vocab = lib.llama_model_get_vocab(self._model)
                self._n_vocab = lib.llama_vocab_n_tokens(self._vocab)
                self._mem = lib.llama_get_memory(self._ctx)
                self._batch = lib.llama_batch_init(BATCH_TOKENS, 0, cp.n_seq_max)
                self._formatter = self._chat_formatter()
                self._end = self._end_token()
                buf = ctypes.create_string_buffer(128)
                lib.llama_model_desc(self._model, buf, len(buf))
                self._desc = buf.value.decode('utf-8', 'replace')
                self._size_mb = lib.llama_model_size(self._model) / 2**20
            except (BackendError, model_store.ModelStoreError) as exc:
                self.load_error = str(exc)
                self._free()
                raise BackendError(self.load_error) from exc
            except Exception as exc:  # any loading failure: the node keeps answering fallback
                self.load_error = f'{type(exc).__name__}: {exc}'
                self._free()
                raise BackendError(f'cannot load model {self.model_name or "(packaged)"}: '
                                   f'{self.load_error}') from exc
            self._log(f'llama.cpp: {self._desc}, {self._size_mb:.0f} MB, {threads} thread(s)')
            self.ready = True

    @staticmethod
    def _quiet(lib: Any) -> None:
        """llama.cpp logs every tensor at load to stderr: keep its warnings and errors only."""
        @lib.llama_log_callback
        def on_log(level: int, text: bytes, _user: Any) -> None:
            if level in (3, 4) and text:  # GGML_LOG_LEVEL_WARN, _ERROR
                LOG.warning('llama.cpp: %s', text.decode('utf-8', 'replace').rstrip())
        LlamaCppBackend._log_callback = on_log  # kept alive: llama.cpp holds the pointer
        lib.llama_log_set(on_log, ctypes.c_void_p(0))

    def _end_token(self) -> Optional[int]:
        """The token that ends the assistant's answer: what the chat template writes right after
        an answer (ChatML's <|im_end|>, Llama 3's <|eot_id|>), else end of sequence."""
        lib = self._lib
        if self._formatter is not None:
            mark = '@@ANSWER@@'
            text = self._formatter(messages=[{'role': 'user', 'content': 'q'},
                                             {'role': 'assistant', 'content': mark}]).prompt
            after = text.split(mark, 1)[1] if mark in text else ''
            ids = self._ids(after) if after else []
            if ids:
                return ids[0]
        for tok in (lib.llama_vocab_eos(self._vocab), lib.llama_vocab_eot(self._vocab)):
            if tok >= 0:
                return int(tok)
        return None

    def _piece(self, token: int) -> str:
        buf = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        return buf.raw[:max(0, n)].decode('utf-8', 'replace')

    def _chat_formatter(self) -> Any:
        """The GGUF's own chat template, rendered with jinja2 as transformers does."""
        template = self._lib.llama_model_chat_template(self._model, None)
        if not template:
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        bos = self._lib.llama_vocab_bos(self._vocab)
        eos = self._lib.llama_vocab_eos(self._vocab)
        return Jinja2ChatFormatter(template.decode('utf-8'),
                                   eos_token=self._piece(eos) if eos >= 0 else '',
                                   bos_token=self._piece(bos) if bos >= 0 else '')

    def _free(self) -> None:
        lib = self._lib or (_llama() if self._model else None)
        if self._batch is not None:
            lib.llama_batch_free(self._batch)
        if self._ctx:
            lib.llama_free(self._ctx)
        if self._model:
            lib.llama_model_free(self._model)
        self._batch = self._ctx = self._model = self._mem = None
        self._prefix.clear()
        self._common = ('', 0)

    def close(self) -> None:
        with self._lock:
            self.ready = False
            self._free()

    def info(self) -> Dict[str, Any]:
        out = super().info()
        out.update({'model': self.path or self.model_name or '(packaged SmolLM2)',
                    'quantization': f'gguf ({self._desc})' if self._desc else 'gguf',
                    'mode': self.mode, 'device': 'cpu', 'memory_mb': round(self._size_mb, 1)})
        return out

    # ----------------------------------------------------------------- tokens
    def _ids(self, text: str) -> List[int]:
        data = text.encode('utf-8')
        size = len(data) + 8
        while True:
            buf = (self._lib.llama_token * size)()
            # no BOS (the chat template writes what it needs); template marks as special tokens
            n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, size, False, True)
            if n >= 0:
                return list(buf[:n])
            size = -n

    def _decode(self, items: Sequence[Tuple[int, int, Sequence[int], bool]]) -> List[int]:
        """Feed (token, position, sequence ids, wants logits) items, BATCH_TOKENS at a time;
        the batch indices whose logits were asked for, in the last chunk."""
        lib, batch = self._lib, self._batch
        wanted: List[int] = []
        for start in range(0, len(items), BATCH_TOKENS):
            chunk = items[start:start + BATCH_TOKENS]
            batch.n_tokens = len(chunk)
            wanted = []
            for i, (tok, pos, seqs, logits) in enumerate(chunk):
                batch.token[i] = tok
                batch.pos[i] = pos
                batch.n_seq_id[i] = len(seqs)
                for k, seq in enumerate(seqs):
                    batch.seq_id[i][k] = seq
                batch.logits[i] = bool(logits)
                if logits:
                    wanted.append(i)
            rc = lib.llama_decode(self._ctx, batch)
            if rc != 0:
                raise BackendError(f'llama.cpp decode failed ({rc}): the prompt caches need more '
                                   f'than context_tokens={self.context_tokens}' if rc == 1 else
                                   f'llama.cpp decode failed ({rc})')
        return wanted

    def _logp(self, index: int) -> np.ndarray:
        ptr = self._lib.llama_get_logits_ith(self._ctx, index)
        x = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)).astype(np.float64)
        top = x.max()
        return x - (top + np.log(np.exp(x - top).sum()))

    # ------------------------------------------------------------- prompt caches
    def _split(self, catalog: Any, instruction: str) -> prompt.ChatSplit:
        def render(msgs: list) -> str:
            if self._formatter is None:  # a base model without a template: a plain transcript
                return ''.join(f"{m['role'].capitalize()}: {m['content']}\n" for m in msgs) \
                    + 'Assistant: '
            return self._formatter(messages=msgs).prompt
        return prompt.split_chat(render, catalog, instruction, self.scenario, self.examples,
                                 self.prompt_style, False, self.max_instruction_chars)

    def _seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None:
        self._lib.llama_memory_seq_rm(self._mem, seq, p0, p1)

    def prefix_cache(self, catalog: Any, instruction: str = '') -> Tuple[int, int, str]:
        """(sequence id, prefix tokens, text after the observation) of this instruction's
        cached prefix; built now if missing (the common part once per catalogue)."""
        split = self._split(catalog, instruction)
        key = (split.common, split.head)
        entry = self._prefix.get(key)
        if entry is not None:
            self._prefix.move_to_end(key)
            return entry
        if self._common[0] != split.common:      # a new catalogue or scenario: start afresh
            self._lib.llama_memory_clear(self._mem, True)
            self._prefix.clear()
            ids = self._ids(split.common)
            self._decode([(t, i, (COMMON_SEQ,), False) for i, t in enumerate(ids)])
            self._common = (split.common, len(ids))
        used = {seq for seq, _, _ in self._prefix.values()}
        if len(used) >= self.instruction_caches:
            _, (seq, _, _) = self._prefix.popitem(last=False)
            self._seq_rm(seq)
        else:
            seq = min(set(range(1, 1 + self.instruction_caches)) - used)
        c_len = self._common[1]
        self._lib.llama_memory_seq_cp(self._mem, COMMON_SEQ, seq, -1, -1)
        head = self._ids(split.head)
        self._decode([(t, c_len + i, (seq,), False) for i, t in enumerate(head)])
        entry = (seq, c_len + len(head), split.after)
        self._prefix[key] = entry
        self.prefix_builds += 1
        return entry

    def clear_prefixes(self) -> None:
        """Forget every prompt cache, the common prefix too (the next decision computes its
        whole prompt again)."""
        with self._lock:
            if self.ready:
                self._lib.llama_memory_clear(self._mem, True)
            self._prefix.clear()
            self._common = ('', 0)

    def prepare(self, catalog: Any, instruction: str) -> None:
        """Build the cache of a new instruction now, off the decision path."""
        if self.ready:
            with self._lock:
                self.prefix_cache(catalog, instruction)

    def is_prepared(self, catalog: Any, instruction: str) -> bool:
        """True when a decision under this instruction reuses a cache."""
        if not self.ready:
            return False
        split = self._split(catalog, instruction)
        return (split.common, split.head) in self._prefix

    # ----------------------------------------------------------------- choose
    def choose(self, situation: Situation, catalog: Any) -> Choice:
        if not self.ready:
            raise BackendError(f'model still loading ({self.load_error or "not ready"})')
        with self._lock:
            self.calls += 1
            try:
                return self._choose_scored(situation, catalog)
            except BackendError:
                raise
            except Exception as exc:  # a model failure must become a fallback, never a crash
                raise BackendError(f'model call failed: {type(exc).__name__}: {exc}') from exc

    def score(self, situation: Situation, catalog: Any, names: Sequence[str]) -> List[float]:
        """Log-likelihood of each skill name as the answer, after the shared prompt."""
        seq, p_len, after = self.prefix_cache(catalog, situation.instruction)
        dyn = self._ids(prompt.decision_text(situation, self.prompt_style, after,
                                             self.max_instruction_chars))
        self.last_new_tokens = len(dyn)
        cands = [self._ids(n) + ([self._end] if self._end is not None else []) for n in names]
        scores: List[float] = []
        for start in range(0, len(cands), WORK_SEQS):
            scores += self._score_group(seq, p_len, dyn, cands[start:start + WORK_SEQS])
        return scores

    def _score_group(self, seq: int, p_len: int, dyn: List[int],
                     cands: List[List[int]]) -> List[float]:
        work = [1 + self.instruction_caches + j for j in range(len(cands))]
        tree = scoring.CandidateTree(cands)
        d_len = len(dyn)
        if p_len + d_len + len(tree.tokens) > self.context_tokens:
            raise BackendError(f'prompt of {p_len + d_len} tokens does not fit '
                               f'context_tokens={self.context_tokens}')
        if d_len + len(tree.tokens) > BATCH_TOKENS:   # one decode call keeps every row's logits
            raise BackendError(f'observation of {d_len} tokens: at most '
                               f'{BATCH_TOKENS - len(tree.tokens)} fit one pass')
        for w in work:
            self._lib.llama_memory_seq_cp(self._mem, seq, w, -1, -1)
        try:
            items = [(t, p_len + i, work, i == d_len - 1) for i, t in enumerate(dyn)]
            members = tree.members()
            items += [(t, p_len + d_len + depth, [work[j] for j in sorted(members[i])], True)
                      for i, (t, depth) in enumerate(zip(tree.tokens, tree.depths))]
            pad = PAD_TO - len(items) if PAD_FROM <= len(items) < PAD_TO else 0
            items += [(self._pad_token, i, [self._pad_seq], False) for i in range(pad)]
            rows = self._decode(items)       # row 0: after the observation; 1 + i: tree node i
            logp = [self._logp(r) for r in rows]
            return [sum(float(logp[row][tok]) for row, tok in tree.steps(c)) for c in cands]
        finally:
            for w in work + [self._pad_seq]:
                self._seq_rm(w)

    def _choose_scored(self, situation: Situation, catalog: Any) -> Choice:
        return scoring.choose_by_scores(situation, catalog, self.margin_m, self.score)
