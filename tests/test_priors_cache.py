"""Dataset-scale prior cache: contents, no-prior entries, examples input, resume after interruption."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _priors_world import BBOX, build_tiles
from sarvlm.core.errors import SarvlmError
from sarvlm.core.example import InstructionExample, Message, write_jsonl
from sarvlm.core.record import GeoRef, SampleRecord, write_samples
from sarvlm.priors import open_source, sample_grid
from sarvlm.priors.cache import PriorCache, build_prior_cache, load_prior_targets


@pytest.fixture(scope="module")
def aef_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("aef")
    build_tiles(root)
    return root


def _records():
    lon0, lat0, lon1, lat1 = BBOX
    recs = []
    for k in range(7):
        d = 0.002 * k
        recs.append(
            SampleRecord(
                id=f"s{k:02d}",
                image=f"images/s{k:02d}.png",
                width=128,
                height=96,
                date=["2020-05-01", "2021-06-02", "2022"][k % 3],
                georef=GeoRef(bbox_wgs84=[lon0 + d, lat0, lon0 + d + 0.02, lat1]),
            )
        )
    recs.append(SampleRecord(id="z-nogeo", image="images/n.png", width=64, height=64, date="2020"))
    recs.append(
        SampleRecord(id="z-noyear", image="images/y.png", width=64, height=64, georef=GeoRef(bbox_wgs84=list(BBOX)))
    )
    recs.append(
        SampleRecord(
            id="z-far",
            image="images/f.png",
            width=64,
            height=64,
            date="2020",
            georef=GeoRef(bbox_wgs84=[100.0, 10.0, 100.1, 10.1]),
        )
    )
    polar = GeoRef(crs="EPSG:3413", transform=[1000.0, 0.0, -50000.0, 0.0, -1000.0, 50000.0])
    recs.append(SampleRecord(id="z-polar", image="images/p.png", width=100, height=100, date="2020", georef=polar))
    return recs


@pytest.fixture()
def samples_jsonl(tmp_path):
    path = tmp_path / "samples.jsonl"
    write_samples(path, _records())
    return path


def test_cache_contents_match_sample_grid_and_no_prior_entries(tmp_path, aef_root, samples_jsonl):
    out = tmp_path / "priors"
    summary = build_prior_cache(samples_jsonl, f"aef-cog:{aef_root}", (4, 3), out, shard_size=4)
    assert summary["samples"] == 11 and summary["with_prior"] == 7 and summary["shards"] == 3
    assert summary["no_prior"] == {
        "no acquisition year": 1,
        "outside the source": 1,
        "no georeference": 1,
        "unsupported footprint": 1,
    }
    assert summary["years_used"] == {"2020": 5, "2022": 2} and summary["year_fallbacks"] == {"2021->2020": 2}
    assert summary["nodes_valid"] + summary["nodes_invalid"] == 7 * 12
    assert json.loads((out / "summary.json").read_text())["with_prior"] == 7

    cache = PriorCache(out)
    assert cache.settings["grid"] == [4, 3] and cache.settings["prior_dim"] == 64
    assert cache.settings["source"] == f"aef-cog:{aef_root}"
    assert len(cache) == 11 and "s03" in cache and "nope" not in cache
    src = open_source(f"aef-cog:{aef_root}")
    for rec in _records()[:7]:
        got = cache.get(rec.id)
        want = sample_grid(src, None, rec.year, 4, 3, rec.width, rec.height, rec.georef)
        assert got.year == want.year and got.year_requested == rec.year
        for key in ("lon", "lat", "x", "y", "positions", "vectors", "valid"):
            np.testing.assert_array_equal(getattr(got, key), getattr(want, key), err_msg=key)
        assert got.vectors.dtype == np.float32 and got.valid.dtype == bool
    for sid in ("z-nogeo", "z-noyear", "z-far", "z-polar"):
        assert cache.get(sid) is None
    assert cache.reason("z-nogeo") == "no georeference" and "pole" in cache.reason("z-polar")
    with pytest.raises(SarvlmError, match="'nope': not in prior cache"):
        cache.get("nope")


def test_default_year_and_examples_input(tmp_path, aef_root):
    lon0, lat0, lon1, lat1 = BBOX
    geo = GeoRef(bbox_wgs84=[lon0, lat0, lon1, lat1])

    def ex(i, sid, year):
        return InstructionExample(
            id=f"e{i}",
            sample_id=sid,
            task="caption",
            images=["a.png"],
            width=64,
            height=64,
            georef=geo,
            year=year,
            messages=[Message(role="user", content="<image>Describe."), Message(role="assistant", content="x")],
        )

    ds = tmp_path / "dataset"
    ds.mkdir()
    write_jsonl(ds / "train.jsonl", [ex(0, "a", 2020), ex(1, "a", 2020), ex(2, "b", None)])
    write_jsonl(ds / "val.jsonl", [ex(3, "c", 2022)])
    targets = load_prior_targets(ds)
    assert [t.sample_id for t in targets] == ["a", "b", "c"]  # examples of one sample share one entry
    out = tmp_path / "p"
    summary = build_prior_cache(ds, f"aef-cog:{aef_root}", (2, 2), out, default_year=2020)
    assert summary["with_prior"] == 3 and summary["years_used"] == {"2020": 2, "2022": 1}
    cache = PriorCache(out)
    assert cache.get("b").year == 2020 and cache.get("b").year_requested is None


def test_resume_after_interruption_is_byte_identical(tmp_path, aef_root, samples_jsonl):
    clean = tmp_path / "clean"
    build_prior_cache(samples_jsonl, f"aef-cog:{aef_root}", (3, 3), clean, shard_size=2)

    class Interrupting:
        """Wraps the real source and stops the run mid-way, like Ctrl-C."""

        def __init__(self, inner, after):
            self.inner, self.after, self.calls = inner, after, 0
            self.spec, self.prior_dim = inner.spec, inner.prior_dim

        def years_covering(self, lon, lat):
            return self.inner.years_covering(lon, lat)

        def sample(self, lon, lat, year):
            self.calls += 1
            if self.calls > self.after:
                raise KeyboardInterrupt
            return self.inner.sample(lon, lat, year)

        def close(self):
            self.inner.close()

    out = tmp_path / "resumed"
    spec = f"aef-cog:{aef_root}"
    src = open_source(spec)
    src.spec = spec
    with pytest.raises(KeyboardInterrupt):
        build_prior_cache(samples_jsonl, Interrupting(src, after=3), (3, 3), out, shard_size=2)
    done = sorted(p.name for p in (out / "shards").glob("*.safetensors"))
    assert done == ["shard-00000.safetensors"]  # the finished shard; the interrupted one left nothing
    assert not (out / "summary.json").exists()
    with pytest.raises(SarvlmError, match="incomplete"):
        PriorCache(out)
    counting = Interrupting(open_source(spec), after=10**9)
    summary = build_prior_cache(samples_jsonl, counting, (3, 3), out, shard_size=2)
    assert summary["shards_resumed"] == 1
    assert counting.calls == 5  # only the 5 samples with coverage outside the finished shard
    for name in ["settings.json", "summary.json"] + [f"shards/shard-{k:05d}.safetensors" for k in range(6)]:
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name


def test_settings_mismatch_and_bad_data(tmp_path, aef_root, samples_jsonl):
    out = tmp_path / "p"
    build_prior_cache(samples_jsonl, f"aef-cog:{aef_root}", (2, 2), out)
    with pytest.raises(SarvlmError, match="different settings \\(grid\\)"):
        build_prior_cache(samples_jsonl, f"aef-cog:{aef_root}", (3, 3), out)
    summary = build_prior_cache(samples_jsonl, f"aef-cog:{aef_root}", (3, 3), out, overwrite=True)
    assert PriorCache(out).grid == (3, 3) and summary["shards_resumed"] == 0
    with pytest.raises(SarvlmError, match="not a prior cache"):
        PriorCache(tmp_path)
    with pytest.raises(SarvlmError, match="no such file"):
        build_prior_cache(tmp_path / "missing.jsonl", f"aef-cog:{aef_root}", (2, 2), tmp_path / "q")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "image": "a.png", "width": -1, "height": 3}\n')
    with pytest.raises(SarvlmError, match="bad.jsonl:1: record 'x': field 'width'"):
        build_prior_cache(bad, f"aef-cog:{aef_root}", (2, 2), tmp_path / "q")
    assert samples_jsonl.read_text().count("\n") == 11  # input untouched
