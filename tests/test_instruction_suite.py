"""The instruction suite's file and its declarative checks, judged on recorded episodes (traces
written here pose by pose, as odometry would give them) and a real world's geometry."""
import math
import os

import pytest
from llm_agent_bench.instructions import (
    CHECKS,
    SuiteError,
    Trace,
    Visibility,
    judge,
    load_suite,
    parse_step,
    parse_suite,
)
from llm_agent_sim.world import TARGET_COLOURS, world_from_dict

import llm_agent_bench

SUITE = os.path.join(os.path.dirname(llm_agent_bench.__file__), 'data', 'instruction_suite.yaml')
WORLD = world_from_dict({
    'room': {'min': [-4, -4], 'max': [4, 4]},
    'target': {'center': [3.0, 0.0], 'size': [0.3, 0.3]},
    'markers': [{'center': [0.0, 3.0], 'size': [0.3, 0.3], 'colour': 'green'}],
    'boxes': [{'center': [-1.5, 1.5], 'size': [0.4, 0.4]}],
    'start': {'x': 0.0, 'y': 0.0, 'yaw': 0.0}})


def trace_of(poses, dt=0.1, said=(), collisions=0):
    """poses: (x, y, yaw) per tick; speeds from the differences, as odometry reports them."""
    tr = Trace(said=list(said), collisions=collisions, goal=WORLD.goal,
               targets={c: ob.center for c, ob in WORLD.targets().items()})
    prev = poses[0]
    for i, (x, y, yaw) in enumerate(poses):
        tr.add_pose(i * dt, x, y, yaw, math.hypot(x - prev[0], y - prev[1]) / dt,
                    math.remainder(yaw - prev[2], 2 * math.pi) / dt)
        prev = (x, y, yaw)
    return tr


def line(a, b, n, yaw=0.0):
    return [(a[0] + (b[0] - a[0]) * k / (n - 1), a[1] + (b[1] - a[1]) * k / (n - 1), yaw)
            for k in range(n)]


def steps(*raw):
    return [parse_step(r, 'test', TARGET_COLOURS) for r in raw]


def ok(raw_steps, tr):
    return judge(steps(*raw_steps), tr, Visibility(WORLD))


def test_the_packaged_suite_has_twelve_kinds_three_paraphrases_each_and_every_check():
    kinds = load_suite(SUITE, TARGET_COLOURS)
    assert len(kinds) >= 12
    assert all(len(set(k.paraphrases)) >= 3 for k in kinds)
    used = {s.check for k in kinds for s in k.steps}
    assert used == set(CHECKS)
    phrases = [p for k in kinds for p in k.paraphrases]
    assert len(phrases) == len(set(phrases))


@pytest.mark.parametrize('data, message', [
    ({}, 'needs a non-empty list `kinds`'),
    ({'kinds': [{'kind': 'a', 'paraphrases': ['x', 'y'], 'check': [{'stay': {'seconds': 1}}],
                 'time_limit_s': 5}]}, 'paraphrases must be at least 3 different'),
    ({'kinds': [{'kind': 'a', 'paraphrases': ['x', 'y', 'z'], 'check': [{'fly': {}}],
                 'time_limit_s': 5}]}, "unknown check 'fly'"),
    ({'kinds': [{'kind': 'a', 'paraphrases': ['x', 'y', 'z'],
                 'check': [{'reach': {'target': 'purple'}}], 'time_limit_s': 5}]},
     'target must be one of red, blue, green, yellow, goal, start'),
    ({'kinds': [{'kind': 'a', 'paraphrases': ['x', 'y', 'z'],
                 'check': [{'turn_by': {'angle': float('nan')}}], 'time_limit_s': 5}]},
     'angle must be a finite number'),
    ({'kinds': [{'kind': 'a', 'paraphrases': ['x', 'y', 'z'],
                 'check': [{'move_by': {'dist': 1}}], 'time_limit_s': 5}]}, 'takes distance, tol'),
    ({'kinds': [{'kind': 'a', 'paraphrases': ['x', 'y', 'z'], 'check': [{'no_contact': True}],
                 'time_limit_s': 0}]}, 'time_limit_s must be'),
])
def test_a_bad_suite_is_refused_naming_the_kind_and_field(data, message):
    with pytest.raises(SuiteError, match=message.replace('(', r'\(').replace('[', r'\[')):
        parse_suite(data, TARGET_COLOURS, 'mine.yaml')


