"""The built-in 2D world: geometry, world files, generated worlds, unicycle physics, lidar, events.

Pure Python and numpy (no rclpy). The world frame is the `odom` frame: x forward at yaw 0,
y to the left, yaw counter-clockwise in radians.

World file schema (YAML, every length in metres, colours as a name or ``[r, g, b]`` 0..255):

.. code-block:: yaml

    name: room                      # optional, defaults to the file name
    wall_height_m: 1.0              # optional, height of walls for the camera
    room:                           # optional: four walls around an axis-aligned rectangle
      min: [-3.0, -3.0]
      max: [3.0, 3.0]
      colour: grey                  # optional
    walls:                          # optional: more walls as segments
      - {from: [0.0, -3.0], to: [0.0, -1.0], colour: grey}
    boxes:                          # optional: rectangular obstacles
      - {center: [1.0, 0.5], size: [0.6, 0.4], yaw: 0.0, colour: brown, height: 0.5}
    target:                         # required: the coloured target (an obstacle too)
      {center: [2.5, 0.0], size: [0.3, 0.3], colour: red, height: 0.4}
    markers:                        # optional: more targets, each of a named colour of its own
      - {center: [0.0, 2.5], size: [0.3, 0.3], colour: blue}
    goal: {x: 2.5, y: 0.0}          # optional, defaults to the target's centre
    start: {x: -2.0, y: 0.0, yaw: 0.0}   # required
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections import deque
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROBOT_RADIUS_M = 0.18
KIND_WALL, KIND_BOX, KIND_TARGET = 0, 1, 2
KIND_NAMES = ('wall', 'box', 'target')

# Named colours, RGB (converted to BGR for the bgr8 camera). The target's red is pure (255, 0, 0)
# so perception can find it by colour; box colours stay clear of the targets' hues (red, blue,
# green, yellow), which the camera renders unshaded.
PALETTE: Dict[str, Tuple[int, int, int]] = {
    'grey': (150, 150, 150),
    'gray': (150, 150, 150),
    'light_grey': (200, 200, 200),
    'dark_grey': (90, 90, 90),
    'brown': (139, 90, 43),
    'blue': (40, 80, 200),
    'green': (40, 160, 60),
    'yellow': (230, 200, 40),
    'white': (240, 240, 240),
    'black': (20, 20, 20),
    'red': (255, 0, 0),
}

_TOP_KEYS = {'name', 'wall_height_m', 'room', 'walls', 'boxes', 'target', 'markers', 'goal',
             'start'}
TARGET_COLOURS = ('red', 'blue', 'green', 'yellow')   # what perception can tell apart


class WorldError(ValueError):
    """A world file or world description is invalid; the message names the file and field."""


@dataclasses.dataclass(frozen=True)
class Pose2D:
    """A planar pose in the world (odom) frame."""

    x: float
    y: float
    yaw: float = 0.0


@dataclasses.dataclass(frozen=True)
class Obstacle:
    """A rectangular obstacle (a box or the target): centre, size, yaw, colour (RGB), height."""

    center: Tuple[float, float]
    size: Tuple[float, float]
    yaw: float
    rgb: Tuple[int, int, int]
    height_m: float

    def corners(self) -> np.ndarray:
        """Return the four corners counter-clockwise, shape (4, 2)."""
        hx, hy = self.size[0] / 2.0, self.size[1] / 2.0
        local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        rot = np.array([[c, -s], [s, c]])
        return local @ rot.T + np.asarray(self.center)


class World:
    """Static geometry of one world: segments with colour, height, kind and facing."""

    def __init__(self, name: str, walls: Sequence[Tuple[Tuple[float, float], Tuple[float, float],
                                                        Tuple[int, int, int]]],
                 boxes: Sequence[Obstacle], target: Obstacle, goal: Tuple[float, float],
                 start: Pose2D, wall_height_m: float = 1.0,
                 markers: Sequence[Tuple[str, Obstacle]] = ()) -> None:
        self.name = name
        self.boxes = list(boxes)
        self.target = target
        self.markers = [(str(colour), ob) for colour, ob in markers]
        self.goal = (float(goal[0]), float(goal[1]))
        self.start = start
        self.wall_height_m = float(wall_height_m)
        self.walls = [((float(a[0]), float(a[1])), (float(b[0]), float(b[1])), tuple(c))
                      for a, b, c in walls]
        segs: List[List[float]] = []
        rgb: List[Tuple[int, int, int]] = []
        heights: List[float] = []
        kinds: List[int] = []
        one_sided: List[bool] = []
        for a, b, colour in self.walls:
            segs.append([a[0], a[1], b[0], b[1]])
            rgb.append(colour)
            heights.append(self.wall_height_m)
            kinds.append(KIND_WALL)
            one_sided.append(False)
        targets = [target] + [ob for _, ob in self.markers]
        for kind, obstacles in ((KIND_BOX, self.boxes), (KIND_TARGET, targets)):
            for ob in obstacles:
                corners = ob.corners()
                for i in range(4):
                    a, b = corners[i], corners[(i + 1) % 4]
                    segs.append([a[0], a[1], b[0], b[1]])
                    rgb.append(ob.rgb)
                    heights.append(ob.height_m)
                    kinds.append(kind)
                    one_sided.append(True)  # closed convex outline: back faces are hidden
        self.segments = np.asarray(segs, dtype=np.float64).reshape(-1, 4)
        self.rgb = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
        self.heights = np.asarray(heights, dtype=np.float64)
        self.kinds = np.asarray(kinds, dtype=np.int64)
        self.one_sided = np.asarray(one_sided, dtype=bool)
        edge = self.segments[:, 2:] - self.segments[:, :2]
        length = np.linalg.norm(edge, axis=1)
        self.lengths = length
        # Outward normal of a counter-clockwise outline edge (ey, -ex); for walls, either side.
        normals = np.stack([edge[:, 1], -edge[:, 0]], axis=1)
        self.normals = normals / np.maximum(length, 1e-12)[:, None]

    def signature(self) -> Tuple[Any, ...]:
        """Return a hashable description, equal for identical worlds."""
        return (self.name, self.segments.round(9).tobytes(), self.rgb.tobytes(),
                self.heights.tobytes(), self.goal, dataclasses.astuple(self.start))

    def targets(self) -> Dict[str, Obstacle]:
        """Every target by colour name: the main target (its palette name, else 'target') and
        the markers."""
        names = {rgb: name for name, rgb in PALETTE.items()}
        out = {names.get(tuple(self.target.rgb), 'target'): self.target}
        out.update(self.markers)
        return out

    def clearance(self, x: float, y: float) -> Tuple[float, int]:
        """Return the distance from (x, y) to the nearest segment, and that segment's index."""
        d = point_segment_distances(np.array([x, y]), self.segments)
        i = int(np.argmin(d))
        return float(d[i]), i


