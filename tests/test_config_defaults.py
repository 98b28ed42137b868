"""config/ and the code agree: every parameter a file sets is declared, with the same default.

A node's parameter table is the one place its defaults live; config/ writes them out for users
to edit. A key the node does not declare (a typo, a renamed parameter) or a value that differs
from the code's default fails here, and so do the pure cores' own defaults where a node builds
them from its parameters.
"""
import importlib
import math
import os

import pytest
import yaml
from llm_agent_bringup.graph import load_graph

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
CONFIG = os.path.join(REPO, 'config')
# Where each node of the graph keeps its table of llm_agent_common.node.Param.
TABLES = {
    'sim_world': ('llm_agent_sim.sim_world_node', 'PARAMETERS'),
    'scan_filter': ('llm_agent_perception.scan_filter_node', 'PARAMS'),
    'image_compressor': ('llm_agent_perception.image_compressor_node', 'PARAMS'),
    'depth_compressor': ('llm_agent_perception.depth_compressor_node', 'PARAMS'),
    'observer': ('llm_agent_perception.observer_node', 'PARAMS'),
    'image_decompressor': ('llm_agent_perception.image_decompressor_node', 'PARAMS'),
    'video_decoder': ('llm_agent_perception.video_decoder_node', 'PARAMS'),
    'decision_node': ('llm_agent_brain.node_params', 'ALL_PARAMS'),
    'skill_server': ('llm_agent_actuation.skill_server_node', 'PARAMETERS'),
}


def table(node):
    module, name = TABLES[node]
    return {p.name: p for p in getattr(importlib.import_module(module), name)}


def sections():
    out = []
    for entry in load_graph(CONFIG):
        for f in entry.params:
            with open(os.path.join(CONFIG, f), encoding='utf-8') as fh:
                data = yaml.safe_load(fh) or {}
            section = data.get(f'/**/{entry.name}', {}).get('ros__parameters', {})
            out.append((entry.name, f, section))
    return out


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


@pytest.mark.parametrize('node,file,section', sections(), ids=lambda v: v if isinstance(v, str) else '')
def test_config_values_are_the_code_defaults(node, file, section):
    assert node in TABLES, f'{node} of graph.yaml has no parameter table in this test'
    params = table(node)
    unknown = sorted(set(section) - set(params))
    assert not unknown, f'{file}: {node} declares no parameter {unknown}'
    differ = {k: (v, params[k].default) for k, v in section.items() if not same(v, params[k].default)}
    assert not differ, f'{file}: {node} values (config, code) differ: {differ}'
    for p in params.values():
        assert not p.problem(p.default), f'{node}.{p.name}: default {p.default!r}: {p.problem(p.default)}'


def test_cores_built_from_parameters_share_their_defaults():
    from llm_agent_actuation.guard import SafetyGuard
    from llm_agent_actuation.skill_api import SkillConfig
    from llm_agent_actuation.skill_server_node import SKILL_CONFIG_PARAMS

    server = table('skill_server')
    config = SkillConfig()
    for field, param in SKILL_CONFIG_PARAMS.items():
        assert same(getattr(config, field), server[param].default), (field, param)
    assert same(SafetyGuard().safety_distance_m, server['safety_distance_m'].default)
    assert same(SafetyGuard().footprint.radius_m, server['footprint_radius_m'].default)
    brain = table('decision_node')
    from llm_agent_brain.backends.openai import OpenAIBackend
    from llm_agent_brain.backends.transformers import TransformersBackend
    for cls in (TransformersBackend, OpenAIBackend):
        import inspect
        default = inspect.signature(cls.__init__).parameters['margin_m'].default
        assert same(default, brain['margin_m'].default), cls.__name__


def test_a_differing_value_is_caught():
    params = table('skill_server')
    assert not same(params['result_keep_s'].default, 10.0)


def test_the_laser_pose_is_the_same_for_every_node_that_reads_scans():
    # The guard (skill_server) and the sectors (observer) place scan points on the base from the
    # same three parameters: a pose set in one file and not the other would split them.
    keys = ('laser_x_m', 'laser_y_m', 'laser_yaw_rad')
    poses = {node: tuple(section.get(k, table(node)[k].default) for k in keys)
             for node, _f, section in sections() if node in ('observer', 'skill_server')}
    assert set(poses) == {'observer', 'skill_server'}
    assert poses['observer'] == poses['skill_server'], poses
