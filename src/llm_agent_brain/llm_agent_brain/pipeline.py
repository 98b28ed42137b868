"""The brain's decision pipeline: safety rules, then the distilled tree, then the caches, then the LLM.

Pure Python, no ROS: `decision_node` calls `fast_decide()` on every observation and, when it
returns None, `llm_decide()` (on its own thread). Every Choice says its source and rationale.
LLM decisions are logged (the tree's training data) and cached; outcomes reported through
`report_outcome()` evict the decisions they follow from the caches and count against their
tree leaf at the next training, which runs on a background thread and never blocks deciding.
"""
from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple

from llm_agent_common.features import FEATURE_NAMES

from llm_agent_brain.backends.scoring import DEFAULT_MARGIN_M
from llm_agent_brain.cache import (
    DEFAULT_BINS,
    Embedder,
    ExactCache,
    SemanticCache,
    feature_key,
    key_text,
    normalise_instruction,
    parse_bins,
)
from llm_agent_brain.decision_log import BAD_OUTCOMES, OUTCOMES, DecisionLog
from llm_agent_brain.decision_types import Backend, BackendError, Choice, Situation
from llm_agent_brain.rules import RuleSet, default_rules_path, load_rules
from llm_agent_brain.tree import DecisionTree, Sample, TreeSet, label_for, remove_stale_temp_files


def _meta(description: str, **kw: Any) -> Dict[str, Any]:
    return dict(description=description, **kw)


@dataclass
class FastPathConfig:
    """Parameters of the fast path; each field's metadata holds its description and range."""

    rules_file: str = field(default='', metadata=_meta(
        'Rules file (YAML); empty = the installed share/llm_agent_brain/config/rules.yaml'))
    data_dir: str = field(default='~/.cache/llm_agent/brain', metadata=_meta(
        'Folder of the decision log (decisions.jsonl) and the distilled tree (tree.json)'))
    persist: bool = field(default=True, metadata=_meta(
        'Write the decision log and the tree to data_dir, and reload them on start'))
    enable_tree: bool = field(default=True, metadata=_meta(
        'Answer from the decision tree distilled from the LLM where its leaf is confident'))
    tree_features: List[str] = field(default_factory=lambda: list(FEATURE_NAMES), metadata=_meta(
        'Feature names the tree may split on'))
    tree_min_purity: float = field(default=0.9, metadata=_meta(
        'A leaf decides only if this share of its (weighted) samples agree', min=0.5, max=1.0))
    tree_min_samples: int = field(default=8, metadata=_meta(
        'A leaf decides only if it holds at least this many logged decisions', min=1, max=100000))
    tree_max_depth: int = field(default=8, metadata=_meta('Maximum depth of the tree', min=1, max=32))
    tree_min_gain: float = field(default=0.01, metadata=_meta(
        'A split must gain at least this much information (bits)', min=0.0, max=1.0))
    retrain_every_n: int = field(default=20, metadata=_meta(
        'Retrain in the background after this many new logged decisions or bad outcomes',
        min=1, max=100000))
    avoid_weight: float = field(default=3.0, metadata=_meta(
        'Weight of a decision followed by a collision or failure, relabelled not-to-repeat',
        min=0.0, max=100.0))
    log_max_entries: int = field(default=20000, metadata=_meta(
        'Logged decisions kept for training (oldest dropped first)', min=10, max=10000000))
    outcome_window_s: float = field(default=3.0, metadata=_meta(
        'An outcome is attributed to decisions made at most this long before it', min=0.0, max=600.0))
    outcome_max_decisions: int = field(default=2, metadata=_meta(
        'A collision is attributed to at most this many most recent decisions', min=1, max=100))
    enable_cache: bool = field(default=True, metadata=_meta(
        'Reuse LLM decisions for the same discretised features and instruction'))
    cache_ttl_s: float = field(default=30.0, metadata=_meta(
        'A cached decision expires after this long', min=0.0, max=86400.0))
    cache_size: int = field(default=1024, metadata=_meta(
        'Entries per cache (least recently used dropped first)', min=1, max=1000000))
    cache_bins: List[str] = field(default_factory=lambda: list(DEFAULT_BINS), metadata=_meta(
        'Bin of each feature for the cache key, "feature:width" or "feature:width:cap" '
        '(values above cap share one bin; width 0 leaves the feature out of the key)'))
    cache_bin_default: float = field(default=0.0, metadata=_meta(
        'Bin width of features not in cache_bins; 0 leaves them out of the key', min=0.0, max=1000.0))
    enable_semantic_cache: bool = field(default=True, metadata=_meta(
        'Also reuse a decision for a paraphrased instruction (sentence embeddings)'))
    semantic_threshold: float = field(default=0.8, metadata=_meta(
        'Cosine similarity of instructions needed for a semantic cache hit', min=0.0, max=1.0))
    margin_m: float = field(default=DEFAULT_MARGIN_M, metadata=_meta(
        'move_forward stops this far before the obstacle ahead (m): every decision\'s distance is '
        'capped at front_range - margin_m', min=0.0, max=5.0))
    forward_skills: List[str] = field(
        default_factory=lambda: ['move_forward', 'approach_target', 'navigate_to'],
        metadata=_meta('Skills that drive forward: refused (the safe skill instead) when the '
                       'observation has no valid front_range'))
    embedding_model: str = field(default='', metadata=_meta(
        'Sentence-transformers model path or id; empty = the packaged all-MiniLM-L6-v2'))

    def __post_init__(self) -> None:
        for f in fields(self):
            v, md = getattr(self, f.name), f.metadata
            if 'min' in md and v < md['min'] or 'max' in md and v > md['max']:
                raise ValueError(f'{f.name}={v!r} outside [{md.get("min")}, {md.get("max")}]')
            if 'choices' in md and v not in md['choices']:
                raise ValueError(f'{f.name}={v!r} not one of {md["choices"]}')
        parse_bins(self.cache_bins)  # raises CacheConfigError naming the bad entry


