"""The pipeline without ROS: order rule -> tree -> cache -> LLM, safety over the LLM, outcomes,
eviction, background training, persistence and stats."""
import os
import random
import time

import pytest
from llm_agent_brain.decision_types import BackendError, Choice, Situation
from llm_agent_brain.pipeline import DecisionPipeline, FastPathConfig
from llm_agent_common.catalog import load_catalog

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
RULES = os.path.join(ROOT, 'config', 'rules.yaml')
CLEAR = dict(front_range=8.0, front_left_range=8.0, front_right_range=8.0, left_range=8.0,
             right_range=8.0, rear_range=8.0)


class PolicyBackend:
    """A deterministic stand-in for the LLM: the real models are exercised by the backends' tests;
    here the point is what the pipeline does with answers, so the answers must be predictable."""

    name = 'policy'

    def __init__(self, answer=None):
        self.calls = 0
        self.answer = answer

    def choose(self, situation, catalog):
        self.calls += 1
        if self.answer is not None:
            return self.answer
        f = situation.features
        if f['front_range'] > 1.5:
            return Choice('move_forward', {'distance': 0.5, 'speed': 0.3}, 0.8, 'llm', 'policy: clear')
        return Choice('turn', {'angle': 1.0 if f['left_range'] > f['right_range'] else -1.0})


@pytest.fixture(scope='module')
def catalog():
    return load_catalog(os.path.join(ROOT, 'config', 'skills.yaml'))


def make(catalog, tmp_path, backend=None, **kw):
    cfg = dict(rules_file=RULES, data_dir=str(tmp_path), tree_min_samples=5, retrain_every_n=10_000)
    cfg.update(kw)
    return DecisionPipeline(catalog, FastPathConfig(**cfg), backend)


def sit(instruction='explore the room', **kw):
    return Situation(features={**CLEAR, **kw}, instruction=instruction)


def decide(p, s):
    return p.fast_decide(s) or p.llm_decide(s)


def test_config_metadata_and_validation():
    from dataclasses import fields
    for f in fields(FastPathConfig):
        assert f.metadata['description']
    with pytest.raises(ValueError, match='tree_min_purity'):
        FastPathConfig(tree_min_purity=1.5)
    with pytest.raises(ValueError, match='cache_bins'):
        FastPathConfig(cache_bins=['front_range'])


def test_rule_first_and_safety_rule_beats_llm(catalog, tmp_path):
    backend = PolicyBackend(Choice('move_forward', {'distance': 1.0, 'speed': 0.3}))
    p = make(catalog, tmp_path, backend)
    try:
        s = sit(front_range=0.3, left_range=3.0, right_range=1.0)
        c = p.fast_decide(s)
        assert c.source == 'rule' and c.skill == 'turn' and 'obstacle_ahead' in c.rationale
        c = p.llm_decide(s)
        assert c.source == 'rule' and c.skill == 'turn' and backend.calls == 0
    finally:
        p.close()


def test_llm_answer_validated_logged_and_cached(catalog, tmp_path):
    backend = PolicyBackend()
    p = make(catalog, tmp_path, backend, enable_tree=False)
    try:
        s = sit(front_range=3.0)
        assert p.fast_decide(s) is None
        c = p.llm_decide(s)
        assert c.source == 'llm' and c.skill == 'move_forward' and c.rationale == 'policy: clear'
        again = p.fast_decide(sit(front_range=3.3))            # same bins
        assert again.source == 'cache' and again.skill == 'move_forward'
        assert 'exact cache' in again.rationale and 'front_range#' in again.rationale
        assert p.fast_decide(sit('find the exit', front_range=3.0)) is None   # another instruction
        st = p.stats()
        assert st['exact_hits'] == 1 and st['exact_misses'] == 2
        assert st['exact_hit_rate'] == pytest.approx(1 / 3)
        assert st['decisions_llm'] == 1 and st['decisions_cache'] == 1 and st['log_size'] == 1
        assert 'cleared 1 exact' in p.clear_cache()
        assert p.fast_decide(s) is None
        backend.answer = Choice('turn', {'angle': 9.0})
        with pytest.raises(BackendError, match='angle'):
            p.llm_decide(sit(front_range=3.0, left_range=2.0))
    finally:
        p.close()
    with pytest.raises(BackendError):
        make(catalog, tmp_path, None).llm_decide(sit(front_range=3.0))


def test_semantic_cache_paraphrase(catalog, tmp_path):
    p = make(catalog, tmp_path, PolicyBackend(), enable_tree=False, semantic_threshold=0.75)
    try:
        p.llm_decide(sit('go to the red ball', front_range=3.0))
        c = p.fast_decide(sit('drive to the red ball', front_range=3.0))
        assert c.source == 'cache' and 'semantic cache' in c.rationale and 'go to the red ball' in c.rationale
        assert p.stats()['semantic_hits'] == 1
    finally:
        p.close()


