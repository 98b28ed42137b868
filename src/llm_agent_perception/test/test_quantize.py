"""Q(x) = round(S x + Z) and its inverse keep |x - x_hat| <= 1/(2S) inside the range."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from llm_agent_perception import quantize

ranges = st.tuples(st.floats(-1000, 1000), st.floats(0.01, 1000)).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=200, deadline=None)
@given(rng=ranges, max_error=st.floats(1e-3, 10.0), codec=st.sampled_from(quantize.CODECS),
       data=st.data())
def test_round_trip_error_within_bound(rng, max_error, codec, data):
    lo, hi = rng
    p = quantize.params_for_range(lo, hi, max_error)
    x = data.draw(arrays(np.float64, st.integers(1, 300),
                         elements=st.floats(lo, hi, allow_nan=False)))
    packed = quantize.pack(x, p, codec)
    x_hat = quantize.unpack(packed)
    assert x_hat.shape == x.shape and str(x_hat.dtype) == 'float64'
    bound = p.max_error
    assert bound <= max_error * (1 + 1e-9) or p.quantized_dtype == 'uint16'
    # 1/(2S) plus the rounding of float64 arithmetic on values of this size.
    assert np.all(np.abs(x - x_hat) <= bound * (1 + 1e-9) + 1e-12 * max(abs(lo), abs(hi), 1))


@settings(max_examples=100, deadline=None)
@given(x=arrays(np.float32, st.integers(1, 500), elements=st.floats(0.125, 30.0, width=32)))
def test_float32_scan_ranges_bound(x):
    p = quantize.params_for_range(0.1, 30.0, 0.005)
    x_hat = quantize.unpack(quantize.pack(x, p, 'zstd'))
    assert x_hat.dtype == np.float32
    # Plus float32's own rounding of the result (half an ulp of 30 m is ~1e-6 m).
    assert np.all(np.abs(x.astype(np.float64) - x_hat) <= 0.005 + 2e-6)


def test_type_choice_and_coarsening():
    assert quantize.params_for_range(0.0, 2.0, 0.005).quantized_dtype == 'uint8'
    assert quantize.params_for_range(0.0, 30.0, 0.005).quantized_dtype == 'uint16'
    p = quantize.params_for_range(0.0, 1e6, 1e-3)  # too fine for 16 bits: step grows
    assert p.quantized_dtype == 'uint16' and p.max_error > 1e-3
    x = np.linspace(0, 1e6, 1000)
    assert np.max(np.abs(quantize.unpack(quantize.pack(x, p)) - x)) <= p.max_error * (1 + 1e-9)


def test_outside_range_is_clipped_and_nonfinite_refused():
    p = quantize.params_for_range(0.0, 10.0, 0.01)
    x_hat = quantize.unpack(quantize.pack(np.array([-5.0, 15.0]), p))
    np.testing.assert_allclose(x_hat, [0.0, 10.0], atol=p.max_error)
    with pytest.raises(ValueError):
        quantize.pack(np.array([1.0, np.nan]), p)
    with pytest.raises(ValueError):
        quantize.params_for_range(1.0, 0.0, 0.1)


def test_unpack_rejects_inconsistent_payload():
    p = quantize.params_for_range(0.0, 10.0, 0.01)
    packed = quantize.pack(np.arange(10.0), p, 'zlib')
    packed.shape = (11,)
    with pytest.raises(ValueError):
        quantize.unpack(packed)
    packed.shape = (5,)
    with pytest.raises(ValueError):
        quantize.unpack(packed)


def test_scan_compresses_well_against_float32():
    rng = np.random.default_rng(0)
    # A room-like scan: piecewise smooth walls plus sensor noise.
    angles = np.linspace(-np.pi, np.pi, 720, endpoint=False)
    walls = np.minimum(4.0 / np.maximum(np.abs(np.cos(angles)), 1e-3),
                       3.0 / np.maximum(np.abs(np.sin(angles)), 1e-3))
    scan = (np.minimum(walls, 12.0) + rng.normal(0, 0.01, angles.size)).astype(np.float32)
    packed = quantize.pack(scan, quantize.params_for_range(0.1, 12.0, 0.005), 'zstd')
    assert len(packed.data) < 0.5 * scan.nbytes