class DecisionPipeline:
    """Rules -> tree -> caches (fast_decide), then the LLM backend (llm_decide)."""

    def __init__(self, catalog: Any, config: Optional[FastPathConfig] = None,
                 backend: Optional[Backend] = None, logger: Optional[logging.Logger] = None,
                 safe_skill: str = 'stop'):
        self.catalog = catalog
        self.safe_skill = safe_skill
        self.config = cfg = config or FastPathConfig()
        self.backend = backend
        self.log_ = logger or logging.getLogger('llm_agent_brain.pipeline')
        self.rules: RuleSet = load_rules(cfg.rules_file or default_rules_path(), catalog)
        data_dir = os.path.expanduser(cfg.data_dir)
        self.tree_path = os.path.join(data_dir, 'tree.json') if cfg.persist else ''
        self.log = DecisionLog(os.path.join(data_dir, 'decisions.jsonl') if cfg.persist else None,
                               max_entries=cfg.log_max_entries, window_s=cfg.outcome_window_s,
                               max_blamed=cfg.outcome_max_decisions)
        self.bins = parse_bins(cfg.cache_bins)
        self.exact = ExactCache(cfg.cache_size, cfg.cache_ttl_s)
        self.embedder = Embedder(cfg.embedding_model)
        self.semantic = SemanticCache(self.embedder, cfg.semantic_threshold, cfg.cache_size,
                                      cfg.cache_ttl_s)
        self.sources: Counter = Counter()
        self.fast_misses = 0
        self.llm_errors = 0
        self.trees = TreeSet()
        self.tree_load_error = ''
        self._trained_version = 0
        self.trainings = 0
        self.train_ms = 0.0
        self.train_errors = 0
        if self.tree_path:
            for path in (self.tree_path, self.log.path):
                if remove_stale_temp_files(path):
                    self.log_.info('removed temp files a crash left beside %s', path)
            try:
                loaded = TreeSet.load(self.tree_path)
                bad = loaded.invalid_leaves(catalog) if loaded is not None else []
                if bad:
                    raise ValueError(f'{self.tree_path}: {len(bad)} leaf/leaves outside the '
                                     f'catalogue, e.g. {bad[0]}')
                if loaded is not None:
                    self.trees = loaded
                    self._trained_version = int(loaded.meta.get('log_size', 0))
            except ValueError as exc:
                self.tree_load_error = str(exc)
                self.log_.warning('%s; starting with no tree (it is retrained from the log)', exc)
        self._wake = threading.Condition()
        self._stop = False
        self._train_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        if cfg.enable_tree:
            self._thread = threading.Thread(target=self._trainer, name='tree_trainer', daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ deciding
    def _exact_key(self, situation: Situation) -> Tuple[str, Any]:
        return (normalise_instruction(situation.instruction),
                feature_key(situation.features, self.bins, self.config.cache_bin_default))

    def fast_decide(self, situation: Situation) -> Optional[Choice]:
        """Rule, then confident tree leaf, then exact and semantic cache; None when none applies."""
        cfg = self.config
        choice = self.rules.evaluate(situation)
        key = None
        if choice is None and cfg.enable_tree:
            choice = self.trees.decide(normalise_instruction(situation.instruction),
                                       situation.features, cfg.tree_min_purity, cfg.tree_min_samples)
            if choice is not None:  # a leaf is data from a file: the catalogue has the last word
                params, reason = self.catalog.validate(choice.skill, choice.params)
                if reason:
                    self.log_.warning('tree leaf ignored: %s', reason)
                    choice = None
                else:
                    choice.params = params
        if choice is None and cfg.enable_cache:
            key = self._exact_key(situation)
            choice = self.exact.get(key)
            if choice is not None:
                choice.source, choice.rationale = 'cache', f'exact cache {key_text(key)}'
            elif cfg.enable_semantic_cache and key[0]:
                found = self.semantic.lookup(key[1], key[0])
                if found is not None:
                    choice, sim, skey = found
                    choice.source = 'cache'
                    choice.rationale = (f'semantic cache (similarity {sim:.2f} to "{skey[0]}") '
                                        f'{key_text(key)}')
                    key = skey
        if choice is None:
            self.fast_misses += 1
            return None
        choice = self.bounded_by_front(choice, situation)
        self.sources[choice.source] += 1
        self.log.record(situation, choice, cache_key=key)
        return choice

    def llm_decide(self, situation: Situation) -> Choice:
        """Ask the backend; validate, log and cache its answer. A safety rule wins over the LLM."""
        safety = self.rules.evaluate(situation, safety_only=True)
        if safety is not None:
            self.sources['rule'] += 1
            self.log.record(situation, safety)
            return safety
        if self.backend is None:
            raise BackendError('no LLM backend configured')
        try:
            answer = self.backend.choose(situation, self.catalog)
        except BackendError:
            self.llm_errors += 1
            raise
        params, reason = self.catalog.validate(answer.skill, answer.params)
        if reason:
            self.llm_errors += 1
            raise BackendError(f'backend {getattr(self.backend, "name", "?")} answered an invalid '
                               f'decision: {reason}')
        choice = self.bounded_by_front(Choice(
            skill=answer.skill, params=params, confidence=answer.confidence, source='llm',
            rationale=answer.rationale or f'{getattr(self.backend, "name", "llm")} chose {answer.skill}'),
            situation)
        key = self._exact_key(situation) if self.config.enable_cache else None
        if key is not None:
            self.exact.put(key, choice)
            if self.config.enable_semantic_cache and key[0]:
                try:
                    self.semantic.put(key, choice)
                except Exception as exc:  # noqa: BLE001 - a missing model must not lose the decision
                    self.log_.warning('semantic cache disabled: cannot embed: %s', exc)
                    self.config.enable_semantic_cache = False
        self.sources['llm'] += 1
        self.log.record(situation, choice, cache_key=key)
        self._maybe_wake()
        return choice

    def bounded_by_front(self, choice: Choice, situation: Situation) -> Choice:
        """No forward skill without a valid front_range; move_forward's distance capped at
        front_range - margin_m (the safe skill when that leaves nothing to drive)."""
        if choice.skill not in self.config.forward_skills:
            return choice
        front = situation.features.get('front_range')
        why = ''
        if front is None or not math.isfinite(front):
            why = f'{choice.skill} refused: the observation has no valid front_range'
        elif 'distance' in choice.params:
            room = front - self.config.margin_m
            if choice.params['distance'] > room:
                params, reason = self.catalog.validate(choice.skill, dict(choice.params, distance=room))
                if reason:
                    why = (f'{choice.skill} refused: {front:.2f} m ahead leaves no room after '
                           f'the {self.config.margin_m:g} m margin')
                else:
                    return Choice(choice.skill, params, choice.confidence, choice.source,
                                  f'{choice.rationale} (distance capped at front_range - margin '
                                  f'= {room:.2f} m)')
        if not why:
            return choice
        params, _ = self.catalog.validate(self.safe_skill, {})
        return Choice(self.safe_skill, params, choice.confidence, choice.source, why)

    # ------------------------------------------------------------------ outcomes
    def report_outcome(self, kind: str, detail: Optional[Dict[str, Any]] = None) -> int:
        """Attribute an outcome to recent decisions; a bad one evicts them from the caches.

        Returns how many decisions the outcome was attributed to.
        """
        if kind not in OUTCOMES:
            raise ValueError(f'unknown outcome {kind!r}; expected one of {", ".join(OUTCOMES)}')
        affected = self.log.report_outcome(kind, detail or {})
        if kind in BAD_OUTCOMES:
            for d in affected:
                if d.cache_key is not None:
                    self.exact.evict(d.cache_key)
                    self.semantic.evict(d.cache_key, d.skill, d.params)
            self._maybe_wake()
        return len(affected)

    def clear_cache(self) -> str:
        """Empty both caches; say how many entries went."""
        n_exact, n_sem = self.exact.clear(), self.semantic.clear()
        return f'cleared {n_exact} exact and {n_sem} semantic cache entries'

    # ------------------------------------------------------------------ training
    def _maybe_wake(self) -> None:
        if self.log.version - self._trained_version >= self.config.retrain_every_n:
            with self._wake:
                self._wake.notify()

    def _trainer(self) -> None:
        while True:
            with self._wake:
                if self._stop:
                    return
                self._wake.wait(timeout=5.0)
                if self._stop:
                    return
            if self.log.version - self._trained_version >= self.config.retrain_every_n \
                    or (not self.trees.trees and self.log.version > self._trained_version):
                try:
                    self.train_now()
                except Exception as exc:  # noqa: BLE001 - the trainer must survive a bad log
                    self.train_errors += 1
                    self.log_.error('tree training failed: %s', exc)

    def train_now(self) -> TreeSet:
        """Train the trees from the log now (the background thread calls this), save, swap in."""
        with self._train_lock:
            cfg = self.config
            version = self.log.version
            t0 = time.perf_counter()
            groups = self.log.samples()
            trees: Dict[str, DecisionTree] = {}
            checked = correct = decided = 0
            for instruction, samples in groups.items():
                acc = self._holdout(samples)
                checked += acc[0]
                decided += acc[1]
                correct += acc[2]
                trees[instruction] = DecisionTree.fit(samples, cfg.tree_features, self.catalog,
                                                      cfg.tree_max_depth, cfg.tree_min_gain,
                                                      cfg.avoid_weight)
            meta = {'log_size': version, 'trained_at': time.time(),
                    'holdout': checked, 'holdout_decided': decided, 'holdout_correct': correct}
            new = TreeSet(trees, meta)
            if self.tree_path:
                try:
                    new.save(self.tree_path)
                except OSError as exc:
                    self.log_.error('cannot save the decision tree to %s: %s', self.tree_path, exc)
            self.trees = new  # one reference assignment: deciders see the old or the new set
            self._trained_version = version
            self.trainings += 1
            self.train_ms = (time.perf_counter() - t0) * 1000.0
            return new

    def _holdout(self, samples: List[Sample]) -> Tuple[int, int, int]:
        """(held-out good samples, decided by a tree fitted on the rest, decided correctly)."""
        if len(samples) < 20:
            return 0, 0, 0
        cfg = self.config
        order = list(range(len(samples)))
        random.Random(0).shuffle(order)
        cut = len(order) // 5
        test = [samples[i] for i in order[:cut]]
        tree = DecisionTree.fit([samples[i] for i in order[cut:]], cfg.tree_features, self.catalog,
                                cfg.tree_max_depth, cfg.tree_min_gain, cfg.avoid_weight)
        checked = decided = correct = 0
        for s in test:
            if s.bad:
                continue
            checked += 1
            c = tree.decide(s.features, cfg.tree_min_purity, cfg.tree_min_samples)
            if c is not None:
                decided += 1
                correct += label_for(c.skill, c.params, self.catalog) == \
                    label_for(s.skill, s.params, self.catalog)
        return checked, decided, correct

    def export_tree(self) -> str:
        """The trees as readable text."""
        return self.trees.export_text(self.config.tree_min_purity, self.config.tree_min_samples)

    # ------------------------------------------------------------------ figures
    def stats(self) -> Dict[str, float]:
        """Cache hit/miss rates, tree size and held-out accuracy, log size, decisions per source."""
        def rate(a: int, b: int) -> float:
            return a / (a + b) if a + b else 0.0
        meta = self.trees.meta
        decided = float(meta.get('holdout_decided', 0))
        checked = float(meta.get('holdout', 0))
        total = sum(self.sources.values())
        out: Dict[str, float] = {
            'exact_hits': float(self.exact.hits), 'exact_misses': float(self.exact.misses),
            'exact_hit_rate': rate(self.exact.hits, self.exact.misses),
            'exact_miss_rate': rate(self.exact.misses, self.exact.hits),
            'exact_entries': float(len(self.exact)),
            'semantic_hits': float(self.semantic.hits), 'semantic_misses': float(self.semantic.misses),
            'semantic_hit_rate': rate(self.semantic.hits, self.semantic.misses),
            'semantic_miss_rate': rate(self.semantic.misses, self.semantic.hits),
            'semantic_entries': float(len(self.semantic)),
            'cache_evictions': float(self.exact.evictions + self.semantic.evictions),
            'tree_count': float(len(self.trees.trees)),
            'tree_nodes': float(self.trees.size), 'tree_leaves': float(self.trees.leaf_count),
            'tree_accuracy': (float(meta.get('holdout_correct', 0)) / decided) if decided else 0.0,
            'tree_coverage': decided / checked if checked else 0.0,
            'tree_trainings': float(self.trainings), 'tree_train_ms': self.train_ms,
            'log_size': float(len(self.log)), 'log_bad': float(self.log.bad_count),
            'fast_misses': float(self.fast_misses), 'llm_errors': float(self.llm_errors),
            'decisions_total': float(total),
            'llm_share': self.sources['llm'] / total if total else 0.0,
        }
        for s in ('rule', 'tree', 'cache', 'llm', 'fallback'):
            out[f'decisions_{s}'] = float(self.sources[s])
        for k in OUTCOMES:
            out[f'outcome_{k}'] = float(self.log.outcomes[k])
        return out

    def close(self) -> None:
        """Stop the background trainer (waits for a training in progress)."""
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None
