"""End to end: evaluate() on a tiny test set covering every task, the CLI, compare, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sarvlm.cli.main import main
from sarvlm.core.example import InstructionExample, Message, Prediction, write_jsonl
from sarvlm.eval import compare, evaluate


def _ex(i: str, task: str, answer, question: str = "Q?", reference: str | None = None, **kw) -> InstructionExample:
    ref = reference if reference is not None else (answer if isinstance(answer, str) else json.dumps(answer))
    return InstructionExample(
        id=i,
        sample_id=f"s{i}",
        task=task,
        images=["img.png"],
        answer=answer,
        messages=[Message(role="user", content=f"<image>{question}"), Message(role="assistant", content=ref)],
        **kw,
    )


def make_data() -> tuple[list[InstructionExample], list[Prediction]]:
    ex = [
        _ex("c1", "count", 3),
        _ex("c2", "count", 5),
        _ex("c3", "count", 0),
        _ex("c4", "count", 2),
        _ex("g1", "grid", [1, 2]),
        _ex("g2", "grid", [5]),
        _ex("g3", "grid", [3, 6, 9]),
        _ex("b1", "classify_box", "ship", params={"box": [0, 0, 5, 5], "level": "coarse"}),
        _ex("b2", "classify_box", "aircraft", params={"box": [0, 0, 5, 5], "level": "coarse"}),
        _ex("b3", "classify_box", "A320", params={"box": [0, 0, 5, 5], "level": "fine"}),
        _ex(
            "d1",
            "detect",
            [[10, 10, 50, 50], [100, 100, 140, 140]],
            params={"category": "ship"},
            coords="qwen3",
            width=200,
            height=200,
        ),
        _ex("i1", "identify", "yes"),
        _ex("i2", "identify", "no"),
        _ex("p1", "position", "left"),
        _ex("l1", "landform_all", ["urban", "water"]),
        _ex(
            "cap1",
            "caption",
            "several ships are docked in the harbor.",
            question="Describe the image.",
            params={"style": "concise"},
        ),
        _ex(
            "cap2",
            "caption",
            "an airport with two runways and parked aircraft.",
            question="Describe the image.",
            params={"style": "complex"},
        ),
        _ex("v1", "vqa", "oval", question="What shape is the tank?", params={"type": "shape"}),
    ]
    preds = [
        Prediction(id="c1", task="count", prediction="There are three ships."),
        Prediction(id="c2", task="count", prediction="I count 4."),
        Prediction(id="c3", task="count", prediction="No ships are visible."),
        # c4 missing on purpose
        Prediction(id="g1", prediction="Cells 1 and 2."),
        Prediction(id="g2", prediction="5, 6"),
        Prediction(id="g3", prediction="I am not sure."),
        Prediction(id="b1", prediction="A ship."),
        Prediction(id="b2", prediction="It is a plane."),
        Prediction(id="b3", prediction="This looks like an A320 airliner."),
        Prediction(
            id="d1", prediction='[{"bbox_2d": [50, 50, 250, 250], "label": "ship"}, {"bbox_2d": [600, 600, 650, 650]}]'
        ),
        Prediction(id="i1", prediction="Yes, there is."),
        Prediction(id="i2", prediction="yes"),
        Prediction(id="p1", prediction="On the left side."),
        Prediction(id="l1", prediction="urban area and water"),
        Prediction(id="cap1", prediction="Several ships are docked in a harbour."),
        Prediction(id="cap2", prediction="An airport with a runway."),
        Prediction(id="v1", prediction="Oval."),
        Prediction(id="zz", prediction="not in the data"),
    ]
    return ex, preds


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    ex, preds = make_data()
    data, pr = tmp_path / "test.jsonl", tmp_path / "pred.jsonl"
    write_jsonl(data, ex)
    write_jsonl(pr, preds)
    return pr, data


def test_evaluate_every_task(files, tmp_path):
    pr, data = files
    m = evaluate(pr, data, tmp_path / "rep", run_name="full")
    t = m["tasks"]
    assert t["count"]["accuracy"] == pytest.approx(2 / 4)  # c1, c3 right; c2 wrong; c4 missing
    assert t["count"]["mae"] == pytest.approx(1 / 3)
    assert (t["grid"]["acc100"], t["grid"]["acc50"], t["grid"]["top1"]) == pytest.approx((1 / 3, 2 / 3, 2 / 3))
    assert t["classify_box"]["coarse"]["top1"] == 1.0 and t["classify_box"]["fine"]["top1"] == 1.0
    det = t["detect"]
    # qwen3 0-1000 on 200 px: [50,50,250,250] -> [10,10,50,50] (exact), second box is far away.
    assert det["0.5"]["all"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": 1, "n_pred": 2, "n_gt": 2}
    assert t["identify"]["accuracy"] == 0.5 and t["position"]["accuracy"] == 1.0
    assert t["landform_all"]["accuracy"] == 1.0
    assert t["vqa"]["accuracy"] == 1.0 and t["vqa"]["per_type"]["shape"]["accuracy"] == 1.0
    assert 0 < t["caption"]["bleu_4"] < 1 and t["caption"]["cider"] > 0
    per = t["caption"]["per_type"]
    assert set(per) == {"concise", "complex"} and per["concise"]["n"] == 1
    assert (per["concise"]["cider"] + per["complex"]["cider"]) / 2 == pytest.approx(t["caption"]["cider"])
    assert m["counts"]["missing"] == 1 and m["counts"]["unknown_ids"] == 1
    assert m["answers"]["grid"]["no_answer"] == 1
    rep = tmp_path / "rep"
    for f in (
        "metrics.json",
        "report.md",
        "tasks.png",
        "count_errors.png",
        "detection_pr.png",
        "confusion_classify_box_coarse.png",
    ):
        assert (rep / f).stat().st_size > 0, f
    md = (rep / "report.md").read_text()
    assert "FUSAR-GPT Table 2" in md and "SARLANG-1M Table 8" in md and "FUSAR-KLIP Table 6" in md


def test_reports_are_deterministic(files, tmp_path):
    pr, data = files
    evaluate(pr, data, tmp_path / "a", run_name="x")
    evaluate(pr, data, tmp_path / "b", run_name="x")
    for f in ("metrics.json", "report.md", "tasks.png"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_cli_and_compare_groups_seeds(files, tmp_path, capsys):
    pr, data = files
    for name in ("full-s0", "full-s1", "base"):
        assert main(["eval", str(pr), "--data", str(data), "--out", str(tmp_path / name), "--no-plots"]) == 0
    # Make the two "full" seeds differ so the std is non-zero.
    m = json.loads((tmp_path / "full-s1" / "metrics.json").read_text())
    m["tasks"]["count"]["accuracy"] = 0.75
    (tmp_path / "full-s1" / "metrics.json").write_text(json.dumps(m))
    res = compare(
        [tmp_path / "full-s0", tmp_path / "full-s1", tmp_path / "base"],
        names=["full", "full", "stage2-only"],
        out=tmp_path / "cmp",
    )
    row = res["runs"]["full"]["Count @Acc"]
    assert row["n"] == 2 and row["mean"] == pytest.approx(0.625) and row["std"] == pytest.approx(0.1767766953)
    assert res["runs"]["stage2-only"]["Count @Acc"]["std"] is None
    assert (tmp_path / "cmp" / "compare.png").exists()
    assert main(["eval", "compare", str(tmp_path / "full-s0"), str(tmp_path / "base")]) == 0
    assert "| full-s0 |" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["empty_pred", "task_mismatch", "no_data_file", "dup_ids", "bad_json"])
def test_bad_input_is_one_line_error(files, tmp_path, capsys, case):
    pr, data = files
    if case == "empty_pred":
        pr.write_text("")
    elif case == "task_mismatch":
        pr.write_text(Prediction(id="c1", task="grid", prediction="1").to_json() + "\n")
    elif case == "no_data_file":
        data = tmp_path / "nope.jsonl"
    elif case == "dup_ids":
        pr.write_text((Prediction(id="c1", prediction="1").to_json() + "\n") * 2)
    elif case == "bad_json":
        pr.write_text("{not json\n")
    before = pr.read_bytes() if pr.exists() else None
    rc = main(["eval", str(pr), "--data", str(data), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("sarvlm: error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert (pr.read_bytes() if pr.exists() else None) == before  # input untouched


def test_cli_refuses_to_overwrite_a_report_without_flag(files, tmp_path, capsys):
    pr, data = files
    out = tmp_path / "rep"
    assert main(["eval", str(pr), "--data", str(data), "--out", str(out), "--no-plots"]) == 0
    before = (out / "metrics.json").read_bytes()
    assert main(["eval", str(pr), "--data", str(data), "--out", str(out), "--no-plots"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["eval", str(pr), "--data", str(data), "--out", str(out), "--no-plots", "--overwrite"]) == 0
    assert (out / "metrics.json").read_bytes() == before


def test_table3_groups_fine_classes_under_their_coarse_category(tmp_path):
    from sarvlm.eval import evaluate

    rows = [
        ("a", "coarse", "ship", None),
        ("b", "fine", "cargo", "ship"),
        ("c", "fine", "tanker", "ship"),
        ("d", "fine", "fighter", "aircraft"),
    ]
    data = [
        InstructionExample(
            id=i,
            sample_id="s",
            task="classify_box",
            messages=[Message(role="user", content="<image>q"), Message(role="assistant", content=ans)],
            images=["x.png"],
            answer=ans,
            params={"box": [0, 0, 1, 1], "level": lvl, **({"category": parent} if parent else {})},
        )
        for i, lvl, ans, parent in rows
    ]
    write_jsonl(tmp_path / "test.jsonl", data)
    write_jsonl(
        tmp_path / "pred.jsonl",
        [Prediction(id=i, task="classify_box", prediction=ans if i != "c" else "cargo") for i, _, ans, _ in rows],
    )
    m = evaluate(tmp_path / "pred.jsonl", tmp_path / "test.jsonl", tmp_path / "rep", plots=False)
    fine = m["tasks"]["classify_box"]["fine"]
    assert fine["parent"] == {"cargo": "ship", "fighter": "aircraft", "tanker": "ship"}
    assert fine["top1"] == pytest.approx(2 / 3)
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "| Model | aircraft: fighter | ship: cargo | ship: tanker |" in report
