"""InstructionTask, the core of agent/run_instruction: when a plain-language goal is done, given
up or replaced, driven step by step with a hand-set clock (no ROS, no sleeps)."""
import pytest
from llm_agent_brain.decision_types import Choice
from llm_agent_brain.rules import rule_name
from llm_agent_brain.task import InstructionTask

NEAR = {'goal_distance': 0.4}
FAR = {'goal_distance': 3.0}


def rule(name, skill='stop', safety=True):
    kind = 'safety rule' if safety else 'rule'
    return Choice(skill, source='rule', rationale=f'{kind} {name}: goal_distance=0.4 in [0, 0.6]')


def test_the_goal_reached_rule_ends_it_with_success_and_counts_the_decisions():
    t = InstructionTask('go to the red target', now_s=10.0, timeout_s=60.0)
    assert t.on_decision(Choice('move_forward', {'distance': 1.0}, source='llm'), FAR) is None
    assert t.on_decision(rule('obstacle_ahead', 'turn'), FAR) is None
    end = t.on_decision(rule('goal_reached'), NEAR)
    assert (end.success, end.outcome) == (True, 'goal_reached') and 'goal_reached' in end.message
    assert (t.decisions, t.skill, t.source, t.goal_distance) == (3, 'stop', 'rule', 0.4)
    assert t.on_decision(Choice('turn', {'angle': 1.0}), FAR) is None and t.decisions == 3
    assert t.check(1e9) is None and t.cancel() == end, 'the first end stands'


def test_it_settles_when_the_agent_itself_rests_in_a_row_not_on_fallbacks_or_rules():
    t = InstructionTask('stay where you are', 0.0, 60.0, settle_decisions=3)
    rest = Choice('stop', source='llm')
    assert t.on_decision(rest, {}) is None
    assert t.on_decision(Choice('stop', source='fallback', rationale='late'), {}) is None
    assert t.on_decision(Choice('wait', {'seconds': 1.0}, source='tree'), {}) is None
    assert t.on_decision(Choice('turn', {'angle': 0.5}, source='llm'), {}) is None  # resets
    assert t.on_decision(rest, {}) is None and t.on_decision(rest, {}) is None
    assert t.on_decision(rule('obstacle_ahead'), {}) is None   # a rule's stop is not the agent's
    end = t.on_decision(Choice('stop', source='cache'), {})
    assert (end.success, end.outcome) == (True, 'settled') and t.goal_distance == -1.0


def test_deadline_cancel_replace_and_the_world_end_it():
    t = InstructionTask('go', 0.0, 5.0)
    assert t.check(4.9) is None
    end = t.check(5.0)
    assert (end.success, end.outcome) == (False, 'timed_out') and '5 s' in end.message
    assert InstructionTask('go', 0.0, 5.0).cancel().outcome == 'canceled'
    end = InstructionTask('go', 0.0, 5.0).replace('a newer goal')
    assert (end.success, end.outcome, end.message) == (False, 'replaced', 'replaced by a newer goal')
    assert InstructionTask('go', 0.0, 5.0).on_world_goal_reached().success


@pytest.mark.parametrize('text,timeout', [('', 5.0), ('   ', 5.0), ('go', 0.0), ('go', float('nan'))])
def test_an_empty_instruction_or_a_bad_timeout_is_refused(text, timeout):
    with pytest.raises(ValueError):
        InstructionTask(text, 0.0, timeout)


def test_rule_name_reads_only_rule_choices():
    assert rule_name(rule('goal_reached')) == 'goal_reached'
    assert rule_name(rule('drive', 'move_forward', safety=False)) == 'drive'
    assert rule_name(Choice('stop', source='llm', rationale='rule goal_reached: said the model')) == ''
    assert rule_name(Choice('stop', source='rule', rationale='')) == ''
