"""Fuzz what reaches the brain (hypothesis, seeded): observations, instructions, model answers
and its own files. Every case gives a valid decision or a clear refusal: no exception escapes,
and no decision leaves the catalogue or its bounds."""
import math
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llm_agent_brain.backends import scoring
from llm_agent_brain.decision_log import DecisionLog
from llm_agent_brain.decision_types import BackendError, Choice, Situation
from llm_agent_brain.observation_check import situation_from
from llm_agent_brain.pipeline import DecisionPipeline, FastPathConfig
from llm_agent_brain.tree import TreeSet
from llm_agent_common.catalog import load_catalog
from llm_agent_common.features import FEATURE_NAMES

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
CATALOG = load_catalog(os.path.join(ROOT, 'config', 'skills.yaml'))
FUZZ = settings(max_examples=300, derandomize=True, database=None, deadline=10_000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

names = st.one_of(st.sampled_from(FEATURE_NAMES), st.text(max_size=80))
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(-1e308, 1e308), st.floats(-10, 10))
text = st.one_of(st.text(max_size=600), st.just('"' * 50 + '{' * 500),
                 st.text(alphabet='\ufdfa\x00\u202e"{}<|im_start|>', max_size=300))


def assert_valid(choice: Choice):
    params, reason = CATALOG.validate(choice.skill, choice.params)
    assert not reason, (choice, reason)


@FUZZ
@given(st.lists(st.tuples(names, values), max_size=40), text, text)
def test_observations_and_instructions(pairs, summary, instruction):
    sit, reason, _ = situation_from([n for n, _ in pairs], [v for _, v in pairs], summary,
                                    instruction)
    if sit is None:
        assert reason.startswith('observation malformed')
        return
    assert all(math.isfinite(v) for v in sit.features.values())
    assert len(sit.instruction) <= 503 and len(sit.summary) <= 403


class Echo:
    """Answers whatever the test hands it: the point is what the pipeline lets through."""

    name = 'echo'

    def __init__(self):
        self.answer = Choice('stop')

    def choose(self, situation, catalog):
        return self.answer


ECHO = Echo()
PIPE = DecisionPipeline(CATALOG, FastPathConfig(
    persist=False, rules_file=os.path.join(ROOT, 'config', 'rules.yaml'),
    enable_semantic_cache=False, enable_tree=False), ECHO)

skills = st.one_of(st.sampled_from(CATALOG.names), st.text(max_size=20))
params = st.dictionaries(st.text(max_size=12), st.one_of(values, st.text(max_size=30),
                                                         st.integers(-2**80, 2**80)), max_size=4)


@FUZZ
@given(st.dictionaries(st.sampled_from(FEATURE_NAMES), st.floats(-1e3, 1e3), max_size=13),
       text, skills, params)
def test_decisions_from_any_answer_stay_in_the_catalogue(features, instruction, skill, p):
    ECHO.answer = Choice(skill, p)
    sit = Situation(features, '', instruction)
    choice = PIPE.fast_decide(sit)
    if choice is None:
        try:
            choice = PIPE.llm_decide(sit)
        except BackendError:
            return
    assert_valid(choice)
    if choice.skill == 'move_forward':
        assert choice.params['distance'] <= features['front_range'] - PIPE.config.margin_m + 1e-9


@FUZZ
@given(text)
def test_free_text_answers(answer):
    sit = Situation({'front_range': 2.0, 'target_visible': 1.0, 'target_bearing': 0.3}, '', 'go')
    try:
        assert_valid(scoring.choice_from_answer(answer, sit, CATALOG, 0.3, 'fuzz'))
    except BackendError:
        pass


@FUZZ
@given(skills, st.one_of(st.text(max_size=300), st.binary(max_size=100).map(
    lambda b: b.decode('latin-1')), params.map(str)))
def test_catalogue_validation_gives_params_or_a_reason(skill, params_json):
    out, reason = CATALOG.validate(skill, params_json)
    if reason:
        assert out == {}
    else:
        assert skill in CATALOG and isinstance(out, dict)


@FUZZ
@given(st.binary(max_size=2000))
def test_persisted_files_of_any_content(tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp('files')
    (folder / 'decisions.jsonl').write_bytes(raw)
    (folder / 'tree.json').write_bytes(raw)
    DecisionLog(str(folder / 'decisions.jsonl'))
    try:
        TreeSet.load(str(folder / 'tree.json'))
    except ValueError as exc:
        assert 'tree.json' in str(exc)


events = st.one_of(
    st.text(max_size=300), st.just('[' * 100000), st.just('{"type": ' + '9' * 5000 + '}'),
    st.recursive(st.one_of(st.none(), st.booleans(), st.floats(), st.integers(-2**70, 2**70),
                           st.text(max_size=20)),
                 lambda kids: st.one_of(st.lists(kids, max_size=4),
                                        st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                 max_leaves=20).map(lambda v: __import__('json').dumps(v)),
    st.fixed_dictionaries({'type': st.sampled_from(['collision', 'goal_reached', 'reset', 'x'])},
                          optional={'skill': st.one_of(st.text(max_size=10), st.integers()),
                                    'x': st.floats()}).map(lambda v: __import__('json').dumps(v)))


@FUZZ
@given(events)
def test_events_parse_or_are_refused_and_outcomes_never_raise(raw):
    from llm_agent_brain.collisions import parse_event
    try:
        event = parse_event(raw)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(event, dict) and isinstance(event['type'], str)
    if event['type'] in ('collision', 'goal_reached'):
        assert PIPE.report_outcome(event['type'], event) >= 0
