"""`sarvlm priors` (cache build, resume message, errors) and `sarvlm priors show` (PNG)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pyproj import Transformer

from _priors_world import BBOX, build_tiles
from sarvlm.cli.main import main
from sarvlm.core.record import GeoRef, SampleRecord, write_samples
from sarvlm.io.raster import write_raster
from sarvlm.priors.cache import PriorCache


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    aef = root / "aef"
    build_tiles(aef)
    tr = Transformer.from_crs(4326, 32631, always_xy=True)
    ox, oy = tr.transform(5.982, 45.018)
    georef = GeoRef(crs="EPSG:32631", transform=[10.0, 0.0, ox, 0.0, -10.0, oy])
    rng = np.random.default_rng(0)
    img = rng.gamma(1.0, 0.1, size=(120, 160)).astype(np.float32)
    (root / "images").mkdir()
    write_raster(root / "images" / "scene.tif", img, georef=georef)
    recs = [
        SampleRecord(id="scene", image="images/scene.tif", width=160, height=120, date="2021-03-04", georef=georef),
        SampleRecord(
            id="boxonly",
            image="images/scene.tif",
            width=160,
            height=120,
            date="2020",
            georef=GeoRef(bbox_wgs84=list(BBOX)),
        ),
        SampleRecord(id="nogeo", image="images/scene.tif", width=160, height=120),
    ]
    write_samples(root / "samples.jsonl", recs)
    return root


def test_priors_cli_builds_cache_and_prints_summary(world, tmp_path, capsys):
    out = tmp_path / "priors"
    args = [
        "priors",
        str(world / "samples.jsonl"),
        "--source",
        f"aef-cog:{world / 'aef'}",
        "--grid",
        "4x4",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "samples: 3, with prior: 2" in text and "no prior (no georeference): 1" in text
    assert "nearest-year fallbacks: 2021->2020: 1" in text
    cache = PriorCache(out)
    assert cache.get("scene").vectors.shape == (16, 64) and cache.get("nogeo") is None
    before = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    assert main(args) == 0  # rerun = resume: nothing recomputed, same bytes
    assert "resumed 1/1 shards" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == before
    assert json.loads((out / "summary.json").read_text())["samples"] == 3


def test_priors_cli_errors_are_one_line(world, tmp_path, capsys):
    base = ["--source", f"aef-cog:{tmp_path}", "--out", str(tmp_path / "o")]
    assert main(["priors", str(world / "samples.jsonl"), *base]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sarvlm: error:") and "no aef_index" in err and err.count("\n") == 1
    assert (
        main(
            [
                "priors",
                str(world / "samples.jsonl"),
                "--source",
                f"aef-cog:{world / 'aef'}",
                "--grid",
                "8by8",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "--grid must look like 8x8" in capsys.readouterr().err
    assert main(["priors", "show", "--source", f"aef-cog:{world / 'aef'}", "--out", str(tmp_path / "x.png")]) == 2
    assert "needs a SAMPLE" in capsys.readouterr().err
    assert (
        main(
            [
                "priors",
                "show",
                str(world / "samples.jsonl"),
                "--id",
                "nogeo",
                "--source",
                f"aef-cog:{world / 'aef'}",
                "--out",
                str(tmp_path / "x.png"),
            ]
        )
        == 2
    )
    assert "field 'georef'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_priors_show_writes_png(world, tmp_path, capsys):
    import matplotlib.image as mpimg

    png = tmp_path / "show" / "scene.png"
    args = [
        "priors",
        "show",
        str(world / "samples.jsonl"),
        "--id",
        "scene",
        "--source",
        f"aef-cog:{world / 'aef'}",
        "--grid",
        "6x5",
        "--out",
        str(png),
    ]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 500
    # The field panel is colourful (three different channels), the SAR panel grey.
    right = img[:, img.shape[1] // 2 :, :3]
    assert (np.abs(right[..., 0] - right[..., 1]) > 0.2).mean() > 0.05
    first = png.read_bytes()
    assert main(args) == 0 and png.read_bytes() == first  # deterministic PNG
    # A bare georeferenced raster works too, given a year.
    png2 = tmp_path / "raster.png"
    assert (
        main(
            [
                "priors",
                "show",
                str(world / "images" / "scene.tif"),
                "--year",
                "2020",
                "--source",
                f"aef-cog:{world / 'aef'}",
                "--out",
                str(png2),
            ]
        )
        == 0
    )
    assert png2.stat().st_size > 10_000
