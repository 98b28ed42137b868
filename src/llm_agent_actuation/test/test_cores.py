"""Pure cores without ROS: skills, guard, watchdog, arbitration, approval, plugins, executive."""
import math
import threading

import pytest
from llm_agent_actuation.approval import APPROVED, REFUSED, ApprovalBook
from llm_agent_actuation.arbiter import ResourceArbiter
from llm_agent_actuation.builtin_skills import (
    ApproachTarget,
    MoveForward,
    NavigateTo,
    Speak,
    Stop,
    Turn,
    Wait,
)
from llm_agent_actuation.executive import CANCELED, GUARD, PREEMPTED, SUCCEEDED, TIMED_OUT, Executive
from llm_agent_actuation.guard import Footprint, SafetyGuard, Watchdog
from llm_agent_actuation.plugins import PluginError, load_plugin, resolve_skill_class
from llm_agent_actuation.ramp import VelocityRamp
from llm_agent_actuation.skill_api import Pose2D, SkillConfig, SkillContext, WorldState
from llm_agent_actuation.stats import ServerStats, reason_class
from llm_agent_common.catalog import SkillSpec, load_catalog
from llm_agent_common.stats import percentile

CFG = SkillConfig()


class Unicycle:
    """Integrates the commanded velocity: a kinematic base for closed-loop skill tests."""

    def __init__(self, world, x=0.0, y=0.0, yaw=0.0):
        self.world, self.x, self.y, self.yaw = world, x, y, yaw
        self.world.pose = Pose2D(x, y, yaw)

    def apply(self, cmd, dt):
        v, w = cmd or (0.0, 0.0)
        self.x += v * math.cos(self.yaw) * dt
        self.y += v * math.sin(self.yaw) * dt
        self.yaw = (self.yaw + w * dt + math.pi) % (2 * math.pi) - math.pi
        self.world.pose = Pose2D(self.x, self.y, self.yaw)


def run_skill(skill, params, world=None, dt=0.05, max_steps=2000, on_step=None, ramp=None):
    """Step a skill against a kinematic base; `ramp` (a VelocityRamp) sits between the skill's
    command and the base, as in the skill server."""
    world = world or WorldState(forward_allowed=True)
    base = Unicycle(world) if world.pose is None else None
    ctx = SkillContext(world, CFG, 0.0)
    skill.start(params, ctx)
    for _ in range(max_steps):
        ctx.now += dt
        ctx.cmd = None
        out = skill.step(ctx, dt)
        assert 0.0 <= out.progress <= 1.0
        if ramp is not None and ctx.cmd is not None:
            ctx.cmd = ramp(*ctx.cmd, ctx.now)
        if base:
            base.apply(ctx.cmd, dt)
        if on_step:
            on_step(ctx)
        if out.result is not None:
            return out, ctx, base
    raise AssertionError('skill never finished')


def test_move_forward_reaches_distance_holding_heading():
    out, _, base = run_skill(MoveForward(), {'distance': 1.0, 'speed': 0.3})
    assert out.result.success and out.progress == 1.0
    assert base.x == pytest.approx(1.0, abs=0.06) and abs(base.y) < 0.01


@pytest.mark.parametrize('angle', [1.2, -2.5, 3.14, 0.0])
def test_turn_reaches_angle_across_pi(angle):
    world = WorldState()
    base = Unicycle(world, yaw=3.0)   # start near +pi so the turn crosses the wrap
    out, _, _ = run_skill(Turn(), {'angle': angle}, world=world,
                          on_step=lambda ctx: base.apply(ctx.cmd, 0.05))
    assert out.result.success
    turned = (base.yaw - 3.0 + math.pi) % (2 * math.pi) - math.pi
    assert turned == pytest.approx((angle + math.pi) % (2 * math.pi) - math.pi, abs=0.05)


