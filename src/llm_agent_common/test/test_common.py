"""The shared helpers: angles, the one percentile, parameter checks (no rclpy needed)."""
import math
from dataclasses import dataclass, field

import pytest
from llm_agent_common.angles import wrap_angle, yaw_from_quaternion
from llm_agent_common.features import FEATURE_NAMES, SECTOR_NAMES
from llm_agent_common.node import Param, params_from_dataclass
from llm_agent_common.stats import Percentiles, percentile


def test_angles():
    assert yaw_from_quaternion(0, 0, math.sin(0.4), math.cos(0.4)) == pytest.approx(0.8)
    assert yaw_from_quaternion(0, 0, 0, 1) == 0.0
    assert wrap_angle(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    assert -math.pi <= wrap_angle(math.pi) < math.pi


def test_one_percentile_for_every_figure():
    assert percentile([], 50) is None
    assert percentile(range(101), 95) == 95
    assert percentile([0.0, 10.0], 50) == 5.0
    p = Percentiles()
    for v in (0.0, 10.0):
        p.add(v)
    assert p.percentile(50) == percentile([0.0, 10.0], 50)


def test_feature_names_hold_the_sectors():
    assert set(SECTOR_NAMES) <= set(FEATURE_NAMES) and len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


def test_param_checks_range_choices_and_its_own_check():
    rate = Param('rate_hz', 5.0, 'rate', range=(0.1, 50.0))
    assert rate.problem(5.0) == '' and 'outside' in rate.problem(100.0)
    assert 'outside' in rate.problem(float('nan'))
    fmt = Param('format', 'jpeg', 'codec', allowed=('jpeg', 'png'))
    assert 'one of' in fmt.problem('gif')
    odd = Param('window', 5, 'odd', check=lambda v: '' if v % 2 else 'window must be odd')
    assert odd.problem(4) == 'window must be odd'
    d = rate.descriptor()
    assert d.floating_point_range[0].to_value == 50.0 and not d.read_only
    assert Param('x', 1, 'x', read_only=True).descriptor().read_only


def test_params_from_a_config_dataclass():
    @dataclass
    class Cfg:
        gain: float = field(default=1.0, metadata=dict(description='gain', min=0.0, max=2.0))
        names: list = field(default_factory=lambda: ['a'], metadata=dict(description='names'))

    gain, names = params_from_dataclass(Cfg)
    assert (gain.name, gain.range, gain.read_only) == ('gain', (0.0, 2.0), True)
    assert names.default == ['a'] and names.range is None
