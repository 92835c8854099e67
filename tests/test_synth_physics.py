"""The synthetic world's physics and design rules, on in-memory layouts (no files)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sarvlm.core.vocabulary import cell_name, grid_cell
from sarvlm.synth.backscatter import SEA_STATES, db_to_linear, sigma0_map, speckle
from sarvlm.synth.captions import make_captions
from sarvlm.synth.embedding_field import PROTOTYPES, CellLayout, nearest_class, site_embedding_field
from sarvlm.synth.footprint import Site, place_scenes, utm_zone
from sarvlm.synth.landcover import CLASSES, FARMLAND, GRASSLAND, WATER, generate_layout
from sarvlm.synth.shapes import mask_box, place, polygon_mask, rect
from sarvlm.synth.target_shapes import aircraft, oil_tank, ship
from sarvlm.synth.targets import place_targets


@pytest.mark.parametrize("looks", [1, 4])
def test_speckle_is_unit_mean_gamma_with_L_looks(looks):
    rng = np.random.default_rng(0)
    sigma = np.full((256, 256), 0.05, dtype=np.float32)
    nu = np.full_like(sigma, 1e6)  # no texture: pure speckle
    img = speckle(sigma, nu, looks, rng, nesz_db=-80)
    assert img.mean() == pytest.approx(0.05, rel=0.02)
    enl = img.mean() ** 2 / img.var()
    assert enl == pytest.approx(looks, rel=0.08)


def test_farmland_and_grassland_share_backscatter_statistics():
    farm, grass = [], []
    for s in range(40):
        rng = np.random.default_rng([s, 7])
        lay = generate_layout(rng, 200, 2.0, "rural")
        sigma, nu = sigma0_map(lay, rng, SEA_STATES["calm"])
        img = 10 * np.log10(speckle(sigma, nu, 4.0, rng))
        farm.append(img[lay.classes == FARMLAND])
        grass.append(img[lay.classes == GRASSLAND])
    fdb, gdb = np.concatenate(farm), np.concatenate(grass)
    assert fdb.size > 100_000 and gdb.size > 100_000
    # Same distribution up to the sampling spread of ~100 parcels per class (σ0 spread 1.8 dB).
    assert abs(fdb.mean() - gdb.mean()) < 0.5
    assert abs(fdb.std() - gdb.std()) < 0.3
    assert np.percentile(fdb, [10, 50, 90]) == pytest.approx(np.percentile(gdb, [10, 50, 90]), abs=0.6)


def test_rough_sea_is_as_bright_as_fields_but_calm_sea_is_dark():
    rng = np.random.default_rng(1)
    lay = generate_layout(rng, 220, 2.0, "coast")
    water = lay.classes == WATER
    fields = np.isin(lay.classes, (FARMLAND, GRASSLAND))
    assert water.any() and fields.any()
    rough, _ = sigma0_map(lay, np.random.default_rng(2), SEA_STATES["rough"])
    calm, _ = sigma0_map(lay, np.random.default_rng(2), SEA_STATES["calm"])
    field_db = 10 * np.log10(np.median(rough[fields]))
    assert abs(10 * np.log10(np.median(rough[water])) - field_db) < 3.0
    assert 10 * np.log10(np.median(calm[water])) < field_db - 7.0


def test_embedding_separates_what_sar_cannot():
    # One site of four cells; classify each 10 m pixel that is purely one class by its nearest prototype.
    rng = np.random.default_rng(5)
    cells = [
        CellLayout(k // 2, k % 2, generate_layout(rng, 150, 2.0, kind), k)
        for k, kind in enumerate(("rural", "coast", "rural", "river"))
    ]
    site = Site(0, 50, True, 700_000.0, 4_000_000.0, 2, 2, 150 * 2.0)
    field = site_embedding_field(site, cells, 2021, [0, 0])
    assert field.shape == (64, 60, 60)
    assert np.allclose(np.linalg.norm(field.reshape(64, -1), axis=0), 1.0, atol=1e-5)
    # Pure pixels: the class at the 4 corners of the 10 m pixel agrees.
    truth = np.full((60, 60), -1)
    for c in cells:
        sub = c.layout.classes[1::5, 1::5][:30, :30]
        same = (c.layout.classes[0::5, 0::5][:30, :30] == sub) & (c.layout.classes[4::5, 4::5][:30, :30] == sub)
        truth[c.row * 30 : (c.row + 1) * 30, c.col * 30 : (c.col + 1) * 30] = np.where(same, sub, -1)
    pred = nearest_class(field.transpose(1, 2, 0))
    for cls in (WATER, FARMLAND, GRASSLAND):
        sel = truth == cls
        assert sel.sum() > 30, CLASSES[cls]
        assert (pred[sel] == cls).mean() > 0.97, CLASSES[cls]
    # Farmland and grassland prototypes are orthogonal; within-class vectors stay close.
    assert abs(float(PROTOTYPES[FARMLAND] @ PROTOTYPES[GRASSLAND])) < 1e-9
    # Farmland changes between years (crop rotation), grassland barely does.
    other = site_embedding_field(site, cells, 2022, [0, 0])
    cos = np.einsum("chw,chw->hw", field, other)
    assert np.median(cos[truth == FARMLAND]) < np.median(cos[truth == GRASSLAND]) - 0.05


def test_sites_alternate_zones_and_never_overlap():
    sites, fps = place_scenes(40, 128, 2.0, np.random.default_rng(0))
    assert {s.zone_label for s in sites} == {"50N", "51N"}
    assert len(fps) == 40 and len({(f.cell_west, f.cell_north, f.zone) for f in fps}) == 40
    for s in sites:
        assert s.west % 10 == 0 and s.north % 10 == 0  # on the AlphaEarth 10 m grid
    for f in fps:
        lon, _ = f.center_lonlat()
        assert utm_zone(lon) == f.zone
    boxes = [(s.zone, s.west, s.north - s.rows * s.cell_m, s.west + s.cols * s.cell_m, s.north) for s in sites]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if a[0] == b[0]:
                assert a[3] <= b[1] or b[3] <= a[1] or a[4] <= b[2] or b[4] <= a[2]


def test_polygon_rasterising_is_pixel_centre_exact():
    poly = np.array([[2.0, 3.0], [7.0, 3.0], [7.0, 5.0], [2.0, 5.0]])  # covers centres x 2.5..6.5, y 3.5..4.5
    sub, (r0, c0) = polygon_mask(poly, 10, 10)
    full = np.zeros((10, 10), bool)
    full[r0 : r0 + sub.shape[0], c0 : c0 + sub.shape[1]] = sub
    assert mask_box(full) == [2.0, 3.0, 7.0, 5.0]
    assert full.sum() == 10
    # Rotating the local frame by 90 degrees swaps the extents.
    xy = place(rect(-10, 10, -2, 2), (20.0, 20.0), math.pi / 2, 1.0)
    assert np.allclose(np.ptp(xy, axis=0), [4, 20])


def test_fine_types_have_distinct_sizes():
    rng = np.random.default_rng(0)
    lengths = {f: [ship(f, rng).length for _ in range(50)] for f in ("cargo", "tanker", "fishing", "warship")}
    assert max(lengths["fishing"]) < 40 < min(lengths["warship"])
    assert np.mean(lengths["tanker"]) > np.mean(lengths["cargo"]) > np.mean(lengths["warship"])
    slender = {f: np.mean([(s := ship(f, rng)).width / s.length for _ in range(20)]) for f in ("warship", "fishing")}
    assert slender["warship"] < 0.14 < slender["fishing"]
    spans = {f: [(_a := aircraft(f, rng)).length for _ in range(30)] for f in ("fighter", "airliner", "light")}
    assert max(spans["light"]) < min(spans["fighter"]) and max(spans["fighter"]) < min(spans["airliner"])
    assert {p.sigma0_db for p in oil_tank("floating_roof", rng).parts} != {
        p.sigma0_db for p in oil_tank("fixed_roof", rng).parts
    }


@pytest.mark.parametrize("kind", ["port", "coast", "river", "airport", "rural"])
def test_targets_boxes_exact_and_on_allowed_ground(kind):
    for s in range(4):
        rng = np.random.default_rng([s, 99])
        lay = generate_layout(rng, 200, 2.0, kind).window(20, 20, 160)
        before = lay.classes.copy()
        targets = place_targets(lay, rng)
        occupied = np.zeros((160, 160), int)
        for t in targets:
            assert t.bbox == mask_box(t.mask)
            occupied += t.mask
            if t.category == "ship":
                assert (before[t.mask] == WATER).all()
            if t.category == "aircraft":
                assert lay.pavement[t.mask].all()
            if t.category == "clutter":
                assert not t.annotated and (before[t.mask] != WATER).all()
        assert occupied.max() <= 1  # objects never overlap
        if kind == "airport" and s == 0:
            assert any(t.category == "aircraft" for t in targets)


def test_captions_follow_the_annotations():
    from sarvlm.core.record import ObjectAnnotation

    objs = [
        ObjectAnnotation(category="ship", fine_category="cargo", bbox=[5, 5, 20, 10]),
        ObjectAnnotation(category="ship", fine_category="fishing", bbox=[8, 6, 12, 9]),
        ObjectAnnotation(category="harbor", bbox=[30, 30, 60, 60]),
    ]
    caps = make_captions("port", objs, {"water": 0.5, "urban": 0.45, "forest": 0.05}, 100, 100, 2.0)
    template, concise = (c.text for c in caps)
    assert "two ships (one cargo, one fishing) in the upper left" in template
    assert "one harbor in the center" in template
    assert "water (50%)" in template and "2 m C-band VV SAR" in template
    assert concise == "A coastal port with one harbor and two ships."
    empty = make_captions("rural", [], {"farmland": 0.7, "forest": 0.3}, 100, 100, 2.0)
    assert "No ships" in empty[0].text and "mostly farmland" in empty[1].text
    assert cell_name(grid_cell(99, 0, 100, 100)) == "upper right" and cell_name(grid_cell(50, 50, 100, 100)) == "center"


def test_optical_shows_farmland_crops_unlike_grassland():
    from sarvlm.synth.optical import render_optical

    rng = np.random.default_rng(3)
    lay = generate_layout(rng, 200, 2.0, "rural")
    rgb = render_optical(lay, [], 2021, 0, rng).astype(float)
    farm, grass = lay.classes == FARMLAND, lay.classes == GRASSLAND
    assert farm.sum() > 500 and grass.sum() > 500
    # Farmland parcels carry different crops (colours); grassland is one meadow green.
    assert rgb[farm].std(axis=0).mean() > 2 * rgb[grass].std(axis=0).mean()
    assert db_to_linear(10.0) == pytest.approx(10.0)


def test_cross_pol_offsets_follow_scattering_mechanisms():
    from sarvlm.synth.backscatter import cross_pol_offset_db
    from sarvlm.synth.landcover import FOREST

    lay = generate_layout(np.random.default_rng(11), 200, 2.0, "rural")  # fields, forest and water
    off = cross_pol_offset_db(lay)
    fields = np.isin(lay.classes, (FARMLAND, GRASSLAND))
    # One value for farmland and grassland (VH does not separate them); volume scattering depolarises more.
    assert np.unique(off[fields]).size == 1
    assert off[lay.classes == FOREST].mean() > off[fields].mean() > off[lay.classes == WATER].mean()


def test_moving_ships_leave_a_dark_turbulent_wake_in_calm_water():
    from sarvlm.synth.footprint import place_scenes
    from sarvlm.synth.world import make_scene

    _, fps = place_scenes(80, 160, 2.0, np.random.default_rng(0))
    ratios = []
    for i, fp in enumerate(fps):
        sc = make_scene(i, fp, 1, 8.0, [2021], optical=False)
        if sc.record.meta.get("sea_state") != "calm" or not sc.record.meta["moving"]:
            continue
        img, water = sc.intensity[0], sc.mask == WATER
        moving = {m["id"]: m for m in sc.record.meta["moving"]}
        for o in sc.record.objects:
            if o.id not in moving:
                continue
            xs, ys = np.array(o.polygon[0::2]), np.array(o.polygon[1::2])
            # The wake starts at the ship's true position: azimuth-displaced from its image.
            dx, dy = moving[o.id]["wake_offset_px"]
            assert moving[o.id]["speed_ms"] > 0
            cx, cy = xs.mean() + dx, ys.mean() + dy
            ux, uy = xs[1] - xs[0], ys[1] - ys[0]
            length = math.hypot(ux, uy)
            ux, uy = ux / length, uy / length
            # Azimuth displacement (R/V)·v_r with R/V = 110 s and range along +x, at 2 m pixels.
            assert dx == 0.0 and dy == pytest.approx(110.0 * moving[o.id]["speed_ms"] * ux / 2.0, abs=0.05)
            behind, beside = [], []
            for t in np.arange(0.7, 1.6, 0.05) * length:  # along the wake, behind the stern
                for side, store in ((0.0, behind), (4.0, beside)):
                    beam = math.hypot(xs[2] - xs[1], ys[2] - ys[1])
                    x = cx - ux * t - uy * side * beam
                    y = cy - uy * t + ux * side * beam
                    r, c = int(y), int(x)
                    if 0 <= r < 160 and 0 <= c < 160 and water[r, c]:
                        store.append(img[r, c])
            if len(behind) > 10 and len(beside) > 10:
                ratios.append(np.mean(behind) / np.mean(beside))
        if len(ratios) >= 6:
            break
    assert len(ratios) >= 3
    assert np.median(ratios) < 0.8  # the turbulent wake is darker than the sea beside it


def test_larger_scenes_hold_more_targets():
    def ships(size):
        n = 0
        for s in range(4):
            rng = np.random.default_rng([s, 5])
            n += sum(t.category == "ship" for t in place_targets(generate_layout(rng, size, 2.0, "coast"), rng))
        return n

    assert ships(640) > 2 * ships(200)
