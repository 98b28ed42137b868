"""Decision tree: information gain by hand, a learnt split, thresholds, export, persistence."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest
from llm_agent_brain.tree import AVOID, DecisionTree, Sample, TreeSet, entropy, information_gain, label_for
from llm_agent_common.catalog import load_catalog

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
FEATURES = ['front_range', 'left_range', 'right_range']


@pytest.fixture(scope='module')
def catalog():
    return load_catalog(os.path.join(ROOT, 'config', 'skills.yaml'))


def synthetic(n=300, seed=0):
    """An LLM that moves on when the way ahead is clear beyond 1 m, else turns to the clearer side."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        f = {k: rng.uniform(0.2, 8.0) for k in FEATURES}
        if f['front_range'] > 1.0:
            out.append(Sample(f, 'move_forward', {'distance': rng.choice([0.4, 0.6]), 'speed': 0.3}))
        else:
            out.append(Sample(f, 'turn', {'angle': 1.0 if f['left_range'] > f['right_range'] else -1.0}))
    return out


def test_entropy_and_gain_by_hand():
    # 9 yes / 5 no (the classic weather example): H = 0.940 bits.
    assert entropy([9, 5]) == pytest.approx(0.9403, abs=1e-4)
    assert entropy([4, 0]) == 0.0 and entropy([1, 1]) == pytest.approx(1.0)
    # outlook: sunny 2/3, overcast 4/0, rain 3/2 -> gain 0.2467
    assert information_gain([9, 5], [[2, 3], [4, 0], [3, 2]]) == pytest.approx(0.2467, abs=1e-4)


def test_threshold_chosen_by_information_gain():
    # x: 1 2 3 | 4 5 6 labels a a a | b b a: best cut between 3 and 4 (midpoint 3.5)
    xs, ys = [1, 2, 3, 4, 5, 6], ['stop', 'stop', 'stop', 'approach_target', 'approach_target', 'stop']
    tree = DecisionTree.fit([Sample({'x': x}, y) for x, y in zip(xs, ys)], ['x'], max_depth=1)
    root = tree.root
    assert root.feature == 'x' and root.threshold == pytest.approx(3.5)
    # gain of that cut by hand: H(4a,2b) - 3/6*0 - 3/6*H(1a,2b)
    assert root.gain == pytest.approx(entropy([4, 2]) - 0.5 * entropy([1, 2]), abs=1e-9)


def test_learns_known_split_from_logged_decisions(catalog):
    tree = DecisionTree.fit(synthetic(), FEATURES, catalog, max_depth=6)
    assert tree.root.feature == 'front_range' and tree.root.threshold == pytest.approx(1.0, abs=0.15)
    c = tree.decide({'front_range': 5.0, 'left_range': 1.0, 'right_range': 1.0}, 0.9, 5)
    assert c.skill == 'move_forward' and c.source == 'tree'
    assert c.params['distance'] == pytest.approx(0.5, abs=0.1)   # mean of the logged distances
    assert 'purity' in c.rationale and 'front_range=5 >' in c.rationale and 'n=' in c.rationale
    c = tree.decide({'front_range': 0.5, 'left_range': 6.0, 'right_range': 0.5}, 0.9, 5)
    assert c is not None and c.skill == 'turn' and c.params['angle'] == pytest.approx(1.0)


def test_respects_purity_and_sample_thresholds(catalog):
    samples = [Sample({'front_range': 1.0}, 'stop')] * 3 + \
        [Sample({'front_range': 1.0}, 'wait', {'seconds': 1.0})]
    tree = DecisionTree.fit(samples, ['front_range'], catalog)
    assert tree.root.is_leaf and tree.root.purity == pytest.approx(0.75)
    assert tree.decide({'front_range': 1.0}, min_purity=0.7, min_samples=4).skill == 'stop'
    assert tree.decide({'front_range': 1.0}, min_purity=0.8, min_samples=4) is None
    assert tree.decide({'front_range': 1.0}, min_purity=0.7, min_samples=5) is None