# ----------------------------------------------------------------------------- geometry


def point_segment_distances(p: np.ndarray, segs: np.ndarray) -> np.ndarray:
    """Distances from point p (2,) to each segment (N, 4)."""
    a = segs[:, :2]
    e = segs[:, 2:] - a
    ee = np.einsum('ij,ij->i', e, e)
    t = np.clip(np.einsum('ij,ij->i', p - a, e) / np.maximum(ee, 1e-18), 0.0, 1.0)
    closest = a + t[:, None] * e
    return np.linalg.norm(p - closest, axis=1)


def ray_segment_distances(ox: float, oy: float, dirs: np.ndarray, segs: np.ndarray,
                          cull: Optional[np.ndarray] = None,
                          normals: Optional[np.ndarray] = None) -> np.ndarray:
    """Distances along unit rays dirs (R, 2) from (ox, oy) to every segment: (R, N), inf = miss.

    With ``cull`` (N,) bool and ``normals`` (N, 2), a culled segment only counts when the ray
    hits its front face (the ray runs against the normal).
    """
    ax, ay = segs[:, 0] - ox, segs[:, 1] - oy
    ex, ey = segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1]
    dx, dy = dirs[:, 0:1], dirs[:, 1:2]
    denom = dx * ey - dy * ex                       # d x e, (R, N)
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (ax * ey - ay * ex) / denom             # (a - p) x e / (d x e)
        s = (ax * dy - ay * dx) / denom             # (a - p) x d / (d x e)
    ok = (np.abs(denom) > 1e-12) & (t > 1e-9) & (s >= 0.0) & (s <= 1.0)
    if cull is not None and normals is not None:
        facing = dx * normals[:, 0] + dy * normals[:, 1]
        ok &= ~cull | (facing < 0.0)
    return np.where(ok, t, np.inf)


# ----------------------------------------------------------------------------- loading


def _colour(value: Any, where: str) -> Tuple[int, int, int]:
    if isinstance(value, str):
        key = value.strip().lower()
        if key not in PALETTE:
            raise WorldError(f'{where} must be one of {sorted(PALETTE)} or [r, g, b]')
        return PALETTE[key]
    if (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 255
                    for v in value)):
        return (int(value[0]), int(value[1]), int(value[2]))
    raise WorldError(f'{where} must be a colour name or [r, g, b] with values 0..255')