def test_velocity_ramp_limits_each_change_but_stops_at_once():
    ramp = VelocityRamp(max_linear_accel=1.0, max_angular_accel=3.0, period_s=0.05)
    got = [ramp(0.5, 1.5, 0.05 * i) for i in range(12)]
    assert got[0] == pytest.approx((0.05, 0.15))          # one period's change from rest
    steps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(got, got[1:])]
    assert all(dv <= 0.05 + 1e-9 and dw <= 0.15 + 1e-9 for dv, dw in steps)
    assert got[-1] == pytest.approx((0.5, 1.5))
    assert ramp(0.5, -1.5, 0.65) == pytest.approx((0.5, 1.35))   # a reversal goes through the ramp
    assert ramp(0.1, -1.5, 10.0) == pytest.approx((0.45, 1.2))   # after a pause: one period's worth
    assert ramp(0.0, 0.0, 10.05) == (0.0, 0.0)                   # a stop is not ramped
    assert ramp(-0.3, 0.0, 10.1) == pytest.approx((-0.05, 0.0))
    with pytest.raises(ValueError, match='max_linear_accel'):
        VelocityRamp(0.0, 3.0, 0.05)
    with pytest.raises(ValueError, match='period_s'):
        VelocityRamp(1.0, 3.0, float('nan'))


@pytest.mark.parametrize('accel', [(1.0, 3.0), (2.5, 3.2)])   # the world's base; Nav2's defaults
def test_skills_arrive_within_tolerance_behind_the_ramp(accel):
    out, _, base = run_skill(MoveForward(), {'distance': 1.0, 'speed': 0.5},
                             ramp=VelocityRamp(*accel, 0.05))
    assert out.result.success and base.x == pytest.approx(1.0, abs=0.06)
    world = WorldState()
    base = Unicycle(world)
    ramp = VelocityRamp(*accel, 0.05)
    out, _, _ = run_skill(Turn(), {'angle': 2.0}, world=world, ramp=ramp,
                          on_step=lambda ctx: base.apply(ctx.cmd, 0.05))
    assert out.result.success and base.yaw == pytest.approx(2.0, abs=CFG.angle_tolerance_rad + 0.01)


def test_navigate_to_reaches_point_behind():
    world = WorldState()
    base = Unicycle(world)
    out, _, _ = run_skill(NavigateTo(), {'x': -1.0, 'y': 1.5}, world=world,
                          on_step=lambda ctx: base.apply(ctx.cmd, 0.05))
    assert out.result.success
    assert math.hypot(base.x + 1.0, base.y - 1.5) <= 0.1


def test_skills_wait_for_odom_before_moving():
    ctx = SkillContext(WorldState(), CFG, 0.0)
    s = MoveForward()
    s.start({'distance': 1.0, 'speed': 0.3}, ctx)
    out = s.step(ctx, 0.05)
    assert out.result is None and out.state == 'waiting for odom' and ctx.cmd == (0.0, 0.0)


def test_stop_wait_speak():
    out, ctx, _ = run_skill(Stop(), {})
    assert out.result.success and ctx.cmd == (0.0, 0.0)
    out, ctx, _ = run_skill(Wait(), {'seconds': 0.5})
    assert out.result.success and ctx.now == pytest.approx(0.5, abs=0.06)
    texts = []
    out, ctx, _ = run_skill(Speak(), {'text': 'x' * 30}, on_step=lambda c: texts.extend(c.speech))
    assert out.result.success and ctx.now == pytest.approx(30 / CFG.speech_chars_per_s, abs=0.06)
    assert ctx.speech == ['x' * 30] and ctx.cmd is None   # never touches the base


def _target_world(size, bearing=0.0, front=3.0, visible=1.0):
    w = WorldState()
    w.pose = Pose2D(0, 0, 0)
    w.features = {'target_visible': visible, 'target_bearing': bearing, 'target_size': size,
                  'front_range': front}
    w.features_stamp = 0.0
    return w


