"""`sarvlm preprocess` end to end on tiny generated scenes: outputs, records, determinism, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sarvlm.cli.main import main
from sarvlm.core.record import GeoRef, SampleRecord, read_samples, write_samples
from sarvlm.io.raster import raster_info, read_raster, write_raster
from sarvlm.preprocess.pipeline import PreprocessConfig, preprocess_raster, preprocess_samples

GEOREF = GeoRef(crs="EPSG:32651", transform=[2.0, 0.0, 350000.0, 0.0, -2.0, 3450000.0])


def _scene(rng: np.random.Generator, h: int = 96, w: int = 128) -> np.ndarray:
    """Dual-pol (VV, VH) speckled intensity with water (dark) on the left and land on the right."""
    base = np.where(np.arange(w)[None] < w // 2, 0.01, 0.2) * np.ones((h, 1))
    vv = base * rng.gamma(1.0, 1.0, (h, w))
    vh = 0.2 * base * rng.gamma(1.0, 1.0, (h, w))
    vv[40:44, 20:30] = 50.0  # a ship
    return np.stack([vv, vh]).astype(np.float32)


@pytest.fixture()
def world(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "world"
    records = []
    for i in range(2):
        rel = f"images/s{i}.tif"
        write_raster(root / rel, _scene(rng), georef=GEOREF, band_descriptions=["VV", "VH"])
        mask = np.where(np.arange(128)[None] < 64, 1, 2).repeat(96, 0).astype(np.uint8)
        write_raster(root / f"masks/s{i}.png", mask)
        records.append(
            SampleRecord(
                id=f"s{i}",
                image=rel,
                width=128,
                height=96,
                sensor="test",
                polarizations=["VV", "VH"],
                resolution_m=2.0,
                date="2021-05-01",
                georef=GEOREF,
                objects=[{"category": "ship", "bbox": [20, 40, 30, 44]}],
                landcover={"mask": f"masks/s{i}.png", "classes": {1: "water", 2: "land"}},
                captions=[{"text": "A ship on water next to land."}],
            )
        )
    write_samples(root / "samples.jsonl", records)
    return root / "samples.jsonl"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_full_chain_png_outputs_and_records(world, tmp_path):
    cfg = PreprocessConfig(composite="dual", filter="refined-lee", window=5, stretch=True, uint8=True)
    out = preprocess_samples(world, tmp_path / "out", cfg)
    recs = list(read_samples(out))
    assert [r.id for r in recs] == ["s0", "s1"]
    r0 = recs[0]
    assert r0.image == "images/s0.png" and r0.polarizations == ["VV", "VH"]
    assert r0.objects[0].bbox == [20, 40, 30, 44] and r0.captions[0].text.startswith("A ship")
    assert r0.georef == GEOREF and r0.meta["preprocess"]["filter"]["name"] == "refined-lee"
    info = raster_info(out.parent / r0.image)
    assert (info.count, info.dtype, info.width, info.height) == (3, "uint8", 128, 96)
    px = read_raster(out.parent / r0.image)
    assert px[0, :, 70:].mean() > px[0, :, :60].mean() + 60  # land brighter than water after stretch
    assert px[0, 41, 25] == 255  # the ship saturates
    assert (out.parent / r0.landcover.mask).is_file()
    assert (out.parent / "preview.png").stat().st_size > 1000
    summary = json.loads((out.parent / "preprocess.json").read_text())
    assert summary["counts"]["outputs"] == 2


def test_same_input_same_bytes(world, tmp_path):
    cfg = PreprocessConfig(pol="VV", filter="lee", to="db", tile_m=100.0, screen=True, screen_k=2)
    a = _tree(preprocess_samples(world, tmp_path / "a", cfg).parent)
    b = _tree(preprocess_samples(world, tmp_path / "b", cfg).parent)
    assert a.keys() == b.keys() and a == b


def test_tiles_with_georef_objects_and_masks(world, tmp_path):
    cfg = PreprocessConfig(pol="VV", filter="refined-lee", tile_m=128.0, target_res_m=4.0, uint8=True)
    out = preprocess_samples(world, tmp_path / "tiles", cfg)
    recs = list(read_samples(out))
    # 64 x 48 px tiles of 128 m at 2 m: 2 columns x 2 rows ("shift" adds none: 128 = 2*64, 96 = 48*2)
    assert len(recs) == 8 and {(r.width, r.height) for r in recs} == {(32, 32)}
    first = recs[0]
    assert first.id == "s0_r000c000" and first.resolution_m == 4.0 and first.polarizations == ["VV"]
    assert first.objects[0].bbox == [10.0, 20.0, 15.0, 22.0]
    assert first.georef.transform == [4.0, 0.0, 350000.0, 0.0, -4.0, 3450000.0]
    second = next(r for r in recs if r.id == "s0_r000c001")
    assert second.georef.transform[2] == 350000.0 + 128.0 and second.objects == []
    mask = read_raster(out.parent / first.landcover.mask)
    assert mask.shape == (1, 32, 32) and set(np.unique(mask)) == {1}
    assert read_raster(out.parent / first.image).dtype == np.uint8


def test_pixel_mode_warning_via_cli(tmp_path, capsys):
    img = np.random.default_rng(3).gamma(1.0, 1.0, (60, 90)).astype(np.float32)
    write_raster(tmp_path / "plain.tif", img)
    assert (
        main(["preprocess", str(tmp_path / "plain.tif"), "--out", str(tmp_path / "o"), "--tile-m", "30", "--uint8"])
        == 0
    )
    err = capsys.readouterr().err
    assert "pixel mode" in err
    recs = list(read_samples(tmp_path / "o" / "samples.jsonl"))
    assert len(recs) == 6 and recs[0].georef is None and recs[0].meta["tile"]["pixel_mode"]


def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("sarvlm: error: ")
    return err


def test_bad_input_one_line_errors_and_no_partial_output(world, tmp_path, capsys):
    out = tmp_path / "out"
    root = world.parent
    assert "window size must be an odd integer" in _cli_error(
        capsys, ["preprocess", str(world), "--out", str(out), "--filter", "lee", "--window", "4"]
    )
    assert "window size" in _cli_error(
        capsys, ["preprocess", str(world), "--out", str(out), "--filter", "refined-lee", "--window", "33"]
    )
    # an invalid window is an error even when no filter would use it (never silently ignored)
    assert "window size" in _cli_error(capsys, ["preprocess", str(world), "--out", str(out), "--window", "4"])
    assert "unknown polarisation 'QQ'" in _cli_error(
        capsys, ["preprocess", str(world), "--out", str(out), "--pol", "QQ"]
    )
    assert "no such file" in _cli_error(capsys, ["preprocess", str(tmp_path / "nope.jsonl"), "--out", str(out)])

    def broken(name: str, payload: bytes | None = None, array: np.ndarray | None = None) -> str:
        samples = list(read_samples(world))
        path = root / "images" / f"{name}.tif"
        if array is not None:
            write_raster(path, array)
        else:
            path.write_bytes(payload)
        samples[1] = samples[1].model_copy(update={"image": f"images/{name}.tif", "landcover": None})
        write_samples(root / f"{name}.jsonl", samples)
        return str(root / f"{name}.jsonl")

    good = (root / "images" / "s0.tif").read_bytes()
    err = _cli_error(capsys, ["preprocess", broken("trunc", good[: len(good) // 2]), "--out", str(out)])
    assert "trunc.tif" in err
    assert "empty file" in _cli_error(capsys, ["preprocess", broken("empty", b""), "--out", str(out)])
    assert "not a readable raster" in _cli_error(
        capsys, ["preprocess", broken("junk", b"II*\x00garbage" * 20), "--out", str(out)]
    )
    nan = np.full((2, 96, 128), np.nan, np.float32)
    assert "all pixels are NaN" in _cli_error(
        capsys, ["preprocess", broken("nan", array=nan), "--out", str(out), "--uint8"]
    )
    assert not out.exists() and not list(tmp_path.glob(".out.*")), "nothing half-written"

    assert "cannot create output directory" in _cli_error(capsys, ["preprocess", str(world), "--out", "/proc/sarvlm/x"])
    # the inputs are untouched
    assert (root / "images" / "s0.tif").read_bytes() == good


def test_tiles_equal_the_filtered_scene(world, tmp_path):
    """Tiles are read with a filter halo: cutting after filtering the whole scene gives the same pixels."""
    whole = preprocess_samples(world, tmp_path / "whole", PreprocessConfig(pol="VV", filter="refined-lee", plots=False))
    tiles = preprocess_samples(
        world, tmp_path / "tiles", PreprocessConfig(pol="VV", filter="refined-lee", tile_m=64.0, plots=False)
    )
    scene = read_raster(whole.parent / "images" / "s0.tif")[0]
    recs = [r for r in read_samples(tiles) if r.meta["tile"]["source_id"] == "s0"]
    assert len(recs) == 4 * 3
    for rec in recs:
        t = rec.meta["tile"]
        px = read_raster(tiles.parent / rec.image)[0]
        np.testing.assert_allclose(
            px, scene[t["row_off"] : t["row_off"] + 32, t["col_off"] : t["col_off"] + 32], rtol=1e-6
        )


def test_complex_slc_input(tmp_path):
    rng = np.random.default_rng(4)
    z = (rng.normal(size=(2, 40, 50)) + 1j * rng.normal(size=(2, 40, 50))).astype(np.complex64)
    write_raster(tmp_path / "slc.tif", z, georef=GEOREF, band_descriptions=["VV", "VH"])
    out = preprocess_raster(tmp_path / "slc.tif", tmp_path / "o", PreprocessConfig(pol="VH", to="db", plots=False))
    rec = next(read_samples(out))
    assert rec.polarizations == ["VH"] and rec.georef == GEOREF
    px = read_raster(out.parent / rec.image)[0]
    np.testing.assert_allclose(px, 10 * np.log10(np.abs(z[1]) ** 2), rtol=1e-4, atol=1e-4)


def _mini_safe(tmp_path: Path) -> Path:
    """A small .SAFE product: the real IW GRD annotation with its grid rescaled to 210x100 px,
    and a uint16 amplitude measurement of that size."""
    import xml.etree.ElementTree as ET

    real = next((Path(__file__).parent / "data" / "sentinel1_safe").glob("S1B_IW_GRDH*.SAFE"))
    ann_path = next((real / "annotation").glob("*.xml"))
    tree = ET.parse(ann_path)
    root = tree.getroot()
    info = root.find("imageAnnotation/imageInformation")
    sx, sy = 210 / int(info.findtext("numberOfSamples")), 100 / int(info.findtext("numberOfLines"))
    info.find("numberOfSamples").text, info.find("numberOfLines").text = "210", "100"
    for node in root.iterfind("geolocationGrid/geolocationGridPointList/geolocationGridPoint"):
        node.find("pixel").text = repr(float(node.findtext("pixel")) * sx)
        node.find("line").text = repr(float(node.findtext("line")) * sy)
    safe = tmp_path / real.name
    (safe / "annotation").mkdir(parents=True)
    tree.write(safe / "annotation" / ann_path.name)
    amp = (np.sqrt(np.random.default_rng(5).gamma(4.0, 0.25, (100, 210))) * 300).astype(np.uint16)
    write_raster(safe / "measurement" / (ann_path.stem + ".tiff"), amp)
    return safe


def test_sentinel1_safe_input(tmp_path, capsys):
    safe = _mini_safe(tmp_path)
    assert (
        main(["preprocess", str(safe), "--out", str(tmp_path / "o"), "--to", "db", "--tile-m", "60000", "--no-plots"])
        == 0
    )
    recs = list(read_samples(tmp_path / "o" / "samples.jsonl"))
    assert recs and all(
        r.polarizations == ["VV"] and r.date == "2021-04-01" and r.sensor == "Sentinel-1B" for r in recs
    )
    assert recs[0].georef.gcps is not None and recs[0].meta["preprocess"]["input"] == "auto"
    amp = read_raster(next((safe / "measurement").glob("*.tiff")))[0].astype(np.float64)
    t = recs[0].meta["tile"]
    px = read_raster(tmp_path / "o" / recs[0].image)[0]
    np.testing.assert_allclose(px, 10 * np.log10(amp[: t["src_height"], : t["src_width"]] ** 2), atol=1e-3)
    from sarvlm.io.georef import pixel_to_lonlat

    lon, lat = pixel_to_lonlat(recs[0].georef, 0, 0)
    assert abs(float(lon) - 12.4327) < 0.01 and abs(float(lat) - 47.117) < 0.01  # the product's first grid node
    assert "no annotation for polarisation VH" in _cli_error(
        capsys, ["preprocess", str(safe), "--out", str(tmp_path / "x"), "--pol", "VH"]
    )
