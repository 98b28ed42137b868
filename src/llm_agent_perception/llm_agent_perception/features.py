"""The Observation's named features, computed from plain numbers and arrays (no rclpy).

The names are llm_agent_common.features'. Every value is a finite float; when no goal is known
goal_distance is NO_GOAL_DISTANCE (-1) and goal_bearing 0; when no target is seen,
target_visible, target_bearing and target_size are 0.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from llm_agent_common.angles import wrap_angle
from llm_agent_common.features import FEATURE_NAMES, NO_GOAL_DISTANCE, SECTOR_NAMES

SECTOR_WIDTH = math.pi / 3.0

# OpenCV HSV hue is 0..179 (degrees / 2). Red wraps around 0.
TARGET_HUES: Dict[str, Tuple[Tuple[int, int], ...]] = {
    'red': ((0, 10), (170, 179)),
    'yellow': ((20, 35),),
    'green': ((40, 85),),
    'blue': ((100, 130),),
}


_COLOUR_WORD = re.compile(r'\b(' + '|'.join(TARGET_HUES) + r')\b', re.IGNORECASE)


def instruction_colour(text: str) -> Optional[str]:
    """The first target colour an instruction names ('go to the blue one, then red' -> blue),
    or None when it names none."""
    match = _COLOUR_WORD.search(text or '')
    return match.group(1).lower() if match else None


def sector_ranges(ranges: Sequence[float], angle_min: float, angle_increment: float,
                  range_min: float, range_max: float,
                  laser_pose: Tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Dict[str, float]:
    """Nearest obstacle in each of six 60-degree sectors around the base; range_max where nothing
    is seen.

    Distances and sectors are taken from the base's centre: each beam's end point is moved from
    the laser's pose on the base (x forward, y left, yaw; m, m, rad) into the base frame, so a
    laser mounted off-centre or facing elsewhere reports what the robot itself has around it.
    A reading closer than the laser can measure (-inf, 0, below range_min: REP 117) is an
    obstacle at range_min, never a clear sector; NaN (no answer) is skipped. A bad range_min
    (negative or NaN) is taken as 0; a scan with non-finite angles, range_max or laser pose has
    no usable sector, and every sector reads 0 (blocked) so that nothing downstream takes it for
    a clear way.
    """
    r = np.asarray(ranges, dtype=np.float64)
    try:
        angle_min, angle_increment, range_max, range_min = (
            float(v) for v in (angle_min, angle_increment, range_max, range_min))
        lx, ly, lyaw = (float(v) for v in laser_pose)
    except (OverflowError, TypeError, ValueError):
        angle_min = lx = ly = lyaw = math.nan
    if not all(math.isfinite(v) for v in (angle_min, angle_increment, range_max, lx, ly, lyaw)) \
            or range_max <= 0:
        return {name: 0.0 for name in SECTOR_NAMES}
    out = {name: float(range_max) for name in SECTOR_NAMES}
    if r.size == 0:
        return out
    range_min = float(range_min) if math.isfinite(range_min) and range_min > 0 else 0.0
    with np.errstate(invalid='ignore'):
        close = (r == -np.inf) | (np.isfinite(r) & (r < max(range_min, 1e-9)))
    r = np.where(close, range_min, r)
    with np.errstate(all='ignore'):   # a huge increment overflows: those beams are dropped
        beam = lyaw + angle_min + angle_increment * np.arange(r.size)
        valid = np.isfinite(r) & (r >= range_min) & (r <= range_max) & np.isfinite(beam)
        beam = np.where(valid, beam, 0.0)
        dist = np.where(valid, r, 0.0)
        if lx == 0.0 and ly == 0.0:   # the laser at the centre: its own ranges and angles, exactly
            centre_dist, bearing = dist, beam
        else:
            px, py = lx + dist * np.cos(beam), ly + dist * np.sin(beam)
            centre_dist = np.hypot(px, py)
            # A point at the centre itself has no direction of its own: it takes its beam's.
            bearing = np.where(centre_dist > 1e-9, np.arctan2(py, px), beam)
        wrapped = (bearing + math.pi) % (2.0 * math.pi) - math.pi
        sector = np.rint(wrapped / SECTOR_WIDTH).astype(int) % 6
    for k, name in enumerate(SECTOR_NAMES):
        sel = valid & (sector == k)
        if np.any(sel):
            out[name] = float(np.min(centre_dist[sel]))
    return out


def goal_features(robot_x: float, robot_y: float, robot_yaw: float,
                  goal: Optional[Tuple[float, float]]) -> Tuple[float, float]:
    """Return (distance, bearing left-positive) to the goal, or (NO_GOAL_DISTANCE, 0)."""
    if goal is None:
        return NO_GOAL_DISTANCE, 0.0
    dx, dy = goal[0] - robot_x, goal[1] - robot_y
    return math.hypot(dx, dy), wrap_angle(math.atan2(dy, dx) - robot_yaw)


@dataclass
class Target:
    """The largest blob of the target colour: centroid column (pixels) and size fraction."""

    visible: bool
    u: float = 0.0
    size: float = 0.0


def detect_target(bgr: np.ndarray, color: str = 'red', min_saturation: int = 100,
                  min_value: int = 60, min_size: float = 0.0005) -> Target:
    """Find the largest blob of the colour in HSV; sizes are fractions of the image."""
    if color not in TARGET_HUES:
        raise ValueError(f'unknown colour {color!r}, expected one of {sorted(TARGET_HUES)}')
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    mask = np.zeros(hsv.shape[:2], dtype=np.uint8)
    for lo, hi in TARGET_HUES[color]:
        mask |= cv2.inRange(hsv, (lo, min_saturation, min_value), (hi, 255, 255))
    count, _labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return Target(False)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    size = float(stats[best, cv2.CC_STAT_AREA]) / float(mask.size)
    if size < min_size:
        return Target(False)
    return Target(True, float(centroids[best][0]), size)


def pixel_bearing(u: float, width: int, k: Optional[Sequence[float]] = None,
                  k_width: int = 0, hfov_rad: float = math.radians(60.0)) -> float:
    """Bearing of image column u, positive to the left: from K (fx, cx) if given, else the hfov."""
    if k is not None and len(k) >= 3 and k[0] > 0:
        scale = width / k_width if k_width > 0 else 1.0
        fx, cx = k[0] * scale, k[2] * scale
    else:
        fx = (width / 2.0) / math.tan(hfov_rad / 2.0)
        cx = width / 2.0
    return math.atan2(cx - u, fx)


def feature_vector(sectors: Dict[str, float], goal: Tuple[float, float],
                   target: Tuple[float, float, float], speed: float, yaw_rate: float,
                   clear_range: float) -> List[float]:
    """Values in FEATURE_NAMES order; any non-finite input becomes its 'nothing known' value."""
    raw = dict(sectors)
    raw['goal_distance'], raw['goal_bearing'] = goal
    raw['target_visible'], raw['target_bearing'], raw['target_size'] = target
    raw['speed'], raw['yaw_rate'] = speed, yaw_rate
    fallback = {name: clear_range for name in SECTOR_NAMES}
    fallback['goal_distance'] = NO_GOAL_DISTANCE
    out = []
    for name in FEATURE_NAMES:
        v = float(raw.get(name, fallback.get(name, 0.0)))
        if not math.isfinite(v):
            v = float(fallback.get(name, 0.0))
        out.append(v)
    return out


def summary(names: Sequence[str], values: Sequence[float], color: str = 'red') -> str:
    """The scene in a few words for the LLM: only what the features do not say (the colour the
    observer looks for). The brain writes the features out itself; a prose restatement of all
    13 here cost the model ~110 more tokens per decision, three times its time."""
    f = dict(zip(names, values, strict=False))
    return f'{color} target ' + ('visible' if f.get('target_visible', 0.0) >= 0.5 else 'unseen')