def test_approach_target_steers_and_stops_on_size_or_range():
    s = ApproachTarget()
    w = _target_world(0.05, bearing=0.3)
    ctx = SkillContext(w, CFG, 0.1)
    s.start({}, ctx)
    out = s.step(ctx, 0.05)
    assert out.result is None and ctx.cmd[0] > 0 and ctx.cmd[1] > 0   # forward, turning left
    w.features = dict(w.features, target_size=CFG.target_size_stop + 0.05)
    assert s.step(ctx, 0.05).result.success and ctx.cmd == (0.0, 0.0)
    w2 = _target_world(0.1, front=0.2)
    ctx2 = SkillContext(w2, CFG, 0.1)
    s.start({}, ctx2)
    assert s.step(ctx2, 0.05).result.success
    # not visible: searches by turning; stale observation: no features at all
    w3 = _target_world(0.0, visible=0.0)
    ctx3 = SkillContext(w3, CFG, 0.1)
    s.start({}, ctx3)
    out = s.step(ctx3, 0.05)
    assert out.state == 'searching' and ctx3.cmd[0] == 0 and ctx3.cmd[1] > 0
    ctx3.now = 10.0
    assert s.step(ctx3, 0.05).state == 'waiting for observation'


def _scan(n=360, fill=5.0, **beams):
    ranges = [fill] * n
    for k, v in beams.items():
        ranges[int(k[1:])] = v
    return ranges, 0.0, 2 * math.pi / n


def test_guard_checks_the_footprint_corridor_not_a_cone():
    g = SafetyGuard(0.35, 1.0, Footprint(radius_m=0.2))
    assert g.forward_allowed(0.0) == (False, 'no scan received: forward motion not allowed')
    ranges, a0, inc = _scan(b90=0.25)  # to the left, beside the footprint's path: clear
    g.update_scan(ranges, a0, inc, now=10.0, range_max=10.0)
    assert g.forward_allowed(10.5) == (True, '') and g.front_clearance_m == pytest.approx(5.0, abs=0.25)
    # 0.25 m ahead and 0.15 m to the side: outside a +-0.35 rad cone (31 deg), inside the corridor
    side = math.degrees(math.atan2(0.15, 0.25))
    ranges, a0, inc = _scan(**{f'b{int(round(side))}': math.hypot(0.25, 0.15)})
    g.update_scan(ranges, a0, inc, now=11.0)
    ok, why = g.forward_allowed(11.0)
    assert not ok and 'way ahead blocked' in why
    assert g.filter(0.3, 0.2, 11.0)[:2] == (0.0, 0.2)
    assert g.filter(-0.1, 0.0, 11.0) == (-0.1, 0.0, '')   # backing away stays allowed
    ranges, a0, inc = _scan(b0=0.55)  # near: forward speed capped, never below the creep speed
    g.update_scan(ranges, a0, inc, now=11.0)
    assert g.filter(0.5, 0.0, 11.0)[0] == pytest.approx(0.2)
    ranges, a0, inc = _scan(b0=0.42)
    g.update_scan(ranges, a0, inc, now=11.0)
    assert g.filter(0.5, 0.0, 11.0)[0] == pytest.approx(0.08)
    ok, why = g.forward_allowed(12.5)
    assert not ok and 'no scan for' in why


def test_guard_follows_the_arc_of_a_turning_command():
    g = SafetyGuard(0.35, 1.0, Footprint(radius_m=0.2))
    # An obstacle just left of the footprint (0.05 m ahead, 0.21 m left): driving straight
    # passes it, a left arc of radius 0.3 m runs into it, a right arc does not.
    ranges, a0, inc = _scan(b77=0.216)
    g.update_scan(ranges, a0, inc, now=1.0)
    assert g.forward_allowed(1.0, 0.3, 0.0)[0]
    assert not g.forward_allowed(1.0, 0.3, 1.0)[0]
    assert g.forward_allowed(1.0, 0.3, -1.0)[0]


