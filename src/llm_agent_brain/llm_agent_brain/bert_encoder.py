"""A BERT sentence encoder in numpy: the semantic cache's embedder without torch.

The packaged all-MiniLM-L6-v2 (6 layers, 384 wide, 22 M weights) embeds an instruction of a few
words in milliseconds; loading torch and sentence-transformers for it costs the brain process
hundreds of MB, which the llama.cpp runtime otherwise leaves free. This reproduces what
sentence-transformers computes for a BERT model saved the way it saves them (model.safetensors,
tokenizer.json, mean pooling, normalised): the tests compare both on the same sentences.
"""
from __future__ import annotations

import json
import os
from typing import Dict

import numpy as np


class EncoderFormatError(ValueError):
    """The folder is not a mean-pooled BERT model this encoder can run."""


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (error < 1.5e-7, below float32's resolution here).
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                           + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _json(folder: str, name: str) -> Dict:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding='utf-8') as f:
        return json.load(f)


class BertEncoder:
    """Mean-pooled, L2-normalised sentence embeddings of a BERT model folder."""

    def __init__(self, folder: str) -> None:
        cfg = _json(folder, 'config.json')
        if cfg.get('model_type') != 'bert' or cfg.get('hidden_act', 'gelu') != 'gelu' \
                or cfg.get('position_embedding_type', 'absolute') != 'absolute':
            raise EncoderFormatError(f'{folder}: not a BERT model with GELU and absolute positions')
        pooling = _json(os.path.join(folder, '1_Pooling'), 'config.json')
        if pooling and not pooling.get('pooling_mode_mean_tokens'):
            raise EncoderFormatError(f'{folder}: pooling is not the mean of the tokens')
        weights = os.path.join(folder, 'model.safetensors')
        tokenizer = os.path.join(folder, 'tokenizer.json')
        if not (os.path.isfile(weights) and os.path.isfile(tokenizer)):
            raise EncoderFormatError(f'{folder}: needs model.safetensors and tokenizer.json')
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
        w = load_file(weights)
        prefix = 'bert.' if 'bert.embeddings.word_embeddings.weight' in w else ''
        self.w = {k[len(prefix):]: v.astype(np.float32) for k, v in w.items()
                  if k.startswith(prefix) and v.dtype.kind == 'f'}
        self.layers = int(cfg['num_hidden_layers'])
        self.heads = int(cfg['num_attention_heads'])
        self.eps = float(cfg.get('layer_norm_eps', 1e-12))
        self.tokenizer = Tokenizer.from_file(tokenizer)
        max_len = _json(folder, 'sentence_bert_config.json').get(
            'max_seq_length', cfg.get('max_position_embeddings', 512))
        self.tokenizer.enable_truncation(max_length=int(max_len))
        self.tokenizer.no_padding()

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[name + '.weight'].T + self.w[name + '.bias']

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return _layer_norm(x, self.w[name + '.weight'], self.w[name + '.bias'], self.eps)

    def encode(self, text: str) -> np.ndarray:
        """The sentence's embedding (unit length, float32)."""
        enc = self.tokenizer.encode(text)
        ids, types = np.asarray(enc.ids), np.asarray(enc.type_ids)
        n = len(ids)
        x = (self.w['embeddings.word_embeddings.weight'][ids]
             + self.w['embeddings.position_embeddings.weight'][:n]
             + self.w['embeddings.token_type_embeddings.weight'][types])
        x = self._norm(x, 'embeddings.LayerNorm')
        d = x.shape[1] // self.heads
        for i in range(self.layers):
            p = f'encoder.layer.{i}.'
            q, k, v = (self._linear(x, p + f'attention.self.{m}').reshape(n, self.heads, d)
                       .transpose(1, 0, 2) for m in ('query', 'key', 'value'))
            att = q @ k.transpose(0, 2, 1) / np.sqrt(d)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(1, 0, 2).reshape(n, -1)
            x = self._norm(x + self._linear(ctx, p + 'attention.output.dense'),
                           p + 'attention.output.LayerNorm')
            h = _gelu(self._linear(x, p + 'intermediate.dense'))
            x = self._norm(x + self._linear(h, p + 'output.dense'), p + 'output.LayerNorm')
        v = x.mean(0)
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)