def test_bad_outcomes_weigh_against_leaf(catalog):
    good = [Sample({'front_range': 2.0}, 'move_forward', {'distance': 1.0, 'speed': 0.3})] * 10
    bad = [Sample({'front_range': 2.0}, 'move_forward', {'distance': 1.0, 'speed': 0.3}, bad=True)] * 2
    assert DecisionTree.fit(good, ['front_range'], catalog).decide({'front_range': 2.0}, 0.9, 5)
    tree = DecisionTree.fit(good + bad, ['front_range'], catalog, avoid_weight=3.0)
    assert tree.root.counts[AVOID] == 6.0
    assert tree.decide({'front_range': 2.0}, 0.9, 5) is None
    tree = DecisionTree.fit(good[:2] + bad, ['front_range'], catalog, avoid_weight=3.0)
    assert tree.root.label == AVOID and tree.decide({'front_range': 2.0}, 0.0, 1) is None


def test_label_separates_turn_directions(catalog):
    assert label_for('turn', {'angle': 0.5}, catalog) == 'turn:+'
    assert label_for('turn', {'angle': -0.5}, catalog) == 'turn:-'
    assert label_for('move_forward', {'distance': 1, 'speed': 0.2}, catalog) == 'move_forward'


def test_missing_feature_follows_heavier_branch(catalog):
    tree = DecisionTree.fit(synthetic(), FEATURES, catalog, max_depth=6)
    leaf, path = tree.leaf_for({'left_range': 1.0})
    assert 'front_range=missing' in path[0]


def test_export_text_readable(catalog):
    text = DecisionTree.fit(synthetic(), FEATURES, catalog, max_depth=4).export_text(0.9, 5)
    lines = text.splitlines()
    assert lines[0].startswith('# decision tree:')
    assert lines[1].startswith('front_range <= ')
    assert any('leaf #' in ln and 'move_forward' in ln and 'purity' in ln and '[decides]' in ln
               for ln in lines)
    assert any(ln.startswith('|   ') for ln in lines)


def test_save_load_roundtrip(tmp_path, catalog):
    trees = TreeSet({'explore': DecisionTree.fit(synthetic(), FEATURES, catalog)}, {'log_size': 3})
    path = str(tmp_path / 'tree.json')
    trees.save(path)
    back = TreeSet.load(path)
    f = {'front_range': 0.5, 'left_range': 0.5, 'right_range': 6.0}
    assert back.decide('explore', f, 0.9, 5) == trees.decide('explore', f, 0.9, 5)
    assert back.export_text() == trees.export_text() and back.meta == {'log_size': 3}
    assert TreeSet.load(str(tmp_path / 'none.json')) is None
    (tmp_path / 'broken.json').write_text('{"version": 1, "tr')
    with pytest.raises(ValueError, match='broken.json'):
        TreeSet.load(str(tmp_path / 'broken.json'))


_WRITER = textwrap.dedent('''
    import os, random, sys, time
    from llm_agent_brain.tree import DecisionTree, Sample, TreeSet
    rng = random.Random(1)
    samples = [Sample({'x': rng.random()}, rng.choice(['stop', 'approach_target'])) for _ in range(3000)]
    new = TreeSet({'new': DecisionTree.fit(samples, ['x'], max_depth=20)})
    real_fsync = os.fsync
    def fsync_then_hang(fd):
        # the temp file is written but not yet synced nor renamed: the parent kills us here
        print('MID-SAVE', os.fstat(fd).st_size, flush=True)
        time.sleep(60)
    os.fsync = fsync_then_hang
    new.save(sys.argv[1])
    print('SAVED', flush=True)
''')


def test_writer_killed_mid_save_leaves_previous_tree(tmp_path, catalog):
    path = str(tmp_path / 'tree.json')
    old = TreeSet({'old': DecisionTree.fit(synthetic(50), FEATURES, catalog)})
    old.save(path)
    before = open(path).read()
    proc = subprocess.Popen([sys.executable, '-c', _WRITER, path], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith('MID-SAVE') and int(line.split()[1]) > 0
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert open(path).read() == before
    loaded = TreeSet.load(path)
    assert list(loaded.trees) == ['old']
    assert json.loads(before)['trees'].keys() == {'old'}
