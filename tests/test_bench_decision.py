"""Pure helpers of the decision-latency and model-compression bench sections (no ROS, no model)."""
import random

import pytest
from llm_agent_bench.core import non_finite
from llm_agent_bench.decision import features, mode_rows, path_rows
from llm_agent_bench.model_bench import agreement
from llm_agent_bench.models import setting_rows
from llm_agent_brain.backends.scripted import ScriptedBackend
from llm_agent_brain.decision_types import Situation


def test_path_rows_ratios_to_echo_and_llm_and_wrong_sources():
    rows = path_rows({'echo': [1.0, 2.0, 3.0], 'rule': [2.0, 4.0, 6.0], 'llm': [400.0, 400.0],
                      'tree': []}, {'rule': 1})
    assert set(rows) == {'echo', 'rule', 'llm'}  # a path with no calls has no row
    assert rows['rule']['median_ms'] == 4.0 and rows['rule']['x_echo'] == 2.0
    assert rows['rule']['x_llm'] == pytest.approx(0.01)
    assert rows['rule']['wrong_source'] == 1 and rows['echo']['wrong_source'] == 0
    assert rows['rule']['p95_ms'] == pytest.approx(5.8)
    assert rows['llm']['x_llm'] == 1.0 and rows['llm']['n'] == 2


def test_path_rows_without_llm_leave_its_ratio_out():
    rows = path_rows({'echo': [1.0], 'cache': [1.5], 'llm': []}, {})
    assert rows['cache']['x_llm'] is None and 'llm' not in rows
    assert rows['cache']['x_echo_process'] is None   # no floor between processes measured
    assert non_finite(rows) == []


def test_path_rows_ratio_to_the_floor_between_processes():
    rows = path_rows({'echo': [1.0], 'echo_process': [0.5], 'tree': [0.6]}, {})
    assert rows['tree']['x_echo_process'] == pytest.approx(1.2)
    assert rows['echo_process']['x_echo'] == 0.5


def test_mode_rows_ratios_and_usable_share():
    modes = {'scored_cached': {'times_ms': [100.0, 300.0], 'cpu_ms': [90.0, 110.0], 'usable': 2,
                               'skills': ['turn', 'stop']},
             'generate': {'times_ms': [1000.0, 1000.0], 'cpu_ms': [500.0, 500.0], 'usable': 1,
                          'skills': ['turn', '']}}
    rows = mode_rows(modes)
    assert rows['scored_cached']['x_scored_cached'] == 1.0
    assert rows['generate']['x_scored_cached'] == 5.0
    assert rows['generate']['cpu_x_scored_cached'] == 5.0
    assert rows['generate']['usable_share'] == 0.5


def test_agreement():
    assert agreement(['a', 'b', 'c'], ['a', 'x', 'c']) == pytest.approx(2 / 3)
    assert agreement([], []) == 0.0


def test_setting_rows_against_fp32_of_the_same_device_and_errors_as_rows():
    def m(label, device, mem, ms, skills, **kw):
        return dict(label=label, device=device, memory_mb=mem, times_ms=ms, cpu_ms=ms,
                    skills=skills, sparsity=0.0, **kw)
    rows = setting_rows([
        m('fp32', 'cpu', 500.0, [10.0, 20.0, 30.0], ['a', 'b']),
        m('nf4', 'cpu', 150.0, [40.0], ['a', 'c']),
        {'label': 'fp4', 'device': 'cpu', 'error': 'cannot load'},
        {'label': 'fp32', 'device': 'cuda', 'error': 'no GPU'},
        m('nf4', 'cuda', 100.0, [5.0], ['a', 'b']),
    ])
    assert rows[0]['memory_ratio'] == 1.0 and rows[0]['agreement'] == 1.0
    assert rows[1]['memory_ratio'] == pytest.approx(0.3)
    assert rows[1]['latency_ratio'] == 2.0 and rows[1]['agreement'] == 0.5
    assert rows[2]['error'] == 'cannot load' and rows[2]['memory_mb'] is None
    # cuda's baseline failed: raw figures stay, ratios are None (never against cpu's fp32)
    assert rows[4]['memory_mb'] == 100.0 and rows[4]['memory_ratio'] is None
    assert non_finite(rows) == []


def test_scripted_backend_turns_to_the_open_side():
    from llm_agent_common.catalog import load_catalog
    catalog = load_catalog(None)
    f = features(random.Random(0), front_range=0.8, left_range=3.0, right_range=1.0)
    choice = ScriptedBackend().choose(Situation(f, '', 'explore'), catalog)
    assert choice.skill == 'turn' and choice.params['angle'] > 0
    assert catalog.validate(choice.skill, choice.params)[1] == ''
    clear = ScriptedBackend().choose(Situation(features(random.Random(0), front_range=5.0)), catalog)
    assert catalog.validate(clear.skill, clear.params)[1] == ''


def test_busy_factor_is_wall_over_cpu_time():
    from llm_agent_bench.core import busy_factor
    assert busy_factor([300.0, 100.0], [100.0, 100.0]) == 2.0
    assert busy_factor([], []) == 1.0
