"""agent/decide over DDS: the decision_node answers by rule, tree and cache, each saying so.

The backend is a scripted policy, not SmolLM2: warming the tree needs a few hundred LLM
decisions, about a second each with the real model on this machine; the real model's path
through the node is covered by the node's and backends' own tests.
"""
import json
import os
import random

import rclpy
from llm_agent_brain.backends.scripted import ScriptedBackend
from llm_agent_brain.decision_types import Situation
from llm_agent_common.node import LeanMultiThreadedExecutor
from rclpy.parameter import Parameter

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))


def feats(rng, **kw):
    f = dict(front_range=rng.uniform(0.5, 8), front_left_range=8.0, front_right_range=8.0,
             left_range=rng.uniform(0.5, 8), right_range=rng.uniform(0.5, 8), rear_range=8.0)
    f.update(kw)
    return f


def test_decide_answers_by_rule_tree_and_cache(ros_context, tmp_path, spin_until):
    from llm_agent_brain.decision_node import DecisionNode

    from llm_agent_interfaces.msg import Observation
    from llm_agent_interfaces.srv import Decide

    backend = ScriptedBackend()
    backend.load()
    node = DecisionNode(backend=backend, context=ros_context, parameter_overrides=[
        Parameter('rules_file', value=os.path.join(ROOT, 'config', 'rules.yaml')),
        Parameter('skills_file', value=os.path.join(ROOT, 'config', 'skills.yaml')),
        Parameter('data_dir', value=str(tmp_path)),
        Parameter('tree_min_samples', value=5),
        Parameter('retrain_every_n', value=100000),
        Parameter('execute_decisions', value=False),
    ])
    client = rclpy.create_node('fastpath_client', context=ros_context)
    executor = LeanMultiThreadedExecutor(num_threads=3, context=ros_context)
    executor.add_node(node)
    executor.add_node(client)
    try:
        # warm-up episode, in process: "explore" distilled into the tree, "patrol" only cached
        rng = random.Random(0)
        for instruction in ('explore the room', 'patrol the corridor'):
            for _ in range(200):
                s = Situation(feats(rng), '', instruction)
                node.pipeline.fast_decide(s) or node.pipeline.llm_decide(s)
            if instruction.startswith('explore'):
                node.pipeline.train_now()
        cli = client.create_client(Decide, 'agent/decide')
        assert spin_until(executor, cli.service_is_ready, 10.0)

        def ask(f, instruction):
            req = Decide.Request()
            req.observation = Observation(feature_names=list(f),
                                          feature_values=[float(v) for v in f.values()])
            req.instruction = instruction
            fut = cli.call_async(req)
            assert spin_until(executor, fut.done, 20.0)
            return fut.result().decision

        d = ask(feats(rng, front_range=0.3, left_range=3.0, right_range=1.0), 'explore the room')
        assert (d.source, d.skill) == ('rule', 'turn') and 'obstacle_ahead' in d.rationale
        assert json.loads(d.params_json)['angle'] > 0
        d = ask(feats(rng, front_range=6.0), 'explore the room')
        assert (d.source, d.skill) == ('tree', 'move_forward') and 'tree leaf #' in d.rationale
        d = ask(dict(feats(rng), front_range=6.0, left_range=3.0, right_range=3.0), 'patrol the corridor')
        assert (d.source, d.skill) == ('cache', 'move_forward') and 'exact cache' in d.rationale
        st = node.pipeline.stats()
        assert st['decisions_rule'] >= 1 and st['decisions_tree'] >= 1 and st['decisions_cache'] >= 1
    finally:
        executor.shutdown()
        client.destroy_node()
        node.destroy_node()