def _number(value: Any, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise WorldError(f'{where} must be a finite number')
    if positive and value <= 0:
        raise WorldError(f'{where} must be a positive number')
    return float(value)


def _pair(value: Any, where: str, positive: bool = False) -> Tuple[float, float]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                  and (v > 0 or not positive) for v in value))
    if not ok:
        kind = 'positive' if positive else 'finite'
        raise WorldError(f'{where} must be two {kind} numbers')
    return (float(value[0]), float(value[1]))


def _mapping(value: Any, where: str, allowed: set, required: Sequence[str] = ()) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise WorldError(f'{where} must be a mapping')
    for key in value:
        if key not in allowed:
            raise WorldError(f'{where}.{key} is not a known field (known: {sorted(allowed)})')
    for key in required:
        if key not in value:
            raise WorldError(f'{where}.{key} is missing')
    return value


def _obstacle(value: Any, where: str, default_colour: str, default_height: float) -> Obstacle:
    m = _mapping(value, where, {'center', 'size', 'yaw', 'colour', 'height'}, ('center', 'size'))
    return Obstacle(center=_pair(m['center'], f'{where}.center'),
                    size=_pair(m['size'], f'{where}.size', positive=True),
                    yaw=_number(m.get('yaw', 0.0), f'{where}.yaw'),
                    rgb=_colour(m.get('colour', default_colour), f'{where}.colour'),
                    height_m=_number(m.get('height', default_height), f'{where}.height',
                                     positive=True))


def world_from_dict(data: Any, default_name: str = 'world') -> World:
    """Build a World from a parsed world file; raise WorldError naming the bad field."""
    m = _mapping(data, 'world', _TOP_KEYS, ('target', 'start'))
    name = m.get('name', default_name)
    if not isinstance(name, str) or not name:
        raise WorldError('name must be a non-empty string')
    wall_height = _number(m.get('wall_height_m', 1.0), 'wall_height_m', positive=True)
    walls: List[Tuple[Tuple[float, float], Tuple[float, float], Tuple[int, int, int]]] = []
    if 'room' in m:
        room = _mapping(m['room'], 'room', {'min', 'max', 'colour'}, ('min', 'max'))
        lo, hi = _pair(room['min'], 'room.min'), _pair(room['max'], 'room.max')
        if not (hi[0] > lo[0] and hi[1] > lo[1]):
            raise WorldError('room.max must be greater than room.min in x and y')
        c = _colour(room.get('colour', 'grey'), 'room.colour')
        corners = [(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])]
        walls += [(corners[i], corners[(i + 1) % 4], c) for i in range(4)]
    wall_list = m.get('walls', [])
    if not isinstance(wall_list, list):
        raise WorldError('walls must be a list')
    for i, w in enumerate(wall_list):
        where = f'walls[{i}]'
        wm = _mapping(w, where, {'from', 'to', 'colour'}, ('from', 'to'))
        a, b = _pair(wm['from'], f'{where}.from'), _pair(wm['to'], f'{where}.to')
        if math.hypot(b[0] - a[0], b[1] - a[1]) < 1e-6:
            raise WorldError(f'{where}.to must differ from {where}.from')
        walls.append((a, b, _colour(wm.get('colour', 'grey'), f'{where}.colour')))
    box_list = m.get('boxes', [])
    if not isinstance(box_list, list):
        raise WorldError('boxes must be a list')
    boxes = [_obstacle(b, f'boxes[{i}]', 'brown', 0.5) for i, b in enumerate(box_list)]
    target = _obstacle(m['target'], 'target', 'red', 0.4)
    marker_list = m.get('markers', [])
    if not isinstance(marker_list, list):
        raise WorldError('markers must be a list')
    markers = []
    for i, entry in enumerate(marker_list):
        colour = entry.get('colour') if isinstance(entry, dict) else None
        if colour not in TARGET_COLOURS:
            raise WorldError(f'markers[{i}].colour must be one of {", ".join(TARGET_COLOURS)}')
        markers.append((colour, _obstacle(entry, f'markers[{i}]', colour, 0.4)))
    goal = target.center
    if 'goal' in m:
        g = _mapping(m['goal'], 'goal', {'x', 'y'}, ('x', 'y'))
        goal = (_number(g['x'], 'goal.x'), _number(g['y'], 'goal.y'))
    s = _mapping(m['start'], 'start', {'x', 'y', 'yaw'}, ('x', 'y'))
    start = Pose2D(_number(s['x'], 'start.x'), _number(s['y'], 'start.y'),
                   _number(s.get('yaw', 0.0), 'start.yaw'))
    world = World(name, walls, boxes, target, goal, start, wall_height, markers)
    clearance, _ = world.clearance(start.x, start.y)
    if clearance < ROBOT_RADIUS_M:
        raise WorldError(f'start must be at least {ROBOT_RADIUS_M} m from every wall and box '
                         f'(it is {clearance:.2f} m)')
    return world


