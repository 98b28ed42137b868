"""Measurements of the LLM backend that `llm-agent bench` reports (sections 2 and 3).

Raw figures only (milliseconds, MB, chosen skills); the report computes ratios against its
baselines. `measure_setting` loads one compression setting and times its choices over a fixed
set of situations; `compare_modes` times scored choice with and without the prefix cache
against free JSON generation on one loaded backend.
"""
from __future__ import annotations

import gc
import logging
import os
import time
from typing import Any, Dict, List, Sequence, Tuple

from llm_agent_brain.decision_types import BackendError, Situation

GO = 'go to the red target'
SITUATIONS: Tuple[Situation, ...] = (
    Situation({'front_range': 3.0, 'left_range': 2.0, 'right_range': 2.0, 'target_visible': 1.0,
               'target_bearing': 0.05, 'target_size': 0.03}, 'a red ball ahead', GO),
    Situation({'front_range': 4.0, 'left_range': 3.0, 'right_range': 1.0, 'target_visible': 0.0},
              'an open room', GO),
    Situation({'front_range': 0.6, 'left_range': 2.0, 'right_range': 0.6, 'target_visible': 0.0},
              'a wall close ahead', GO),
    Situation({'front_range': 3.0, 'target_visible': 1.0, 'target_bearing': 1.1},
              'a red ball on the left', 'turn towards the red target'),
    Situation({'front_range': 4.0, 'goal_distance': 3.0, 'goal_bearing': 0.0}, 'a corridor',
              'drive forward to the goal'),
    Situation({'front_range': 4.0, 'target_visible': 0.0}, 'an open room', 'stop now'),
    Situation({'front_range': 3.0, 'target_visible': 0.0}, 'a person waving', 'say hello'),
    Situation({'front_range': 2.0, 'target_visible': 0.0}, 'a closed door', 'wait 4 seconds'),
)

LLAMA_LABEL = 'llama.cpp Q8_0 (the CPU default)'
# (label, backend options: TransformersBackend's unless `backend` names another); fp32 first:
# it is the baseline of the others.
SETTINGS: Tuple[Tuple[str, Dict[str, Any]], ...] = (
    ('fp32', {'quantization': 'fp32'}),
    ('bf16', {'quantization': 'bf16'}),
    ('fp16', {'quantization': 'fp16'}),
    ('int8', {'quantization': 'int8'}),
    ('nf4 (compute fp32)', {'quantization': 'nf4', 'compute_dtype': 'float32'}),
    ('nf4 (compute bf16)', {'quantization': 'nf4', 'compute_dtype': 'bfloat16'}),
    ('fp4 (compute fp32)', {'quantization': 'fp4', 'compute_dtype': 'float32'}),
    ('fp32 pruned 30%', {'quantization': 'fp32', 'prune_amount': 0.3}),
    (LLAMA_LABEL, {'backend': 'llamacpp', 'gguf_type': 'Q8_0'}),
    ('llama.cpp Q4_0', {'backend': 'llamacpp', 'gguf_type': 'Q4_0'}),
    ('llama.cpp Q4_1 (the GGUF as shipped)', {'backend': 'llamacpp', 'gguf_type': ''}),
)


def make_setting_backend(options: Dict[str, Any], device: str = 'cpu') -> Any:
    """The (not loaded) backend of one SETTINGS entry."""
    options = dict(options)
    if options.pop('backend', 'transformers') == 'llamacpp':
        from llm_agent_brain.backends.llamacpp import LlamaCppBackend
        if device != 'cpu':
            raise BackendError('llama.cpp is built here for the CPU only')
        return LlamaCppBackend(**options)
    from llm_agent_brain.backends.transformers import TransformersBackend
    return TransformersBackend(device=device, **options)


