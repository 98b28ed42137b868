"""The built-in world's settings as config/sim.yaml gives them, for plots of an episode."""
from __future__ import annotations

import os

GENERATED = 'generated'  # a world generated from the episode's seed instead of a world file


def world_for_plot(config_dir: str, world_file: str, seed: int):
    """The episode's world (as the sim loads it: its world_file, or generated from the seed)."""
    from llm_agent_sim import world as world_core
    params = _sim_params(config_dir)
    world_file = world_file or params.get('world_file', '')
    if world_file and world_file != GENERATED:
        path = world_core.resolve_world_path(world_file, os.path.join(config_dir, 'worlds'))
        return world_core.load_world(path)
    return world_core.generate_world(seed, float(params.get('goal_tolerance_m', 0.5)))


def _sim_params(config_dir: str) -> dict:
    import yaml
    with open(os.path.join(config_dir, 'sim.yaml'), encoding='utf-8') as f:
        data = yaml.safe_load(f) or {}
    section = next((v for k, v in data.items() if k.endswith('sim_world')), {}) or {}
    return section.get('ros__parameters', {}) or {}
