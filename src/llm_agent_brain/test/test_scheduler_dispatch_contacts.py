"""The decision node's pure cores, with a fake clock and no sleeps: the LLM scheduler, goal
dispatch (the brain sends goals; the skill server pre-empts) and contacts sensed by the robot."""
from llm_agent_brain.collisions import ContactMonitor
from llm_agent_brain.decision_types import Choice, Situation
from llm_agent_brain.goal_dispatch import GoalDispatch, same_goal
from llm_agent_brain.llm_scheduler import LlmScheduler

SIT = Situation({'front_range': 3.0})


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_a_stream_of_observations_keeps_the_oldest_deadline_and_only_the_newest_waits():
    clock = Clock()
    s = LlmScheduler(clock)
    first = s.submit_topic(SIT, 'a', '', t0=0.0, timeout_s=5.0)
    clock.t = 3.0
    second = s.submit_topic(SIT, 'b', '', t0=3.0, timeout_s=5.0)
    assert first.expired and not second.expired and s.counters['coalesced'] == 1
    assert second.deadline == 5.0, 'a newer observation must not restart the clock'
    assert s.next_job(block=False) is second and s.pending() == 1
    clock.t = 5.1
    assert s.expire_due() == [second] and s.counters['deadline_missed'] == 1
    assert s.finish(second, Choice('stop')) is False, 'a late answer is not wanted'
    assert s.pending() == 0


def test_a_fast_decision_supersedes_the_waiting_one_and_services_keep_their_order():
    clock = Clock()
    s = LlmScheduler(clock)
    topic = s.submit_topic(SIT, 'a', '', 0.0, 5.0)
    s.supersede_topic()
    assert topic.expired and s.counters['superseded'] == 1
    one = s.submit_service(SIT, 'x', '', 0.0, 1.0)
    two = s.submit_service(SIT, 'y', '', 0.0, 9.0)
    clock.t = 2.0
    assert s.next_job(block=False) is two, 'an overdue service job is skipped'
    assert one.done.is_set()
    assert s.finish(two, Choice('turn', {'angle': 1.0})) and two.result.skill == 'turn'
    s.stop()
    assert s.next_job() is None


def test_the_same_decision_is_not_resent_while_it_runs():
    d = GoalDispatch()
    token = d.begin('move_forward', {'distance': 1.0, 'speed': 0.3})
    assert token is not None
    assert d.begin('move_forward', {'distance': 1.02, 'speed': 0.3}) is None
    other = d.begin('turn', {'angle': 1.0})  # the server pre-empts; the brain only sends it
    assert other is not None and d.running() == 2
    d.end(token)
    assert d.begin('move_forward', {'distance': 1.0, 'speed': 0.3}) is not None
    assert not same_goal(('turn', {'angle': 1.0}), ('turn', {'angle': -1.0}))


def test_contacts_from_the_scan_and_a_bumper_count_once_each():
    m = ContactMonitor(contact_range_m=0.2, clear_range_m=0.3)
    far = {'front_range': 2.0, 'left_range': 1.0}
    near = {'front_range': 2.0, 'left_range': 0.15}
    assert not m.update_ranges(far)
    assert m.update_ranges(near)
    assert not m.update_ranges(near), 'the same contact counts once'
    assert not m.update_ranges({'front_range': 2.0, 'left_range': 0.25}), 'not clear yet'
    assert not m.update_ranges(far)
    assert m.update_ranges(near), 'a new contact after the robot was clear'
    bumper = ContactMonitor(0.0, 0.0)
    assert bumper.update(True) and not bumper.update(True)
    assert not bumper.update(False) and bumper.update(True)
    assert not bumper.update_ranges(near), 'contact_range_m 0 turns the scan check off'


def test_dispatch_does_not_repeat_a_stop_that_holds():
    """A brain deciding stop on every observation sends one stop goal while the robot rests;
    it sends another as soon as the robot moves or another goal was sent in between."""
    from llm_agent_brain.goal_dispatch import at_rest
    d = GoalDispatch()
    first = d.begin('stop', {}, resting=True)
    assert first is not None
    d.end(first, succeeded=True)
    assert d.begin('stop', {}, resting=True) is None          # holds: nothing to send
    moving = d.begin('stop', {}, resting=False)                # pushed, or someone else's goal
    assert moving is not None
    d.end(moving, succeeded=True)
    turn = d.begin('turn', {'angle': 1.0})
    d.end(turn, succeeded=True)
    assert d.begin('stop', {}, resting=True) is not None       # the last goal was not a stop
    failed = GoalDispatch()
    token = failed.begin('stop', {}, resting=True)
    failed.end(token, succeeded=False)
    assert failed.begin('stop', {}, resting=True) is not None  # a stop that failed is retried
    assert at_rest({'speed': 0.0, 'yaw_rate': 0.01})
    assert not at_rest({'speed': 0.3, 'yaw_rate': 0.0}) and not at_rest({})
