"""Integration: the synthetic world's embedding field, read through aef-cog: like real tiles.

The world writes its field with :mod:`sarvlm.io.aef_layout`; its land-cover masks give an
independent truth: the class whose prototype is nearest to each cached node vector must be the
land-cover class under that node's pixel (the field is built from those masks).
"""

from __future__ import annotations

import pytest

pytest.importorskip("sarvlm.synth.world")

from sarvlm.core.record import read_samples  # noqa: E402
from sarvlm.io.raster import read_raster  # noqa: E402
from sarvlm.priors.cache import PriorCache, build_prior_cache  # noqa: E402


def test_synthetic_world_priors_match_land_cover(tmp_path):
    from sarvlm.synth.embedding_field import nearest_class
    from sarvlm.synth.world import generate_world

    world = tmp_path / "world"
    generate_world(world, 3, seed=3, size=128, optical=False, workers=1)
    summary = build_prior_cache(world / "samples.jsonl", f"aef-cog:{world / 'aef'}", (6, 6), tmp_path / "priors")
    assert summary["with_prior"] == 3 and summary["no_prior"] == {}
    cache = PriorCache(tmp_path / "priors")
    agree = total = 0
    for rec in read_samples(world / "samples.jsonl"):
        g = cache.get(rec.id)
        assert g.year == rec.year  # the world writes every year over every site
        mask = read_raster(world / rec.landcover.mask)[0]
        # Nodes well inside the image (mixed border pixels and edge nodes excluded).
        inner = g.valid & (g.x > 2) & (g.x < rec.width - 2) & (g.y > 2) & (g.y < rec.height - 2)
        truth = mask[g.y[inner].astype(int), g.x[inner].astype(int)]
        agree += int((nearest_class(g.vectors[inner]) == truth).sum())
        total += int(inner.sum())
    assert total >= 30 and agree / total >= 0.85
