"""The safety guard against obstacles placed in the robot's path, with no DDS in between.

The built-in world's physics, the skill server's executive and guard, and a 10 Hz scan are
driven in one process, so thousands of placements run in minutes. Each trial puts one box
somewhere the robot would drive through, then either runs `move_forward` through the executive
or drives a constant arc (a random forward speed and turn rate) filtered by the guard; a trial
fails when the world reports a contact.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Dict, List

from llm_agent_actuation.executive import Executive
from llm_agent_actuation.guard import Footprint, SafetyGuard
from llm_agent_actuation.skill_api import Pose2D, SkillConfig
from llm_agent_common.catalog import load_catalog
from llm_agent_sim.world import Obstacle, Sim, World
from llm_agent_sim.world import Pose2D as WorldPose

PHYSICS_DT, CONTROL_DT, SCAN_DT = 0.01, 0.05, 0.1
ROOM = 12.0  # a square room, far from the trials' boxes


@dataclass
class Trials:
    """What the trials saw."""

    trials: int = 0
    skipped: int = 0           # draws whose box already touched the robot at the start
    contacts: int = 0
    stopped: int = 0           # the guard stopped the robot before the box
    by_kind: Dict[str, int] = field(default_factory=dict)
    contact_cases: List[dict] = field(default_factory=list)


def _world(box: Obstacle) -> World:
    h = ROOM / 2
    grey = (128, 128, 128)
    walls = [((-h, -h), (h, -h), grey), ((h, -h), (h, h), grey), ((h, h), (-h, h), grey),
             ((-h, h), (-h, -h), grey)]
    target = Obstacle((h - 0.5, h - 0.5), (0.3, 0.3), 0.0, (200, 0, 0), 0.3)
    return World('guard_trial', walls, [box], target, goal=(h - 1.0, h - 1.0),
                 start=WorldPose(0.0, 0.0, 0.0))


def _in_path_box(rng: random.Random, arc_w: float, v: float) -> Obstacle:
    """A box centred on the path 0.6..3 m ahead (along the arc), up to 0.35 m off it."""
    s = rng.uniform(0.6, 3.0)
    if abs(arc_w) < 1e-6:
        x, y, heading = s, 0.0, 0.0
    else:
        R = v / arc_w
        phi = s / R
        x, y, heading = R * math.sin(phi), R * (1 - math.cos(phi)), phi
    off = rng.uniform(-0.35, 0.35)
    x, y = x - off * math.sin(heading), y + off * math.cos(heading)
    size = (rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.5))
    return Obstacle((x, y), size, rng.uniform(-math.pi, math.pi), (0, 0, 200), 0.5)


def run(n: int, seed: int = 0, catalog_path: str = '', safety_distance_m: float = 0.35,
        footprint_radius_m: float = 0.2) -> Trials:
    """n counted placements, alternately through move_forward and on random arcs.

    A draw whose box already touches the robot at the start is not a trial (counted in
    `skipped`); drawing goes on until n trials ran.
    """
    rng = random.Random(seed)
    catalog = load_catalog(catalog_path or None)
    out = Trials()
    i = -1
    while out.trials < n:
        i += 1
        kind = 'move_forward' if out.trials % 2 == 0 else 'arc'
        v = rng.uniform(0.1, 0.5)
        w = 0.0 if kind == 'move_forward' else rng.uniform(-1.0, 1.0)
        box = _in_path_box(rng, w, v)
        sim = Sim(_world(box), seed=i)
        if sim.world.clearance(0.0, 0.0)[0] < 0.3:
            out.skipped += 1
            continue
        guard = SafetyGuard(safety_distance_m, 1.0, Footprint(radius_m=footprint_radius_m))
        ex = Executive(catalog, SkillConfig(safety_distance_m=safety_distance_m), guard)
        run_ = None
        if kind == 'move_forward':
            guard.update_scan(sim.scan(), -math.pi, 2 * math.pi / 360, 0.0, 8.0, 0.05)
            ex.world.pose = Pose2D(0.0, 0.0, 0.0)
            params, reason = ex.check_goal('move_forward', {'distance': 4.0, 'speed': v}, 0.0)
            if reason:
                out.stopped += 1
                out.trials += 1
                out.by_kind[kind] = out.by_kind.get(kind, 0) + 1
                continue
            run_ = ex.create_run(f't{i}', 'move_forward', params, 0.0)
            ex.start(run_, 0.0)
        t, next_scan, next_ctl, stopped = 0.0, 0.0, 0.0, False
        while t < 12.0:
            if t >= next_scan:
                s = sim.state()
                guard.update_scan(sim.scan(), -math.pi, 2 * math.pi / 360, t, 8.0, 0.05)
                next_scan += SCAN_DT
            if t >= next_ctl:
                s = sim.state()
                ex.world.pose = Pose2D(s.x, s.y, s.yaw)
                ex.world.pose_stamp = t
                if run_ is not None:
                    cmd, _, _ = ex.tick(t)
                    if cmd is not None:
                        sim.command(*cmd)
                    if run_.done.is_set():
                        stopped = True
                        break
                else:
                    cv, cw, why = guard.filter(v, w, t)
                    sim.command(cv, cw)
                    if why:
                        stopped = True
                        sim.command(0.0, 0.0)
                        break
                next_ctl += CONTROL_DT
            sim.step(PHYSICS_DT)
            t += PHYSICS_DT
            if sim.collisions:
                break
        for _ in range(200):  # let the base come to rest after a stop
            if sim.collisions or abs(sim.v) < 1e-6:
                break
            sim.command(0.0, 0.0)
            sim.step(PHYSICS_DT)
        out.trials += 1
        out.by_kind[kind] = out.by_kind.get(kind, 0) + 1
        out.stopped += int(stopped and not sim.collisions)
        if sim.collisions:
            out.contacts += 1
            out.contact_cases.append({'trial': i, 'kind': kind, 'v': round(v, 3),
                                      'w': round(w, 3), 'box': box.center, 'size': box.size})
    return out
