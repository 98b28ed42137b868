"""The compression menu (seed 3.1): load a causal LM in a chosen precision and optionally prune it.

quantization: nf4 | fp4 (bitsandbytes 4-bit), int8 (bitsandbytes LLM.int8), fp16 | bf16 | fp32.
Magnitude pruning (torch.nn.utils.prune, L1 unstructured on every Linear but the output head)
runs on full-precision weights; for a quantised setting the pruned weights are saved once next
to the model and that copy is quantised, so the zeros survive quantisation.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

LOG = logging.getLogger(__name__)

QUANTIZATIONS = ('nf4', 'fp4', 'int8', 'fp16', 'bf16', 'fp32')
COMPUTE_DTYPES = ('auto', 'float32', 'bfloat16', 'float16')
_BNB = ('nf4', 'fp4', 'int8')


@dataclass
class LoadedModel:
    """A loaded model with what it took to get there."""

    model: Any
    tokenizer: Any
    quantization: str
    device: str
    load_s: float
    memory_mb: float
    sparsity: float = 0.0


def resolve_device(device: str = 'auto') -> str:
    """auto -> cuda when a GPU is present, else cpu."""
    import torch
    device = (device or 'auto').lower()
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} asked for, but torch sees no GPU')
    return device


def _dtype(name: str) -> Any:
    import torch
    return {'float32': torch.float32, 'fp32': torch.float32, 'bfloat16': torch.bfloat16,
            'bf16': torch.bfloat16, 'float16': torch.float16, 'fp16': torch.float16}[name]


def quantization_config(quantization: str, compute_dtype: str = 'auto', device: str = 'cpu') -> Any:
    """BitsAndBytesConfig for nf4/fp4/int8; None for the plain float settings."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f'quantization must be one of {QUANTIZATIONS}, got {quantization!r}')
    if quantization not in _BNB:
        return None
    from transformers import BitsAndBytesConfig
    if compute_dtype == 'auto':
        # On CPU bitsandbytes computes fastest and exactly in fp32; on a GPU bf16 is the norm.
        compute_dtype = 'float32' if device == 'cpu' else 'bfloat16'
    if quantization == 'int8':
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quantization,
                              bnb_4bit_compute_dtype=_dtype(compute_dtype),
                              bnb_4bit_use_double_quant=False)


def float_dtype(quantization: str, device: str) -> Any:
    """The torch dtype of the non-quantised weights for a setting."""
    if quantization in ('fp16', 'bf16', 'fp32'):
        return _dtype(quantization)
    return _dtype('float32') if device == 'cpu' else _dtype('bfloat16')


def _device_map(device: str, device_map: str) -> Any:
    import torch
    if device_map:
        return device_map  # e.g. 'auto' or 'balanced': accelerate splits layers over the GPUs
    if device == 'cuda' and torch.cuda.device_count() > 1:
        return 'auto'  # a model bigger than one GPU is spread over all of them
    return {'': device if device != 'cuda' else 0}


def prune_model(model: Any, amount: float) -> float:
    """L1-magnitude-prune `amount` of every Linear's weights (not lm_head); return sparsity."""
    import torch
    from torch.nn.utils import prune
    if amount <= 0:
        return measured_sparsity(model)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.endswith('lm_head'):
            prune.l1_unstructured(module, name='weight', amount=float(amount))
            prune.remove(module, 'weight')  # make the zeros permanent, drop the mask
    return measured_sparsity(model)


def measured_sparsity(model: Any) -> float:
    """Fraction of exact zeros over the Linear weights (not lm_head) that can be read as floats."""
    import torch
    zeros = total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.endswith('lm_head'):
            w = module.weight
            if not w.is_floating_point():
                continue  # packed quantised storage: zeros are not countable in place
            zeros += int((w == 0).sum())
            total += w.numel()
    return zeros / total if total else 0.0


def pruned_copy(path: str, amount: float, log: Callable[[str], None] = LOG.info) -> Tuple[str, float]:
    """Prune a full-precision model folder once and keep it beside the original; (dir, sparsity)."""
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out = f'{path.rstrip("/")}-pruned-{amount:.2f}'
    marker = os.path.join(out, 'llm_agent_pruned.json')
    if os.path.isfile(marker):
        with open(marker, encoding='utf-8') as f:
            return out, float(json.load(f)['sparsity'])
    log(f'pruning {amount:.0%} of the linear weights of {path} into {out}')
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, device_map={'': 'cpu'})
    sparsity = prune_model(model, amount)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(path).save_pretrained(out)
    with open(marker, 'w', encoding='utf-8') as f:
        json.dump({'amount': amount, 'sparsity': sparsity}, f)
    return out, sparsity


def load_model(path: str, quantization: str = 'nf4', device: str = 'auto', device_map: str = '',
               compute_dtype: str = 'auto', prune_amount: float = 0.0,
               log: Callable[[str], None] = LOG.info) -> LoadedModel:
    """Load a causal LM (folder or HF id) in a quantization setting, optionally pruned."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    if quantization not in QUANTIZATIONS:
        raise ValueError(f'quantization must be one of {QUANTIZATIONS}, got {quantization!r}')
    if not 0.0 <= prune_amount < 1.0:
        raise ValueError(f'prune_amount must be in [0, 1), got {prune_amount}')
    device = resolve_device(device)
    t0 = time.monotonic()
    sparsity = 0.0
    source = path
    if prune_amount > 0 and quantization in _BNB:
        source, sparsity = pruned_copy(path, prune_amount, log)
    kwargs: Dict[str, Any] = {'device_map': _device_map(device, device_map),
                              'dtype': float_dtype(quantization, device)}
    qconfig = quantization_config(quantization, compute_dtype, device)
    if qconfig is not None:
        kwargs['quantization_config'] = qconfig
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    model.eval()
    if prune_amount > 0 and quantization not in _BNB:
        sparsity = prune_model(model, prune_amount)
    memory_mb = model.get_memory_footprint() / 2**20
    return LoadedModel(model=model, tokenizer=tokenizer, quantization=quantization, device=device,
                       load_s=time.monotonic() - t0, memory_mb=memory_mb, sparsity=sparsity)


def summary(loaded: Optional[LoadedModel]) -> Dict[str, float]:
    """Figures for diagnostics."""
    if loaded is None:
        return {}
    return {'memory_mb': round(loaded.memory_mb, 1), 'load_s': round(loaded.load_s, 2),
            'sparsity': round(loaded.sparsity, 4)}
