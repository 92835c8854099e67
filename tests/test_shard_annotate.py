"""`sarvlm annotate --shard K/N` then `sarvlm merge`: the records, the reply cache and the run report
equal one unsharded run's (against a real OpenAI-compatible HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import re
import zlib

from sarvlm.cli.main import main
from sarvlm.core.record import read_samples
from test_annotate import _marine_reply_from, samples, server, world  # noqa: F401  (pytest fixtures)


def _reply(samples_path):
    def script(body, n):
        # a deterministic mix per record (not per request order): some truthful, some with planted errors
        lie = zlib.crc32(body["messages"][1]["content"][-1]["text"].encode()) % 2 == 1
        return 200, _marine_reply_from(body, samples_path, lie=lie)

    return script


def _entries(run_dir):
    """Reply cache entries without their per-request timing."""
    out = {}
    for p in sorted((run_dir / "replies").glob("*/*.json")):
        entry = json.loads(p.read_text())
        out[p.relative_to(run_dir).as_posix()] = {k: v for k, v in entry.items() if k not in ("received", "seconds")}
    return out


def test_annotate_sharded_then_merged_equals_unsharded(samples, tmp_path, server, capsys):  # noqa: F811
    srv = server(_reply(samples))
    out = tmp_path / "ann.jsonl"
    args = ["annotate", str(samples), "--out", str(out), "--prompt", "hcot-marine", "--endpoint", srv.url]
    args += ["--model", "m", "--price-in", "2", "--price-out", "8", "--image-size", "32"]
    assert main(args) == 0
    whole_out, whole_run = tmp_path / "whole.jsonl", tmp_path / "whole_annotate"
    out.rename(whole_out)
    (tmp_path / "ann_annotate").rename(whole_run)
    n_asked = len(srv.requests)
    report = json.loads((whole_run / "report.json").read_text())
    assert n_asked >= 1 and report["records"] == len(list(read_samples(samples)))

    for k in range(3):
        assert main([*args, "--shard", f"{k}/3"]) == 0
    assert "ann.shard-2-of-3.jsonl" in capsys.readouterr().err
    assert (tmp_path / "ann.shard-1-of-3.jsonl").is_file() and (tmp_path / "ann_annotate.shard-1-of-3").is_dir()
    assert len(srv.requests) == 2 * n_asked  # every record asked once across the shards
    assert main(["merge", str(out), "--remove-parts"]) == 0
    assert "merged 3 annotate shards" in capsys.readouterr().err
    assert out.read_bytes() == whole_out.read_bytes()
    merged = json.loads((tmp_path / "ann_annotate" / "report.json").read_text())
    assert merged.pop("seconds") >= 0 and report.pop("seconds") >= 0
    assert merged == report
    assert merged["status"]["conflict"] >= 1 or merged["status"]["accepted"] >= 1
    seconds = re.compile(r"; [0-9.]+ s\.")
    md = (tmp_path / "ann_annotate" / "report.md").read_text()
    assert seconds.sub("", md) == seconds.sub("", (whole_run / "report.md").read_text())
    assert _entries(tmp_path / "ann_annotate") == _entries(whole_run)
    assert not list(tmp_path.glob("*.shard-*"))  # parts, their info and run directories removed
    # The merged cache answers an unsharded rerun completely: nothing is asked again.
    assert main([*args, "--overwrite"]) == 0
    assert len(srv.requests) == 2 * n_asked and out.read_bytes() == whole_out.read_bytes()


def test_annotate_merge_refuses_parts_of_other_options(samples, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "a.jsonl"
    args = ["annotate", str(samples), "--out", str(out), "--prompt", "geovl"]
    assert main([*args, "--shard", "0/2"]) == 0
    assert main(["merge", str(out)]) == 2
    assert "shard(s) 1/2 missing" in capsys.readouterr().err
    assert main([*args, "--shard", "1/2", "--on-conflict", "drop"]) == 0
    assert main(["merge", str(out)]) == 2
    assert "other inputs or options" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, "--shard", "1/2", "--on-conflict", "flag", "--overwrite"]) == 0
    assert main(["merge", str(out)]) == 0
    whole = tmp_path / "w.jsonl"
    assert main(["annotate", str(samples), "--out", str(whole), "--prompt", "geovl"]) == 0
    assert out.read_bytes() == whole.read_bytes()
    assert main([*args, "--shard", "2/2"]) == 2
    assert "--shard" in capsys.readouterr().err
