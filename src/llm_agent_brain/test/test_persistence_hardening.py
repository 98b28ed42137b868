"""The brain's files (decisions.jsonl, tree.json) cannot crash its start-up or smuggle in a
decision the catalogue refuses; a crash mid-save leaves nothing behind for long."""
import json
import os
import stat
import time

import pytest
from llm_agent_brain.decision_types import Choice, Situation
from llm_agent_brain.pipeline import DecisionPipeline, FastPathConfig
from llm_agent_brain.tree import DecisionTree, Sample, TreeSet
from llm_agent_common.catalog import load_catalog

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
CATALOG = load_catalog(os.path.join(ROOT, 'config', 'skills.yaml'))
CLEAR = dict(front_range=8.0, left_range=8.0, right_range=8.0)


class Policy:
    name = 'policy'

    def choose(self, situation, catalog):
        return Choice('turn', {'angle': 1.0}, 0.9, 'llm', 'policy')


def make(tmp_path, **kw):
    cfg = dict(rules_file=os.path.join(ROOT, 'config', 'rules.yaml'), data_dir=str(tmp_path),
               retrain_every_n=10_000, enable_semantic_cache=False)
    cfg.update(kw)
    return DecisionPipeline(CATALOG, FastPathConfig(**cfg), Policy())


def test_a_log_with_bad_bytes_and_tampered_lines_loads_what_it_can(tmp_path):
    p = make(tmp_path)
    p.llm_decide(Situation(CLEAR, '', 'explore'))
    p.close()
    log = tmp_path / 'decisions.jsonl'
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    good = log.read_bytes()
    deep = b'{"k":"d","f":' + b'[' * 100000 + b']' * 100000 + b'}\n'
    nan = json.dumps({'k': 'd', 'id': 9, 't': 1.0, 'f': {'front_range': 'NaN'}, 's': 'stop',
                      'src': 'llm'}).encode() + b'\n'
    log.write_bytes(good + b'\xff\xfe not utf-8\n' + deep + nan + good)
    p = make(tmp_path)
    try:
        assert p.log.load_errors >= 3
        assert len(p.log) >= 1
    finally:
        p.close()


@pytest.mark.parametrize('text', [
    '{"version": 1, "meta": {}, "trees": {"": {"version": 1, "features": [], "root": '
    + '{"counts": {}, "n": 1, "left": ' * 5000 + '{}' + '}' * 5000 + '}}}',
    '{"version": 1, "meta": {}, "trees": {"": {"version": 1, "features": ["a"], "root": '
    '{"counts": {"x": "many"}, "n": 1, "leaf_id": 0, "label": "x", "skill": "stop"}}}}',
    '\udcff',
])
def test_a_broken_tree_file_means_starting_without_a_tree(tmp_path, text):
    (tmp_path / 'tree.json').write_text(text, encoding='utf-8', errors='surrogateescape')
    p = make(tmp_path)
    try:
        assert p.tree_load_error and len(p.trees.trees) == 0
    finally:
        p.close()


def _tampered(tmp_path, skill, params):
    samples = [Sample({'front_range': 5.0 + i % 3}, skill='turn', params={'angle': 1.0})
               for i in range(20)]
    tree = DecisionTree.fit(samples, ['front_range'], CATALOG)
    TreeSet({'explore': tree}).save(str(tmp_path / 'tree.json'))
    data = json.loads((tmp_path / 'tree.json').read_text())

    def leaves(node):
        if 'left' in node:
            yield from leaves(node['left'])
            yield from leaves(node['right'])
        else:
            yield node
    for leaf in leaves(data['trees']['explore']['root']):
        leaf['skill'], leaf['params'] = skill, params
    (tmp_path / 'tree.json').write_text(json.dumps(data))


@pytest.mark.parametrize('skill,params', [('self_destruct', {}),
                                          ('move_forward', {'distance': 1e9, 'speed': 0.3})])
def test_a_tree_leaf_outside_the_catalogue_is_refused_at_load(tmp_path, skill, params):
    _tampered(tmp_path, skill, params)
    p = make(tmp_path)
    try:
        assert 'outside the catalogue' in p.tree_load_error
        assert len(p.trees.trees) == 0
    finally:
        p.close()


def test_temp_files_a_crash_left_are_removed_at_start(tmp_path):
    stale = tmp_path / '.tree.json.abc123.tmp'
    fresh = tmp_path / '.decisions.jsonl.def456.tmp'
    for f in (stale, fresh):
        f.write_text('half a file')
    old = time.time() - 3600
    os.utime(stale, (old, old))
    make(tmp_path).close()
    assert not stale.exists(), 'a stale temp file stays'
    assert fresh.exists(), 'a temp file of a save in progress (another brain) is left alone'
