"""The decision node's parameters, and the backend they name (no rclpy).

One table: `ros2 param describe` shows these descriptions and bounds, config/brain.yaml holds
the same defaults (a test compares them), and `backend_from_params` builds the backend the
node (and the bench, which measures the model the node would load) uses. Parameters read when
the node starts are read-only; the others apply at the next decision.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from llm_agent_common.node import Param, params_from_dataclass

from llm_agent_brain import model_store, prompt, quantization
from llm_agent_brain.backends import make_backend
from llm_agent_brain.backends.base import BACKEND_CHOICES
from llm_agent_brain.backends.transformers import MODES
from llm_agent_brain.pipeline import FastPathConfig

RO = dict(read_only=True)

NODE_PARAMS: List[Param] = [
    Param('backend', 'auto', 'LLM backend. auto: llamacpp (the GGUF on llama.cpp, the CPU '
          'runtime) for a .gguf or the packaged model on a machine without a GPU, else '
          'transformers (GPUs, Hugging Face ids and folders)', allowed=BACKEND_CHOICES, **RO),
    Param('enable_llm', True, 'false: a rules-only brain; no model is loaded and what rules, '
          'tree and caches cannot decide gets fallback_skill at once', **RO),
    Param('model', '', 'HF model id, local folder or .gguf file; empty = the packaged '
          'SmolLM2-135M', **RO),
    Param('quantization', 'nf4', 'Weights precision of the transformers backend (llamacpp runs '
          'the GGUF\'s own)',
          allowed=quantization.QUANTIZATIONS, **RO),
    Param('compute_dtype', 'auto', 'bitsandbytes 4-bit compute dtype (auto: float32 on CPU, '
          'bfloat16 on GPU)', allowed=quantization.COMPUTE_DTYPES, **RO),
    Param('device', 'auto', 'auto (GPU when there is one), cpu or cuda',
          allowed=('auto', 'cpu', 'cuda'), **RO),
    Param('device_map', '', 'accelerate device_map, e.g. auto to spread a big model over '
          'several GPUs; empty = the whole model on `device`', **RO),
    Param('prune_amount', 0.0, 'Fraction of linear weights removed by L1 magnitude pruning',
          range=(0.0, 0.9), **RO),
    Param('model_cache_dir', '', 'Where a GGUF model is converted once and kept; empty = '
          '~/.cache/llm_agent/models', **RO),
    Param('llm_mode', 'score', 'score: log-likelihood of each allowed skill (fast, always '
          'valid); generate: free JSON generation', allowed=MODES, **RO),
    Param('prompt_style', 'compact', 'compact: the instruction in the cached prefix and the '
          'observation as one short line; verbose: every feature as a table line (the older '
          'prompt, about 4x the tokens)', allowed=prompt.STYLES, **RO),
    Param('instruction_caches', 4, 'Prompt caches kept, one per instruction (least recently '
          'used dropped); agent/decide requests may each carry their own', range=(1, 64), **RO),
    Param('num_threads', 0, 'CPU threads for inference (torch or llama.cpp); 0 = all cores but '
          'one', range=(0, 64), **RO),
    Param('gguf_type', 'Q8_0', 'llamacpp: the GGUF\'s weights requantized once (kept in '
          'model_cache_dir) to Q8_0 or Q4_0; empty = as the file is', allowed=model_store.GGUF_TYPES,
          **RO),
    Param('context_tokens', 2048, 'llama.cpp key/value store: the common prompt once, then '
          'each cached instruction\'s own tokens and one decision', range=(512, 32768), **RO),
    Param('openai_base_url', 'http://localhost:8000/v1', 'OpenAI-compatible server base URL', **RO),
    Param('openai_model', '', 'Model name sent to the server; empty = the server default', **RO),
    Param('openai_api_key_env', 'OPENAI_API_KEY', 'Environment variable holding the API key', **RO),
    Param('openai_timeout_s', 10.0, 'Timeout of one request (s)', range=(0.1, 300.0), **RO),
    Param('openai_max_retries', 2, 'Retries after a timeout or server error', range=(0, 10), **RO),
    Param('openai_guided', True, 'Ask for guided JSON: response_format json_schema, then '
          'json_object with the schema, then plain chat, as the server accepts', **RO),
    Param('skills_file', '', 'Skill catalogue; empty = the installed config/skills.yaml', **RO),
    Param('fallback_skill', 'stop', 'Safe skill of a fallback decision (must take no required '
          'parameters)', **RO),
    Param('diagnostics_period_s', 1.0, 'Period of the diagnostics message (s)',
          range=(0.1, 60.0), **RO),
    Param('contact_topic', '', 'std_msgs/Bool bumper or contact topic whose true counts as a '
          'collision; empty = none (the scan and skill results still count)', **RO),
    # Applied at the next decision:
    Param('decision_timeout_s', 5.0, 'An LLM decision later than this becomes a fallback (s)',
          range=(0.05, 600.0)),
    Param('hold_max_s', 15.0, 'While the LLM is late the running skill goes on (rules and the '
          'guard still apply) for at most this long without a decision, then fallback_skill; '
          '0 = a fallback at every missed deadline', range=(0.0, 600.0)),
    Param('task_timeout_s', 120.0, 'An agent/run_instruction goal without its own timeout_s '
          'gives up (and stops the robot) after this long (s)', range=(1.0, 86400.0)),
    Param('task_settle_decisions', 3, 'An agent/run_instruction goal counts as done (settled) '
          'when the tree, a cache or the LLM chose stop or wait this many times in a row',
          range=(1, 1000)),
    Param('default_instruction', 'go to the red target', 'Instruction until one arrives on '
          'agent/instruction (a change replaces the current instruction)'),
    Param('max_instruction_chars', 500, 'Longer instructions are truncated', range=(16, 20000)),
    Param('max_summary_chars', 400, 'Longer observation summaries are truncated',
          range=(16, 20000)),
    Param('execute_decisions', True, 'Send decisions of agent/observation to '
          'agent/execute_skill'),
    Param('execute_service_decisions', False, 'Also execute decisions asked for on agent/decide'),
    Param('contact_range_m', 0.2, 'A scan return (nearest sector range) closer than this counts '
          'as a collision; 0 = off', range=(0.0, 2.0)),
    Param('contact_clear_m', 0.3, 'A contact ends when every sector range is at least this far',
          range=(0.0, 5.0)),
]

# The fast path's own table (FastPathConfig's field metadata); its objects are built at start.
FAST_PATH_PARAMS: List[Param] = params_from_dataclass(FastPathConfig, read_only=True)

ALL_PARAMS: List[Param] = NODE_PARAMS + FAST_PATH_PARAMS


def fast_path_config(values: Mapping[str, Any]) -> FastPathConfig:
    """The FastPathConfig of a node's parameter values."""
    return FastPathConfig(**{p.name: values[p.name] for p in FAST_PATH_PARAMS})


