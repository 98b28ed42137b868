"""`llm-agent demo`: episodes of the agent in the built-in world (filled in by the integration work)."""
from __future__ import annotations

import argparse


def add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--duration', type=float, default=20.0, help='seconds to run the graph')
    p.add_argument('--config', default=None, help='config folder (default: installed)')


def run_demo(args: argparse.Namespace) -> int:
    from .graph import default_config_dir, load_graph
    from .launcher import Launcher
    launcher = Launcher()
    config_dir = args.config or default_config_dir()
    try:
        launcher.start(load_graph(config_dir), config_dir, use_sim_time=True)
        return launcher.wait(args.duration)
    finally:
        launcher.stop()
