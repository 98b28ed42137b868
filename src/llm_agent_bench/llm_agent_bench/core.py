"""What every benchmark section shares: the run context, the section result, timing, plots."""
from __future__ import annotations

import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple


@dataclass
class BenchContext:
    """How this run was asked for: quick (CI) or full, where the report goes, on which device."""

    out_dir: str
    quick: bool = False
    device: str = 'cpu'               # 'cuda' adds the GPU rows where a section has them
    config_dir: Optional[str] = None  # graph.yaml and parameter files (None = installed)
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))

    def pick(self, quick_value: Any, full_value: Any) -> Any:
        """The smaller workload under --quick, the full one otherwise."""
        return quick_value if self.quick else full_value

    def path(self, name: str) -> str:
        return os.path.join(self.out_dir, name)


@dataclass
class Table:
    """One table of the report: raw figures and their ratios to the baseline named in `title`."""

    title: str
    columns: List[str]
    rows: List[List[Any]]

    def as_dict(self) -> Dict[str, Any]:
        return {'title': self.title, 'columns': self.columns, 'rows': self.rows}


@dataclass
class Section:
    """A section's result. `data` holds the raw numbers and ratios that go to results.json;
    `findings` are one-line conclusions for report.md; `plots` are PNG names in out_dir."""

    key: str
    title: str
    baseline: str
    tables: List[Table] = field(default_factory=list)
    plots: List[str] = field(default_factory=list)
    findings: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    data: Dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        return {'title': self.title, 'baseline': self.baseline,
                'tables': [t.as_dict() for t in self.tables], 'plots': self.plots,
                'findings': self.findings, 'notes': self.notes, 'data': self.data}


def timed(fn: Callable[[], Any], repeats: int = 3) -> Tuple[Any, float]:
    """Return (last result, median milliseconds) of `repeats` calls of fn()."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        times.append(1000.0 * (time.perf_counter() - t0))
    return result, statistics.median(times)


def ratio(value: float, base: float) -> float:
    """value / base; 0 / 0 is 1 (both free) and x / 0 is inf, which the report refuses."""
    if base == 0:
        return 1.0 if value == 0 else math.inf
    return value / base


def busy_factor(wall_ms: Sequence[float], cpu_ms: Sequence[float]) -> float:
    """Wall time over CPU time of single-threaded work: about 1 on an idle machine, more when
    other processes took the CPU (then CPU-time ratios are the trustworthy ones)."""
    return ratio(sum(wall_ms), sum(cpu_ms)) if wall_ms else 1.0


def ratio_or_none(value: Optional[float], base: Optional[float]) -> Optional[float]:
    """ratio(), or None where it does not apply: a missing figure, or x / 0 with x > 0."""
    if value is None or base is None or (base == 0 and value != 0):
        return None
    return ratio(value, base)


def quantiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> Dict[str, float]:
    """{'p50': ..., 'p95': ..., ...} (the suite's one percentile); empty input gives no keys."""
    from llm_agent_common.stats import percentile
    values = list(values)
    return {f'p{q:g}': percentile(values, q) for q in qs} if values else {}


def save_plot(ctx: BenchContext, fig: Any, name: str) -> str:
    """Write a matplotlib figure as PNG into the report folder and close it; returns the name."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(ctx.path(name), dpi=110)
    plt.close(fig)
    return name


def figure(*args: Any, **kwargs: Any):
    """A matplotlib (fig, ax) on the file-only Agg backend (robots have no screen)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt.subplots(*args, **kwargs)


def non_finite(obj: Any, where: str = '') -> List[str]:
    """Paths of every NaN or infinite number inside nested dicts and lists (None is allowed:
    it marks a figure that does not apply, like time to goal with no success)."""
    if isinstance(obj, bool) or obj is None:
        return []
    if isinstance(obj, (int, float)):
        return [] if math.isfinite(obj) else [where or '.']
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in non_finite(v, f'{where}.{k}')]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in non_finite(v, f'{where}[{i}]')]
    return []
