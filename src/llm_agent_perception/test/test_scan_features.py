"""Scan clean-up and the Observation's features on constructed scans and images."""
import math

import cv2
import numpy as np
import pytest
from llm_agent_perception.image_codec import BadInput
from llm_agent_perception.scan_processing import ScanMeta, filter_scan
from llm_agent_samples.photos import photo

from llm_agent_perception import features

META = ScanMeta(angle_min=-math.pi, angle_max=math.pi - math.pi / 180,
                angle_increment=math.pi / 180, range_min=0.1, range_max=10.0)


def test_filter_handles_nonfinite_and_clamps():
    r = np.full(360, 3.0, np.float32)
    r[10] = np.nan
    r[20] = np.inf
    r[30] = -np.inf
    r[40] = 50.0
    r[50] = 0.01
    r[100:110] = np.nan  # a gap wider than the median window
    out = filter_scan(r, META, median_window=5, downsample_factor=1)
    assert np.all(np.isfinite(out.ranges))
    assert np.all((out.ranges >= 0.1) & (out.ranges <= 10.0))
    assert out.nonfinite_in == 13
    assert out.ranges[10] == pytest.approx(3.0)  # isolated NaN filled by its neighbours
    assert out.ranges[105] == pytest.approx(10.0)  # no evidence: clear


def test_median_removes_speckle_but_keeps_wide_obstacle():
    r = np.full(360, 5.0, np.float32)
    r[100] = 0.3  # one-beam speckle
    r[200:210] = 1.0  # a real object 10 beams wide
    out = filter_scan(r, META, median_window=5).ranges
    assert out[100] == pytest.approx(5.0)
    assert np.all(out[202:208] == pytest.approx(1.0))


def test_downsample_keeps_nearest_and_fixes_geometry():
    r = np.full(360, 5.0, np.float32)
    r[7] = 1.0
    out = filter_scan(r, META, median_window=1, downsample_factor=4)
    assert out.ranges.size == 90
    assert out.ranges[1] == pytest.approx(1.0)
    assert out.meta.angle_increment == pytest.approx(4 * META.angle_increment)
    assert out.meta.angle_max == pytest.approx(META.angle_min + 89 * 4 * META.angle_increment)


@pytest.mark.parametrize('ranges,meta', [
    (np.full(10, np.nan, np.float32), META),
    (np.zeros(0, np.float32), META),
    (np.ones(10, np.float32), ScanMeta(0.0, 1.0, 0.0, 0.1, 10.0)),
    (np.ones(10, np.float32), ScanMeta(0.0, 1.0, 0.1, 5.0, 1.0)),
    (np.ones(10, np.float32), ScanMeta(0.0, 1.0, 0.1, 0.1, float('nan'))),
])
def test_bad_scans_raise(ranges, meta):
    with pytest.raises(BadInput):
        filter_scan(ranges, meta)


def test_sectors_on_constructed_scan():
    r = np.full(360, 10.0)
    angles = META.angle_min + META.angle_increment * np.arange(360)
    def put(deg, value):
        r[int(np.argmin(np.abs(angles - math.radians(deg))))] = value
    for deg, value in ((0, 1.0), (55, 2.0), (-65, 3.0), (120, 4.0), (-110, 5.0), (179, 6.0)):
        put(deg, value)
    s = features.sector_ranges(r, META.angle_min, META.angle_increment, 0.1, 10.0)
    assert s == {'front_range': 1.0, 'front_left_range': 2.0, 'front_right_range': 3.0,
                 'left_range': 4.0, 'right_range': 5.0, 'rear_range': 6.0}
    # A front-only scan (-30..30 deg) leaves the other sectors clear (range_max).
    s = features.sector_ranges([2.0] * 61, -math.pi / 6, math.pi / 180, 0.1, 8.0)
    assert s['front_range'] == 2.0 and s['rear_range'] == 8.0 and s['left_range'] == 8.0


def test_goal_features():
    d, b = features.goal_features(1.0, 1.0, math.pi / 2, (1.0, 3.0))
    assert d == pytest.approx(2.0) and b == pytest.approx(0.0)
    d, b = features.goal_features(0.0, 0.0, 0.0, (0.0, 2.0))
    assert b == pytest.approx(math.pi / 2)  # to the left is positive
    assert features.goal_features(0, 0, 0, None) == (features.NO_GOAL_DISTANCE, 0.0)


def test_red_target_found_on_a_real_photo_with_bearing_and_size():
    img = cv2.resize(photo('rocket'), (640, 480))
    # A saturated red square on the left side of the frame, 80x80 px.
    img[200:280, 100:180] = (0, 0, 230)
    # rocket() (a launch pad under a blue sky) has no red blob of its own.
    t = features.detect_target(img, 'red')
    assert t.visible
    assert t.u == pytest.approx(139.5, abs=3)
    assert t.size == pytest.approx(80 * 80 / (640 * 480), rel=0.3)
    bearing = features.pixel_bearing(t.u, 640, hfov_rad=math.radians(60))
    assert bearing == pytest.approx(math.atan((320 - 139.5) / (320 / math.tan(math.radians(30)))),
                                    abs=0.01)
    assert bearing > 0  # left of centre


def test_no_target_in_plain_photo_of_other_colour():
    img = cv2.resize(photo('astronaut'), (320, 240))
    assert not features.detect_target(img, 'green').visible


def test_bearing_from_camera_info_k_scaled_to_image_width():
    k = [500.0, 0, 300.0, 0, 500.0, 240.0, 0, 0, 1]
    assert features.pixel_bearing(300.0, 640, k, 640) == pytest.approx(0.0)
    assert features.pixel_bearing(150.0, 320, k, 640) == pytest.approx(0.0)
    assert features.pixel_bearing(800.0, 640, k, 640) == pytest.approx(math.atan2(-500, 500))


