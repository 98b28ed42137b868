"""The llamacpp backend on the real packaged GGUF (SmolLM2-135M Q4_1), on CPU: its one-pass
scoring (candidates as a prefix tree over llama.cpp sequences) gives the same scores as feeding
each candidate after the whole prompt, its instruction caches are sequences that share the
common prefix, and what it cannot use is refused with a clear error."""
import os

import pytest
from llm_agent_brain.backends import llamacpp
from llm_agent_brain.backends.llamacpp import LlamaCppBackend
from llm_agent_brain.decision_types import BackendError, Situation
from llm_agent_common.catalog import load_catalog

from llm_agent_brain import prompt

CATALOG = load_catalog('config/skills.yaml')
GO = 'go to the red target'
SITUATIONS = [
    Situation({'front_range': 3.0, 'target_visible': 1.0, 'target_bearing': 0.05}, 'a red ball', GO),
    Situation({'front_range': 0.3, 'target_visible': 0.0, 'left_range': 2.0, 'right_range': 0.5},
              'a wall ahead', GO),
    Situation({'front_range': 4.0, 'target_visible': 0.0}, 'an open room', 'stop now'),
    Situation({'front_range': 3.0}, 'a person', 'say hello to the person'),
]


@pytest.fixture(scope='module')
def gguf():
    b = LlamaCppBackend(instruction_caches=2)
    b.load()
    yield b
    b.close()


def _reference_scores(b, sit, names):
    """Each candidate fed after the whole prompt in a fresh sequence, one token at a time: the
    plain way, nothing shared between candidates or with the caches."""
    split = b._split(CATALOG, sit.instruction)
    summary = prompt.sanitize_text(sit.summary, 400)[0].replace('"', "'")
    ctx = (b._ids(split.common) + b._ids(split.head)
           + b._ids(' ' + prompt.observation_line(sit.features, summary) + split.after))
    seq = 1 + b.instruction_caches      # a work sequence: free between decisions
    out = []
    for name in names:
        cand = b._ids(name) + [b._end]
        b._seq_rm(seq)
        rows = b._decode([(t, i, (seq,), i == len(ctx) - 1) for i, t in enumerate(ctx)])
        total = float(b._logp(rows[-1])[cand[0]])
        for j in range(1, len(cand)):
            rows = b._decode([(cand[j - 1], len(ctx) + j - 1, (seq,), True)])
            total += float(b._logp(rows[0])[cand[j]])
        b._seq_rm(seq)
        out.append(total)
    return out


def _fed(b, seq):
    """Positions already in the sequence (llama.cpp's largest position + 1)."""
    return b._lib.llama_memory_seq_pos_max(b._mem, seq) + 1


@pytest.mark.slow
def test_one_pass_scores_equal_feeding_each_candidate_after_the_prompt(gguf):
    for sit in SITUATIONS[:2]:
        names = [n for n, _ in llamacpp.scoring.candidates(sit, CATALOG)]
        scores = gguf.score(sit, CATALOG, names)
        ref = _reference_scores(gguf, sit, names)
        # llama.cpp's 4-bit kernels round differently with the batch's size: the same prompt fed
        # in passes of 64 or of 16 tokens moved these log-likelihoods by up to 0.25 (measured).
        # A wrong row, position or sequence moves them by nats, or llama.cpp refuses the batch.
        assert scores == pytest.approx(ref, abs=0.5), names
        assert max(range(len(names)), key=scores.__getitem__) == \
            max(range(len(names)), key=ref.__getitem__)
        assert max(scores) - min(scores) > 1.5   # candidates far apart: the checks can fail


@pytest.mark.slow
def test_every_choice_is_a_scored_catalogue_skill_within_the_token_budget(gguf):
    for sit in SITUATIONS:
        c = gguf.choose(sit, CATALOG)
        assert c.skill in CATALOG.names and c.source == 'llm'
        assert CATALOG.validate(c.skill, c.params)[1] == ''
        assert 0.0 < c.confidence <= 1.0
        assert gguf.last_new_tokens <= 60, 'the compact prompt\'s budget'
    info = gguf.info()
    assert info['backend'] == 'llamacpp' and 'Q8_0' in info['quantization']
    assert 0 < info['memory_mb'] < 0.35 * 538, 'under 0.35x the fp32 weights (538 MB)'