class _Once(logging.Filter):
    """Lets each distinct message through once (bitsandbytes logs a warning per int8 matmul)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def quiet_model_logs() -> None:
    """One line per repeated library warning and no progress bars in the benchmark's output."""
    for name in ('bitsandbytes', 'bitsandbytes.autograd._functions'):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _Once) for f in lg.filters):
            lg.addFilter(_Once())
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def agreement(skills: Sequence[str], reference: Sequence[str]) -> float:
    """Share of situations where the same skill was chosen as in `reference`."""
    pairs = list(zip(skills, reference))
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else 0.0


def time_choices(backend: Any, catalog: Any, situations: Sequence[Situation],
                 repeats: int = 1) -> Tuple[List[str], List[float], List[float]]:
    """(skills chosen in the first pass, every call's wall ms, every call's CPU ms of this
    thread); one warm-up call builds the prefix. CPU time is what a shared machine's noise
    leaves intact: the model runs on the calling thread (one torch thread by default)."""
    backend.choose(situations[0], catalog)
    wall, cpu, skills = [], [], []
    for _ in range(max(1, repeats)):
        for sit in situations:
            t0, c0 = time.perf_counter(), time.thread_time()
            skills.append(backend.choose(sit, catalog).skill)
            cpu.append((time.thread_time() - c0) * 1000.0)
            wall.append((time.perf_counter() - t0) * 1000.0)
    return skills[:len(situations)], wall, cpu


def measure_setting(options: Dict[str, Any], catalog: Any, situations: Sequence[Situation],
                    device: str = 'cpu', repeats: int = 1) -> Dict[str, Any]:
    """Load one setting, time its choices, free it. {'error': why} when it cannot load here."""
    from llm_agent_brain.quantization import measured_sparsity
    try:
        backend = make_setting_backend(options, device)
        t0 = time.perf_counter()
        backend.load()
        load_s = time.perf_counter() - t0
        skills, times, cpu = time_choices(backend, catalog, situations, repeats)
        if backend.name == 'llamacpp':
            return {'memory_mb': backend.info()['memory_mb'], 'load_s': load_s,
                    'times_ms': times, 'cpu_ms': cpu, 'skills': skills, 'sparsity': 0.0,
                    'device': 'cpu'}
        sparsity = backend.loaded.sparsity
        if options.get('prune_amount') and options['quantization'] in ('fp32', 'fp16', 'bf16'):
            sparsity = measured_sparsity(backend.model)
        return {'memory_mb': backend.model.get_memory_footprint() / 2**20, 'load_s': load_s,
                'times_ms': times, 'cpu_ms': cpu, 'skills': skills, 'sparsity': sparsity,
                'device': backend.loaded.device}
    except BackendError as exc:  # a setting this machine cannot run is a row, not a crash
        return {'error': str(exc).splitlines()[0][:300]}
    finally:
        backend = None
        gc.collect()


def labelled_agreement(catalog: Any, cases: Sequence[Dict[str, Any]],
                       settings: Sequence[Tuple[str, Dict[str, Any]]]) -> Dict[str, List[str]]:
    """Each setting's skill per labelled case (the compact prompt, prompt caches kept)."""
    out: Dict[str, List[str]] = {}
    sits = [Situation({k: float(v) for k, v in c['features'].items()}, c.get('summary', ''),
                      c['instruction']) for c in cases]
    for label, options in settings:
        backend = make_setting_backend(options)
        try:
            backend.load()
            out[label] = []
            for sit in sits:
                try:
                    out[label].append(backend.choose(sit, catalog).skill)
                except BackendError:
                    out[label].append('')
        except BackendError:
            out.pop(label, None)
        finally:
            backend.close()
            backend = None
            gc.collect()
    return out


