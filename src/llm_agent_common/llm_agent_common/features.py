"""The mobile-robot scenario's feature names: the Observation contract (docs/ros-api.md).

Perception computes them, the brain's rules, tree and caches read them, skills use them: this
is their one home. Add names, never rename them (users' rules and trees refer to them).
"""
from __future__ import annotations

# Nearest obstacle in six 60-degree sectors; sector k is centred on k * 60 degrees (left positive).
SECTOR_NAMES = ('front_range', 'front_left_range', 'left_range', 'rear_range', 'right_range',
                'front_right_range')
FEATURE_NAMES = ('front_range', 'front_left_range', 'front_right_range', 'left_range',
                 'right_range', 'rear_range', 'goal_distance', 'goal_bearing',
                 'target_visible', 'target_bearing', 'target_size', 'speed', 'yaw_rate')
# goal_distance when no goal is known (goal_bearing is then 0).
NO_GOAL_DISTANCE = -1.0