def test_a_short_batch_is_padded_in_its_own_sequence_and_leaves_the_scores_alone(gguf, monkeypatch):
    sit = SITUATIONS[0]
    names = [n for n, _ in llamacpp.scoring.candidates(sit, CATALOG)]
    seq = gguf.prefix_cache(CATALOG, sit.instruction)[0]
    sizes = []
    decode = gguf._decode
    monkeypatch.setattr(gguf, '_decode', lambda items: sizes.append(len(items)) or decode(items))
    monkeypatch.setattr(llamacpp, 'PAD_FROM', llamacpp.PAD_TO)   # padding off
    plain = gguf.score(sit, CATALOG, names)
    cells = {s: _fed(gguf, s) for s in (llamacpp.COMMON_SEQ, seq)}
    monkeypatch.setattr(llamacpp, 'PAD_FROM', 1)                  # padding on
    padded = gguf.score(sit, CATALOG, names)
    assert sizes[0] < llamacpp.PAD_TO and sizes[1] == llamacpp.PAD_TO
    # Another kernel for the whole block rounds differently (up to 0.93 nats over the 63
    # labelled cases, the same skill on all): a pad that other sequences saw moves them more.
    assert padded == pytest.approx(plain, abs=1.0)
    assert max(range(len(names)), key=padded.__getitem__) == \
        max(range(len(names)), key=plain.__getitem__)
    assert _fed(gguf, gguf._pad_seq) == 0, 'the pad is removed after the decision'
    assert {s: _fed(gguf, s) for s in cells} == cells, 'the caches are untouched'


@pytest.mark.slow
def test_instruction_caches_share_the_common_prefix_and_drop_the_oldest(gguf):
    sit = SITUATIONS[0]
    names = ['stop', 'turn', 'approach_target']
    before = gguf.score(sit, CATALOG, names)
    common_cells = _fed(gguf, llamacpp.COMMON_SEQ)
    builds = gguf.prefix_builds
    for text in ('stop now', 'say hi', 'wait 2 seconds'):      # 2 caches: GO is dropped
        gguf.prepare(CATALOG, text)
        assert gguf.is_prepared(CATALOG, text)
    assert gguf.prefix_builds == builds + 3
    assert not gguf.is_prepared(CATALOG, GO) and len(gguf._prefix) == 2
    assert _fed(gguf, llamacpp.COMMON_SEQ) == common_cells, 'the common prefix is not recomputed'
    again = gguf.score(sit, CATALOG, names)                     # rebuilt in a reused sequence
    assert again == pytest.approx(before, abs=1e-3)
    assert gguf.prefix_builds == builds + 4


def test_the_gguf_is_requantized_once_and_kept(tmp_path):
    from llm_agent_brain import model_store
    src = model_store.packaged_gguf_path()
    assert model_store.requantized_gguf(src, '', str(tmp_path)) == src     # as the file is
    out = model_store.requantized_gguf(src, 'Q4_0', str(tmp_path))
    assert out.startswith(str(tmp_path)) and out.endswith('.Q4_0.gguf')
    stamp = os.stat(out).st_mtime_ns
    assert model_store.requantized_gguf(src, 'Q4_0', str(tmp_path)) == out
    assert os.stat(out).st_mtime_ns == stamp, 'made once, then reused'
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]
    with pytest.raises(model_store.ModelStoreError, match='gguf_type'):
        model_store.requantized_gguf(src, 'Q2_K', str(tmp_path))
    bad = tmp_path / 'bad.gguf'
    bad.write_bytes(b'GGUF' + b'\x00' * 64)
    with pytest.raises(model_store.ModelStoreError, match='could not requantize'):
        model_store.requantized_gguf(str(bad), 'Q8_0', str(tmp_path))


def test_a_model_that_is_not_a_gguf_file_is_refused_with_the_reason(tmp_path):
    with pytest.raises(BackendError, match='loads a .gguf file'):
        llamacpp.gguf_path('HuggingFaceTB/SmolLM2-135M-Instruct')
    b = LlamaCppBackend(model=str(tmp_path / 'missing.gguf'))
    with pytest.raises(BackendError, match='gguf'):
        b.load()
    assert not b.ready and b.load_error
    with pytest.raises(BackendError, match='loading'):
        b.choose(SITUATIONS[0], CATALOG)
    bad = tmp_path / 'bad.gguf'
    bad.write_bytes(b'GGUF' + b'\x00' * 64)                     # a corrupt file
    b = LlamaCppBackend(model=str(bad), gguf_type='')
    with pytest.raises(BackendError, match='could not load'):
        b.load()


def test_auto_picks_llama_cpp_for_a_gguf_on_a_cpu_and_transformers_otherwise():
    from llm_agent_brain.node_params import backend_from_params, defaults, resolve_backend
    v = defaults()
    assert v['backend'] == 'auto'
    no_gpu, gpu = (lambda: False), (lambda: True)
    assert resolve_backend(v, no_gpu)[0] == 'llamacpp'      # llama-cpp-python is installed here
    assert resolve_backend({**v, 'model': '/models/x.gguf'}, no_gpu)[0] == 'llamacpp'
    for change in ({'model': 'HuggingFaceTB/SmolLM2-360M-Instruct'}, {'llm_mode': 'generate'},
                   {'device': 'cuda'}):
        assert resolve_backend({**v, **change}, no_gpu)[0] == 'transformers', change
    assert resolve_backend(v, gpu)[0] == 'transformers'
    kind, why = resolve_backend(v, no_gpu, has_llama=lambda: False)
    assert kind == 'transformers' and 'pip install llama-cpp-python' in why
    assert resolve_backend({**v, 'backend': 'openai'}, gpu)[0] == 'openai'
    assert isinstance(backend_from_params({**v, 'device': 'cpu'}), LlamaCppBackend)
