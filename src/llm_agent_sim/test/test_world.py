"""Pure tests of the world model and the camera (no ROS)."""
import math
import os

import numpy as np
import pytest
from llm_agent_sim.render import Camera
from llm_agent_sim.world import (
    PALETTE,
    ROBOT_RADIUS_M,
    Sim,
    SimParams,
    WorldError,
    generate_world,
    has_free_path,
    load_world,
    world_from_dict,
)

WORLDS = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'config', 'worlds')


def box_room(**extra):
    """A 4 x 4 m room around the origin, the robot at the centre facing +x."""
    data = {'room': {'min': [-2.0, -2.0], 'max': [2.0, 2.0]},
            'target': {'center': [1.5, 1.5], 'size': [0.3, 0.3]},
            'start': {'x': 0.0, 'y': 0.0, 'yaw': 0.0}}
    data.update(extra)
    return world_from_dict(data, 'test')


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize('name', ['room.yaml', 'corridor.yaml'])
def test_shipped_worlds_load_and_have_a_free_path(name):
    world = load_world(os.path.join(WORLDS, name))
    assert world.segments.shape[1] == 4
    assert has_free_path(world, (world.start.x, world.start.y), world.goal, 0.5)


@pytest.mark.parametrize('body, message', [
    ('target: {center: [1, 1], size: [0.3, 0.3]}\nstart: {x: 0, y: 0}\nboxes:\n'
     '  - {center: [2, 2], size: [1, 1]}\n  - {center: [2, 3], size: [1, 1]}\n'
     '  - {center: [2, 2], size: [1, -1]}\n',
     'bad.yaml: boxes[2].size must be two positive numbers'),
    ('start: {x: 0, y: 0}\n', 'bad.yaml: world.target is missing'),
    ('target: {center: [1, 1], size: [0.3, 0.3], colour: mauve}\nstart: {x: 0, y: 0}\n',
     'bad.yaml: target.colour must be one of'),
    ('target: {center: [1, 1], size: [0.3, 0.3]}\nstart: {x: 0, y: zero}\n',
     'bad.yaml: start.y must be a finite number'),
    ('target: {center: [1, 1], size: [0.3, 0.3]}\nstart: {x: 0, y: 0}\nwals: []\n',
     'bad.yaml: world.wals is not a known field'),
    ('target: {center: [1, 1], size: [0.3, 0.3]}\nstart: {x: 0, y: 0}\n'
     'room: {min: [2, 2], max: [1, 3]}\n', 'bad.yaml: room.max must be greater'),
    ('target: {center: [0.1, 0], size: [0.3, 0.3]}\nstart: {x: 0, y: 0}\n',
     'bad.yaml: start must be at least'),
    ('target: [1, 2\n', 'bad.yaml: not valid YAML'),
])
def test_loading_errors_name_file_and_field(tmp_path, body, message):
    with pytest.raises(WorldError) as err:
        load_world(write(tmp_path, 'bad.yaml', body))
    assert str(err.value).startswith(message), str(err.value)


def test_driving_into_a_wall_gives_one_collision_and_stops_short_of_it():
    sim = Sim(box_room(), SimParams(cmd_vel_timeout_s=1.0), seed=1)
    events = []
    for _ in range(1000):                     # 10 s at 100 Hz: far longer than reaching x = 2
        sim.command(0.5, 0.0)
        events += sim.step(0.01)
    collisions = [e for e in events if e['type'] == 'collision']
    assert len(collisions) == 1
    assert collisions[0]['obstacle'] == 'wall'
    assert 2.0 - ROBOT_RADIUS_M - 0.01 <= sim.x <= 2.0 - ROBOT_RADIUS_M
    assert sim.v == 0.0
    before = sim.x
    for _ in range(100):                      # keeps pushing: no jitter, no second event
        sim.command(0.5, 0.0)
        assert sim.step(0.01) == []
        assert before - 1e-9 <= sim.x <= 2.0 - ROBOT_RADIUS_M
    for _ in range(100):                      # backs off, then drives in again: a new contact
        sim.command(-0.5, 0.0)
        sim.step(0.01)
    assert sim.x < 2.0 - ROBOT_RADIUS_M - 0.1
    events = []
    for _ in range(200):
        sim.command(0.5, 0.0)
        events += sim.step(0.01)
    assert [e['type'] for e in events] == ['collision']


