"""The sample record: validation names record and field; JSONL round trip is byte-stable."""

from __future__ import annotations

import json

import pytest

from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import SampleRecord, parse_sample, read_samples, write_samples


def _record(**kw):
    base = dict(
        id="s1",
        image="images/s1.tif",
        width=64,
        height=48,
        sensor="synthetic",
        polarizations=["vv"],
        resolution_m=1.0,
        date="2021-06-01",
        georef={"crs": "EPSG:32650", "transform": [1, 0, 500000, 0, -1, 3500000]},
        objects=[{"category": "ship", "fine_category": "cargo", "bbox": [1, 2, 10, 12]}],
        captions=[{"text": "A ship at sea.", "style": "concise"}],
    )
    base.update(kw)
    return base


def test_valid_record_roundtrip(tmp_path):
    rec = parse_sample(_record())
    assert rec.polarizations == ["VV"]
    assert rec.year == 2021
    path = tmp_path / "s.jsonl"
    write_samples(path, [rec, rec.model_copy(update={"id": "s2"})])
    first = path.read_bytes()
    again = list(read_samples(path))
    assert [r.id for r in again] == ["s1", "s2"]
    write_samples(path, again)
    assert path.read_bytes() == first
    assert rec.image_path(tmp_path) == (tmp_path / "images/s1.tif").resolve()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"objects": [{"category": "ship", "bbox": [5, 5, 1, 1]}]}, "objects.0.bbox"),
        ({"polarizations": ["XX"]}, "polarizations"),
        ({"width": 0}, "width"),
        ({"date": "June 2021"}, "date"),
        ({"georef": {"bbox_wgs84": [31.2, 121.4, 31.3, 121.5]}}, "georef.bbox_wgs84"),
        ({"georef": {"transform": [1, 0, 0, 0, -1, 0]}}, "georef"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_invalid_record_names_id_and_field(change, field):
    with pytest.raises(SarvlmError) as err:
        parse_sample(_record(**change), where="f.jsonl:7")
    msg = str(err.value)
    assert msg.startswith("f.jsonl:7: record 's1': field ")
    assert repr(field) in msg


def test_read_samples_reports_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(_record()) + "\n{not json\n")
    with pytest.raises(SarvlmError, match=r"bad.jsonl:2: malformed JSON"):
        list(read_samples(path))


def test_write_is_atomic(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("original\n")

    def broken():
        yield parse_sample(_record())
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_samples(path, broken())
    assert path.read_text() == "original\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_schema_is_one_type():
    # Every field the Foundation issue names exists on the one record type.
    for name in [
        "id",
        "image",
        "optical",
        "width",
        "height",
        "sensor",
        "band",
        "polarizations",
        "resolution_m",
        "date",
        "georef",
        "objects",
        "landcover",
        "captions",
        "qa",
        "dialogues",
        "split",
        "schema_version",
    ]:
        assert name in SampleRecord.model_fields