def defaults() -> Dict[str, Any]:
    """Every parameter's default value."""
    return {p.name: p.default for p in ALL_PARAMS}


def gpu_present() -> bool:
    """A CUDA or ROCm device node exists (checked without importing torch: the CPU runtime's
    process stays small)."""
    return any(os.path.exists(p) for p in ('/dev/nvidia0', '/dev/nvidiactl', '/dev/kfd'))


def resolve_backend(values: Mapping[str, Any], has_gpu: Callable[[], bool] = gpu_present,
                    has_llama: Optional[Callable[[], bool]] = None) -> Tuple[str, str]:
    """(backend, why) for these parameter values: `backend` itself unless it is auto."""
    kind = values['backend']
    if kind != 'auto':
        return kind, 'set by the backend parameter'
    model = str(values['model'])
    if model and not model.endswith('.gguf'):
        return 'transformers', 'a Hugging Face model id or folder'
    if values['llm_mode'] != 'score':
        return 'transformers', f'llm_mode {values["llm_mode"]}'
    if values['device'] == 'cuda' or (values['device'] == 'auto' and has_gpu()):
        return 'transformers', 'a GPU'
    if has_llama is None:
        def has_llama() -> bool:
            return importlib.util.find_spec('llama_cpp') is not None
    if not has_llama():
        return 'transformers', ('llama-cpp-python is not installed (the faster CPU runtime: '
                                'pip install llama-cpp-python)')
    return 'llamacpp', 'a GGUF model on a CPU'


def backend_from_params(values: Mapping[str, Any], log: Optional[Callable[[str], None]] = None) -> Any:
    """The (not yet loaded) backend these parameter values name."""
    v = values
    kind, why = resolve_backend(v)
    if log is not None and v['backend'] == 'auto':
        log(f'backend auto: {kind} ({why})')
    if kind == 'llamacpp':
        return make_backend('llamacpp', model=v['model'], margin_m=v['margin_m'],
                            num_threads=v['num_threads'],
                            max_instruction_chars=v['max_instruction_chars'],
                            prompt_style=v['prompt_style'], instruction_caches=v['instruction_caches'],
                            context_tokens=v['context_tokens'], gguf_type=v['gguf_type'],
                            model_cache_dir=v['model_cache_dir'], log=log or (lambda _msg: None))
    if kind == 'openai':
        return make_backend('openai', base_url=v['openai_base_url'], model=v['openai_model'],
                            api_key_env=v['openai_api_key_env'], timeout_s=v['openai_timeout_s'],
                            max_retries=v['openai_max_retries'], guided=v['openai_guided'],
                            margin_m=v['margin_m'], max_instruction_chars=v['max_instruction_chars'],
                            log=log)
    return make_backend('transformers', model=v['model'], quantization=v['quantization'],
                        device=v['device'], device_map=v['device_map'],
                        compute_dtype=v['compute_dtype'], prune_amount=v['prune_amount'],
                        model_cache_dir=v['model_cache_dir'], mode=v['llm_mode'],
                        margin_m=v['margin_m'], num_threads=v['num_threads'],
                        max_instruction_chars=v['max_instruction_chars'],
                        prompt_style=v['prompt_style'], instruction_caches=v['instruction_caches'],
                        log=log)