def test_limits_timeout_and_bad_commands():
    params = SimParams(max_linear_speed_mps=0.5, max_linear_accel_mps2=1.0, cmd_vel_timeout_s=0.2)
    sim = Sim(box_room(), params, seed=1)
    sim.command(5.0, 0.0)
    sim.step(0.1)
    assert sim.v == pytest.approx(0.1)        # acceleration bound
    for _ in range(10):
        sim.step(0.01)
    assert sim.v == pytest.approx(0.2)
    for _ in range(100):
        sim.command(5.0, 0.0)
        sim.step(0.01)
    assert sim.v == pytest.approx(0.5)        # speed bound
    for _ in range(150):                      # commands stop: the base stops
        sim.step(0.01)
    assert sim.v == 0.0
    x = sim.x
    assert sim.command(float('nan'), 0.0) is False
    assert sim.command(0.3, float('inf')) is False
    for _ in range(50):
        sim.step(0.01)
    assert sim.x == x and sim.v == 0.0 and sim.w == 0.0


def test_goal_reached_once():
    world = box_room(goal={'x': 1.0, 'y': 0.0})
    sim = Sim(world, SimParams(goal_tolerance_m=0.3, cmd_vel_timeout_s=1.0), seed=0)
    events = []
    for _ in range(600):
        sim.command(0.5, 0.0)
        events += sim.step(0.01)
    goals = [e for e in events if e['type'] == 'goal_reached']
    assert len(goals) == 1 and goals[0]['x'] >= 0.7
    assert set(goals[0]) >= {'type', 't', 'x', 'y', 'episode'}


def test_scan_agrees_with_geometry():
    sim = Sim(box_room(), seed=0)
    ranges = sim.scan(360, -math.pi, 0.05, 8.0, 0.0)
    assert ranges.shape == (360,) and ranges.dtype == np.float32
    assert ranges[180] == pytest.approx(2.0, abs=1e-5)      # straight ahead, wall at x = 2
    assert ranges[0] == pytest.approx(2.0, abs=1e-5)        # behind (angle -pi)
    assert ranges[270] == pytest.approx(2.0, abs=1e-5)      # left (+pi/2)
    assert ranges[135] == pytest.approx(2.0 * math.sqrt(2), abs=1e-4)   # into a free corner
    short = sim.scan(360, -math.pi, 0.05, 1.5, 0.0)
    assert np.isinf(short).all()                            # nothing within range_max
    noisy = Sim(box_room(), seed=3).scan(360, -math.pi, 0.05, 8.0, 0.05)
    assert 0.02 < float(np.std(noisy[170:191] - ranges[170:191])) < 0.1


def test_camera_intrinsics_and_bearings():
    cam = Camera(640, 480, math.radians(60.0))
    fx = 320.0 / math.tan(math.radians(30.0))
    assert cam.K == pytest.approx((fx, 0, 319.5, 0, fx, 239.5, 0, 0, 1))
    assert cam.bearings[0] == pytest.approx(math.radians(30.0), abs=0.002)    # left edge
    assert cam.bearings[-1] == pytest.approx(-math.radians(30.0), abs=0.002)
    assert cam.column_of_bearing(0.2) == pytest.approx(319.5 - fx * math.tan(0.2))


def test_render_agrees_with_geometry():
    world = box_room(target={'center': [1.5, 0.0], 'size': [0.3, 0.3]})
    cam = Camera(640, 480, math.radians(60.0), height_m=0.25)
    img, depth = cam.render(world, 0.0, 0.0, 0.0)
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
    assert depth.shape == (480, 640) and depth.dtype == np.uint16
    red = (img[:, :, 2] == 255) & (img[:, :, 1] == 0) & (img[:, :, 0] == 0)
    cols = np.flatnonzero(red.any(axis=0))
    assert cols.size > 0 and abs(cols.mean() - cam.cx) < 2.0          # target in the middle
    half_width = cam.fx * 0.15 / 1.35                                  # front face at x = 1.35
    assert cols.max() - cols.min() + 1 == pytest.approx(2 * half_width, abs=2)
    assert depth[int(cam.cy), 320] == pytest.approx(1350, abs=2)       # the target face in mm
    # A wall column: depth is the distance along the optical axis (2.0 m for the x = 2 wall).
    assert depth[int(cam.cy), 100] == pytest.approx(2000, abs=2)
    assert depth[0, 320] == 0                                          # ceiling: no return
    floor_row = 470
    assert depth[floor_row, 320] == pytest.approx(1000 * cam.fy * 0.25 / (floor_row - cam.cy),
                                                  abs=2)
    turned, _ = cam.render(world, 0.0, 0.0, math.pi)                   # facing away
    assert not ((turned[:, :, 2] == 255) & (turned[:, :, 1] == 0)).any()


