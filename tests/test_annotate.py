"""`sarvlm annotate`: offline writer, cache/resume, validation and on-conflict, and every fault of issue 16
against a real OpenAI-compatible HTTP server on 127.0.0.1 driven through the openai SDK."""

from __future__ import annotations

import json
import shutil
import socket

import pytest

from _fake_openai import FakeOpenAI, completion, error
from sarvlm.annotate.client import OpenAIEndpoint, Prices
from sarvlm.annotate.facts import record_facts
from sarvlm.annotate.offline_writer import offline_answer, offline_reply
from sarvlm.annotate.parse import parse_reply
from sarvlm.annotate.run import AnnotateOptions, annotate_samples
from sarvlm.annotate.templates import PROMPTS, load_template
from sarvlm.annotate.validate import validate_reply
from sarvlm.cli.main import main
from sarvlm.core.record import read_samples


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("annotate-world")
    assert main(["synth", str(root / "w"), "--scenes", "4", "--size", "64", "--workers", "1"]) == 0
    return root / "w"


@pytest.fixture()
def samples(world, tmp_path):
    dst = tmp_path / "w"
    shutil.copytree(world, dst, ignore=shutil.ignore_patterns("aef"))
    return dst / "samples.jsonl"


@pytest.fixture()
def server():
    servers = []

    def make(script):
        s = FakeOpenAI(script)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def _records(path):
    return {r.id: r for r in read_samples(path)}


def _ship_record(samples):
    return next(r for r in read_samples(samples) if any(o.category == "ship" for o in r.objects))


# -- offline default ------------------------------------------------------------------------------


def test_offline_writer_every_prompt_deterministic_and_valid(samples, tmp_path):
    base = samples.parent
    recs = list(read_samples(samples))
    for name in PROMPTS:
        tpl = load_template(name)
        for rec in recs:
            facts = record_facts(rec, base)
            if tpl.missing_facts(facts):
                continue
            reply = offline_reply(tpl, facts)
            assert reply == offline_reply(tpl, record_facts(rec, base))  # same facts, same bytes
            parsed = parse_reply(reply, tpl)
            assert parsed.ok and not parsed.missing, (name, rec.id, parsed)
            v = validate_reply(tpl, facts, parsed)
            assert v.checks and not v.conflicts, (name, rec.id, [c.detail for c in v.conflicts])
    # The CLI with no endpoint: two runs, byte-identical outputs; input untouched.
    before = samples.read_bytes()
    for out in ("a.jsonl", "b.jsonl"):
        assert main(["annotate", str(samples), "--out", str(tmp_path / out), "--prompt", "geovl"]) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert samples.read_bytes() == before
    rec = next(iter(_records(tmp_path / "a.jsonl").values()))
    cap = rec.captions[-1]
    assert cap.style == "structured" and cap.fields["Terrain"].startswith("The terrain is classified as")
    assert cap.source == "sarvlm-annotate:geovl@v1:sarvlm-offline-writer" and cap.meta["checks"]
    report = json.loads((tmp_path / "a_annotate" / "report.json").read_text())
    assert report["status"]["accepted"] == 4 and report["fields"]["Terrain"]["accuracy"] == 1.0
    assert "| Terrain |" in (tmp_path / "a_annotate" / "report.md").read_text()


def test_dialogue_and_transfer_outputs(samples, tmp_path):
    assert main(["annotate", str(samples), "--out", str(tmp_path / "d.jsonl"), "--prompt", "dialogue"]) == 0
    for rec in read_samples(tmp_path / "d.jsonl"):
        dlg = rec.dialogues[-1]
        assert [t.role for t in dlg.turns] == ["user", "assistant"] * 3 and dlg.source.endswith("offline-writer")
    assert main(["annotate", str(samples), "--out", str(tmp_path / "t.jsonl"), "--prompt", "sarlang-transfer"]) == 0
    rec = next(iter(read_samples(tmp_path / "t.jsonl")))
    styles = [c.style for c in rec.captions if (c.source or "").startswith("sarvlm-annotate")]
    assert styles == ["concise", "complex"]