def test_feature_vector_is_finite_in_name_order_and_summary_is_one_line():
    sectors = {n: 2.0 for n in features.SECTOR_NAMES}
    sectors['front_range'] = float('nan')
    values = features.feature_vector(sectors, (float('inf'), 0.3), (1.0, -0.2, 0.05),
                                     0.25, float('nan'), clear_range=10.0)
    assert len(values) == len(features.FEATURE_NAMES) == 13
    assert all(math.isfinite(v) for v in values)
    f = dict(zip(features.FEATURE_NAMES, values, strict=False))
    assert f['front_range'] == 10.0 and f['goal_distance'] == -1.0 and f['yaw_rate'] == 0.0
    assert f['target_bearing'] == -0.2 and f['speed'] == 0.25
    text = features.summary(features.FEATURE_NAMES, values)
    assert '\n' not in text and 'red target visible' in text


def test_largest_red_blob_wins_on_a_photo_with_red_of_its_own():
    img = cv2.resize(photo('coffee'), (640, 480))  # a red cup and saucer fill ~30% of it
    t = features.detect_target(img, 'red')
    assert t.visible and t.size > 0.1


@pytest.mark.parametrize('close', [float('-inf'), 0.0, 0.02])
def test_readings_closer_than_range_min_are_obstacles_not_a_clear_sector(close):
    ranges = [5.0] * 360
    ranges[0] = close  # straight ahead
    s = features.sector_ranges(ranges, 0.0, 2 * math.pi / 360, 0.05, 8.0)
    assert s['front_range'] == pytest.approx(0.05)
    s = features.sector_ranges(ranges, 0.0, 2 * math.pi / 360, float('nan'), 8.0)
    assert s['front_range'] <= 0.02 + 1e-9, 'a NaN range_min is taken as 0'


def test_scans_with_unusable_geometry_read_as_blocked():
    ranges = [5.0] * 36
    for a0, inc, rmax in ((float('nan'), 0.1, 8.0), (0.0, float('inf'), 8.0), (0.0, 0.1, float('nan'))):
        s = features.sector_ranges(ranges, a0, inc, 0.05, rmax)
        assert set(s.values()) == {0.0}
    nan_ahead = [float('nan')] + [5.0] * 359
    s = features.sector_ranges(nan_ahead, 0.0, 2 * math.pi / 360, 0.05, 8.0)
    assert s['front_range'] == 5.0, 'a NaN beam is skipped, its sector still reads what it sees'


def test_sectors_are_seen_from_the_base_centre_for_an_off_centre_laser():
    # A laser 0.3 m ahead of the centre, facing backwards: a wall 1 m behind the laser (beam
    # angle 0) is 0.7 m behind the robot's centre, and a box 1 m ahead of the centre is seen by
    # the laser's beam at pi, 0.7 m away.
    inc = 2 * math.pi / 360
    ranges = [float('inf')] * 360
    ranges[0] = 1.0
    ranges[180] = 0.7
    s = features.sector_ranges(ranges, 0.0, inc, 0.05, 8.0, laser_pose=(0.3, 0.0, math.pi))
    assert s['rear_range'] == pytest.approx(0.7)
    assert s['front_range'] == pytest.approx(1.0)
    # The same scan read as if the laser sat at the centre facing forward swaps them: the
    # pose is what places the obstacles.
    s0 = features.sector_ranges(ranges, 0.0, inc, 0.05, 8.0)
    assert s0['front_range'] == pytest.approx(1.0) and s0['rear_range'] == pytest.approx(0.7)
    s1 = features.sector_ranges(ranges, 0.0, inc, 0.05, 8.0, laser_pose=(0.3, 0.0, 0.0))
    assert s1['front_range'] == pytest.approx(1.3) and s1['rear_range'] == pytest.approx(0.4)


def test_a_reading_too_close_for_an_off_centre_laser_is_an_obstacle_at_the_laser():
    ranges = [5.0] * 360
    ranges[120] = float('-inf')   # back to the laser's left, closer than range_min
    s = features.sector_ranges(ranges, 0.0, 2 * math.pi / 360, 0.05, 8.0,
                               laser_pose=(0.0, 0.2, 0.0))
    a = math.radians(120)
    assert s['left_range'] == pytest.approx(math.hypot(0.05 * math.cos(a), 0.2 + 0.05 * math.sin(a)))


def test_a_non_finite_laser_pose_reads_as_blocked():
    s = features.sector_ranges([5.0] * 36, 0.0, 0.1, 0.05, 8.0, laser_pose=(math.nan, 0.0, 0.0))
    assert set(s.values()) == {0.0}


def test_a_range_max_beyond_float32_is_refused():
    # Found by the fuzz suite: 3.4028236e38 as range_max became inf in the float32 ranges.
    meta = ScanMeta(angle_min=0.0, angle_max=0.0, angle_increment=1.0,
                    range_min=3.4028235677973366e+38, range_max=3.402823567797337e+38)
    with pytest.raises(BadInput, match='float32'):
        filter_scan([0.0], meta, 1, 1)


def test_beams_whose_angle_overflows_are_dropped_not_put_in_a_random_sector():
    # From beam 2 on, 1e308 * index is inf: those beams have no direction and count nowhere.
    ranges = [0.5] * 10
    s = features.sector_ranges(ranges, 0.0, 1e308, 0.05, 8.0)
    assert s == features.sector_ranges(ranges[:2], 0.0, 1e308, 0.05, 8.0)