def test_target_bearing_maps_to_its_column():
    world = box_room(target={'center': [1.5, 0.5], 'size': [0.2, 0.2]})
    cam = Camera(640, 480, math.radians(60.0))
    img, _ = cam.render(world, 0.0, 0.0, 0.0)
    red = (img[:, :, 2] == 255) & (img[:, :, 1] == 0) & (img[:, :, 0] == 0)
    cols = np.flatnonzero(red.any(axis=0))
    expected = cam.column_of_bearing(math.atan2(0.5, 1.5))
    assert abs(cols.mean() - expected) < 6.0 and expected < cam.cx    # left of centre


def test_same_seed_same_world_and_first_frames():
    a, b, c = generate_world(11), generate_world(11), generate_world(12)
    assert a.signature() == b.signature() != c.signature()
    cam = Camera(320, 240)
    frames = []
    for world in (a, b):
        sim = Sim(world, seed=11)
        img, depth = cam.render(world, sim.x, sim.y, sim.yaw)
        frames.append((img, depth, sim.scan(noise_std_m=0.01)))
    assert np.array_equal(frames[0][0], frames[1][0])
    assert np.array_equal(frames[0][1], frames[1][1])
    assert np.array_equal(frames[0][2], frames[1][2])


@pytest.mark.parametrize('seed', range(8))
def test_generated_worlds_have_a_free_path_and_clear_start(seed):
    world = generate_world(seed, goal_tolerance_m=0.5)
    assert world.clearance(world.start.x, world.start.y)[0] >= ROBOT_RADIUS_M
    assert has_free_path(world, (world.start.x, world.start.y), world.goal, 0.5)
    assert world.kinds.tolist().count(2) == 12         # the red target and two markers, 4 edges each
    targets = world.targets()
    assert sorted(targets) == ['blue', 'green', 'red'] and targets['red'] is world.target
    for colour, ob in targets.items():
        assert has_free_path(world, (world.start.x, world.start.y), ob.center, 0.5), colour
        others = [o.center for c, o in targets.items() if c != colour] + [(world.start.x, world.start.y)]
        assert min(np.hypot(ob.center[0] - x, ob.center[1] - y) for x, y in others) > 1.2


def test_scan_noise_depends_on_seed_and_step_only():
    a, b, c = Sim(box_room(), seed=5), Sim(box_room(), seed=5), Sim(box_room(), seed=6)
    a.scan(noise_std_m=0.02)                           # an extra scan does not shift the noise
    for sim in (a, b, c):
        for _ in range(3):
            sim.step(0.01)
    scans = [sim.scan(noise_std_m=0.02) for sim in (a, b, c)]
    assert np.array_equal(scans[0], scans[1])
    assert not np.array_equal(scans[0], scans[2])


def test_markers_from_a_world_file_are_targets_of_their_colour_and_seen_unshaded():
    world = world_from_dict({'room': {'min': [-3, -3], 'max': [3, 3]},
                             'target': {'center': [2.5, 0.0], 'size': [0.3, 0.3]},
                             'markers': [{'center': [0.0, 1.5], 'size': [0.3, 0.3], 'colour': 'blue'}],
                             'start': {'x': 0.0, 'y': 0.0, 'yaw': 1.5708}})
    assert sorted(world.targets()) == ['blue', 'red']
    bgr, _depth = Camera(160, 120).render(world, 0.0, 0.0, 1.5708)
    def seen(colour):       # unshaded pixels of exactly that colour
        return int(np.all(bgr == np.array(PALETTE[colour][::-1], np.uint8), axis=2).sum())
    assert seen('blue') > 50 and seen('red') == 0     # facing the marker, the target behind
    with pytest.raises(WorldError, match=r'markers\[0\]\.colour must be one of'):
        world_from_dict({'target': {'center': [2.5, 0.0], 'size': [0.3, 0.3]},
                         'markers': [{'center': [0.0, 1.5], 'size': [0.3, 0.3], 'colour': 'brown'}],
                         'start': {'x': 0.0, 'y': 0.0}})