@pytest.mark.parametrize('value', [float('-inf'), 0.0, 0.01, float('nan')])
def test_guard_refuses_readings_it_cannot_trust_ahead(value):
    g = SafetyGuard(0.35, 1.0)
    ranges, a0, inc = _scan(b10=value)
    g.update_scan(ranges, a0, inc, now=1.0, range_min=0.05)
    assert not g.forward_allowed(1.0)[0], value
    ranges, a0, inc = _scan(b180=value)  # behind: forward stays allowed
    g.update_scan(ranges, a0, inc, now=1.0, range_min=0.05)
    assert g.forward_allowed(1.0)[0], value


def test_guard_refuses_bad_or_stale_scans():
    g = SafetyGuard(0.35, 1.0)
    g.update_scan([float('nan')] * 36, -math.pi, 2 * math.pi / 36, now=1.0)
    assert not g.forward_allowed(1.0)[0], 'an all-NaN scan is not a clear one'
    g.update_scan([5.0] * 36, float('nan'), 0.1, now=1.0)
    assert 'non-finite' in g.forward_allowed(1.0)[1]
    g.update_scan([5.0] * 36, -math.pi, 2 * math.pi / 36, now=10.0, stamp=5.0)
    assert 'no scan for' in g.forward_allowed(10.0)[1], 'an old stamp counts, not the arrival'


def test_watchdog():
    wd = Watchdog(0.5)
    assert wd.should_zero(0.0, False) == (True, 'no skill active')
    wd.commanded(1.0)
    assert wd.should_zero(1.2, True) == (False, '')
    assert wd.should_zero(1.6, True) == (True, 'commands stopped coming')


def test_arbiter_preempts_holder_and_parallel_resources():
    a = ResourceArbiter()
    assert a.acquire('g1', ['base']) == []
    assert a.acquire('s1', ['speaker']) == []
    assert a.active_by_resource() == {'base': 1, 'speaker': 1}
    assert a.acquire('g2', ['base']) == ['g1']
    assert a.holder('base') == 'g2' and a.holds('g1') == ()
    assert a.acquire('both', ['base', 'speaker']) == ['g2', 's1']
    a.release('g2')                  # already pre-empted: no effect on the new holder
    assert a.holder('base') == 'both'
    a.release('both')
    assert a.active_by_resource() == {} and len(a) == 0


def test_approval_book():
    b = ApprovalBook()
    e1 = b.request('aa', 'move_forward', 0.0)
    b.request('bb', 'turn', 1.0)
    assert b.oldest() == 'aa'
    ok, why = b.decide('', True)  # two wait: an empty id names neither
    assert not ok and 'aa (move_forward)' in why and 'bb (turn)' in why and not e1.is_set()
    assert b.decide('BB', False)[0] is True and b.decision('bb') == REFUSED
    assert b.decide('', True) == (True, 'goal aa (move_forward) approved'), 'the only one left'
    assert e1.is_set() and b.decision('aa') == APPROVED
    assert b.decide('cc', True)[0] is False
    assert b.decide('', True) == (False, 'no goal is waiting for approval')
    b.withdraw('aa')
    assert b.decision('aa') == REFUSED


def test_stats_reason_classes_and_percentiles(tmp_path):
    cat = load_catalog(_catalog_file(tmp_path))
    cases = {
        ('fly', '{}'): 'unknown_skill',
        ('move_forward', '{"speed": 0.2}'): 'missing_param',
        ('move_forward', '{"distance": "far"}'): 'wrong_type',
        ('move_forward', '{"distance": 99.0}'): 'out_of_bounds',
        ('move_forward', '{"distance": 1, "height": 2}'): 'unknown_param',
        ('move_forward', 'nope'): 'bad_json',
        ('speak', '{"text": "' + 'a' * 300 + '"}'): 'out_of_bounds',
    }
    for (skill, params), cls in cases.items():
        _, reason = cat.validate(skill, params)
        assert reason and reason_class(reason) == cls, reason
    assert reason_class('move_forward refused: no scan received: forward motion not allowed') == 'safety'
    assert percentile([], 50) is None
    assert percentile(range(101), 95) == 95
    assert percentile([0.0, 10.0], 50) == 5.0  # linear interpolation, as numpy
    s = ServerStats()
    s.reject('unknown skill x')
    s.first_command_latency(0.02)
    snap = s.snapshot()
    assert snap['rejections.unknown_skill'] == '1' and snap['first_cmd_latency_p50_ms'] == '20.0'


