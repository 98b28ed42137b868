"""Run the benchmark sections and write the report folder: report.md, results.json, PNG plots."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from typing import Any, Dict, List, Optional

from .core import BenchContext, Section, non_finite

# (key in results.json, module): the report's order, the numbering (machine is last).
SECTIONS = (
    ('compression', 'llm_agent_bench.compression'),
    ('decision_latency', 'llm_agent_bench.decision'),
    ('model_compression', 'llm_agent_bench.models'),
    ('closed_loop', 'llm_agent_bench.closed_loop'),
    ('resources', 'llm_agent_bench.resources'),
    ('scaling', 'llm_agent_bench.scaling'),
    ('reliability', 'llm_agent_bench.reliability'),
    ('machine', 'llm_agent_bench.machine'),
)


def add_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--quick', action='store_true',
                   help='small workloads: every section in a few minutes (what CI runs)')
    p.add_argument('--out', default='bench_report', metavar='DIR',
                   help='report folder: report.md, results.json, *.png (default bench_report)')
    p.add_argument('--sections', default='', metavar='NAME,...',
                   help=f'run only these sections (of: {", ".join(k for k, _ in SECTIONS)})')
    p.add_argument('--device', default=None, choices=('cpu', 'cuda'),
                   help='device of the model rows (default: cuda when torch sees a GPU, else cpu)')
    p.add_argument('--config', default=None,
                   help='config folder with graph.yaml and parameter files (default: installed)')


def _format(value: Any) -> str:
    if isinstance(value, float):
        if abs(value) >= 100:
            return f'{value:.0f}'
        return f'{value:.3g}'
    return '' if value is None else str(value)


def render_markdown(results: Dict[str, Any]) -> str:
    """The report as Markdown: per section its baseline, findings, tables and plots."""
    machine = results['sections'].get('machine', {}).get('data', {})
    lines = ['# llm_agent benchmark report', '',
             f'{"Quick (CI) run" if results["quick"] else "Full run"} of `llm-agent bench`, '
             f'{machine.get("date_utc", "?")} UTC, on {machine.get("cpu", "?")} '
             f'({machine.get("logical_cores", "?")} logical cores). Every ratio is against a '
             'baseline measured in this same run; raw figures stand beside it.', '']
    for number, (key, _) in enumerate(SECTIONS, start=1):
        section = results['sections'].get(key)
        if section is None:
            continue
        lines += [f'## {number}. {section.get("title", key)}', '']
        if 'error' in section:
            lines += [f'**Failed:** `{section["error"]}`', '']
            continue
        if section['baseline'] != 'n/a':
            lines += [f'Baseline: {section["baseline"]}. ({section["elapsed_s"]:.0f} s)', '']
        lines += [f'- {f}' for f in section['findings']] + ([''] if section['findings'] else [])
        for table in section['tables']:
            lines += [f'**{table["title"]}**', '',
                      '| ' + ' | '.join(table['columns']) + ' |',
                      '|' + '---|' * len(table['columns'])]
            lines += ['| ' + ' | '.join(_format(v) for v in row) + ' |' for row in table['rows']]
            lines.append('')
        lines += [f'![{name}]({name})' for name in section['plots']]
        lines += [''] + [f'> {n}' for n in section['notes']] + ['']
    return '\n'.join(lines).rstrip() + '\n'


def run_sections(ctx: BenchContext, keys: List[str]) -> Dict[str, Any]:
    """Run the chosen sections in order; a failing section is reported, the others still run.
    The machine section always runs (a second, no load): every report names its CPU."""
    results: Dict[str, Any] = {'quick': ctx.quick, 'device': ctx.device, 'sections': {}}
    for key, module_name in SECTIONS:
        if keys and key not in keys and key != 'machine':
            continue
        ctx.log(f'[bench] {key} ...')
        t0 = time.monotonic()
        try:
            section: Section = importlib.import_module(module_name).run(ctx)
            entry = section.as_dict()
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
            traceback.print_exc()
            entry = {'title': key, 'error': f'{type(exc).__name__}: {exc}'}
        entry['elapsed_s'] = time.monotonic() - t0
        results['sections'][key] = entry
        ctx.log(f'[bench] {key} done in {entry["elapsed_s"]:.0f} s')
    return results


def run_bench(args: argparse.Namespace) -> int:
    keys = [k.strip() for k in args.sections.split(',') if k.strip()]
    unknown = sorted(set(keys) - {k for k, _ in SECTIONS})
    if unknown:
        print(f'llm-agent bench: unknown section(s) {", ".join(unknown)}; known: '
              f'{", ".join(k for k, _ in SECTIONS)}', file=sys.stderr)
        return 2
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')  # DDS stays on this host
    os.environ.setdefault('HF_HUB_OFFLINE', '1')                         # nothing downloads
    os.environ.setdefault('MPLBACKEND', 'Agg')
    device = args.device
    if device is None:
        from .machine import gpu_info
        device = 'cuda' if gpu_info() else 'cpu'
    os.makedirs(args.out, exist_ok=True)
    ctx = BenchContext(out_dir=os.path.abspath(args.out), quick=args.quick, device=device,
                       config_dir=os.path.abspath(args.config) if args.config else None)
    t0 = time.monotonic()
    results = run_sections(ctx, keys)
    results['elapsed_s'] = time.monotonic() - t0
    bad = {k: non_finite(v.get('data', {}), k) for k, v in results['sections'].items()}
    bad = {k: v for k, v in bad.items() if v}
    with open(ctx.path('results.json'), 'w', encoding='utf-8') as f:
        json.dump(results, f, indent=1, allow_nan=True)
    with open(ctx.path('report.md'), 'w', encoding='utf-8') as f:
        f.write(render_markdown(results))
    failed = [k for k, v in results['sections'].items() if 'error' in v]
    print(f'llm-agent bench: wrote {ctx.path("report.md")} and results.json '
          f'in {results["elapsed_s"]:.0f} s')
    if failed:
        print(f'llm-agent bench: section(s) failed: {", ".join(failed)}', file=sys.stderr)
    for key, paths in bad.items():
        print(f'llm-agent bench: {key} has non-finite figures at {", ".join(paths[:5])}',
              file=sys.stderr)
    return 1 if failed or bad else 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='llm-agent bench', description=__doc__)
    add_bench_args(parser)
    return run_bench(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