def resolve_world_path(world_file: str, worlds_dir: Optional[str]) -> str:
    """Return the path of a world file given as a path or as a name in worlds_dir."""
    candidates = [world_file]
    if worlds_dir:
        candidates += [os.path.join(worlds_dir, world_file),
                       os.path.join(worlds_dir, world_file + '.yaml')]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise WorldError(f'{world_file}: no such world file (looked in {worlds_dir or "."})')


def load_world(path: str) -> World:
    """Load and validate a world file; errors read '<file>: <field> <problem>'."""
    import yaml

    base = os.path.basename(path)
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise WorldError(f'{base}: cannot read ({exc.strerror})') from None
    except yaml.YAMLError as exc:
        raise WorldError(f'{base}: not valid YAML ({exc})') from None
    try:
        return world_from_dict(data, os.path.splitext(base)[0])
    except WorldError as exc:
        raise WorldError(f'{base}: {exc}') from None


# ----------------------------------------------------------------------------- generation


def has_free_path(world: World, start: Tuple[float, float], goal: Tuple[float, float],
                  goal_tolerance_m: float, cell_m: float = 0.05,
                  margin_m: float = 0.03) -> bool:
    """Tell whether the robot can drive from start to within goal_tolerance_m of goal (grid BFS)."""
    segs = world.segments
    xs = np.concatenate([segs[:, 0], segs[:, 2], [start[0], goal[0]]])
    ys = np.concatenate([segs[:, 1], segs[:, 3], [start[1], goal[1]]])
    x0, y0 = xs.min() - cell_m, ys.min() - cell_m
    nx = int(math.ceil((xs.max() - x0) / cell_m)) + 2
    ny = int(math.ceil((ys.max() - y0) / cell_m)) + 2
    gx, gy = np.meshgrid(x0 + cell_m * np.arange(nx), y0 + cell_m * np.arange(ny), indexing='ij')
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    a = segs[:, :2]
    e = segs[:, 2:] - a
    ee = np.maximum(np.einsum('ij,ij->i', e, e), 1e-18)
    rel = pts[:, None, :] - a[None, :, :]
    t = np.clip(np.einsum('pnj,nj->pn', rel, e) / ee, 0.0, 1.0)
    dist = np.linalg.norm(rel - t[:, :, None] * e[None, :, :], axis=2).min(axis=1)
    free = (dist >= ROBOT_RADIUS_M + margin_m).reshape(nx, ny)
    reach = np.hypot(gx - goal[0], gy - goal[1]) <= goal_tolerance_m
    si, sj = int(round((start[0] - x0) / cell_m)), int(round((start[1] - y0) / cell_m))
    if not free[si, sj]:
        return False
    seen = np.zeros_like(free)
    seen[si, sj] = True
    queue = deque([(si, sj)])
    while queue:
        i, j = queue.popleft()
        if reach[i, j]:
            return True
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            a_i, a_j = i + di, j + dj
            if 0 <= a_i < nx and 0 <= a_j < ny and free[a_i, a_j] and not seen[a_i, a_j]:
                seen[a_i, a_j] = True
                queue.append((a_i, a_j))
    return False


