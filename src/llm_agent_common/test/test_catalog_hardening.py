"""The catalogue refuses what would crash or disarm it: huge numbers, deep JSON, NaN bounds."""
import json

import pytest
from llm_agent_common.catalog import CatalogError, load_catalog


def _catalog(tmp_path, params, timeout='10.0'):
    path = tmp_path / 'skills.yaml'
    path.write_text(f'skills:\n  go:\n    timeout_s: {timeout}\n    params:\n{params}')
    return str(path)


@pytest.fixture
def catalog(tmp_path):
    return load_catalog(_catalog(tmp_path, '      d: {type: float, min: 0.0, max: 5.0}\n'))


def test_goal_params_that_used_to_raise_are_reasons(catalog):
    huge = '{"d": ' + '9' * 400 + '}'
    assert 'finite' in catalog.validate('go', huge)[1]
    deep = '[' * 100000 + ']' * 100000
    assert 'JSON' in catalog.validate('go', deep)[1] or 'characters' in catalog.validate('go', deep)[1]
    nested = json.dumps({'d': 1.0}) .replace('1.0', '[' * 5000 + ']' * 5000)
    assert catalog.validate('go', nested)[1]
    assert 'finite' in catalog.validate('go', '{"d": NaN}')[1]
    assert catalog.validate('go', '{"d": 1.5}') == ({'d': 1.5}, '')


@pytest.mark.parametrize('params,timeout,match', [
    ('      d: {type: float, min: .nan, max: 5.0}\n', '1.0', 'finite'),
    ('      d: {type: float, min: 6.0, max: 5.0}\n', '1.0', 'above max'),
    ('      d: {type: float, min: 0.0, max: 5.0, default: 9.0}\n', '1.0', 'default'),
    ('      d: {type: float}\n', '.nan', 'timeout_s'),
    ('      d: {type: float}\n', '.inf', 'timeout_s'),
])
def test_catalogue_files_that_disarm_a_bound_are_refused(tmp_path, params, timeout, match):
    with pytest.raises(CatalogError, match=match):
        load_catalog(_catalog(tmp_path, params, timeout))