CATALOG = """
skills:
  stop: {resource: base, timeout_s: 1.0}
  move_forward:
    resource: base
    timeout_s: 5.0
    params:
      distance: {type: float, min: 0.05, max: 5.0}
      speed: {type: float, min: 0.05, max: 0.5, default: 0.3}
  turn:
    params: {angle: {type: float, min: -3.1416, max: 3.1416}}
  wait:
    timeout_s: 0.5
    params: {seconds: {type: float, min: 0.0, max: 10.0}}
  speak:
    resource: speaker
    params: {text: {type: str, max_length: 200}}
  wiggle:
    resource: base
    requires_approval: true
    plugin: "plugin_skills_for_test:Wiggle"
    params: {seconds: {type: float, min: 0.1, max: 5.0}}
"""


def _catalog_file(tmp_path, text=CATALOG):
    p = tmp_path / 'skills.yaml'
    p.write_text(text)
    return str(p)


def test_plugin_from_config_entry_and_errors(tmp_path):
    cat = load_catalog(_catalog_file(tmp_path))
    from plugin_skills_for_test import Wiggle
    assert resolve_skill_class(cat['wiggle']) is Wiggle
    assert resolve_skill_class(cat['turn']) is Turn
    with pytest.raises(PluginError, match='not a skill class'):
        load_plugin('plugin_skills_for_test:NotASkill')
    with pytest.raises(PluginError, match='cannot import'):
        load_plugin('no_such_module_xyz:Skill')
    with pytest.raises(PluginError, match='package.module:Class'):
        load_plugin('justamodule')
    with pytest.raises(PluginError, match='no plugin'):
        resolve_skill_class(SkillSpec(name='teleport'))


def test_installed_catalogue_has_a_class_for_every_skill():
    cat = load_catalog()
    assert set(cat.names) >= {'stop', 'move_forward', 'turn', 'navigate_to', 'approach_target',
                              'speak', 'wait'}
    for name in cat.names:
        assert resolve_skill_class(cat[name]) is not None


def _executive(tmp_path, **kw):
    guard = SafetyGuard(0.4, 1.0)
    ex = Executive(load_catalog(_catalog_file(tmp_path)), CFG, guard, **kw)
    ex.world.pose = Pose2D(0, 0, 0)
    return ex, guard


def _clear_scan(guard, now, dist=5.0):
    guard.update_scan([dist] * 36, -math.pi, 2 * math.pi / 36, now)


def test_executive_preemption_parallel_resources_and_guard(tmp_path):
    ex, guard = _executive(tmp_path)
    _clear_scan(guard, 0.0)
    p, reason = ex.check_goal('move_forward', '{"distance": 2.0}', 0.0)
    assert reason == ''
    mf = ex.create_run('a1', 'move_forward', p, 0.0)
    ex.start(mf, 0.0)
    sp = ex.create_run('s1', 'speak', ex.check_goal('speak', '{"text": "hello there"}', 0.0)[0], 0.0)
    ex.start(sp, 0.0)
    cmd, speech, _ = ex.tick(0.05)
    assert cmd[0] > 0 and speech == ['hello there']
    assert ex.active_by_resource() == {'base': 1, 'speaker': 1}
    t = ex.create_run('t1', 'turn', ex.check_goal('turn', '{"angle": 1.0}', 0.1)[0], 0.1)
    assert ex.start(t, 0.1) == [mf]
    assert mf.done.is_set() and mf.kind == PREEMPTED and mf.result.message.startswith('pre-empted')
    assert not sp.done.is_set()       # the speaker goal is not touched
    cmd, _, _ = ex.tick(0.15)
    assert cmd[0] == 0.0 and cmd[1] > 0
    # an obstacle appears: the turn may go on, forward motion may not
    ex.end(mf)
    m2 = ex.create_run('m2', 'move_forward', ex.check_goal('move_forward', '{"distance": 1.0}', 0.2)[0], 0.2)
    ex.start(m2, 0.2)
    _clear_scan(guard, 0.25, dist=0.3)
    cmd, _, _ = ex.tick(0.25)
    assert cmd == (0.0, 0.0) and m2.kind == GUARD and 'safety guard' in m2.result.message
    _, reason = ex.check_goal('move_forward', '{"distance": 1.0}', 0.3)
    assert 'refused' in reason and 'way ahead blocked' in reason
    assert ex.stats.guard_stops == 1 and ex.stats.preemptions == 2 and t.kind == PREEMPTED


