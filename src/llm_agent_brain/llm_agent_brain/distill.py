"""Train the brain's decision tree from an MCAP recording (`llm-agent record`, `demo --record`).

Each `agent/decision` is paired with the `agent/observation` whose header stamp it carries
(Decision.header.stamp = the observation's stamp). Only the LLM's decisions are kept by default:
rule, tree, cache and fallback decisions are not new knowledge. No ROS needed: the recording is
decoded from its own schemas by `mcap_ros2`.

    python -m llm_agent_brain.distill RECORDING.mcap --data-dir DIR [--instruction-from-recording]
"""
from __future__ import annotations

import argparse
import bisect
import json
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from llm_agent_brain.decision_types import Choice, Situation

DEFAULT_INSTRUCTION = 'go to the red target'   # the decision node's default_instruction


def _topic(namespace: str, name: str) -> str:
    ns = namespace.strip('/')
    return f'/{ns}/{name}' if ns else f'/{name}'


def _stamp(header: Any) -> Tuple[int, int]:
    return int(header.stamp.sec), int(header.stamp.nanosec)


@dataclass
class DistillResult:
    pairs: int                  # (situation, choice) pairs recorded into the log
    skipped: Dict[str, int]     # decisions left out, by reason
    stats: Dict[str, float]     # the pipeline's figures after training
    tree_text: str              # the trained trees, readable


def decisions_from_mcap(path: str, namespace: str = '', sources: Sequence[str] = ('llm',),
                        instruction_from_recording: bool = True,
                        default_instruction: str = DEFAULT_INSTRUCTION,
                        skipped: Optional[Dict[str, int]] = None) -> List[Tuple[Situation, Choice]]:
    """(Situation, Choice) of every recorded decision of the given sources with its observation.

    The instruction is the last `agent/instruction` logged before the decision (when
    `instruction_from_recording`), else `default_instruction`. `skipped` counts the rest.
    """
    from mcap_ros2.reader import read_ros2_messages
    t_obs, t_dec, t_ins = (_topic(namespace, n) for n in
                           ('agent/observation', 'agent/decision', 'agent/instruction'))
    observations: Dict[Tuple[int, int], Any] = {}
    decisions: List[Tuple[int, Any]] = []
    instructions: List[Tuple[int, str]] = []
    for m in read_ros2_messages(path, topics=[t_obs, t_dec, t_ins]):
        topic, msg = m.channel.topic, m.ros_msg
        if topic == t_obs:
            observations[_stamp(msg.header)] = msg
        elif topic == t_dec:
            decisions.append((m.log_time_ns, msg))
        else:
            instructions.append((m.log_time_ns, msg.data))
    instructions.sort(key=lambda x: x[0])
    ins_times = [t for t, _ in instructions]
    skipped = skipped if skipped is not None else {}
    out: List[Tuple[Situation, Choice]] = []
    for log_ns, d in decisions:
        if d.source not in sources:
            skipped[f'source_{d.source}'] = skipped.get(f'source_{d.source}', 0) + 1
            continue
        obs = observations.get(_stamp(d.header))
        if obs is None:
            skipped['no_observation'] = skipped.get('no_observation', 0) + 1
            continue
        if len(obs.feature_names) != len(obs.feature_values):
            skipped['bad_observation'] = skipped.get('bad_observation', 0) + 1
            continue
        try:
            params = json.loads(d.params_json or '{}')
        except ValueError:
            params = None
        if not isinstance(params, dict):
            skipped['bad_params'] = skipped.get('bad_params', 0) + 1
            continue
        instruction = default_instruction
        if instruction_from_recording:
            i = bisect.bisect_right(ins_times, log_ns)
            if i:
                instruction = instructions[i - 1][1] or default_instruction
        situation = Situation(
            features={str(k): float(v) for k, v in zip(obs.feature_names, obs.feature_values)},
            summary=obs.summary, instruction=instruction)
        out.append((situation, Choice(skill=d.skill, params=params,
                                      confidence=float(d.confidence), source=d.source,
                                      rationale=d.rationale)))
    return out


def train_from_mcap(path: str, config: Any, catalog: Any, namespace: str = '',
                    sources: Sequence[str] = ('llm',), instruction_from_recording: bool = True,
                    default_instruction: str = DEFAULT_INSTRUCTION) -> DistillResult:
    """Add the recording's decisions to the log in `config.data_dir`, train, save, describe.

    Decisions whose skill or parameters the catalogue refuses are skipped. Decisions of other
    sources (when asked for) are logged as trainable, like the LLM's.
    """
    from llm_agent_brain.pipeline import DecisionPipeline
    skipped: Dict[str, int] = {}
    pairs = decisions_from_mcap(path, namespace, sources, instruction_from_recording,
                                default_instruction, skipped)
    pipeline = DecisionPipeline(catalog, config, backend=None)
    try:
        used = 0
        for situation, choice in pairs:
            params, reason = catalog.validate(choice.skill, choice.params)
            if reason:
                skipped['invalid'] = skipped.get('invalid', 0) + 1
                continue
            if choice.source != 'llm':   # the log trains on 'llm' entries only
                choice.rationale = f'distilled from a {choice.source} decision: {choice.rationale}'
            choice.params, choice.source = params, 'llm'
            pipeline.log.record(situation, choice)
            used += 1
        pipeline.train_now()
        return DistillResult(used, skipped, pipeline.stats(), pipeline.export_tree())
    finally:
        pipeline.close()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog='python -m llm_agent_brain.distill', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('recording', help='MCAP file with agent/observation and agent/decision')
    p.add_argument('--data-dir', required=True,
                   help="the brain's data_dir: decisions are added to its log, the tree saved there")
    p.add_argument('--namespace', default='', help='namespace the recording was made in')
    p.add_argument('--instruction-from-recording', action='store_true',
                   help='use the last agent/instruction before each decision (default: '
                        '--instruction for all)')
    p.add_argument('--instruction', default=DEFAULT_INSTRUCTION,
                   help=f'instruction of the decisions (default "{DEFAULT_INSTRUCTION}"; with '
                        '--instruction-from-recording, for decisions before any instruction)')
    p.add_argument('--include', default='llm', metavar='SOURCE,...',
                   help='decision sources to learn from (default llm)')
    p.add_argument('--catalog', default=None, help='skills file (default: the installed one)')
    args = p.parse_args(argv)
    from llm_agent_common.catalog import load_catalog

    from llm_agent_brain.pipeline import FastPathConfig
    sources = tuple(s.strip() for s in args.include.split(',') if s.strip())
    try:
        result = train_from_mcap(args.recording, FastPathConfig(data_dir=args.data_dir),
                                 load_catalog(args.catalog), args.namespace, sources,
                                 args.instruction_from_recording, args.instruction)
    except (OSError, ValueError) as exc:
        print(f'distill: {exc}', file=sys.stderr)
        return 2
    skipped = ', '.join(f'{k} {v}' for k, v in sorted(result.skipped.items())) or 'none'
    print(f'{result.pairs} decision(s) used from {args.recording} (skipped: {skipped}); '
          f'log {int(result.stats["log_size"])}, tree {int(result.stats["tree_nodes"])} nodes')
    print(result.tree_text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