def test_transfer_removes_colour_words(samples, tmp_path):
    lines = samples.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["captions"] = [
        {"text": "A red roof beside a green field and a blue lake.", "style": "concise", "source": "gpt"}
    ]
    lines[0] = json.dumps(rec)
    samples.write_text("\n".join(lines) + "\n")
    tpl = load_template("sarlang-transfer")
    ans = offline_answer(tpl, record_facts(next(iter(read_samples(samples))), samples.parent))
    assert ans["removed_colour_words"] == ["blue", "green", "red"]
    assert "red" not in ans["concise"] and ans["concise"].startswith("A roof beside")


def test_output_exists_resume_overwrite_and_input_protected(samples, tmp_path):
    out = tmp_path / "o.jsonl"
    args = ["annotate", str(samples), "--out", str(out), "--prompt", "hcot-terrain"]
    assert main(args) == 0
    first = out.read_bytes()
    assert main(args) == 2  # exists: refused, untouched
    assert out.read_bytes() == first
    assert main([*args, "--resume"]) == 0 and out.read_bytes() == first
    assert main([*args, "--overwrite"]) == 0 and out.read_bytes() == first
    assert main(["annotate", str(samples), "--out", str(samples), "--prompt", "geovl", "--overwrite"]) == 2
    assert main(["annotate", str(samples), "--prompt", "geovl"]) == 2  # no --out


def test_missing_facts_and_unreadable_image(samples, tmp_path, capsys):
    lines = samples.read_text().splitlines()
    broken = json.loads(lines[0])
    (samples.parent / broken["image"]).write_bytes(b"not a tiff")
    bare = json.loads(lines[1])
    bare.pop("landcover", None)
    bare["meta"].pop("landcover_fractions", None)
    samples.write_text("\n".join([json.dumps(broken), json.dumps(bare), *lines[2:]]) + "\n")
    srv = FakeOpenAI(lambda body, n: (200, "{}"))
    try:
        tpl = load_template("hcot-terrain")
        ep = OpenAIEndpoint(srv.url, "vlm", backoff=0.01)
        rep = annotate_samples(samples, samples.parent / "o.jsonl", tpl, ep)
    finally:
        srv.close()
    d = rep.to_dict()
    assert d["status"]["image_error"] == 1 and d["status"]["missing_facts"] == 1
    ex = {e["sample_id"]: e["detail"] for k in ("image_error", "missing_facts") for e in d["examples"][k]}
    assert "not a tiff" not in ex[broken["id"]] and broken["image"].split("/")[-1] in ex[broken["id"]]
    assert "no land cover" in ex[bare["id"]]
    out = _records(samples.parent / "o.jsonl")
    originals = _records(samples)
    assert len(out) == 4 and out[broken["id"]] == originals[broken["id"]] and out[bare["id"]] == originals[bare["id"]]
    assert len(srv.requests) == 2


# -- a real OpenAI-compatible server ------------------------------------------------------------------


def _marine_reply_from(body, samples, lie=False):
    """The truthful answer for the record the prompt describes (or one with a planted count error)."""
    text = body["messages"][1]["content"][-1]["text"]
    tpl = load_template("hcot-marine")
    for rec in read_samples(samples):
        facts = record_facts(rec, samples.parent)
        if not tpl.missing_facts(facts) and tpl.render_text(facts)[1] == text:
            ans = offline_answer(tpl, facts)
            if lie:
                n = facts.group("ship").count
                ans["fields"]["Count"] = f"{n + 5} ships"
                ans["fields"]["Category"] = "ship and aircraft"
            return json.dumps(ans)
    raise AssertionError("prompt of an unknown record")


