"""Quality screening: GLCM matches its definition; flat, no-data and low-information tiles are dropped with reasons."""

from __future__ import annotations

import numpy as np
import pytest

from sarvlm.core.errors import SarvlmError
from sarvlm.preprocess.quality import glcm, glcm_features, screen_tiles, tile_features


def _glcm_loops(img: np.ndarray, levels: int) -> np.ndarray:
    q = (img.astype(int) * levels) >> 8
    total = np.zeros((levels, levels))
    for dr, dc in ((0, 1), (-1, 1), (-1, 0), (-1, -1)):
        m = np.zeros((levels, levels))
        for r in range(q.shape[0]):
            for c in range(q.shape[1]):
                r2, c2 = r + dr, c + dc
                if 0 <= r2 < q.shape[0] and 0 <= c2 < q.shape[1]:
                    m[q[r, c], q[r2, c2]] += 1
                    m[q[r2, c2], q[r, c]] += 1
        total += m / m.sum()
    return total / 4


def test_glcm_matches_loops_and_known_values():
    img = np.random.default_rng(0).integers(0, 256, (9, 11), dtype=np.uint8)
    np.testing.assert_allclose(glcm(img, 8), _glcm_loops(img, 8), atol=1e-12)
    flat = glcm_features(glcm(np.full((16, 16), 77, np.uint8), 16))
    assert flat["contrast"] == 0 and flat["energy"] == pytest.approx(1.0) and flat["glcm_entropy"] == 0
    stripes = np.tile(np.array([0, 255], np.uint8), (16, 8))
    f = glcm_features(glcm(stripes, 2))
    # horizontal and diagonal neighbours always differ, vertical ones never: contrast 3/4
    assert f["contrast"] == pytest.approx(0.75) and f["correlation"] == pytest.approx(-0.5)
    with pytest.raises(SarvlmError, match="uint8"):
        glcm(np.zeros((4, 4), np.float32))


def test_tile_features_with_nodata():
    img = np.random.default_rng(1).integers(0, 256, (32, 32), dtype=np.uint8)
    valid = np.ones(img.shape, bool)
    valid[:16] = False
    f = tile_features(img, valid)
    assert f["nodata_fraction"] == pytest.approx(0.5) and f["dynamic_range"] > 200


def test_screen_drops_flat_nodata_and_low_information_cluster():
    rng = np.random.default_rng(2)
    feats = []
    for _ in range(40):  # textured tiles
        feats.append(tile_features(rng.integers(0, 256, (48, 48), dtype=np.uint8)))
    for i in range(6):  # a cluster of quiet tiles: narrow histogram, little texture
        img = np.clip(120 + rng.normal(0, 4, (48, 48)) + i, 0, 255).astype(np.uint8)
        feats.append(tile_features(img))
    feats.append(tile_features(np.full((48, 48), 90, np.uint8)))  # flat
    nod = np.ones((48, 48), bool)
    nod[:40] = False
    feats.append(tile_features(rng.integers(0, 256, (48, 48), dtype=np.uint8), nod))  # mostly no-data
    decisions = screen_tiles(feats, k=5, low_quantile=0.15)
    assert all(d.keep for d in decisions[:40])
    assert not any(d.keep for d in decisions[40:46])
    assert all("low information" in d.reason for d in decisions[40:46])
    assert decisions[46].reason.startswith("flat")
    assert decisions[47].reason.startswith("no-data")
    assert screen_tiles([]) == []
