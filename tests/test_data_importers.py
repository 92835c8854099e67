"""Importers: every format's fixture gives the hand-made annotations; bad input is a one-line error."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from sarvlm.cli.main import main as cli_main
from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import read_samples
from sarvlm.data.importers import IMPORTERS, import_dataset

_spec = importlib.util.spec_from_file_location(
    "make_fixtures", Path(__file__).parent / "data/importers/make_fixtures.py"
)
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixtures")
    return root, fx.make_all(root)


def _objects(records):
    return {Path(r.image).name: sorted((o.category, [round(v, 3) for v in o.bbox]) for o in r.objects) for r in records}


EXPECTED = {name: sorted((c, [float(v) for v in b]) for c, _f, b in objs) for name, objs in fx.OBJECTS.items()}


@pytest.mark.parametrize("fmt", ["coco", "dota", "voc", "yolo"])
def test_detection_formats_give_the_same_objects(fixtures, tmp_path, fmt):
    root, srcs = fixtures
    out = tmp_path / "samples.jsonl"
    res = import_dataset(fmt, srcs[fmt], out, images=root / "images", source="fx")
    recs = list(read_samples(out))
    assert res.records == 3 == len(recs)
    assert _objects(recs) == EXPECTED
    sizes = {Path(r.image).name: (r.width, r.height) for r in recs}
    assert sizes == fx.IMAGES
    # image paths are relative to the samples file and resolve to the real images
    for r in recs:
        assert r.image_path(out.parent).exists()
        assert r.source == "fx" and r.id.startswith("fx/")
    if fmt == "dota":
        assert all(r.resolution_m == 1.5 for r in recs)
        assert all(o.polygon and len(o.polygon) == 8 for r in recs for o in r.objects)


def test_coco_fine_from_supercategory(fixtures, tmp_path):
    root, srcs = fixtures
    data = json.loads(srcs["coco"].read_text())
    for c in data["categories"]:
        c["supercategory"], c["name"] = "aircraft", f"A{c['id']}20"
    src = tmp_path / "fine.json"
    src.write_text(json.dumps(data))
    import_dataset("coco", src, tmp_path / "s.jsonl", images=root / "images", fine_from_supercategory=True)
    recs = list(read_samples(tmp_path / "s.jsonl"))
    assert {(o.category, o.fine_category) for r in recs for o in r.objects} == {
        ("aircraft", "A120"),
        ("aircraft", "A220"),
        ("aircraft", "A320"),
    }


def test_sarlang_captions_and_vqa(fixtures, tmp_path):
    root, srcs = fixtures
    out = tmp_path / "s.jsonl"
    import_dataset("sarlang", srcs["sarlang"], out, images=root / "images")
    recs = {Path(r.image).name: r for r in read_samples(out)}
    assert set(recs) == {"img1.png", "img2.png"}
    img1 = recs["img1.png"]
    assert [c.style for c in img1.captions] == ["concise", "complex"]
    assert [(q.question, q.answer, q.type) for q in img1.qa][0] == (
        "How many ships are visible in the image?",
        "2",
        "counting",
    )
    assert img1.split == "train" and img1.source == "SARLANG-1M"
    assert recs["img2.png"].captions[0].style == "concise"  # Caption_test1 = concise test captions
    assert recs["img2.png"].split == "test"


def test_geovl_structured_captions(fixtures, tmp_path):
    root, srcs = fixtures
    out = tmp_path / "s.jsonl"
    import_dataset("geovl", srcs["geovl"], out, images=root / "images")
    recs = list(read_samples(out))
    assert len(recs) == 2
    cap = recs[0].captions[0]
    assert cap.style == "structured" and cap.fields["Terrain"] == "flat coastal plain"
    assert cap.text.splitlines()[0] == "Terrain: flat coastal plain"
    assert cap.text.splitlines()[-1].startswith("Water:")
    assert set(recs[1].captions[0].fields) >= {"Buildings", "Roads"}  # singular names mapped


@pytest.mark.parametrize("fmt", ["llava", "swift"])
def test_chat_formats(fixtures, tmp_path, fmt):
    root, srcs = fixtures
    out = tmp_path / "s.jsonl"
    import_dataset(fmt, srcs[fmt], out, images=root / "images")
    recs = {Path(r.image).name: r for r in read_samples(out)}
    turns = recs["img1.png"].dialogues[0].turns
    assert turns[0].role == "user" and turns[0].content == "How many ships are there?"
    assert turns[1].content == "2"
    assert recs["img2.png"].dialogues[0].turns[-1].content == "A tank."


def test_registry_has_all_formats():
    assert set(IMPORTERS) == {"coco", "dota", "voc", "yolo", "sarlang", "geovl", "llava", "swift"}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: d["annotations"].append({"id": 99, "image_id": 42, "category_id": 1, "bbox": [1, 1, 2, 2]}),
            "annotations[4] (id 99): image_id: no image with id 42",
        ),
        (lambda d: d["annotations"][0].update(bbox=[1, 1, -3, 2]), "bbox: negative size"),
        (lambda d: d["annotations"][0].update(category_id=7), "category_id: no category with id 7"),
        (lambda d: d["images"][0].update(width=65), "img1.png is 64x48 but the annotations say 65x48"),
        (lambda d: d["images"][0].update(file_name="nope.png"), "nope.png: no such file"),
    ],
)
def test_coco_bad_input(fixtures, tmp_path, mutate, message):
    root, srcs = fixtures
    data = json.loads(srcs["coco"].read_text())
    mutate(data)
    src = tmp_path / "bad.json"
    src.write_text(json.dumps(data))
    out = tmp_path / "s.jsonl"
    with pytest.raises(SarvlmError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        import_dataset("coco", src, out, images=root / "images")
    assert not out.exists()  # nothing half-written


def test_missing_image_skipped_and_counted(fixtures, tmp_path):
    root, srcs = fixtures
    data = json.loads(srcs["coco"].read_text())
    data["images"][1]["file_name"] = "gone.png"
    src = tmp_path / "c.json"
    src.write_text(json.dumps(data))
    res = import_dataset("coco", src, tmp_path / "s.jsonl", images=root / "images", skip_missing=True)
    assert res.records == 2 and res.counts["missing_image"] == 1


def test_unreadable_image_and_malformed_files(fixtures, tmp_path):
    root, srcs = fixtures
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    (imgs / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(SarvlmError, match="img1.png"):
        import_dataset("coco", srcs["coco"], tmp_path / "s.jsonl", images=imgs)
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [\n{"id": 1,,}]}')
    with pytest.raises(SarvlmError, match=r"bad.json:2: malformed JSON"):
        import_dataset("coco", bad, tmp_path / "s.jsonl", images=root / "images")
    swift = tmp_path / "x.jsonl"
    swift.write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], '
        '"images": ["img1.png"]}\n{"messages": [\n'
    )
    with pytest.raises(SarvlmError, match=r"x.jsonl:2: malformed JSON"):
        import_dataset("swift", swift, tmp_path / "s.jsonl", images=root / "images")
    with pytest.raises(SarvlmError, match="unknown import format 'kitti'"):
        import_dataset("kitti", srcs["coco"], tmp_path / "s.jsonl")


def test_yolo_bad_class(fixtures, tmp_path):
    root, srcs = fixtures
    lab = tmp_path / "labels"
    lab.mkdir()
    (lab / "classes.txt").write_text("ship\n")
    (lab / "img2.txt").write_text("3 0.5 0.5 0.1 0.1\n")
    with pytest.raises(SarvlmError, match=r"img2.txt:1: class 3 is not in the class list"):
        import_dataset("yolo", lab, tmp_path / "s.jsonl", images=root / "images")


def test_cli_import(fixtures, tmp_path, capsys):
    root, srcs = fixtures
    out = tmp_path / "s.jsonl"
    assert cli_main(["import", "voc", str(srcs["voc"]), "--images", str(root / "images"), "--out", str(out)]) == 0
    assert len(list(read_samples(out))) == 3
    assert cli_main(["import", "nope", str(srcs["voc"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "sarvlm: error: unknown import format 'nope'" in err and "Traceback" not in err


def test_text_format_variants(fixtures, tmp_path):
    root, _ = fixtures
    vqa = tmp_path / "SARVQA2_test.json"
    vqa.write_text(json.dumps([{"image": "img3.png", "question": "Is there water?", "answer": "no", "type": "others"}]))
    import_dataset("sarlang", vqa, tmp_path / "a.jsonl", images=root / "images")
    [rec] = read_samples(tmp_path / "a.jsonl")
    assert rec.split == "test" and rec.qa[0].type == "others" and rec.captions == []
    keyed = tmp_path / "geo.json"
    keyed.write_text(json.dumps({"img2": {"Terrain": "flat", "Water": "none", "Roads": "a grid"}}))
    import_dataset("geovl", keyed, tmp_path / "b.jsonl", images=root / "images")
    [rec] = read_samples(tmp_path / "b.jsonl")
    assert rec.captions[0].text == "Terrain: flat\nRoads: a grid\nWater: none"
    lines = tmp_path / "geo.jsonl"
    lines.write_text(json.dumps({"image_id": "img2.png", "Terrain": "flat"}) + "\n" + json.dumps({"image_id": "img3"}))
    with pytest.raises(SarvlmError, match=r"geo.jsonl:2: none of the fields Terrain"):
        import_dataset("geovl", lines, tmp_path / "c.jsonl", images=root / "images")
    llava = tmp_path / "pairs.json"
    llava.write_text(
        json.dumps(
            [
                {
                    "id": "p",
                    "image": ["img1.png", "img2.png"],
                    "conversations": [
                        {"from": "human", "value": "<image>\n<image>\nCompare."},
                        {"from": "gpt", "value": "Same place."},
                    ],
                }
            ]
        )
    )
    import_dataset("llava", llava, tmp_path / "d.jsonl", images=root / "images")
    [rec] = read_samples(tmp_path / "d.jsonl")
    assert rec.optical.endswith("img2.png") and rec.dialogues[0].turns[0].content == "Compare."
