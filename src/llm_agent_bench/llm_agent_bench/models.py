"""Section 3: model compression. Memory and decision latency of the packaged SmolLM2-135M in each
precision (and pruned), with agreement against fp32's choices; fp32 on the same device is the
baseline. On a GPU host (`--device cuda`) the same settings run again on the GPU."""
from __future__ import annotations

import os
import statistics
from typing import Any, Dict, List, Optional, Sequence

from llm_agent_bench.model_bench import agreement

from .core import BenchContext, Section, Table, busy_factor, figure, ratio, save_plot

QUICK_SETTINGS = ('fp32', 'nf4 (compute fp32)', 'llama.cpp Q8_0 (the CPU default)')


def setting_rows(measured: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Add ratios and agreement against the first row (fp32) of the same device.

    `measured`: dicts with label, device and either memory_mb, times_ms, skills, sparsity or an
    error. A row that could not run keeps its error and None figures; with no baseline on its
    device a row keeps its raw figures and None ratios."""
    base: Dict[str, Optional[Dict[str, Any]]] = {}
    rows = []
    for m in measured:
        row = {'label': m['label'], 'device': m['device'], 'error': m.get('error'),
               'memory_mb': None, 'memory_ratio': None, 'median_ms': None, 'latency_ratio': None,
               'median_cpu_ms': None, 'cpu_ratio': None,
               'agreement': None, 'sparsity': None, 'load_s': m.get('load_s'),
               'skills': m.get('skills', [])}
        ok = m.get('error') is None
        median = statistics.median(m['times_ms']) if ok else None
        cpu = statistics.median(m['cpu_ms']) if ok else None
        ref = base.setdefault(m['device'], {'mem': m['memory_mb'], 'ms': median, 'cpu': cpu,
                                            'skills': m['skills']} if ok else None)
        if ok:
            row.update(memory_mb=m['memory_mb'], median_ms=median, median_cpu_ms=cpu,
                       sparsity=m['sparsity'])
        if ok and ref is not None:
            row.update(memory_ratio=ratio(m['memory_mb'], ref['mem']),
                       latency_ratio=ratio(median, ref['ms']), cpu_ratio=ratio(cpu, ref['cpu']),
                       agreement=agreement(m['skills'], ref['skills']))
        rows.append(row)
    return rows


def _plot(ctx: BenchContext, rows: List[Dict[str, Any]]) -> Optional[str]:
    ok = [r for r in rows if r['memory_ratio'] is not None]
    if not ok:
        return None
    import numpy as np
    fig, ax = figure(figsize=(max(6.0, 1.1 * len(ok) + 2), 4.2))
    x = np.arange(len(ok))
    bars = (('memory_ratio', 'memory x fp32'), ('latency_ratio', 'decision latency x fp32'),
            ('cpu_ratio', 'CPU time per decision x fp32'))
    for i, (key, name) in enumerate(bars):
        b = ax.bar(x + (i - 1) * 0.27, [r[key] for r in ok], 0.27, label=name)
        ax.bar_label(b, fmt='%.2f', fontsize=6)
    ax.axhline(1.0, color='grey', lw=0.8, ls='--')
    multi = len({r['device'] for r in ok}) > 1
    ax.set_xticks(x, [f'{r["device"]} {r["label"]}' if multi else r['label'] for r in ok],
                  rotation=25, ha='right', fontsize=8)
    ax.set_ylabel('ratio to fp32 (same device, same run)')
    ax.set_title('SmolLM2-135M: memory and decision latency per setting')
    ax.set_ylim(top=max(r[k] for r in ok for k, _ in bars) * 1.3)
    ax.legend(fontsize=7, loc='upper center', ncol=3)
    return save_plot(ctx, fig, 'model_compression_ratios.png')


def run(ctx: BenchContext) -> Section:
    from llm_agent_brain.backends.base import cpu_threads
    from llm_agent_common.catalog import load_catalog

    from llm_agent_bench.model_bench import (
        SETTINGS,
        SITUATIONS,
        labelled_agreement,
        labelled_cases,
        measure_setting,
        quiet_model_logs,
    )
    quiet_model_logs()
    skills_file = os.path.join(ctx.config_dir, 'skills.yaml') if ctx.config_dir else None
    catalog = load_catalog(skills_file if skills_file and os.path.exists(skills_file) else None)
    settings = [s for s in SETTINGS if not ctx.quick or s[0] in QUICK_SETTINGS]
    situations = SITUATIONS[:ctx.pick(3, len(SITUATIONS))]
    repeats = ctx.pick(1, 3)
    devices = ['cpu'] + (['cuda'] if ctx.device == 'cuda' else [])
    measured = []
    for device in devices:
        for label, options in settings:
            if device != 'cpu' and options.get('backend') == 'llamacpp':
                continue  # built here for the CPU
            ctx.log(f'  {device} {label} ...')
            m = measure_setting(options, catalog, situations, device, repeats)
            measured.append(dict(m, label=label, device=device))
    rows = setting_rows(measured)

    def fmt(r: Dict[str, Any]) -> List[Any]:
        if r['error'] is not None:
            return [r['label'], r['device']] + [None] * 7 + [f'cannot run here: {r["error"]}']
        agree = '' if r['agreement'] is None else f'{r["agreement"]:.0%}'
        return [r['label'], r['device'], r['memory_mb'], r['memory_ratio'], r['median_ms'],
                r['latency_ratio'], r['median_cpu_ms'], agree, f'{r["sparsity"]:.1%}', '']
    table = Table(f'Per setting, {len(situations)} situations x {repeats}: ratios to fp32 on the '
                  'same device', ['setting', 'device', 'memory MB', 'x fp32', 'median decision ms',
                                  'x fp32', 'CPU ms', 'agrees with fp32', 'sparsity', 'note'],
                  [fmt(r) for r in rows])
    plot = _plot(ctx, rows)
    cases = labelled_cases()
    cases = cases if not ctx.quick else cases[::16]
    ctx.log(f'  fp32, nf4 and the llama.cpp rows on {len(cases)} labelled decisions ...')
    # Quick: fp32 and the CPU default only (an nf4 load alone takes ~10 s here).
    labelled = ('fp32',) if ctx.quick else ('fp32', 'nf4 (compute fp32)')
    chosen = labelled_agreement(catalog, cases, [s for s in settings if s[0] in labelled
                                                 or s[0].startswith('llama')])
    agree_rows = []
    for label, skills in chosen.items():
        right = sum(s in c['accept'] for s, c in zip(skills, cases))
        same = agreement(skills, chosen['fp32']) if 'fp32' in chosen else None
        agree_rows.append({'label': label, 'n': len(cases), 'right': right,
                           'accuracy': right / max(1, len(cases)), 'agrees_with_fp32': same})
    agree_table = Table(f'The labelled decisions ({len(cases)}, data/labelled_decisions.yaml): '
                        'accuracy and agreement with fp32\'s choices',
                        ['setting', 'cases', 'right', 'accuracy', 'same skill as fp32'],
                        [[r['label'], r['n'], r['right'], f'{r["accuracy"]:.0%}',
                          '' if r['agrees_with_fp32'] is None else f'{r["agrees_with_fp32"]:.0%}']
                         for r in agree_rows])
    findings = []
    for r in agree_rows:
        if r['label'] != 'fp32' and r['agrees_with_fp32'] is not None:
            findings.append(f'{r["label"]}: the same skill as fp32 on {r["agrees_with_fp32"]:.0%} '
                            f'of {r["n"]} labelled decisions (target for the CPU default 95 %), '
                            f'accuracy {r["accuracy"]:.0%}')
    for r in rows:
        if r['label'] in ('nf4 (compute fp32)', 'int8', 'bf16') or r['label'].startswith('llama') \
                and r['memory_ratio'] is not None:
            findings.append(f'{r["device"]} {r["label"]}: {r["memory_ratio"]:.2f}x fp32\'s memory '
                            f'({r["memory_mb"]:.0f} MB), {r["latency_ratio"]:.2f}x its decision '
                            f'latency ({r["median_ms"]:.0f} ms; CPU time {r["cpu_ratio"]:.2f}x), '
                            f'same skill as fp32 in {r["agreement"]:.0%} of situations')
    failed = [f'{r["device"]} {r["label"]}' for r in rows if r['error'] is not None]
    notes = [f'Packaged SmolLM2-135M-Instruct, scored choice with the prefix cache, CPU '
             f'threads {cpu_threads(0)} (torch or llama.cpp; the node default: all cores but one). '
             'llama.cpp rows: llama-cpp-python built here by `make setup`, on the shipped Q4_1 GGUF '
             'as it is or requantized once (Q8_0, Q4_0); their memory is the GGUF\'s weights. '
             'Latency = median of '
             'every choice after one warm-up call (CPU ms: the deciding thread\'s CPU time, which load '
             'from other processes does not inflate); memory = the weights\' footprint '
             '(model.get_memory_footprint()), not the process RSS.']
    if ctx.device != 'cuda':
        notes.append('No GPU here: the GPU rows (the same settings with device cuda, fp32 on cuda as '
                     'their baseline) run only with `--device cuda` on a GPU host.')
    if ctx.quick:
        notes.append(f'Quick run: settings {", ".join(QUICK_SETTINGS)} only; the full run adds '
                     'int8, bf16, fp16, nf4 with bf16 compute, fp4, 30 % magnitude pruning and '
                     'llama.cpp Q4_0 and Q4_1; nf4 joins the labelled-set table.')
    cpu_rows = [r for r in rows if r['device'] == 'cpu' and r['median_ms'] is not None]
    busy = busy_factor([r['median_ms'] for r in cpu_rows], [r['median_cpu_ms'] for r in cpu_rows])
    if busy > 1.5:
        notes.append(f'This machine was busy: decisions took {busy:.1f}x their CPU time in wall time '
                     '(one torch thread: about 1x when idle); the CPU-time ratios are the ones to trust.')
    if failed:
        notes.append(f'Could not run here: {", ".join(failed)} (see the table).')
    data = {'situations': len(situations), 'repeats': repeats, 'devices': devices,
            'torch_threads': cpu_threads(0), 'busy_factor': busy, 'rows': rows,
            'labelled': agree_rows}
    return Section('model_compression', 'Model compression: memory, latency, agreement',
                   'fp32 on the same device, same situations, same run',
                   tables=[table, agree_table],
                   plots=[plot] if plot else [], findings=findings, notes=notes, data=data)
