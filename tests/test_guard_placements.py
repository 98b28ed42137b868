"""The guard on obstacles placed in the robot's path: the world, executive and guard driven in
one process (no DDS). 0 contacts; a footprint shrunk towards the old cone does collide, so the
check can fail. The bench's reliability section runs 2,000 placements."""
import os

from llm_agent_bench import guard_trials

SKILLS = os.path.join(os.path.dirname(__file__), '..', 'config', 'skills.yaml')


def test_no_contact_over_in_path_placements():
    r = guard_trials.run(120, seed=3, catalog_path=SKILLS)
    assert r.trials >= 100 and r.by_kind.get('arc', 0) >= 40
    assert r.contacts == 0, r.contact_cases[:5]
    assert r.stopped >= r.trials // 3, 'the boxes were in the way: the guard had to stop often'


def test_a_thin_footprint_collides_so_the_check_can_fail():
    r = guard_trials.run(40, seed=3, catalog_path=SKILLS, footprint_radius_m=0.02)
    assert r.contacts > 0
