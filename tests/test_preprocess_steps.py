"""Pixel steps: conversions, polarisation selection/composite, log + percentile stretch, uint8 quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from sarvlm.core.errors import SarvlmError
from sarvlm.preprocess import (
    convert,
    dual_pol_composite,
    quantize_uint8,
    select_polarization,
    stretch,
    to_amplitude,
    to_db,
    to_intensity,
)


def test_conversions_round_trip():
    intensity = np.array([[0.01, 1.0, 100.0]], np.float32)
    np.testing.assert_allclose(to_db(intensity), [[-20, 0, 20]], atol=1e-5)
    np.testing.assert_allclose(to_db(to_amplitude(intensity), kind="amplitude"), [[-20, 0, 20]], atol=1e-5)
    np.testing.assert_allclose(convert(to_db(intensity), "db", "intensity"), intensity, rtol=1e-5)
    np.testing.assert_allclose(convert(intensity, "intensity", "amplitude"), [[0.1, 1, 10]], rtol=1e-6)
    z = np.array([3 + 4j], np.complex64)
    assert to_intensity(z, "complex")[0] == pytest.approx(25.0)
    assert to_db(np.array([0.0]))[0] == -np.inf
    assert to_db(np.array([0.0]), floor=1e-6)[0] == pytest.approx(-60.0)
    assert np.isnan(to_db(np.array([np.nan, -1.0]))).all()
    with pytest.raises(SarvlmError, match="must be one of"):
        convert(intensity, "power", "db")
    with pytest.raises(SarvlmError, match="cannot convert to complex"):
        convert(intensity, "intensity", "complex")


def test_polarisation_selection_and_composite():
    bands = np.stack([np.full((4, 5), 2.0), np.full((4, 5), 4.0)])
    assert select_polarization(bands, ["VV", "VH"], "vh")[0, 0] == 4.0
    comp = dual_pol_composite(bands, ["vv", "vh"])
    assert comp.shape == (3, 4, 5)
    np.testing.assert_allclose(comp[:, 0, 0], [2.0, 4.0, 3.0])
    comp_hh = dual_pol_composite(bands[::-1], ["HV", "HH"])
    np.testing.assert_allclose(comp_hh[:, 0, 0], [2.0, 4.0, 3.0])
    assert select_polarization(bands[:1], [], "HH").shape == (4, 5)  # unnamed single band
    with pytest.raises(SarvlmError, match="unknown polarisation 'XY'"):
        select_polarization(bands, ["VV", "VH"], "XY")
    with pytest.raises(SarvlmError, match="polarisation HH not in the image"):
        select_polarization(bands, ["VV", "VH"], "HH")
    with pytest.raises(SarvlmError, match="needs VV\\+VH or HH\\+HV"):
        dual_pol_composite(bands, ["VV", "HH"])


def test_stretch_log_then_percentiles():
    rng = np.random.default_rng(0)
    img = rng.gamma(1.0, 1.0, (200, 200)).astype(np.float32)
    img[0, 0] = np.nan
    out = stretch(img, 2, 98)
    assert out.dtype == np.float32 and np.isnan(out[0, 0])
    valid = out[np.isfinite(out)]
    assert valid.min() == 0.0 and valid.max() == 1.0
    db = 10 * np.log10(img)
    lo, hi = np.nanpercentile(db, [2, 98])
    # a pixel in the middle maps linearly in dB
    i = np.nanargmin(np.abs(db - (lo + hi) / 2))
    assert out.flat[i] == pytest.approx(0.5, abs=0.01)
    assert (np.mean(out[np.isfinite(out)] == 0.0)) == pytest.approx(0.02, abs=0.005)
    assert stretch(np.stack([img, img * 10])).shape == (2, 200, 200)


def test_quantize_uint8_handles_nan_inf_nodata():
    rng = np.random.default_rng(1)
    img = rng.random((100, 100)).astype(np.float32) * 1000
    img[0, :3] = [np.nan, np.inf, -9999]
    q = quantize_uint8(img, 1, 99, nodata=-9999)
    assert q.dtype == np.uint8 and (q[0, :3] == 0).all()
    assert q.max() == 255 and np.mean(q == 255) == pytest.approx(0.01, abs=0.005)
    np.testing.assert_array_equal(quantize_uint8(np.array([[0.0, 0.5, 1.0]]), vmin=0, vmax=1), [[0, 128, 255]])
    logq = quantize_uint8(np.array([[1.0, 10.0, 100.0, 0.0]]), log=True, vmin=0, vmax=20)
    np.testing.assert_array_equal(logq, [[0, 128, 255, 0]])
    assert (quantize_uint8(np.full((3, 3), 7.0)) == 128).all()
    with pytest.raises(SarvlmError, match="all pixels are NaN"):
        quantize_uint8(np.full((4, 4), np.nan), where="scene.tif")
    with pytest.raises(SarvlmError, match="scene.tif"):
        quantize_uint8(np.full((4, 4), np.nan), where="scene.tif")


def test_quantize_is_monotone_and_stretch_bounded():
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    @settings(max_examples=40, deadline=None)
    @given(
        arrays(np.float32, (6, 7), elements=st.floats(float(np.float32(1e-6)), float(np.float32(1e6)), width=32)),
        st.booleans(),
    )
    def check(img, log):
        q = quantize_uint8(img, 1, 99, log=log)
        order = np.argsort(img, axis=None, kind="stable")
        assert np.all(np.diff(q.ravel()[order].astype(int)) >= 0)
        s = stretch(img, 2, 98)
        assert np.nanmin(s) >= 0 and np.nanmax(s) <= 1

    check()