def test_valid_replies_images_schema_tokens_cost_cache(samples, tmp_path, server):
    srv = server(lambda body, n: (200, _marine_reply_from(body, samples)))
    out = tmp_path / "o.jsonl"
    args = ["annotate", str(samples), "--out", str(out), "--prompt", "hcot-marine", "--endpoint", srv.url]
    args += ["--model", "qwen-vl", "--price-in", "2", "--price-out", "8", "--image-size", "32"]
    assert main(args) == 0
    n_ship = sum(1 for r in read_samples(samples) if any(o.category == "ship" for o in r.objects))
    assert len(srv.requests) == n_ship >= 1
    body = srv.requests[0]
    assert body["temperature"] == 0 and body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["reasoning", "fields"]
    parts = body["messages"][1]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    report = json.loads((tmp_path / "o_annotate" / "report.json").read_text())
    assert report["status"]["accepted"] == n_ship and report["prompt_tokens"] == 100 * n_ship
    assert report["cost"] == pytest.approx(n_ship * (100 * 2 + 20 * 8) / 1e6)
    replies = list((tmp_path / "o_annotate" / "replies").glob("*/*.json"))
    assert len(replies) == n_ship
    entry = json.loads(replies[0].read_text())
    assert entry["reply"].startswith("{") and "sha256:" in json.dumps(entry["messages"])  # audit: raw reply
    # Rerun: everything from the cache, nothing sent, same bytes.
    first = out.read_bytes()
    assert main([*args, "--overwrite"]) == 0
    assert len(srv.requests) == n_ship and out.read_bytes() == first
    # A new model is a new cache key.
    assert main([*args[:-6], "--model", "other", "--out", str(tmp_path / "p.jsonl")]) == 0
    assert len(srv.requests) == 2 * n_ship


def test_planted_errors_caught_keep_flag_drop(samples, tmp_path, server):
    srv = server(lambda body, n: (200, _marine_reply_from(body, samples, lie=True)))
    ship_id = _ship_record(samples).id
    for policy in ("keep", "flag", "drop"):
        out = tmp_path / f"{policy}.jsonl"
        args = ["annotate", str(samples), "--out", str(out), "--prompt", "hcot-marine", "--endpoint", srv.url]
        assert main([*args, "--model", "m", "--on-conflict", policy, "--run-dir", str(tmp_path / "run")]) == 0
        rec = _records(out)[ship_id]
        caps = [c for c in rec.captions if (c.source or "").startswith("sarvlm-annotate")]
        if policy == "drop":
            assert caps == []
        else:
            bad = [c for c in caps[0].meta["checks"] if not c["ok"]]
            kinds = {c["check"] for c in bad}
            assert {"count", "category"} <= kinds and caps[0].meta["flagged"] is (policy == "flag")
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    assert rep["conflict_actions"] == {"drop": rep["status"]["conflict"]} and rep["fields"]["Count"]["accuracy"] == 0


def test_reply_faults_give_per_record_status(samples, tmp_path, server):
    tpl = load_template("dialogue")  # text-only: every record is asked
    good = json.dumps({"turns": [{"question": f"q{i}", "answer": f"a{i}."} for i in range(3)]})

    script = {
        1: (200, "I cannot answer in JSON, sorry."),  # not JSON, no fields
        2: (200, json.dumps({"dialogue": "missing turns"})),  # JSON missing fields
        3: (200, "x" * 50_000),  # far longer than allowed
        4: (200, b'{"id": "c", "object": "chat.completion", "choices": [{"message": {"content": "\xff\xfe"}}]'),
    }
    srv = server(lambda body, n: script.get(n, (200, good)))
    ep = OpenAIEndpoint(srv.url, "m", backoff=0.01, max_retries=0, concurrency=1)
    rep = annotate_samples(samples, tmp_path / "o.jsonl", tpl, ep, AnnotateOptions(concurrency=1))
    d = rep.to_dict()
    assert d["status"]["unparsable"] == 3 and d["status"]["failed"] == 1, d
    details = " ".join(e["detail"] for e in d["examples"]["unparsable"])
    assert "exceeds the limit" in details and "no answer fields" in details
    assert "invalid_reply" in d["examples"]["failed"][0]["detail"]
    assert len(_records(tmp_path / "o.jsonl")) == 4  # every record written, unannotated ones unchanged


