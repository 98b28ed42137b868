"""Compression and decision-speed benchmark of the LLM backend (`brain-bench`).

Prints, side by side with fp32 measured in the same process: memory footprint, decision
latency and agreement of choices with fp32 over a fixed set of situations, for every
quantization setting (and bitsandbytes' CPU compute dtype float32 vs bfloat16, and magnitude
pruning); then scored choice with the prefix cache against scoring without it and against free
JSON generation (what LLM-on-ROS agents commonly do), same model, same situations.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from llm_agent_brain.types import Situation

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

SETTINGS: Tuple[Tuple[str, Dict[str, Any]], ...] = (
    ('fp32', {'quantization': 'fp32'}),
    ('bf16', {'quantization': 'bf16'}),
    ('fp16', {'quantization': 'fp16'}),
    ('int8', {'quantization': 'int8'}),
    ('nf4 (compute fp32)', {'quantization': 'nf4', 'compute_dtype': 'float32'}),
    ('nf4 (compute bf16)', {'quantization': 'nf4', 'compute_dtype': 'bfloat16'}),
    ('fp4 (compute fp32)', {'quantization': 'fp4', 'compute_dtype': 'float32'}),
    ('fp32 pruned 30%', {'quantization': 'fp32', 'prune_amount': 0.3}),
)


def _time_choices(backend: Any, catalog: Any, situations: Sequence[Situation],
                  repeats: int = 1) -> Tuple[List[str], float]:
    backend.choose(situations[0], catalog)  # warm-up (and the prefix cache)
    times, skills = [], []
    for _ in range(repeats):
        for sit in situations:
            t0 = time.perf_counter()
            skills.append(backend.choose(sit, catalog).skill)
            times.append(time.perf_counter() - t0)
    return skills[:len(situations)], statistics.median(times) * 1000.0


def run(settings: Sequence[str] = (), device: str = 'cpu', generate_n: int = 4,
        repeats: int = 2, out: Any = print) -> Dict[str, Dict[str, float]]:
    """Run the benchmark, print its tables, return the figures."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    import warnings
    # bitsandbytes warns at every int8 matmul on CPU that it casts inputs to fp16: once is enough.
    warnings.filterwarnings('once', message='.*MatMul8bitLt.*')
    import torch
    from llm_agent_actuation.catalog import load_catalog

    from llm_agent_brain.backends.transformers import TransformersBackend
    from llm_agent_brain.compression import measured_sparsity
    catalog = load_catalog(os.environ.get('LLM_AGENT_SKILLS') or None)
    chosen = [s for s in SETTINGS if not settings or s[0] in settings or s[0] == 'fp32']
    results: Dict[str, Dict[str, float]] = {}
    base: Optional[Dict[str, Any]] = None
    out(f'LLM decision benchmark: packaged SmolLM2-135M-Instruct, device {device}, '
        f'{len(SITUATIONS)} situations, torch threads {torch.get_num_threads()}')
    out(f'{"setting":<22}{"memory MB":>10}{"x fp32":>8}{"latency ms":>12}{"x fp32":>8}'
        f'{"agree":>7}{"sparsity":>10}')
    for label, kw in chosen:
        backend = TransformersBackend(device=device, **kw)
        try:
            backend.load()
        except Exception as exc:  # a setting this machine cannot run is reported, not fatal
            out(f'{label:<22} cannot load: {exc}')
            continue
        mem = backend.model.get_memory_footprint() / 2**20
        skills, ms = _time_choices(backend, catalog, SITUATIONS, repeats)
        if base is None:
            base = {'mem': mem, 'ms': ms, 'skills': skills}
        agree = sum(a == b for a, b in zip(skills, base['skills'])) / len(skills)
        sparsity = backend.loaded.sparsity if backend.loaded else 0.0
        if kw.get('prune_amount') and kw.get('quantization') in ('fp32', 'fp16', 'bf16'):
            sparsity = measured_sparsity(backend.model)
        results[label] = {'memory_mb': mem, 'memory_ratio': mem / base['mem'], 'latency_ms': ms,
                          'latency_ratio': ms / base['ms'], 'agreement': agree,
                          'sparsity': sparsity}
        out(f'{label:<22}{mem:>10.1f}{mem / base["mem"]:>8.2f}{ms:>12.1f}{ms / base["ms"]:>8.2f}'
            f'{agree:>7.0%}{sparsity:>10.1%}')
        out(f'{"":<22}choices: {" ".join(skills)}')
        del backend
        gc.collect()
    # Scored choice with the prefix cache vs without it vs free JSON generation.
    out('')
    for q in ('fp32', 'nf4'):
        backend = TransformersBackend(device=device, quantization=q)
        backend.load()
        sits = SITUATIONS[:generate_n]
        _, cached_ms = _time_choices(backend, catalog, sits, repeats)
        times = []
        for sit in sits:
            backend._prefix.clear()  # no prefix cache: the whole prompt is encoded every time
            t0 = time.perf_counter()
            backend.choose(sit, catalog)
            times.append(time.perf_counter() - t0)
        nocache_ms = statistics.median(times) * 1000.0
        backend.mode = 'generate'
        times, valid = [], 0
        for sit in sits:
            t0 = time.perf_counter()
            try:
                backend.choose(sit, catalog)
                valid += 1
            except Exception:  # an unusable generated answer is what the baseline often gives
                pass
            times.append(time.perf_counter() - t0)
        gen_ms = statistics.median(times) * 1000.0
        backend.mode = 'score'
        prefix_tokens = len(backend.prefix_cache(catalog)[0])
        results[f'speed {q}'] = {'scored_cached_ms': cached_ms, 'scored_nocache_ms': nocache_ms,
                                 'generate_ms': gen_ms, 'generate_valid': valid / len(sits)}
        out(f'{q}: scored + prefix cache {cached_ms:.0f} ms | scored, no prefix cache '
            f'{nocache_ms:.0f} ms ({nocache_ms / cached_ms:.1f}x) | free JSON generation '
            f'{gen_ms:.0f} ms ({gen_ms / cached_ms:.1f}x), usable answers {valid}/{len(sits)} '
            f'(prefix {prefix_tokens} tokens)')
        del backend
        gc.collect()
    return results


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--settings', nargs='*', default=[],
                        help=f'subset of: {", ".join(s for s, _ in SETTINGS)}')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--generate-n', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=2)
    a = parser.parse_args(argv)
    run(a.settings, a.device, a.generate_n, a.repeats)


if __name__ == '__main__':
    main()
