"""FUSAR-GEOVL 8-field captions of synthetic scenes and their recorded corruptions."""

from __future__ import annotations

import pytest

from sarvlm.core.record import ObjectAnnotation, SampleRecord
from sarvlm.synth.geovl_captions import GEOVL_FIELDS, add_geovl_captions, scene_fields

KINDS = ("port", "coast", "river", "airport", "rural")


def _records(n: int = 60) -> list[SampleRecord]:
    out = []
    for i in range(n):
        kind = KINDS[i % 5]
        water = 0.4 if kind in ("port", "coast", "river") else 0.0
        frac = {"water": water, "urban": 0.35 if kind == "port" else 0.02, "farmland": 0.65 - water / 2, "forest": 0.1}
        objs = [ObjectAnnotation(category="ship", bbox=[10, 10, 20, 20])] * (i % 4) if water else []
        out.append(
            SampleRecord(
                id=f"s{i}",
                image=f"{i}.tif",
                width=64,
                height=64,
                objects=objs,
                meta={"kind": kind, "landcover_fractions": frac},
            )
        )
    return out


def test_true_fields_follow_the_scene():
    f = scene_fields(_records()[0])  # a port with water and urban land
    assert list(f) == list(GEOVL_FIELDS)
    assert f["Terrain"].startswith("The terrain is classified as mainly farmland")
    assert f["Water"] == "Open water covers a large part of the scene"
    assert f["Buildings"] == "Dense buildings cover much of the scene"
    assert f["Boundary"] == "A coastline separates water from land"
    assert scene_fields(_records()[3])["Distribution"] == "No targets are present"  # airport, no water
    # Layout names the 3x3 region in words (boxes at 10..20 of 64 px: the upper-left cell), not a cell number.
    assert scene_fields(_records()[1])["Layout"] == "Most targets lie in the upper left of the image"


def test_corruptions_are_recorded_wrong_and_deterministic():
    recs = _records()
    clean = add_geovl_captions(recs, seed=3, corrupt_fraction=0.0)
    assert all(r.meta["geovl_corruptions"] == [] for r in clean)
    a = add_geovl_captions(recs, seed=3, corrupt_fraction=0.25)
    b = add_geovl_captions(recs, seed=3, corrupt_fraction=0.25)
    assert [r.to_json() for r in a] == [r.to_json() for r in b]
    n = 0
    kinds = set()
    for rec, orig in zip(a, recs):
        cap = rec.captions[-1]
        assert cap.style == "structured" and list(cap.fields) == list(GEOVL_FIELDS)
        truth = scene_fields(orig)
        bad = {c["field"]: c for c in rec.meta["geovl_corruptions"]}
        for name in GEOVL_FIELDS:
            if name in bad:
                assert bad[name]["true"] == truth[name] != cap.fields[name] == bad[name]["corrupted"]
                kinds.add(bad[name]["kind"])
                n += 1
            else:
                assert cap.fields[name] == truth[name]
        assert not orig.captions  # the input records are not modified
    assert 0.15 < n / (8 * len(recs)) < 0.3
    assert kinds == {"wrong_landcover", "wrong_count", "swapped"}
    with pytest.raises(ValueError):
        add_geovl_captions(recs, seed=0, corrupt_fraction=1.0)


def test_synth_cli_option_writes_structured_captions(tmp_path):
    from sarvlm.cli.main import main
    from sarvlm.core.record import read_samples

    assert (
        main(["synth", str(tmp_path / "w"), "--scenes", "2", "--size", "64", "--no-optical", "--geovl-corrupt", "0.5"])
        == 0
    )
    recs = list(read_samples(tmp_path / "w" / "samples.jsonl"))
    assert all(r.captions[-1].style == "structured" and "geovl_corruptions" in r.meta for r in recs)
    assert main(["synth", str(tmp_path / "v"), "--scenes", "2", "--size", "64", "--geovl-corrupt", "1.5"]) == 2
    assert not (tmp_path / "v").exists()