def test_tolerant_parser_reads_fenced_json_and_field_lines():
    tpl = load_template("hcot-marine")
    fenced = 'Sure!\n```json\n{"reasoning": {}, "fields": {"count": "two ships", "Location": "left"}}\n```'
    p = parse_reply(fenced, tpl)
    assert p.ok and p.method == "embedded-json" and p.fields["Count"] == "two ships" and "Size" in p.missing
    lines = "Count: four ships\nLocation: left side of image\n**Size**: 30-60m length\nCategory: small cargo ship"
    p = parse_reply(lines, tpl)
    assert p.ok and p.method == "lines" and p.fields["Size"] == "30-60m length"
    assert parse_reply("<think>hmm</think>", tpl).ok is False


def test_retries_on_429_and_5xx_then_success(samples, tmp_path, server):
    good = json.dumps({"turns": [{"question": "q", "answer": "a."}] * 3})
    srv = server(lambda body, n: error(429, "slow down") if n == 1 else error(503, "busy") if n == 2 else (200, good))
    ep = OpenAIEndpoint(srv.url, "m", backoff=0.01, max_retries=3, concurrency=1)
    rep = annotate_samples(samples, tmp_path / "o.jsonl", load_template("dialogue"), ep)
    assert rep.to_dict()["status"]["accepted"] == 4 and len(srv.requests) == 6 and rep.requests_made == 6


def test_server_errors_and_timeouts_exhaust_retries(samples, tmp_path, server):
    srv = server(lambda body, n: error(500, "boom") if n % 2 else (200, "late", 1.0))
    ep = OpenAIEndpoint(srv.url, "m", backoff=0.01, max_retries=1, timeout=0.3, concurrency=2)
    rep = annotate_samples(samples, tmp_path / "o.jsonl", load_template("dialogue"), ep)
    d = rep.to_dict()
    assert d["status"]["failed"] == 4 and (tmp_path / "o.jsonl").exists()
    details = " ".join(e["detail"] for e in d["examples"]["failed"])
    assert "after 2 attempts" in details and ("timeout" in details or "server" in details)


