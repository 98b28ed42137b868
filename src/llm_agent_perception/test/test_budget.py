"""Budget mode holds a bytes-per-second target on a moving real-photo sequence."""
import numpy as np
import pytest
from llm_agent_perception.budget import BudgetController
from llm_agent_samples.photos import panning

from llm_agent_perception import image_codec

FPS = 30.0


def run_sequence(budget_bytes_per_s: float, frames: int = 100, initial_quality: int = 75):
    ctl = BudgetController(budget_bytes_per_s, min_quality=5, max_quality=95,
                           initial_quality=initial_quality)
    sizes, qualities = [], []
    for frame in panning(frames):
        q = ctl.quality
        size = len(image_codec.encode(frame, 'bgr8', 'jpeg', q).data)
        ctl.update(size, 1.0 / FPS)
        sizes.append(size)
        qualities.append(q)
    return np.array(sizes), np.array(qualities)


@pytest.mark.parametrize('bytes_per_frame,initial', [(6000, 75), (12000, 30), (4000, 95)])
def test_budget_holds_target_within_10_percent(bytes_per_frame, initial):
    budget = bytes_per_frame * FPS
    sizes, qualities = run_sequence(budget, initial_quality=initial)
    rate = sizes.sum() / (len(sizes) / FPS)
    assert abs(rate - budget) / budget <= 0.10, (rate, budget)
    # Also over the second half alone, once settled.
    rate2 = sizes[50:].sum() / (50 / FPS)
    assert abs(rate2 - budget) / budget <= 0.10, (rate2, budget)
    # No oscillation: after settling, the quality rarely reverses direction and moves little.
    steps = np.diff(qualities[30:])
    moves = steps[steps != 0]
    reversals = int(np.sum(np.sign(moves[1:]) != np.sign(moves[:-1])))
    assert reversals <= 10, qualities
    assert np.max(np.abs(steps)) <= 8


def test_budget_stays_in_its_quality_bounds():
    ctl = BudgetController(1.0, min_quality=20, max_quality=60)
    for _ in range(20):
        ctl.update(100000, 1 / FPS)
    assert ctl.quality == 20
    ctl = BudgetController(1e9, min_quality=20, max_quality=60)
    for _ in range(20):
        ctl.update(100, 1 / FPS)
    assert ctl.quality == 60


def test_budget_rejects_bad_settings():
    with pytest.raises(ValueError):
        BudgetController(0)
    with pytest.raises(ValueError):
        BudgetController(1000, min_quality=50, max_quality=40)