def test_reach_then_return_must_happen_in_that_order():
    out = line((0, 0), (0, 2.6), 30) + line((0, 2.6), (0, 0.2), 30)
    assert ok([{'reach': {'target': 'green'}}, {'return_to': 'start'}], trace_of(out))
    back_first = line((0, 0), (0, 2.6), 30)            # reached green, never came back
    verdict = ok([{'reach': {'target': 'green'}}, {'return_to': 'start'}], trace_of(back_first))
    assert not verdict.ok and 'from the start' in verdict.why
    assert not ok([{'reach': {'target': 'goal'}}], trace_of(out)).ok


def test_turn_by_counts_whole_turns_across_pi():
    yaws = [k * 0.1 for k in range(32)]                 # 0 .. 3.1 rad, passing no wrap
    more = yaws + [3.1 + k * 0.1 for k in range(1, 15)]  # on to 4.5 rad: wraps past pi
    assert ok([{'turn_by': {'angle': 3.1416}}], trace_of([(0, 0, math.remainder(y, 2 * math.pi))
                                                          for y in yaws]))
    verdict = ok([{'turn_by': {'angle': 3.1416}}],
                 trace_of([(0, 0, math.remainder(y, 2 * math.pi)) for y in more]))
    assert not verdict.ok and 'turned 4.50 rad' in verdict.why


def test_move_by_is_along_the_start_heading_backwards_too():
    back = line((0, 0), (-0.45, 0), 10)
    assert ok([{'move_by': {'distance': -0.5, 'tol': 0.2}}], trace_of(back))
    sideways = line((0, 0), (0, -0.5), 10)
    assert not ok([{'move_by': {'distance': -0.5, 'tol': 0.2}}], trace_of(sideways)).ok


def test_stay_then_reach_fails_when_the_robot_leaves_early():
    wait = [(0, 0, 0)] * 35 + line((0, 0), (2.7, 0), 30)
    assert ok([{'stay': {'seconds': 3}}, {'reach': {'target': 'goal'}}], trace_of(wait))
    eager = [(0, 0, 0)] * 10 + line((0, 0), (2.7, 0), 30)
    verdict = ok([{'stay': {'seconds': 3}}, {'reach': {'target': 'goal'}}], trace_of(eager))
    assert not verdict.ok and 'moved after 1.' in verdict.why


def test_say_counts_only_after_the_previous_step():
    drive = line((0, 0), (2.7, 0), 30)
    early = trace_of(drive, said=[(0.5, 'Hello there')])
    late = trace_of(drive, said=[(2.95, 'hello, I am here')])
    rule = [{'reach': {'target': 'goal'}}, {'say': {'contains': 'hello'}}]
    assert not ok(rule, early).ok and ok(rule, late).ok


def test_stop_when_visible_uses_the_world_geometry():
    visible = Visibility(WORLD)
    assert visible('green', 0, 0, math.pi / 2) and not visible('green', 0, 0, 0.0)
    assert visible('green', -1.5, 0.0, math.atan2(3.0, 1.5))               # in the open
    assert not visible('green', -3.0, 0.0, math.atan2(3.0, 3.0))           # the box in between
    assert not visible('green', -1.5, 0.0, -math.pi / 2)                   # facing away
    # Turn left on the spot: green comes into view near yaw 1.1 rad; stop there, or turn on.
    turn = [(0, 0, k * 0.05) for k in range(25)]
    stops = turn + [(0, 0, 1.2)] * 40
    assert ok([{'stop_when_visible': 'green'}], trace_of(stops))
    drives_on = turn + [(0.1 * k, 0, 1.2) for k in range(40)]
    verdict = ok([{'stop_when_visible': 'green'}], trace_of(drives_on))
    assert not verdict.ok and 'drove on' in verdict.why
    verdict = ok([{'stop_when_visible': 'blue'}], trace_of(stops))       # no blue in this world
    assert not verdict.ok and 'never in view' in verdict.why


def test_no_contact_anywhere_in_the_list():
    drive = line((0, 0), (2.7, 0), 30)
    assert ok([{'no_contact': True}, {'reach': {'target': 'goal'}}], trace_of(drive))
    verdict = ok([{'reach': {'target': 'goal'}}, {'no_contact': True}], trace_of(drive, collisions=1))
    assert not verdict.ok and '1 collision' in verdict.why


def test_at_rest_for_needs_the_whole_span_still():
    tr = trace_of(line((0, 0), (1, 0), 10) + [(1, 0, 0)] * 25)
    assert tr.at_rest_for(2.0) and not tr.at_rest_for(3.0)