@pytest.mark.parametrize("status,needle", [(401, "HTTP 401"), (404, "HTTP 404")])
def test_wrong_key_or_model_is_one_line_error_nothing_written_paid_replies_kept(
    samples, tmp_path, server, capsys, status, needle
):
    good = json.dumps({"turns": [{"question": "q", "answer": "a."}] * 3})
    srv = server(
        lambda body, n: (200, good) if n == 1 else error(status, "invalid key" if status == 401 else "no model")
    )
    out = tmp_path / "o.jsonl"
    args = ["annotate", str(samples), "--out", str(out), "--prompt", "dialogue", "--endpoint", srv.url]
    assert main([*args, "--model", "m", "--concurrency", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "1 replies are cached" in err[0] and "Traceback" not in err[0]
    assert not out.exists() and not list(tmp_path.glob(".o.jsonl*"))
    srv.script = lambda body, n: (200, good)
    n_before = len(srv.requests)
    assert main([*args, "--model", "m"]) == 0
    assert len(srv.requests) == n_before + 3  # the paid reply was not asked again


def test_unreachable_endpoint(samples, tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["annotate", str(samples), "--out", str(tmp_path / "o.jsonl"), "--prompt", "dialogue"]
    assert main([*args, "--endpoint", f"http://127.0.0.1:{port}/v1", "--model", "m", "--max-retries", "0"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect" in err and not (tmp_path / "o.jsonl").exists()


def test_budget_concurrency_and_dry_run(samples, tmp_path, server, capsys):
    good = json.dumps({"turns": [{"question": "q", "answer": "a."}] * 3})
    srv = server(lambda body, n: (200, good, 0.1))
    base = ["annotate", str(samples), "--prompt", "dialogue", "--endpoint", srv.url, "--model", "m"]
    assert main([*base, "--dry-run"]) == 0
    assert srv.requests == [] and '"role": "system"' in capsys.readouterr().out
    assert main([*base, "--out", str(tmp_path / "b.jsonl"), "--max-requests", "2", "--concurrency", "1"]) == 0
    rep = json.loads((tmp_path / "b_annotate" / "report.json").read_text())
    assert rep["status"]["accepted"] == 2 and rep["status"]["budget"] == 2 and len(srv.requests) == 2
    assert (
        main([*base, "--out", str(tmp_path / "c.jsonl"), "--concurrency", "2", "--run-dir", str(tmp_path / "r")]) == 0
    )
    assert srv.max_in_flight == 2


def test_structured_outputs_rejected_falls_back_to_plain(samples, tmp_path, server):
    good = json.dumps({"turns": [{"question": "q", "answer": "a."}] * 3})
    srv = server(
        lambda body, n: error(400, "response_format not supported") if "response_format" in body else (200, good)
    )
    ep = OpenAIEndpoint(srv.url, "m", backoff=0.01, concurrency=1)
    rep = annotate_samples(samples, tmp_path / "o.jsonl", load_template("dialogue"), ep, AnnotateOptions(concurrency=1))
    assert rep.to_dict()["status"]["accepted"] == 4
    assert sum("response_format" in r for r in srv.requests) == 1  # rejected once, then plain for the run


def test_prices_cost():
    assert Prices(2.5, 10).cost(1_000_000, 100_000) == pytest.approx(3.5)
    assert completion("x", "m")["usage"]["total_tokens"] == 120


def test_stats_compares_template_and_llm_captions(samples, tmp_path, server):
    srv = server(lambda body, n: (200, _marine_reply_from(body, samples, lie=True)))
    out = tmp_path / "o.jsonl"
    args = ["annotate", str(samples), "--out", str(out), "--prompt", "hcot-marine", "--endpoint", srv.url]
    assert main([*args, "--model", "m", "--on-conflict", "keep"]) == 0
    assert main(["annotate", str(out), "--out", str(tmp_path / "o2.jsonl"), "--prompt", "geovl"]) == 0
    stats = ["stats", str(tmp_path / "o2.jsonl"), "--captions", "--no-text-similarity"]
    assert main([*stats, "--out", str(tmp_path / "o2_stats")]) == 0
    d = json.loads((tmp_path / "o2_stats" / "caption_comparison.json").read_text())
    groups = d["groups"]
    assert set(groups) == {"template", "llm:hcot-marine@v1", "llm:geovl@v1"} and d["samples_with_both"] == 4
    marine = groups["llm:hcot-marine@v1"]
    assert marine["fields"]["Count"]["accuracy"] == 0 and marine["fields"]["Location"]["accuracy"] == 1
    assert marine["factual_accuracy"] == 0 and groups["template"]["factual_accuracy"] == 1
    assert groups["llm:geovl@v1"]["fields"]["Terrain"]["accuracy"] == 1
    md = (tmp_path / "o2_stats" / "caption_comparison.md").read_text()
    assert "## Side by side" in md and "| Count | 0 |" in md
    assert (tmp_path / "o2_stats" / "caption_comparison.png").stat().st_size > 1000
    # Samples without LLM captions: a one-line error, not an empty report.
    assert main(["stats", str(samples), "--captions", "--no-text-similarity", "--out", str(tmp_path / "x")]) == 2


def test_output_in_another_directory_keeps_paths_valid(samples, tmp_path):
    out = tmp_path / "elsewhere" / "deep" / "o.jsonl"
    assert main(["annotate", str(samples), "--out", str(out), "--prompt", "lunaros"]) == 0
    for rec, orig in zip(read_samples(out), read_samples(samples)):
        assert rec.image_path(out.parent) == orig.image_path(samples.parent)
        assert rec.optical_path(out.parent) == orig.optical_path(samples.parent)
        assert (out.parent / rec.landcover.mask).resolve() == (samples.parent / orig.landcover.mask).resolve()