def generate_world(seed: int, goal_tolerance_m: float = 0.5, max_tries: int = 200) -> World:
    """Generate a room with random boxes, a red target (the goal) and blue and green markers;
    the same seed gives the same world.

    Every generated world has a free path from the start to within goal_tolerance_m of the goal
    and of each marker.
    """
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        half_w, half_h = rng.uniform(2.5, 3.5), rng.uniform(2.5, 3.5)
        grey = PALETTE['grey']
        corners = [(-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h)]
        walls = [(corners[i], corners[(i + 1) % 4], grey) for i in range(4)]
        start = Pose2D(float(-half_w + rng.uniform(0.5, 1.0)),
                       float(rng.uniform(-half_h + 0.6, half_h - 0.6)),
                       float(rng.uniform(-math.pi / 4, math.pi / 4)))
        tc = (float(half_w - rng.uniform(0.5, 1.2)),
              float(rng.uniform(-half_h + 0.6, half_h - 0.6)))
        target = Obstacle(tc, (0.3, 0.3), 0.0, PALETTE['red'], 0.4)
        boxes: List[Obstacle] = []
        for _ in range(int(rng.integers(2, 5))):
            for _attempt in range(20):
                c = (float(rng.uniform(-half_w + 0.5, half_w - 0.5)),
                     float(rng.uniform(-half_h + 0.5, half_h - 0.5)))
                size = (float(rng.uniform(0.3, 0.8)), float(rng.uniform(0.3, 0.8)))
                reach = math.hypot(*size) / 2
                if (math.hypot(c[0] - start.x, c[1] - start.y) > reach + ROBOT_RADIUS_M + 0.3
                        and math.hypot(c[0] - tc[0], c[1] - tc[1]) > reach + 0.7):
                    colour = PALETTE['brown'] if rng.random() < 0.5 else PALETTE['dark_grey']
                    boxes.append(Obstacle(c, size, float(rng.uniform(0, math.pi)), colour, 0.5))
                    break
        plain = World(f'generated_{seed}', walls, boxes, target, tc, start)
        markers = _place_markers(rng, plain, half_w, half_h, ('blue', 'green'))
        world = World(plain.name, walls, boxes, target, tc, start, markers=markers)
        goals = [tc] + [ob.center for _, ob in markers]
        if len(markers) == 2 and all(has_free_path(world, (start.x, start.y), g, goal_tolerance_m)
                                     for g in goals):
            return world
    raise WorldError(f'seed {seed}: no world with a free path after {max_tries} tries')


def _place_markers(rng: np.random.Generator, world: World, half_w: float, half_h: float,
                   colours: Sequence[str]) -> List[Tuple[str, Obstacle]]:
    """A 0.3 m marker of each colour at a free spot at least 1.2 m from the start, the target
    and each other (fewer where no spot is found)."""
    placed: List[Tuple[str, Obstacle]] = []
    keep_away = [(world.start.x, world.start.y), world.target.center]
    for colour in colours:
        for _attempt in range(40):
            c = (float(rng.uniform(-half_w + 0.6, half_w - 0.6)),
                 float(rng.uniform(-half_h + 0.6, half_h - 0.6)))
            if world.clearance(*c)[0] > 0.6 and all(
                    math.hypot(c[0] - p[0], c[1] - p[1]) > 1.2 for p in keep_away):
                placed.append((colour, Obstacle(c, (0.3, 0.3), 0.0, PALETTE[colour], 0.4)))
                keep_away.append(c)
                break
    return placed


# ----------------------------------------------------------------------------- simulation


@dataclasses.dataclass
class SimParams:
    """Limits and tolerances of the simulated base (units in the names)."""

    max_linear_speed_mps: float = 0.5
    max_angular_speed_radps: float = 1.5
    max_linear_accel_mps2: float = 1.0
    max_angular_accel_radps2: float = 3.0
    goal_tolerance_m: float = 0.5
    cmd_vel_timeout_s: float = 0.5
    contact_release_m: float = 0.02   # hysteresis: contact ends this far beyond touching


@dataclasses.dataclass(frozen=True)
class RobotState:
    """A snapshot of the episode: sim time, pose, velocities."""

    t: float
    x: float
    y: float
    yaw: float
    v: float
    w: float
    episode: int
    steps: int = 0


def _clip(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))


