"""A local Hugging Face model (any id, folder or GGUF file) that chooses by scoring skills.

Scoring: the prompt's static prefix (system text with the skill catalogue and, in the compact
style, the instruction) is encoded once; its key/value cache is reused, never mutated, by every
decision. Per decision one forward pass on a copy of that cache feeds the observation and every
candidate skill name (as a prefix tree under a 4-D attention mask); each candidate's score is
the log-likelihood of its tokens. The answer is always one of the allowed skills.

`mode='generate'` instead generates a JSON answer freely from the full prompt, with no prefix
cache: what LLM-on-ROS agents commonly do; kept as the benchmark's baseline.
"""
from __future__ import annotations

import inspect
import logging
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from llm_agent_brain import model_store, prompt
from llm_agent_brain import quantization as quant
from llm_agent_brain.backends import scoring
from llm_agent_brain.backends.base import BackendBase, cpu_threads
from llm_agent_brain.decision_types import BackendError, Choice, Situation

LOG = logging.getLogger(__name__)
MODES = ('score', 'generate')


class TransformersBackend(BackendBase):
    """Choose with a local transformers model, 4-bit NF4 by default."""

    name = 'transformers'

    def __init__(self, model: str = '', quantization: str = 'nf4', device: str = 'auto',
                 device_map: str = '', compute_dtype: str = 'auto', prune_amount: float = 0.0,
                 model_cache_dir: str = '', mode: str = 'score', margin_m: float = scoring.DEFAULT_MARGIN_M,
                 max_instruction_chars: int = 500, scenario: str = prompt.DEFAULT_SCENARIO,
                 max_new_tokens: int = 48, num_threads: int = 0, examples: bool = True,
                 prompt_style: str = 'compact', instruction_caches: int = 4,
                 one_pass: bool = True, log: Optional[Callable[[str], None]] = None) -> None:
        super().__init__()
        if quantization not in quant.QUANTIZATIONS:
            raise ValueError(f'quantization must be one of {quant.QUANTIZATIONS}')
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        if prompt_style not in prompt.STYLES:
            raise ValueError(f'prompt_style must be one of {prompt.STYLES}, got {prompt_style!r}')
        self.model_name = model
        self.quantization = quantization
        self.device = device
        self.device_map = device_map
        self.compute_dtype = compute_dtype
        self.prune_amount = prune_amount
        self.model_cache_dir = model_cache_dir
        self.mode = mode
        self.margin_m = margin_m
        self.max_instruction_chars = max_instruction_chars
        self.scenario = scenario
        self.max_new_tokens = max_new_tokens
        self.num_threads = num_threads
        self.examples = examples
        self.prompt_style = prompt_style
        self.instruction_caches = max(1, int(instruction_caches))
        self.one_pass = one_pass      # False: the earlier two-pass scoring (a bench baseline)
        self._log = log or LOG.info  # callers without a logger pass None (the bench did)
        self.loaded: Optional[quant.LoadedModel] = None
        self.path = ''
        self._load_lock = threading.Lock()
        # Key/value caches of the static prefix, one per instruction (compact style; least
        # recently used dropped): text before the observation -> (ids, cache, text after).
        self._prefix: 'OrderedDict[str, Tuple[List[int], Any, str]]' = OrderedDict()
        self._cache_kw = 'cache'
        self.calls = 0
        self.prefix_builds = 0        # caches built (a new instruction, or one dropped earlier)
        self.last_new_tokens = 0      # context tokens the last scored decision fed the model

    # ----------------------------------------------------------------- loading
    def load(self) -> None:
        """Resolve (and convert once) the model, then load it in the configured precision."""
        with self._load_lock:
            if self.ready:
                return
            import torch
            torch.set_num_threads(cpu_threads(self.num_threads))
            try:
                self.path = model_store.resolve_model(self.model_name, self.model_cache_dir,
                                                      log=self._log)
                self.loaded = quant.load_model(
                    self.path, self.quantization, self.device, self.device_map,
                    self.compute_dtype, self.prune_amount, log=self._log)
            except Exception as exc:  # any loading failure: the node keeps answering fallback
                self.load_error = f'{type(exc).__name__}: {exc}'
                raise BackendError(f'cannot load model {self.model_name or "(packaged)"}: '
                                   f'{self.load_error}') from exc
            params = inspect.signature(self.loaded.model.forward).parameters
            # transformers 5 calls the cache argument `cache`; older releases `past_key_values`.
            self._cache_kw = 'cache' if 'cache' in params else 'past_key_values'
            self.ready = True

    @property
    def model(self) -> Any:
        return self.loaded.model if self.loaded else None

    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer if self.loaded else None

    def info(self) -> Dict[str, Any]:
        out = super().info()
        out.update({'model': self.path or self.model_name or '(packaged SmolLM2)',
                    'quantization': self.quantization, 'mode': self.mode,
                    'device': self.loaded.device if self.loaded else self.device})
        out.update(quant.summary(self.loaded))
        return out

    # ------------------------------------------------------------------ prompt
    def _chat_text(self, msgs: list) -> str:
        tok = self.tokenizer
        if getattr(tok, 'chat_template', None):
            return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        # a base model without a template: a plain transcript
        return ''.join(f"{m['role'].capitalize()}: {m['content']}\n" for m in msgs) + 'Assistant: '

    def _render(self, catalog: Any, instruction: str = '',
                json_answer: bool = False) -> Tuple[str, str]:
        """The chat text before and after the observation: system, examples, template marks and,
        in the compact style, the instruction (so it is part of the cached prefix)."""
        split = prompt.split_chat(self._chat_text, catalog, instruction, self.scenario,
                                  self.examples, self.prompt_style, json_answer,
                                  self.max_instruction_chars)
        return split.common + split.head, split.after

    def _ids(self, text: str) -> List[int]:
        return list(self.tokenizer(text, add_special_tokens=False)['input_ids'])

    def _forward(self, input_ids: Any, attention_mask: Any, cache: Any,
                 position_ids: Any = None) -> Any:
        import torch
        kwargs = {self._cache_kw: cache, 'use_cache': True, 'attention_mask': attention_mask}
        if position_ids is not None:
            kwargs['position_ids'] = position_ids
        with torch.inference_mode():
            out = self.model(input_ids=input_ids, **kwargs)
        return out

    @staticmethod
    def _out_cache(out: Any) -> Any:
        cache = getattr(out, 'cache', None)
        return cache if cache is not None else getattr(out, 'past_key_values', None)

    def prefix_cache(self, catalog: Any, instruction: str = '') -> Tuple[List[int], Any, str]:
        """(token ids, key/value cache, text after the observation) of the static prefix.

        Built once per catalogue and (compact style) instruction; a few are kept.
        """
        before, after = self._render(catalog, instruction)
        entry = self._prefix.get(before)
        if entry is not None:
            self._prefix.move_to_end(before)
            return entry
        import torch
        ids = self._ids(before)
        t = torch.tensor([ids], device=self._input_device())
        out = self._forward(t, torch.ones_like(t), self._new_cache())
        entry = (ids, self._out_cache(out), after)
        self._prefix[before] = entry
        self.prefix_builds += 1
        while len(self._prefix) > self.instruction_caches:
            self._prefix.popitem(last=False)
        return entry

    def clear_prefixes(self) -> None:
        """Forget every prompt cache (the next decision encodes its whole prompt again)."""
        with self._lock:
            self._prefix.clear()

    def prepare(self, catalog: Any, instruction: str) -> None:
        """Build the cache of a new instruction now, off the decision path."""
        if self.ready and self.mode == 'score':
            with self._lock:
                self.prefix_cache(catalog, instruction)

    def is_prepared(self, catalog: Any, instruction: str) -> bool:
        """True when a decision under this instruction reuses a cache."""
        return self._render(catalog, instruction)[0] in self._prefix if self.ready else False

    def _input_device(self) -> Any:
        return self.model.get_input_embeddings().weight.device

    def _new_cache(self, data: Optional[Sequence[Tuple[Any, Any]]] = None) -> Any:
        from transformers import DynamicCache
        return DynamicCache(data) if data is not None else DynamicCache()

    @staticmethod
    def _layers(cache: Any) -> List[Tuple[Any, Any]]:
        if hasattr(cache, 'layers'):
            return [(layer.keys, layer.values) for layer in cache.layers]
        return [(k, v) for k, v in cache]

    def _copy_cache(self, cache: Any, batch: int = 1) -> Any:
        """A new cache over the same tensors, expanded to `batch` rows; the source is untouched.

        DynamicCache grows by torch.cat into new tensors, so the shared prefix is never written.
        """
        layers = [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
                  for k, v in self._layers(cache)]
        return self._new_cache(layers)

    # ----------------------------------------------------------------- choose
    def choose(self, situation: Situation, catalog: Any) -> Choice:
        if not self.ready:
            raise BackendError(f'model still loading ({self.load_error or "not ready"})')
        with self._lock:
            self.calls += 1
            try:
                if self.mode == 'generate':
                    return self._choose_generate(situation, catalog)
                return self._choose_scored(situation, catalog)
            except BackendError:
                raise
            except Exception as exc:  # a model failure must become a fallback, never a crash
                raise BackendError(f'model call failed: {type(exc).__name__}: {exc}') from exc

    def score(self, situation: Situation, catalog: Any,
              names: Sequence[str]) -> List[float]:
        """Log-likelihood of each skill name as the answer, after the shared prompt."""
        prefix_ids, prefix, after = self.prefix_cache(catalog, situation.instruction)
        dyn = self._ids(prompt.decision_text(situation, self.prompt_style, after,
                                             self.max_instruction_chars))
        self.last_new_tokens = len(dyn)
        end = self.tokenizer.eos_token_id
        cands = [self._ids(n) + ([end] if end is not None else []) for n in names]
        scorer = self._score_one_pass if self.one_pass else self._score_two_passes
        return scorer(len(prefix_ids), prefix, dyn, cands)

    def _score_one_pass(self, p_len: int, prefix: Any, dyn: List[int],
                        cands: List[List[int]]) -> List[float]:
        """One forward pass on a copy of the prefix cache: the observation's tokens, then every
        candidate's tokens as a prefix tree (shared first tokens fed once), each tree token
        seeing the whole context and its own ancestors only (a 4-D attention mask, positions
        set per branch). The scores of feeding each candidate after the context, for one
        pass's fixed cost (a 4-bit model dequantizes its weights on every pass on CPU) and no
        copy of the cache per candidate."""
        import torch
        tree = scoring.CandidateTree(cands)
        d_len, n = len(dyn), len(tree.tokens)
        dev = self._input_device()
        ids = torch.tensor([dyn + tree.tokens], device=dev)
        pos = torch.tensor([list(range(p_len, p_len + d_len))
                            + [p_len + d_len + depth for depth in tree.depths]], device=dev)
        dtype = self.model.get_input_embeddings().weight.dtype
        if not dtype.is_floating_point:
            dtype = torch.float32
        allowed = torch.zeros(d_len + n, p_len + d_len + n, dtype=torch.bool, device=dev)
        allowed[:d_len, :p_len] = True
        allowed[:d_len, p_len:p_len + d_len] = torch.tril(
            torch.ones(d_len, d_len, dtype=torch.bool, device=dev))
        allowed[d_len:, :p_len + d_len] = True
        for i, ancestors in enumerate(tree.ancestors):
            allowed[d_len + i, [p_len + d_len + a for a in ancestors]] = True
        mask = torch.zeros(allowed.shape, dtype=dtype, device=dev)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        out = self._forward(ids, mask[None, None], self._copy_cache(prefix), position_ids=pos)
        # row 0: after the observation (each first token); row 1 + i: after tree node i
        logp = torch.log_softmax(out.logits[0, d_len - 1:].float(), dim=-1)
        return [sum(float(logp[row, tok]) for row, tok in tree.steps(c)) for c in cands]

    def _score_two_passes(self, p_len: int, prefix: Any, dyn: List[int],
                          cands: List[List[int]]) -> List[float]:
        """The observation in one pass, then the candidates as a batch on the cache expanded
        to it: the same scores at about twice the cost (the bench's baseline, one_pass=False)."""
        import torch
        dev = self._input_device()
        d_len = len(dyn)
        out = self._forward(torch.tensor([dyn], device=dev),
                            torch.ones(1, p_len + d_len, dtype=torch.long, device=dev),
                            self._copy_cache(prefix))
        first_logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        ctx = self._out_cache(out)
        width = max(len(c) for c in cands)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([c + [pad] * (width - len(c)) for c in cands], device=dev)
        n = len(cands)
        mask = torch.zeros(n, p_len + d_len + width, dtype=torch.long, device=dev)
        mask[:, :p_len + d_len] = 1
        for i, c in enumerate(cands):
            mask[i, p_len + d_len:p_len + d_len + len(c)] = 1
        pos = torch.arange(p_len + d_len, p_len + d_len + width, device=dev).expand(n, -1)
        out = self._forward(ids, mask, self._copy_cache(ctx, n), position_ids=pos)
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        return [float(first_logp[c[0]]) + sum(float(logp[i, j - 1, c[j]])
                                              for j in range(1, len(c)))
                for i, c in enumerate(cands)]

    def _choose_scored(self, situation: Situation, catalog: Any) -> Choice:
        return scoring.choose_by_scores(situation, catalog, self.margin_m, self.score)

    # --------------------------------------------------------------- generate
    def generate_text(self, situation: Situation, catalog: Any) -> str:
        """Free generation of the JSON answer from the full prompt (no prefix cache)."""
        import torch
        before, after = self._render(catalog, json_answer=True)
        text = before + prompt.user_text(situation, self.max_instruction_chars,
                                         style=self.prompt_style) + after
        ids = torch.tensor([self._ids(text)], device=self._input_device())
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                      max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.eos_token_id)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    def _choose_generate(self, situation: Situation, catalog: Any) -> Choice:
        text = self.generate_text(situation, catalog)
        return scoring.choice_from_answer(text, situation, catalog, self.margin_m, 'generated')