def test_executive_timeout_cancel_and_busy(tmp_path):
    ex, guard = _executive(tmp_path, max_active_goals=2)
    w = ex.create_run('w', 'wait', ex.check_goal('wait', '{"seconds": 5.0}', 0.0)[0], 0.0)
    ex.start(w, 0.0)
    assert ex.tick(0.1)[0] == (0.0, 0.0)
    ex.tick(0.6)
    assert w.kind == TIMED_OUT and 'timed out' in w.result.message
    ex.end(w)
    t = ex.create_run('t', 'turn', ex.check_goal('turn', '{"angle": 1.0}', 1.0)[0], 1.0)
    ex.start(t, 1.0)
    assert ex.tick(1.05)[0][1] > 0
    assert ex.cancel('t') is True and t.kind == CANCELED and not ex.base_active()
    assert ex.cancel('t') is False
    ex.end(t)
    w2 = ex.create_run('w2', 'wait', {'seconds': 5.0}, 2.0)
    ex.start(w2, 2.0)
    assert ex.check_goal('turn', '{"angle": 1.0}', 2.0)[1] == ''   # w2 and this one: 2 of 2
    assert 'busy' in ex.check_goal('turn', '{"angle": 1.0}', 2.0)[1]
    ex.shutdown()
    assert w2.done.is_set() and 'shutting down' in w2.result.message
    ex.end(w2)


def test_executive_survives_a_broken_plugin(tmp_path):
    ex, _ = _executive(tmp_path)

    class Broken(Turn):
        def step(self, ctx, dt):
            raise ZeroDivisionError('oops')
    ex._classes['turn'] = Broken
    t = ex.create_run('t', 'turn', {'angle': 1.0}, 0.0)
    ex.start(t, 0.0)
    assert ex.tick(0.05)[0] == (0.0, 0.0)
    assert t.done.is_set() and 'ZeroDivisionError' in t.result.message


def test_executive_succeeds_plugin_skill_and_measures_first_command(tmp_path):
    ex, _ = _executive(tmp_path)
    run = ex.create_run('g', 'wiggle', {'seconds': 0.2}, 0.0)
    ex.start(run, 0.01)
    now = 0.01
    while not run.done.is_set():
        now += 0.05
        ex.tick(now)
    assert run.kind == SUCCEEDED and run.result.message == 'wiggled'
    assert ex.stats.snapshot()['first_cmd_latency_samples'] == '1'


def test_executive_is_thread_safe_under_concurrent_goals(tmp_path):
    ex, guard = _executive(tmp_path, max_active_goals=1000)
    _clear_scan(guard, 0.0)
    errors = []

    def worker(k):
        try:
            for i in range(50):
                gid = f'{k}-{i}'
                p, r = ex.check_goal('turn', '{"angle": 0.5}', 0.0)
                run = ex.create_run(gid, 'turn', p, 0.0)
                ex.start(run, 0.0)
                ex.tick(0.01)
                ex.cancel(gid)
                ex.end(run)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and ex.runs == {} and len(ex.arbiter) == 0


