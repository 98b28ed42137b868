"""The pure helpers of bench/graph_probe.py: chain matching, clock mapping, counts, ratios."""
import math

import pytest
from llm_agent_bench.core import ratio_or_none

from llm_agent_bench import graph_probe as gp


def _records() -> gp.Records:
    """One chain: frame captured at sim 10.0 (wall 100.0), everything after it on the wall clock."""
    rec = gp.Records()
    rec.clock = [(99.99 + 0.01 * i, 9.99 + 0.01 * i) for i in range(200)]   # wall = sim + 90
    rec.frames = [(100.02, 10.0), (100.055, 10.033)]
    rec.observations = [(100.05, 10.05), (100.25, 10.25)]
    rec.decisions = [(100.06, 10.05, 'rule', 1.0), (100.26, 10.25, 'llm', 3000.0)]
    rec.goals = [(100.07, 'a')]
    rec.cmds = [100.065, 100.1, 100.15]
    return rec


def test_chain_stages_add_up_to_the_whole():
    [chain] = gp.chains(_records(), 100.0, 101.0)
    assert chain['source'] == 'rule'
    expected = {'capture_to_frame': 20, 'frame_to_observation': 30, 'observation_to_decision': 10,
                'decision_to_goal': 10, 'goal_to_cmd': 30}
    for stage, ms in expected.items():
        assert math.isclose(chain[stage], ms, abs_tol=1e-6), stage
    assert math.isclose(chain['e2e'], sum(expected.values()), abs_tol=1e-6)


def test_chain_needs_every_link_and_the_window():
    assert gp.chains(_records(), 101.0, 102.0) == []          # the goal is outside
    rec = _records()
    rec.cmds = [100.065]                                      # no cmd_vel after the goal
    assert gp.chains(rec, 100.0, 101.0) == []
    rec = _records()
    rec.observations = [(100.25, 10.25)]                      # the decision's observation missing
    assert gp.chains(rec, 100.0, 101.0) == []


def test_observation_age_uses_the_newest_frame_before_it():
    ages = gp.observation_ages(_records(), 100.0, 101.0)
    # frames captured at sim 10.0 and 10.033: the clock reaches them at walls 100.0 and 100.033
    assert [round(a) for a in ages] == [50, 217]


def test_arrival_is_when_dds_delivered_the_message_not_when_the_callback_ran():
    wall_ns = 1_000_000_000_000
    # Delivered 30 ms before the callback: the probe's monotonic 50.0 becomes 49.97.
    assert math.isclose(gp.arrival({'received_timestamp': wall_ns - 30_000_000}, 50.0, wall_ns),
                        49.97, abs_tol=1e-9)
    # No timestamp from the rmw, or one from the future (a clock step): the callback's time.
    assert gp.arrival({'received_timestamp': 0}, 50.0, wall_ns) == 50.0
    assert gp.arrival({}, 50.0, wall_ns) == 50.0
    assert gp.arrival({'received_timestamp': wall_ns + 10**9}, 50.0, wall_ns) == 50.0
    # A wall clock stepped back by an hour is not an hour of delay.
    assert gp.arrival({'received_timestamp': wall_ns - 3600 * 10**9}, 50.0, wall_ns) == \
        50.0 - gp.MATCH_LIMIT_S


def test_wall_at_maps_sim_time_and_refuses_outside():
    clock = [(50.0, 1.0), (50.5, 1.5), (51.0, 2.0)]
    # between two samples: interpolated, not the receipt of the next one (50.5)
    assert math.isclose(gp.wall_at(clock, 1.2), 50.2)
    assert gp.wall_at(clock, 1.5) == 50.5
    assert gp.wall_at(clock, 2.5) is None
    assert gp.wall_at(clock, 0.5) is None


def test_diag_delta_and_frame_counts():
    rec = gp.Records()
    rec.clock = [(float(t), float(t)) for t in range(11)]
    rec.frames = [(0.1 * i, 0.1 * i) for i in range(1, 101)]          # 10 Hz for 10 s
    rec.diags = [(float(t), 'image_compressor', {'messages_in': str(5 * t),
                                                 'messages_out': str(4 * t)}) for t in range(11)]
    assert gp.diag_delta(rec.diags, 'image_compressor', 'messages_in', 2.0, 6.0) == (20.0, 2.0, 6.0)
    assert gp.diag_delta(rec.diags, 'observer', 'messages_in', 0.0, 10.0) is None
    counts = gp.frame_counts(rec, 0.0, 10.0, camera_rate_hz=20.0)
    assert math.isclose(counts['expected_hz'], 20.0)
    assert math.isclose(counts['published_hz'], 10.0)
    assert math.isclose(counts['image_compressor_out_hz'], 4.0)
    assert math.isclose(counts['sim_dropped_fraction'], 0.5)
    assert math.isclose(counts['image_dropped_fraction'], 0.6)
    assert counts['depth_compressor_in_hz'] is None and counts['depth_dropped_fraction'] is None


def test_cpu_ratio_spread_and_usage():
    assert gp.cpu_percent(1.0, 1.5, 2.0) == 25.0
    assert gp.cpu_percent(1.0, 1.5, 0.0) == 0.0
    assert ratio_or_none(3.0, 2.0) == 1.5
    assert ratio_or_none(3.0, 0.0) is None and ratio_or_none(None, 1.0) is None
    assert gp.spread([]) == {'p50': None, 'p99': None, 'n': 0}
    assert gp.spread([1.0, 3.0])['p50'] == 2.0
    u = gp.usage_summary(10.0, [2**20, 3 * 2**20], [2**20], [2**21])
    assert u == {'cpu_percent': 10.0, 'rss_mb_mean': 2.0, 'rss_mb_peak': 3.0,
                 'uss_mb_mean': 1.0, 'uss_mb_peak': 1.0, 'pss_mb_mean': 2.0, 'pss_mb_peak': 2.0}
    merged = gp.mean_usage([u, {**u, 'cpu_percent': 20.0, 'rss_mb_peak': 5.0}])
    assert merged['cpu_percent'] == 15.0 and merged['rss_mb_peak'] == 5.0


def test_a_timed_call_waits_on_the_future_itself_not_on_polling():
    """The bench times LLM decisions with Probe.wait_future: it must wake when the future is
    done. Polling future.done() every 0.2 s rounded the section 5 decision latencies up to the
    next 0.2 s (402 / 602 ms: the in-graph ratio read 0.67x in one run and 1.5x in the next)."""
    import threading

    from rclpy.task import Future

    class Watched(Future):
        polls = 0

        def done(self):
            Watched.polls += 1
            return super().done()

    future = Watched()
    threading.Timer(0.01, future.set_result, args=('answer',)).start()
    assert gp.Probe.wait_future(future, 5.0, 'a test answer') == 'answer'
    assert Watched.polls == 0
    with pytest.raises(RuntimeError, match='an answer that never comes'):
        gp.Probe.wait_future(Future(), 0.05, 'an answer that never comes')