def test_collision_evicts_cached_decision_and_counts_against_leaf(catalog, tmp_path):
    p = make(catalog, tmp_path, PolicyBackend(), enable_tree=False)
    try:
        s = sit(front_range=3.0)
        p.llm_decide(s)
        assert p.fast_decide(s).source == 'cache'
        assert p.report_outcome('collision', {}) == 2   # the cache hit and the LLM decision
        assert p.fast_decide(s) is None                 # evicted
        assert p.stats()['log_bad'] == 2 and p.stats()['cache_evictions'] >= 1
        samples = p.log.samples()['explore the room']
        assert sum(s.bad for s in samples) == 2
        with pytest.raises(ValueError):
            p.report_outcome('exploded', {})
    finally:
        p.close()


def test_outcome_window(catalog, tmp_path):
    p = make(catalog, tmp_path, PolicyBackend(), enable_tree=False, outcome_window_s=0.05)
    try:
        p.llm_decide(sit(front_range=3.0))
        time.sleep(0.1)
        assert p.report_outcome('collision', {}) == 0
        assert p.fast_decide(sit(front_range=3.0)).source == 'cache'
    finally:
        p.close()


def run_episode(p, n=300, seed=0, step=decide):
    rng = random.Random(seed)
    for _ in range(n):
        step(p, sit(front_range=rng.uniform(0.5, 8.0), left_range=rng.uniform(0.5, 8.0),
                      right_range=rng.uniform(0.5, 8.0)))


def test_tree_distilled_in_background_then_decides_and_persists(catalog, tmp_path):
    backend = PolicyBackend()
    p = make(catalog, tmp_path, backend, enable_cache=False, retrain_every_n=20)
    try:
        # every situation goes to the LLM and is logged, whenever the background training lands:
        # the log, so the tree and its held-out accuracy, do not depend on the thread's timing
        run_episode(p, 200, step=lambda p, s: p.llm_decide(s))
        deadline = time.monotonic() + 30
        while p.stats()['tree_trainings'] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.stats()['tree_trainings'] >= 1
        p.train_now()
        c = p.fast_decide(sit(front_range=6.0))
        assert c.source == 'tree' and c.skill == 'move_forward'
        assert 'tree leaf #' in c.rationale and 'purity' in c.rationale
        st = p.stats()
        assert st['tree_nodes'] >= 3 and st['tree_accuracy'] > 0.9 and st['decisions_tree'] >= 1
        text = p.export_tree()
        assert 'explore the room' in text and 'front_range <=' in text
    finally:
        p.close()
    assert os.path.exists(tmp_path / 'tree.json') and os.path.exists(tmp_path / 'decisions.jsonl')
    q = make(catalog, tmp_path, None, enable_cache=False)       # a restart reloads tree and log
    try:
        assert q.fast_decide(sit(front_range=6.0)).source == 'tree'
        assert len(q.log) == len(p.log)
        assert q.fast_decide(sit('a new instruction', front_range=6.0)) is None   # tree per instruction
    finally:
        q.close()


def test_llm_share_falls_after_warm_up(catalog, tmp_path):
    backend = PolicyBackend()
    p = make(catalog, tmp_path, backend)
    try:
        run_episode(p, 200, seed=1)
        p.train_now()
        first = backend.calls
        run_episode(p, 200, seed=2)
        assert backend.calls - first < first / 2
        assert 0 < p.stats()['llm_share'] < 1
    finally:
        p.close()


def test_forward_is_refused_without_a_front_range_and_capped_by_it(catalog, tmp_path):
    cfg = FastPathConfig(persist=False, data_dir=str(tmp_path), enable_tree=False,
                         enable_cache=False, enable_semantic_cache=False, rules_file=RULES)
    far = Choice('move_forward', {'distance': 2.0, 'speed': 0.3}, 0.9, 'llm', 'model says so')
    p = DecisionPipeline(catalog, cfg, PolicyBackend(answer=far))
    try:
        blind = dict(CLEAR)
        del blind['front_range']
        c = p.llm_decide(Situation(blind, '', 'drive forward two metres'))
        assert c.skill == 'stop' and 'no valid front_range' in c.rationale
        capped = p.llm_decide(Situation(dict(CLEAR, front_range=1.0), '', 'drive forward'))
        assert capped.skill == 'move_forward'
        assert capped.params['distance'] == pytest.approx(1.0 - cfg.margin_m)
        assert 'capped' in capped.rationale
        tight = p.bounded_by_front(far, Situation(dict(CLEAR, front_range=0.32), '', ''))
        assert tight.skill == 'stop', 'no room left after the margin'
        turn = Choice('turn', {'angle': 1.0})
        assert p.bounded_by_front(turn, Situation(blind, '', '')) is turn
    finally:
        p.close()
