"""`llm-agent bench`: the report folder it writes, and the quick run CI relies on.

The quick run is the real thing: every section on the real codecs, the real decision node and
model, the real graph over DDS on this test's own domain. Its speed is not asserted (these
machines are noisy); its structure is: every section present, tables with rows, PNG plots,
findings, and only finite numbers in results.json.
"""
import json
import math
import os
import subprocess
import sys

import pytest
from llm_agent_bench.core import (
    BenchContext,
    Section,
    Table,
    non_finite,
    quantiles,
    ratio,
    ratio_or_none,
)

from llm_agent_bench import report

LLM_AGENT = os.path.join(os.path.dirname(sys.executable), 'llm-agent')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def _numbers(obj):
    if isinstance(obj, bool) or obj is None:
        return []
    if isinstance(obj, (int, float)):
        return [obj]
    if isinstance(obj, dict):
        return [n for v in obj.values() for n in _numbers(v)]
    if isinstance(obj, (list, tuple)):
        return [n for v in obj for n in _numbers(v)]
    return []


def test_non_finite_finds_nan_and_inf_but_allows_none():
    data = {'a': 1.0, 'b': [2, None, {'c': math.nan}], 'd': {'e': math.inf}, 'f': True}
    assert non_finite(data, 'x') == ['x.b[2].c', 'x.d.e']
    assert non_finite({'ok': [1, 2.5, None, 'text']}) == []


def test_ratio_and_quantiles():
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(0.0, 0.0) == 1.0
    assert math.isinf(ratio(1.0, 0.0))
    q = quantiles(list(range(101)))
    assert q == {'p50': 50.0, 'p95': 95.0, 'p99': 99.0}
    assert quantiles([]) == {}
    assert ratio_or_none(0.0, 0.0) == 1.0 and ratio_or_none(2.0, 0.0) is None
    assert ratio_or_none(None, 2.0) is None and ratio_or_none(3.0, 1.5) == 2.0


def test_markdown_has_tables_plots_and_failures():
    ok = Section('compression', 'Compression', 'JPEG q95',
                 tables=[Table('Images', ['codec', 'bytes', 'x base'], [['jpeg q75', 12345, 0.4]])],
                 plots=['compression_rd.png'], findings=['q75 is 0.40x the bytes'])
    results = {'quick': True, 'sections': {
        'compression': dict(ok.as_dict(), elapsed_s=1.0),
        'scaling': {'title': 'scaling', 'error': 'RuntimeError: boom', 'elapsed_s': 0.0}}}
    md = report.render_markdown(results)
    assert '## 1. Compression' in md and 'Baseline: JPEG q95' in md
    assert '| jpeg q75 | 12345 | 0.4 |' in md
    assert '![compression_rd.png](compression_rd.png)' in md
    assert '- q75 is 0.40x the bytes' in md
    assert '## 6. scaling' in md and '**Failed:** `RuntimeError: boom`' in md


def test_a_failing_section_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), 'fixtures'))
    monkeypatch.setattr(report, 'SECTIONS', (('broken', 'broken_bench_section'),
                                             ('machine', 'llm_agent_bench.machine')))
    ctx = BenchContext(out_dir=str(tmp_path), quick=True, log=lambda msg: None)
    results = report.run_sections(ctx, ['broken'])   # machine comes too: it names the CPU
    assert results['sections']['broken']['error'] == 'RuntimeError: this section is broken on purpose'
    assert results['sections']['machine']['data']['logical_cores'] >= 1


def test_unknown_section_is_refused_with_exit_code_2(tmp_path):
    result = subprocess.run([LLM_AGENT, 'bench', '--sections', 'compression,warp_drive',
                             '--out', str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'unknown section(s) warp_drive' in result.stderr
    assert not (tmp_path / 'results.json').exists()


@pytest.mark.slow
def test_quick_bench_writes_every_section_with_finite_numbers(tmp_path, ros_env):
    out = tmp_path / 'report'
    result = subprocess.run([LLM_AGENT, 'bench', '--quick', '--out', str(out)], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-6000:]
    results = json.loads((out / 'results.json').read_text())
    assert results['quick'] is True
    sections = results['sections']
    assert [k for k, _ in report.SECTIONS] == list(sections), list(sections)
    for key, section in sections.items():
        assert 'error' not in section, (key, section.get('error'))
        assert section['tables'] and all(t['rows'] for t in section['tables']), key
        assert non_finite(section['data'], key) == []
        if key == 'machine':  # text mostly: cores and memory are its only numbers
            continue
        assert len(_numbers(section['data'])) >= 3, key
        assert section['findings'], key
        assert section['plots'], key
        for name in section['plots']:
            assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    md = (out / 'report.md').read_text()
    for number, (key, _) in enumerate(report.SECTIONS, start=1):
        assert f'## {number}. ' in md, key
    assert sections['machine']['data']['logical_cores'] >= 1
