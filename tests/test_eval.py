"""`llm-agent eval`: the quick run on the real graph (the real model for the hybrid) writes the
summary, report and plot the README describes; its scores are not asserted (a 10 s quick
episode says little), their structure is. A bad suite or brain is refused before anything runs."""
import json
import os
import subprocess
import sys

import pytest

LLM_AGENT = os.path.join(os.path.dirname(sys.executable), 'llm-agent')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.mark.slow
def test_quick_eval_writes_summary_report_and_plot_per_brain(tmp_path, ros_env):
    out = tmp_path / 'eval'
    result = subprocess.run([LLM_AGENT, 'eval', '--quick', '--brains', 'hybrid,rules_only',
                             '--out', str(out), '--ready-timeout', '300'], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=580)
    assert result.returncode == 0, result.stdout[-6000:]
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['quick'] is True and summary['seeds'] == 1
    assert summary['kinds'] == ['go_to_colour', 'turn_left_90', 'stay_put']
    assert list(summary['brains']) == ['hybrid', 'rules_only']
    for brain, s in summary['brains'].items():
        assert 'error' not in s, (brain, s['error'])
        assert s['episodes'] == 3 and 0 <= s['successes'] <= 3, brain
        assert s['success_rate'] == pytest.approx(s['successes'] / 3)
        assert {k: v['episodes'] for k, v in s['per_kind'].items()} == dict.fromkeys(summary['kinds'], 1)
        assert sum(s['decisions_by_source'].values()) > 0, brain      # the brain drove
        assert s['latency_ms']['p50'] <= s['latency_ms']['p95']
        assert s['collisions'] >= 0 and s['llm_calls_per_min'] >= 0 and s['sim_s'] > 0
    assert summary['brains']['rules_only']['llm_calls'] == 0
    episodes = json.loads((out / 'episodes.json').read_text())
    for brain, rows in episodes.items():
        for row in rows:        # each verdict came from a recorded episode, not an empty one
            assert row['why'] and 'no odometry' not in row['why'], (brain, row)
            assert row['phrase'] in {'drive over to the green box', 'rotate a quarter turn to the left',
                                     'do not move'}
    report = (out / 'report.md').read_text()
    assert '| go_to_colour |' in report and '**success rate**' in report
    assert (out / 'eval_success.png').read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize('args, message', [
    (['--brains', 'hybrid,oracle'], 'unknown brain(s) oracle'),
    (['--kinds', 'fly_to_the_moon'], 'unknown kind(s) fly_to_the_moon'),
    (['--seeds', '0'], '--seeds must be at least 1'),
])
def test_bad_arguments_are_refused_before_a_graph_starts(tmp_path, args, message):
    result = subprocess.run([LLM_AGENT, 'eval', '--out', str(tmp_path / 'e')] + args,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / 'e' / 'summary.json').exists()


def test_a_bad_suite_file_is_refused_naming_the_kind(tmp_path):
    suite = tmp_path / 'mine.yaml'
    suite.write_text('kinds:\n  - kind: hop\n    paraphrases: [hop, jump, leap]\n'
                     '    check: [{reach: {target: purple}}]\n    time_limit_s: 10\n')
    result = subprocess.run([LLM_AGENT, 'eval', '--suite', str(suite), '--out', str(tmp_path / 'e')],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert 'mine.yaml: kind hop.check[0].reach.target must be one of red, blue' in result.stderr
    assert not (tmp_path / 'e').exists()
