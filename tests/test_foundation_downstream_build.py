"""`sarvlm build --geovl-corrupt`: GEOVL 8-field captions with recorded corruptions, written by the builder
with the same code (and so the same captions) as `sarvlm synth --geovl-corrupt`."""

from __future__ import annotations

import json

import pytest

from sarvlm.cli.main import main
from sarvlm.core.record import read_samples
from sarvlm.tasks.caption import structured_text


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    root = tmp_path_factory.mktemp("geovl_build")
    base = ["--scenes", "8", "--size", "64", "--no-optical", "--seed", "5"]
    assert main(["synth", str(root / "plain"), *base]) == 0
    assert main(["synth", str(root / "geovl"), *base, "--geovl-corrupt", "0.4"]) == 0
    return root


def _build(root, name: str, *extra: str) -> int:
    samples = str(root / "plain" / "samples.jsonl")
    # --qc flag: keep captions whose (corrupted) counts disagree with the annotations
    argv = ["build", samples, str(root / name), "--tasks", "caption", "--split", "1:0", "--seed", "5", "--qc", "flag"]
    argv += list(extra)
    return main(argv)


def test_builder_writes_the_same_corrupted_captions_as_synth(worlds):
    root = worlds
    assert _build(root, "b1", "--geovl-corrupt", "0.4") == 0
    synth = {r.id: r for r in read_samples(root / "geovl" / "samples.jsonl")}
    recorded = [json.loads(line) for line in (root / "b1" / "geovl_corruptions.jsonl").read_text().splitlines()]
    assert [r["sample_id"] for r in recorded] == list(synth)
    for row in recorded:  # the same fragments, the same kinds of error, the same wrong values
        assert row["geovl_corruptions"] == synth[row["sample_id"]].meta["geovl_corruptions"]
    assert sum(len(r["geovl_corruptions"]) for r in recorded) > 0

    examples = [json.loads(line) for line in (root / "b1" / "train.jsonl").read_text().splitlines()]
    structured = {e["sample_id"]: e["answer"] for e in examples if e["params"].get("style") == "structured"}
    assert set(structured) == set(synth)
    for sid, answer in structured.items():  # the caption examples carry the corrupted captions
        cap = next(c for c in synth[sid].captions if c.style == "structured")
        assert answer == structured_text(cap.fields)
        for c in synth[sid].meta["geovl_corruptions"]:
            assert f"{c['field']}: {c['corrupted']}" in answer

    manifest = json.loads((root / "b1" / "manifest.json").read_text())
    assert manifest["geovl_captions"]["corrupt_fraction"] == 0.4
    assert manifest["geovl_captions"]["corrupted_fragments"] == sum(len(r["geovl_corruptions"]) for r in recorded)

    # deterministic with the seed; another seed corrupts other fragments
    assert _build(root, "b2", "--geovl-corrupt", "0.4") == 0
    for name in ("train.jsonl", "geovl_corruptions.jsonl", "manifest.json"):
        assert (root / "b1" / name).read_bytes() == (root / "b2" / name).read_bytes()
    samples = str(root / "plain" / "samples.jsonl")
    argv = ["build", samples, str(root / "b3"), "--tasks", "caption", "--split", "1:0", "--seed", "6"]
    assert main([*argv, "--geovl-corrupt", "0.4"]) == 0
    assert (root / "b3" / "geovl_corruptions.jsonl").read_bytes() != (
        root / "b1" / "geovl_corruptions.jsonl"
    ).read_bytes()
    # the default text QC drops the captions whose corrupted target counts contradict the annotations
    argv = ["build", samples, str(root / "b5"), "--tasks", "caption", "--split", "1:0", "--seed", "5"]
    assert main([*argv, "--geovl-corrupt", "0.4"]) == 0
    kept = {
        json.loads(line)["sample_id"]
        for line in (root / "b5" / "train.jsonl").read_text().splitlines()
        if json.loads(line)["params"].get("style") == "structured"
    }
    dropped = set(synth) - kept
    assert dropped and all(
        any(c["field"] == "Distribution" for c in synth[sid].meta["geovl_corruptions"]) for sid in dropped
    )
    # without the option: no structured captions, no corruption file
    assert _build(root, "b4") == 0
    assert not (root / "b4" / "geovl_corruptions.jsonl").exists()
    assert "geovl_captions" not in json.loads((root / "b4" / "manifest.json").read_text())


def test_builder_option_bad_input(worlds, tmp_path, capsys):
    root = worlds

    def err(argv: list[str]) -> str:
        assert main(argv) == 2
        e = capsys.readouterr().err.strip().splitlines()[-1]
        assert e.startswith("sarvlm: error:")
        return e

    samples = str(root / "plain" / "samples.jsonl")
    assert "[0, 1)" in err(["build", samples, str(tmp_path / "o1"), "--tasks", "caption", "--geovl-corrupt", "1.0"])
    # records that already carry a structured caption (synth already wrote GEOVL captions)
    e = err(["build", str(root / "geovl" / "samples.jsonl"), str(tmp_path / "o2"), "--geovl-corrupt", "0.2"])
    assert "already has a structured caption" in e and "record " in e
    # records without the synthetic truth
    rows = [json.loads(line) for line in (root / "plain" / "samples.jsonl").read_text().splitlines()]
    rows[1]["meta"].pop("landcover_fractions")
    bad = root / "plain" / "nolandcover.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    e = err(["build", str(bad), str(tmp_path / "o3"), "--tasks", "caption", "--geovl-corrupt", "0.2"])
    assert f"record {rows[1]['id']!r}" in e and "meta.landcover_fractions" in e
    e = err(["build", samples, str(tmp_path / "o4"), "--tasks", "caption", "--geovl-corrupt", "0.2", "--shard", "0/2"])
    assert "not supported with --geovl-corrupt" in e
    for name in ("o1", "o2", "o3", "o4"):
        assert not (tmp_path / name).exists()
