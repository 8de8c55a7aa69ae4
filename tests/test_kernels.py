"""The kernels: accuracy to the contract's ULP bounds, special values, no warnings."""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pipeline
from pipeline import log_sigmoid, sigmoid, sigmoid_derivative

mpmath.mp.dps = 60
BOUNDS = {"sigmoid": 2, "log_sigmoid": 2, "sigmoid_derivative": 4}
KERNELS = {"sigmoid": sigmoid, "log_sigmoid": log_sigmoid,
           "sigmoid_derivative": sigmoid_derivative}


def _mp_exact(name: str, x: float):
    v = mpmath.mpf(x)
    s = 1 / (1 + mpmath.exp(-v))
    if name == "sigmoid":
        return s
    if name == "log_sigmoid":
        return -mpmath.log1p(mpmath.exp(-v)) if v > -50 else v - mpmath.log1p(mpmath.exp(v))
    return s * (1 - s) if v < 0 else mpmath.exp(-v) / (1 + mpmath.exp(-v)) ** 2


def _ld_exact(name: str, x: np.ndarray) -> np.ndarray:
    """Long-double reference (64-bit mantissa: 11 bits beyond float64)."""
    x = x.astype(np.longdouble)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(x))
        if name == "sigmoid":
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        if name == "log_sigmoid":
            return np.minimum(x, 0) - np.log1p(e)
        return e / (1 + e) ** 2


def ulp_distance(got: np.ndarray, exact_rounded: np.ndarray) -> np.ndarray:
    """Number of representable values between got and the exactly rounded value."""
    it = np.int64 if got.dtype == np.float64 else np.int32

    def ordered(v):
        i = v.view(it).astype(np.int64)
        return np.where(i < 0, np.iinfo(it).min - i, i)

    return np.abs(ordered(got) - ordered(exact_rounded))


def _grid(dtype) -> np.ndarray:
    hi = 760.0 if dtype == np.float64 else 110.0
    rng = np.random.default_rng(7)
    parts = [np.linspace(-hi, hi, 400_001), rng.standard_normal(200_000) * 30,
             rng.uniform(-40, 0, 200_000), np.linspace(-1e-3, 1e-3, 20_001),
             np.array([0.0, -0.0, 1e-300, -1e-300, 5e-324, np.finfo(dtype).tiny])]
    return np.concatenate(parts).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(KERNELS))
def test_dense_grid_within_ulp_bound_against_long_double(name, dtype):
    x = _grid(dtype)
    got = KERNELS[name](x)
    assert got.dtype == dtype
    ref = _ld_exact(name, x).astype(dtype)
    assert ulp_distance(got, ref).max() <= BOUNDS[name]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(KERNELS))
def test_tails_and_subnormals_within_ulp_bound_against_mpmath(name, dtype):
    lo = -746.0 if dtype == np.float64 else -104.0
    x = np.concatenate([np.linspace(lo, lo + 40, 700), np.linspace(-40, 40, 600),
                        -np.linspace(-lo - 40, -lo, 700)]).astype(dtype)
    if name == "sigmoid_derivative":
        x = np.abs(x) * np.where(np.arange(len(x)) % 2, 1, -1).astype(dtype)
    got = KERNELS[name](x)
    ref = np.array([float(_mp_exact(name, float(v))) for v in x]).astype(dtype)
    # float(mpf) rounds to float64 correctly, then to float32: double rounding can be off by
    # one in float32 only at exact ties, never beyond the bound checked here.
    assert ulp_distance(got, ref).max() <= BOUNDS[name]


def test_subnormal_results_are_not_flushed_to_zero():
    x = np.array([-720.0, -740.0, -744.0])
    s = sigmoid(x)
    assert np.all(s > 0) and np.all(s < np.finfo(np.float64).tiny)
    assert np.all(ulp_distance(s, np.exp(x.astype(np.longdouble)).astype(np.float64)) <= 2)
    d = sigmoid_derivative(-x)
    assert np.all(d > 0)
    assert 0 < sigmoid(np.array([-100.0], dtype=np.float32))[0] < np.finfo(np.float32).tiny


def test_no_clipping_far_below_minus_500():
    x = np.array([-600.0])
    assert sigmoid(x)[0] == pytest.approx(float(mpmath.exp(-600)), rel=1e-15)
    assert log_sigmoid(np.array([-1e6]))[0] == -1e6


def test_derivative_keeps_digits_for_large_x():
    # s*(1-s) is exactly 0 here; the true value is about 4.2e-18
    assert sigmoid_derivative(np.array([40.0]))[0] == pytest.approx(
        float(mpmath.exp(-40) / (1 + mpmath.exp(-40)) ** 2), rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(dtype):
    x = np.array([-np.inf, np.inf, 0.0, -0.0, np.nan], dtype=dtype)
    s = sigmoid(x)
    assert s[0] == 0 and s[1] == 1 and s[2] == 0.5 and s[3] == 0.5 and np.isnan(s[4])
    ls = log_sigmoid(x)
    assert ls[0] == -np.inf and ls[1] == 0 and ls[2] == np.log(dtype(0.5)) and np.isnan(ls[4])
    d = sigmoid_derivative(x)
    assert d[0] == 0 and d[1] == 0 and d[2] == 0.25 and d[3] == 0.25 and np.isnan(d[4])
    assert s.dtype == ls.dtype == d.dtype == dtype


@pytest.mark.parametrize("fn", list(KERNELS.values()))
def test_no_floating_point_warning_ever(fn):
    x = np.array([-np.inf, -1e308, -800, -745.5, -1, 0, 1, 800, 1e308, np.inf, np.nan])
    x32 = np.array([-np.inf, -3e38, -800, -104, -1, 0, 1, 800, 3e38, np.inf, np.nan],
                   dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            fn(x)
            fn(x32)


def test_out_is_filled_and_returned():
    x = np.linspace(-5, 5, 101 * 991).reshape(101, 991)
    out = np.empty_like(x)
    assert sigmoid(x, out=out) is out
    np.testing.assert_array_equal(out, sigmoid(x))
    f = np.asfortranarray(x)
    np.testing.assert_array_equal(sigmoid(f), sigmoid(x))


def test_integers_and_scalars_compute_in_float64():
    assert sigmoid(np.array([0, 1])).dtype == np.float64
    assert float(sigmoid(0.0)) == 0.5
    assert sigmoid(np.float32(2.0)).dtype == np.float32


def test_array_api_strict_in_array_api_strict_out():
    xp = pytest.importorskip("array_api_strict")
    for dtype in (xp.float32, xp.float64):
        a = xp.asarray([-800.0, -30.0, -1.0, 0.0, 2.0, 800.0], dtype=dtype)
        for name, fn in KERNELS.items():
            r = fn(a)
            assert type(r) is type(a) and r.dtype == dtype
            ref = fn(np.asarray(a))
            np.testing.assert_array_max_ulp(np.asarray(r), ref, maxulp=BOUNDS[name])


floats = hnp.arrays(np.float64, st.integers(1, 50),
                    elements=st.floats(-1e4, 1e4, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(floats)
def test_sigmoid_is_bounded_symmetric_and_monotone(x):
    s = sigmoid(x)
    assert np.all((s >= 0) & (s <= 1))
    np.testing.assert_allclose(sigmoid(-x), 1 - s, atol=2e-16)
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(s[order]) >= 0)
    assert np.all(log_sigmoid(x) <= 0)
    assert np.all(sigmoid_derivative(x) <= 0.25)


def test_library_exports_the_kernels():
    assert pipeline.sigmoid is sigmoid and pipeline.log_sigmoid is log_sigmoid
