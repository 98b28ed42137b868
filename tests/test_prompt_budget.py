"""The LLM's context per decision in the running graph: the observer's real Observation (its
features and its summary) through the brain's compact prompt stays within 60 new tokens.

The labelled set has no scene summaries; in the graph the observer's summary once restated all
13 features in prose (~150 tokens per decision, three times the model's time)."""
import math

import pytest
from llm_agent_brain.backends.llamacpp import LlamaCppBackend
from llm_agent_brain.decision_types import Situation
from llm_agent_common.catalog import load_catalog

from llm_agent_perception import features

SECTORS = [{n: r for n in features.SECTOR_NAMES} for r in (0.3, 2.31, 7.9)]


@pytest.fixture(scope='module')
def backend():
    b = LlamaCppBackend()   # the CPU default (the same tokenizer as the transformers backend)
    b.load()
    yield b
    b.close()


@pytest.mark.slow
@pytest.mark.parametrize('sectors', SECTORS)
@pytest.mark.parametrize('target', [(1.0, -0.07, 0.05), (0.0, 0.0, 0.0)])
def test_an_observation_from_the_observer_costs_at_most_60_new_tokens(backend, sectors, target):
    values = features.feature_vector(sectors, (4.2, math.radians(17)), target, 0.3, 0.1, 8.0)
    summary = features.summary(features.FEATURE_NAMES, values, 'green')
    sit = Situation(dict(zip(features.FEATURE_NAMES, values)), summary, 'go to the green target')
    backend.score(sit, load_catalog(), ['stop', 'turn'])
    assert backend.last_new_tokens <= 60, (backend.last_new_tokens, summary)