def test_entry_point_group_is_searched_by_skill_name(monkeypatch):
    # A real EntryPoint object; only the installed-distribution listing is replaced, because
    # installing a throwaway distribution into the shared venv is not possible in a test.
    from importlib.metadata import EntryPoint

    import llm_agent_actuation.plugins as plugins
    ep = EntryPoint('wiggle', 'plugin_skills_for_test:Wiggle', plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, 'entry_points',
                        lambda group: [ep] if group == plugins.ENTRY_POINT_GROUP else [])
    from plugin_skills_for_test import Wiggle
    assert resolve_skill_class(SkillSpec(name='wiggle')) is Wiggle
    assert resolve_skill_class(SkillSpec(name='turn')) is Turn


def test_estop_ends_base_goals_refuses_motion_and_lets_speech_run(tmp_path):
    ex, guard = _executive(tmp_path)
    _clear_scan(guard, 0.0)
    p, _ = ex.check_goal('move_forward', '{"distance": 2.0}', 0.0)
    mf = ex.create_run('m1', 'move_forward', p, 0.0)
    ex.start(mf, 0.0)
    ex.tick(0.05)
    assert ex.set_estop(True, 'test') is True, 'a base skill was running'
    assert mf.done.is_set() and mf.kind == 'estop'
    assert 'e-stop' in ex.check_goal('turn', '{"angle": 1.0}', 0.1)[1]
    assert ex.check_goal('speak', '{"text": "hi"}', 0.1)[1] == ''
    ex.set_estop(False)
    assert ex.check_goal('turn', '{"angle": 1.0}', 0.2)[1] == ''


def test_executive_after_shutdown_refuses_goals_and_ends_late_runs(tmp_path):
    """A goal accepted while the server shuts down must not leave an execute thread running
    (the process would never exit): its run ends as soon as it is made, new goals are refused."""
    ex, *_ = _executive(tmp_path)
    params, reason = ex.check_goal('wait', '{"seconds": 5.0}', 0.0)
    assert reason == ''
    ex.shutdown()
    run = ex.create_run('late', 'wait', params, 0.0)
    assert run.done.is_set() and not run.result.success
    assert ex.start(run, 0.0) == []
    _, reason = ex.check_goal('stop', '{}', 0.0)
    assert 'shutting down' in reason


def test_fuzzed_approvals_never_raise_and_only_decide_waiting_goals():
    # Any goal id a caller sends (empty, dashed, unknown, huge, odd characters), in any order
    # with requests and withdrawals: an answer, and a decision only for a goal that waits.
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from llm_agent_actuation.approval import APPROVED, REFUSED, WAITING, ApprovalBook

    ids = st.one_of(st.sampled_from(['', 'a1', 'b2', 'A1', 'a-1', 'c3']), st.text(max_size=40),
                    st.text(max_size=5000).map(lambda t: t * 2))
    ops = st.lists(st.tuples(st.sampled_from(['request', 'decide', 'withdraw']), ids,
                             st.booleans()), max_size=30)

    @settings(max_examples=300, derandomize=True, database=None, deadline=10_000)
    @given(ops)
    def run(seq):
        book = ApprovalBook()
        for op, gid, approve in seq:
            if op == 'request' and gid:
                book.request(gid, 'turn', 0.0)
            elif op == 'withdraw':
                book.withdraw(gid)
            elif op == 'decide':
                before = book.waiting()
                found, message = book.decide(gid, approve)
                bound = 200 + sum(60 + len(g) for g in before) + 2 * len(gid)
                assert isinstance(found, bool) and message and len(message) < bound
                after = book.waiting()
                if found:
                    assert len(after) == len(before) - 1
                    (gone,) = set(before) - set(after)
                    assert book.decision(gone) == (APPROVED if approve else REFUSED)
                else:
                    assert after == before and all(book.decision(g) == WAITING for g in before)
    run()