class Sim:
    """One episode in a world: the unicycle robot, collisions, goal, lidar noise.

    Deterministic: the same world, seed and commands per step give the same episode.
    """

    def __init__(self, world: World, params: Optional[SimParams] = None, seed: int = 0,
                 t0: float = 0.0) -> None:
        self.params = params or SimParams()
        self.t = t0
        self.episode = 0
        self.collisions = 0
        self.goals_reached = 0
        self.reset(world, seed)

    def reset(self, world: World, seed: int) -> Dict[str, Any]:
        """Restart the episode in world; keep sim time running; return the reset event."""
        self.world = world
        self.seed = seed
        self.steps = 0                      # physics steps in this episode
        self.x, self.y, self.yaw = world.start.x, world.start.y, world.start.yaw
        self.v = self.w = 0.0
        self.cmd_v = self.cmd_w = 0.0
        self.cmd_t = -math.inf
        self.in_contact = False
        self.goal_done = False
        self.episode += 1
        return self._event('reset', seed=seed, world=world.name)

    def _event(self, kind: str, **fields: Any) -> Dict[str, Any]:
        event = {'type': kind, 't': round(self.t, 6), 'x': round(self.x, 4),
                 'y': round(self.y, 4), 'episode': self.episode}
        event.update(fields)
        return event

    def state(self) -> RobotState:
        """Return a snapshot of the robot and the sim time."""
        return RobotState(self.t, self.x, self.y, self.yaw, self.v, self.w, self.episode,
                          self.steps)

    def command(self, v: float, w: float) -> bool:
        """Set the velocity command; a non-finite one is refused, stops the robot, returns False."""
        if not (math.isfinite(v) and math.isfinite(w)):
            self.cmd_v = self.cmd_w = 0.0
            self.cmd_t = self.t
            return False
        p = self.params
        self.cmd_v = _clip(v, p.max_linear_speed_mps)
        self.cmd_w = _clip(w, p.max_angular_speed_radps)
        self.cmd_t = self.t
        return True

    def step(self, dt: float) -> List[Dict[str, Any]]:
        """Advance the episode by dt seconds; return the events that happened."""
        p = self.params
        events: List[Dict[str, Any]] = []
        fresh = (self.t - self.cmd_t) <= p.cmd_vel_timeout_s
        want_v, want_w = (self.cmd_v, self.cmd_w) if fresh else (0.0, 0.0)
        self.v += _clip(want_v - self.v, p.max_linear_accel_mps2 * dt)
        self.w += _clip(want_w - self.w, p.max_angular_accel_radps2 * dt)
        heading = self.yaw + 0.5 * self.w * dt
        nx, ny = self.x + self.v * dt * math.cos(heading), self.y + self.v * dt * math.sin(heading)
        self.yaw = math.atan2(math.sin(self.yaw + self.w * dt), math.cos(self.yaw + self.w * dt))
        self.t += dt
        self.steps += 1
        if nx != self.x or ny != self.y:
            here, _ = self.world.clearance(self.x, self.y)
            there, seg = self.world.clearance(nx, ny)
            if there < ROBOT_RADIUS_M and there < here:
                # Blocked: move to the last touching-free point on the way, then stop.
                lo, hi = 0.0, 1.0
                for _ in range(20):
                    mid = 0.5 * (lo + hi)
                    c, _ = self.world.clearance(self.x + mid * (nx - self.x),
                                                self.y + mid * (ny - self.y))
                    if c >= ROBOT_RADIUS_M:
                        lo = mid
                    else:
                        hi = mid
                self.x += lo * (nx - self.x)
                self.y += lo * (ny - self.y)
                self.v = 0.0
                if not self.in_contact:
                    self.in_contact = True
                    self.collisions += 1
                    events.append(self._event('collision',
                                              obstacle=KIND_NAMES[int(self.world.kinds[seg])]))
            else:
                self.x, self.y = nx, ny
        if self.in_contact:
            c, _ = self.world.clearance(self.x, self.y)
            if c > ROBOT_RADIUS_M + p.contact_release_m:
                self.in_contact = False
        if not self.goal_done:
            d = math.hypot(self.world.goal[0] - self.x, self.world.goal[1] - self.y)
            if d <= p.goal_tolerance_m:
                self.goal_done = True
                self.goals_reached += 1
                events.append(self._event('goal_reached', distance=round(d, 4)))
        return events

    def scan(self, n_beams: int = 360, angle_min: float = -math.pi,
             range_min: float = 0.05, range_max: float = 8.0,
             noise_std_m: float = 0.0, state: Optional[RobotState] = None) -> np.ndarray:
        """Return lidar ranges from the robot centre (float32; inf = no return within range_max).

        ``state`` (a snapshot of this episode) scans from that instant instead of now.
        """
        s = state or self.state()
        inc = 2.0 * math.pi / n_beams
        angles = s.yaw + angle_min + inc * np.arange(n_beams)
        dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        r = ray_segment_distances(s.x, s.y, dirs, self.world.segments).min(axis=1)
        if noise_std_m > 0.0:
            # Noise drawn from (seed, step): the same episode state always gets the same noise,
            # however many scans were published or dropped before.
            rng = np.random.default_rng((self.seed, s.steps))
            r = r + rng.normal(0.0, noise_std_m, n_beams)
        r = np.where(np.isfinite(r) & (r <= range_max), np.maximum(r, range_min), np.inf)
        return r.astype(np.float32)
