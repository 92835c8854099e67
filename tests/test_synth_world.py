"""The synthetic SAR world on disk: layout, records, georeference, AEF tiles, determinism, errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sarvlm.cli.main import main
from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import read_samples
from sarvlm.io.aef_layout import INDEX_COLUMNS, read_aef_index
from sarvlm.synth.landcover import CLASSES, WATER
from sarvlm.synth.world import generate_world

SCENES, SIZE = 7, 112
# Masks and optical renderings are plain PNGs: their georeference lives in the record.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "world"
    generate_world(out, SCENES, seed=3, size=SIZE, years=(2021, 2022), workers=1)
    return out


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_and_records(world):
    recs = list(read_samples(world / "samples.jsonl"))
    assert [r.id for r in recs] == [f"synth_{i:05d}" for i in range(SCENES)]
    for r in recs:
        assert r.sensor == "sarvlm-synth" and r.source == "sarvlm-synth" and r.polarizations == ["VV"]
        assert r.width == r.height == SIZE and r.resolution_m == 2.0 and r.year in (2021, 2022) and r.split is None
        assert r.landcover.classes == CLASSES
        assert {c.style for c in r.captions} == {"template", "concise"}
        with rasterio.open(world / r.image) as ds:
            assert ds.dtypes == ("float32",) and (ds.width, ds.height) == (SIZE, SIZE)
            assert ds.crs.to_epsg() == int(r.georef.crs.split(":")[1]) in (32650, 32651)
            assert list(ds.transform)[:6] == pytest.approx(r.georef.transform)
            assert ds.tags()["SENSOR"] == "sarvlm-synth" and ds.tags()["ACQUISITION_DATE"] == r.date
            img = ds.read(1)
        assert np.isfinite(img).all() and (img > 0).all()
        with rasterio.open(world / r.landcover.mask) as ds:
            mask = ds.read(1)
        assert mask.shape == (SIZE, SIZE) and set(np.unique(mask)) <= set(CLASSES)
        with rasterio.open(world / r.optical) as ds:
            assert ds.count == 3 and ds.dtypes[0] == "uint8" and (ds.width, ds.height) == (SIZE, SIZE)
        for o in r.objects:
            x1, y1, x2, y2 = o.bbox
            assert 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE
            if o.category in ("ship", "aircraft", "oil_tank", "car"):
                assert o.fine_category
        # The WGS84 box holds the four projected corners of the scene.
        from pyproj import Transformer

        t = Transformer.from_crs(r.georef.crs, "EPSG:4326", always_xy=True)
        a, _, c, _, e, f = r.georef.transform
        lon, lat = t.transform([c, c + a * SIZE], [f, f + e * SIZE])
        w, s, e_, n = r.georef.bbox_wgs84
        assert all(w - 1e-9 <= v <= e_ + 1e-9 for v in lon) and all(s - 1e-9 <= v <= n + 1e-9 for v in lat)


def test_outputs_get_normal_permissions(world):
    mask = os.umask(0)
    os.umask(mask)
    assert (world.stat().st_mode & 0o777) == 0o777 & ~mask
    assert ((world / "samples.jsonl").stat().st_mode & 0o777) == 0o666 & ~mask


def test_world_spans_two_zones_and_years(world):
    index = read_aef_index(world / "aef")
    assert list(index.columns[: len(INDEX_COLUMNS)]) == list(INDEX_COLUMNS)
    assert set(index["utm_zone"]) == {"50N", "51N"}
    assert set(index["year"]) == {2021, 2022}
    assert all(Path(p).is_file() for p in index["local_path"])
    tile = Path(index["local_path"][0])
    assert tile.parent.name in ("50N", "51N") and tile.parent.parent.name in ("2021", "2022")
    with rasterio.open(tile) as ds:
        assert ds.count == 64 and ds.dtypes[0] == "int8" and ds.nodata == -128 and ds.res == (10.0, 10.0)
        v = ds.read()
    from sarvlm.io.aef_layout import dequantize_aef

    vec = dequantize_aef(v).reshape(64, -1)
    ok = ~np.isnan(vec[0])
    assert ok.any()
    assert np.allclose(np.linalg.norm(vec[:, ok], axis=0), 1.0, atol=0.03)  # unit vectors after the int8 round trip


def test_same_seed_same_bytes_and_workers_do_not_matter(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_world(a, 3, seed=11, size=64, workers=1)
    generate_world(b, 3, seed=11, size=64, workers=2)
    generate_world(c, 3, seed=12, size=64, workers=1)
    da, db = _digest(a), _digest(b)
    assert da == db and len(da) > 10
    assert _digest(c) != da


def test_objects_follow_placement_rules(world):
    ships = clutter = 0
    for r in read_samples(world / "samples.jsonl"):
        with rasterio.open(world / r.landcover.mask) as ds:
            mask = ds.read(1)
        for o in r.objects:
            x1, y1, x2, y2 = (int(v) for v in o.bbox)
            box = mask[y1:y2, x1:x2]
            if o.category == "ship":
                ships += 1
                cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
                assert mask[cy, cx] == WATER, f"{r.id}: ship off water"
            if o.category == "bridge":
                assert (box == WATER).any() and (box != WATER).any()
        for c in r.meta["clutter"]:
            x1, y1, x2, y2 = (int(v) for v in c["bbox"])
            clutter += 1
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
            # At least 30 m (15 px at 2 m) from water: no water within 10 px of the centre.
            assert not (mask[max(cy - 10, 0) : cy + 11, max(cx - 10, 0) : cx + 11] == WATER).any(), (
                f"{r.id}: clutter near water"
            )
    assert ships > 0 and clutter > 0


def test_prior_reader_reads_the_world_with_year_fallback(world):
    from sarvlm.priors.sampling import sample_grid
    from sarvlm.priors.sources import open_source
    from sarvlm.synth.embedding_field import nearest_class

    src = open_source(f"aef-cog:{world / 'aef'}")
    agree = total = 0
    for r in read_samples(world / "samples.jsonl"):
        grid = sample_grid(src, None, r.year, 8, 8, r.width, r.height, georef=r.georef)
        assert grid.year == r.year and grid.valid.all(), f"{r.id}: anchor nodes without embedding"
        with rasterio.open(world / r.landcover.mask) as ds:
            mask = ds.read(1)
        cls = nearest_class(grid.vectors)
        rows = np.clip(grid.y.astype(int), 0, r.height - 1)
        cols = np.clip(grid.x.astype(int), 0, r.width - 1)
        agree += int((cls == mask[rows, cols]).sum())
        total += cls.size
    assert agree / total > 0.8  # the field encodes the land cover (borders blur within 10 m pixels)
    fallback = sample_grid(src, None, 2030, 4, 4, r.width, r.height, georef=r.georef)
    assert fallback.year == 2022 and fallback.valid.all()


def test_bad_input_one_line_errors(tmp_path, capsys):
    with pytest.raises(SarvlmError, match="--scenes"):
        generate_world(tmp_path / "x", 0)
    with pytest.raises(SarvlmError, match="--resolution"):
        generate_world(tmp_path / "x", 1, resolution_m=0)
    with pytest.raises(SarvlmError, match="--years"):
        generate_world(tmp_path / "x", 1, years=(2010,))
    with pytest.raises(SarvlmError, match="--seed"):
        generate_world(tmp_path / "x", 1, seed=-1)
    with pytest.raises(SarvlmError, match="--size"):
        generate_world(tmp_path / "x", 1, size=4096)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("user data")
    assert main(["synth", str(full), "--scenes", "1", "--size", "48"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not empty" in err and "--overwrite" in err
    assert (full / "keep.txt").read_text() == "user data"
    assert main(["synth", str(tmp_path / "y"), "--scenes", "-3"]) == 2
    assert "--scenes" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_output_under_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["synth", str(blocker / "out"), "--scenes", "1", "--size", "48"]) == 2
    err = capsys.readouterr().err
    assert "file.txt" in err and err.count("\n") == 1
    assert blocker.read_text() == "x"
    assert main(["synth", str(blocker), "--scenes", "1", "--size", "48"]) == 2
    assert "not a directory" in capsys.readouterr().err and blocker.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_output(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["synth", str(ro / "out"), "--scenes", "1", "--size", "48"]) == 2
        assert "ro" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


def test_cli_preview_and_summary(tmp_path, capsys):
    out = tmp_path / "w"
    assert (
        main(
            [
                "synth",
                str(out),
                "--scenes",
                "2",
                "--size",
                "64",
                "--seed",
                "5",
                "--preview",
                "--no-optical",
                "--years",
                "2020,2023",
                "--looks",
                "1",
                "--resolution",
                "3",
            ]
        )
        == 0
    )
    assert "wrote 2 scenes" in capsys.readouterr().out
    assert (out / "preview.png").stat().st_size > 10_000
    assert not (out / "optical").exists()
    recs = list(read_samples(out / "samples.jsonl"))
    assert all(r.optical is None and r.resolution_m == 3.0 and r.year in (2020, 2023) for r in recs)
    import json

    summary = json.loads((out / "world.json").read_text())
    assert summary["scenes"] == 2 and summary["years"] == [2020, 2023] and summary["zones"] == ["50N", "51N"]
    # Overwrite replaces the directory atomically.
    assert main(["synth", str(out), "--scenes", "1", "--size", "48", "--overwrite"]) == 0
    assert len(list(read_samples(out / "samples.jsonl"))) == 1


def test_dual_pol_adds_a_vh_band_without_changing_vv(tmp_path):
    vv, dual = tmp_path / "vv", tmp_path / "dual"
    generate_world(vv, 2, seed=4, size=80, optical=False, workers=1)
    generate_world(dual, 2, seed=4, size=80, optical=False, workers=1, polarizations=("VV", "VH"))
    for r in read_samples(dual / "samples.jsonl"):
        assert r.polarizations == ["VV", "VH"] and "VV/VH" in r.captions[0].text
        with rasterio.open(dual / r.image) as ds:
            assert ds.count == 2 and ds.descriptions == ("VV", "VH") and ds.tags()["POLARIZATION"] == "VV,VH"
            both = ds.read()
        with rasterio.open(vv / r.image) as ds:
            assert np.array_equal(ds.read(1), both[0])
        assert (both[1] < both[0]).mean() > 0.8  # cross-pol is weaker
    with pytest.raises(SarvlmError, match="--pols"):
        generate_world(tmp_path / "x", 1, polarizations=("HH",))
    with pytest.raises(SystemExit) as exc:  # argparse rejects unknown choices with exit code 2
        main(["synth", str(tmp_path / "y"), "--scenes", "1", "--pols", "HV"])
    assert exc.value.code == 2


def test_existing_empty_directory_is_filled(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()  # e.g. a pipeline step's fresh work directory
    summary = generate_world(out, 1, seed=0, size=48, optical=False)
    assert summary.scenes == 1 and (out / "samples.jsonl").is_file() and (out / "aef" / "aef_index.csv").is_file()