def compare_modes(backend: Any, catalog: Any,
                  situations: Sequence[Situation]) -> Dict[str, Dict[str, Any]]:
    """Per situation, interleaved so that load changes hit all alike: scored with the prefix
    cache, scored rebuilding the prefix (as without the cache), and free JSON generation (what
    LLM-on-ROS agents commonly do). Wall and thread-CPU ms per call; `skills` holds '' where the
    answer was unusable (no allowed skill with usable parameters)."""
    out = {k: {'times_ms': [], 'cpu_ms': [], 'skills': []}
           for k in ('scored_cached', 'scored_nocache', 'generate')}

    def timed_choice(key: str, sit: Situation) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            skill = backend.choose(sit, catalog).skill
        except BackendError:  # an unusable generated answer: what that baseline often gives
            skill = ''
        out[key]['cpu_ms'].append((time.thread_time() - c0) * 1000.0)
        out[key]['times_ms'].append((time.perf_counter() - t0) * 1000.0)
        out[key]['skills'].append(skill)

    backend.choose(situations[0], catalog)  # warm-up: builds the prefix cache
    for sit in situations:
        backend.prepare(catalog, sit.instruction)  # as the node does when an instruction arrives
        timed_choice('scored_cached', sit)
        backend.clear_prefixes()  # the whole prompt is encoded again (and cached for the next)
        timed_choice('scored_nocache', sit)
        backend.mode = 'generate'
        try:
            timed_choice('generate', sit)
        finally:
            backend.mode = 'score'
    for m in out.values():
        m['usable'] = sum(1 for s in m['skills'] if s)
    return out


def labelled_cases() -> List[Dict[str, Any]]:
    """The labelled decisions (data/labelled_decisions.yaml): situation, instruction, accepted skills."""
    import yaml
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'labelled_decisions.yaml')
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)['cases']


# (label, prompt style, one scoring pass): the verbose prompt scored in two passes is the
# default before 2026-12-02 (the baseline), then the compact prompt in two passes, then today's.
PROMPT_CONFIGS = (('verbose', 'verbose', False), ('compact, two passes', 'compact', False),
                  ('compact', 'compact', True))


def compare_prompts(backend: Any, catalog: Any, cases: Sequence[Dict[str, Any]],
                    configs: Sequence[Tuple[str, str, bool]] = PROMPT_CONFIGS
                    ) -> Dict[str, Dict[str, Any]]:
    """Each prompt style and scoring on the same loaded model and labelled cases: right answers,
    new context tokens per decision, ms per decision with the prompt cache, and the first call
    of an instruction apart (it builds that instruction's cache in the compact style)."""
    out: Dict[str, Dict[str, Any]] = {}
    for label, style, one_pass in configs:
        backend.prompt_style, backend.one_pass = style, one_pass
        backend.clear_prefixes()
        first, cached, tokens, cpu, skills = [], [], [], [], []
        right, seen = 0, set()

        def timed(sit: Situation) -> Tuple[str, float, float]:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                skill = backend.choose(sit, catalog).skill
            except BackendError:
                skill = ''
            return skill, (time.perf_counter() - t0) * 1000.0, (time.thread_time() - c0) * 1000.0

        # Grouped by instruction, as a robot meets them: the first decision of each instruction
        # (its cache is built then: timed apart), then every decision with the cache ready.
        for case in sorted(cases, key=lambda c: c['instruction']):
            sit = Situation({k: float(v) for k, v in case['features'].items()},
                            case.get('summary', ''), case['instruction'])
            key = case['instruction'] if style == 'compact' else ''
            if key not in seen:
                first.append(timed(sit)[1])
                seen.add(key)
            skill, ms, cpu_ms = timed(sit)
            skills.append(skill)
            cached.append(ms)
            cpu.append(cpu_ms)
            tokens.append(backend.last_new_tokens)
            right += skill in case['accept']
        out[label] = {'n': len(cases), 'right': right, 'accuracy': right / max(1, len(cases)),
                      'tokens': tokens, 'cached_ms': cached, 'cached_cpu_ms': cpu,
                      'first_ms': first, 'skills': skills}
    backend.prompt_style, backend.one_pass = 'compact', True
    backend.clear_prefixes()
    return out
