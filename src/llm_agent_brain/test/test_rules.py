"""Rules: the condition language, the scenario's rules file, and errors naming file and field."""
import os

import pytest
import yaml
from llm_agent_brain.decision_types import Situation
from llm_agent_brain.rules import RulesError, load_rules, parse_rules
from llm_agent_common.catalog import load_catalog

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
RULES = os.path.join(ROOT, 'config', 'rules.yaml')
CLEAR = dict(front_range=8.0, front_left_range=8.0, front_right_range=8.0, left_range=8.0,
             right_range=8.0, rear_range=8.0, goal_distance=5.0, goal_bearing=0.0)


@pytest.fixture(scope='module')
def catalog():
    return load_catalog(os.path.join(ROOT, 'config', 'skills.yaml'))


@pytest.fixture(scope='module')
def rules(catalog):
    return load_rules(RULES, catalog)


def situation(**kw):
    return Situation(features={**CLEAR, **kw}, instruction='explore')


def test_clear_way_no_rule(rules):
    assert rules.evaluate(situation()) is None


@pytest.mark.parametrize('left,right,sign', [(2.0, 1.0, 1), (0.8, 3.0, -1)])
def test_obstacle_ahead_turns_toward_clearer_side(rules, left, right, sign):
    c = rules.evaluate(situation(front_range=0.3, left_range=left, right_range=right))
    assert c is not None and c.skill == 'turn' and c.source == 'rule'
    assert c.params['angle'] * sign > 0.5
    assert 'obstacle_ahead' in c.rationale and 'front_range=0.3' in c.rationale


def test_dead_end_turns_round_or_stops(rules):
    c = rules.evaluate(situation(front_range=0.3, left_range=0.2, right_range=0.3))
    assert c.skill == 'turn' and abs(c.params['angle']) > 3.0 and 'dead_end' in c.rationale
    c = rules.evaluate(situation(front_range=0.3, left_range=0.2, right_range=0.3, rear_range=0.2))
    assert c.skill == 'stop' and 'boxed_in' in c.rationale


def test_goal_reached_is_a_safety_stop_that_wins_over_obstacle_rules(rules):
    # At the goal the target itself is the obstacle ahead: stopping comes before turning away.
    s = situation(goal_distance=0.5, front_range=0.3)
    c = rules.evaluate(s, safety_only=True)
    assert c.skill == 'stop' and 'goal_reached' in c.rationale
    # goal_distance -1 means no goal known: never "reached".
    assert 'goal_reached' not in rules.evaluate(situation(goal_distance=-1.0, front_range=0.3)).rationale
    assert rules.evaluate(situation(goal_distance=0.7)) is None


def test_missing_or_nan_feature_never_fires(rules):
    assert rules.evaluate(Situation(features={'left_range': 1.0})) is None
    assert rules.evaluate(situation(front_range=float('nan'))) is None


def test_condition_language(catalog):
    doc = {'features': ['a', 'b'], 'constants': {'k': 1.0}, 'rules': [
        {'name': 'any_not', 'when': {'any': [{'a': {'gt': 10}}, {'not': {'b': {'between': [0, 5]}}}]},
         'skill': 'wait', 'params': {'seconds': {'ref': 'b', 'scale': 0.5, 'max': 3}}},
        {'name': 'compare_features', 'when': {'all': [{'a': {'lt': 'b'}}, {'a': {'ge': 'k'}}]},
         'skill': 'speak', 'params': {'text': 'hello'}},
    ]}
    rs = parse_rules(doc, catalog)
    c = rs.evaluate(Situation({'a': 0.0, 'b': 9.0}))
    assert c.skill == 'wait' and c.params == {'seconds': 3.0}
    c = rs.evaluate(Situation({'a': 2.0, 'b': 4.0}))
    assert c.skill == 'speak' and 'compare_features' in c.rationale
    assert rs.evaluate(Situation({'a': 0.5, 'b': 4.0})) is None


@pytest.mark.parametrize('rule,field', [
    ({'name': 'x', 'when': {'front_range': {'lt': 0.4}}, 'skill': 'fly'}, 'rules[0] (x).skill'),
    ({'name': 'x', 'when': {'front_rnage': {'lt': 0.4}}, 'skill': 'stop'}, 'rules[0] (x).when'),
    ({'name': 'x', 'when': {'front_range': {'less': 0.4}}, 'skill': 'stop'},
     'rules[0] (x).when.front_range.less'),
    ({'name': 'x', 'when': {'front_range': {'lt': 0.4}}, 'skill': 'turn', 'params': {'angle': 'left'}},
     "rules[0] (x).params: turn: parameter 'angle'"),
    ({'name': 'x', 'when': {'front_range': {'lt': 0.4}}, 'skill': 'turn', 'params': {'angle': 9.0}},
     'rules[0] (x).params'),
    ({'name': 'x', 'when': {'front_range': {'lt': 0.4}}, 'skill': 'turn',
      'params': {'angle': {'if': {'left_range': {'gt': 1}}, 'then': 1.0}}}, 'rules[0] (x).params.angle'),
    ({'name': 'x', 'skill': 'stop'}, 'rules[0] (x).when'),
    ({'name': 'x', 'when': {'front_range': {'lt': 0.4}}, 'skill': 'stop', 'safety': 'yes'},
     'rules[0] (x).safety'),
])
def test_malformed_rules_name_file_and_field(catalog, tmp_path, rule, field):
    doc = yaml.safe_load(open(RULES))
    doc['rules'] = [rule]
    path = tmp_path / 'bad_rules.yaml'
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(RulesError) as err:
        load_rules(str(path), catalog)
    assert str(path) in str(err.value) and field in str(err.value)


def test_unreadable_and_invalid_yaml(catalog, tmp_path):
    with pytest.raises(RulesError, match='cannot read'):
        load_rules(str(tmp_path / 'none.yaml'), catalog)
    bad = tmp_path / 'r.yaml'
    bad.write_text('rules: [\n')
    with pytest.raises(RulesError, match='not valid YAML'):
        load_rules(str(bad), catalog)
