"""Array-job sharding: ``--shard K/N`` runs then ``sarvlm merge`` give byte-identical outputs to one
unsharded run (build, priors, predict, preprocess); missing or mixed parts are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarvlm.cli.main import main as cli_main
from sarvlm.core.errors import SarvlmError
from sarvlm.core.sharding import Shard, find_parts
from test_data_build import _world


def _same_tree(a: Path, b: Path) -> None:
    """Every file of a equals the file of b at the same place (byte for byte) and nothing else exists."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_shard_blocks_cover_the_input_once():
    for n in (0, 1, 7, 10, 101):
        for count in (1, 2, 3, 8):
            blocks = [Shard(k, count).bounds(n) for k in range(count)]
            assert blocks[0][0] == 0 and blocks[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
            sizes = [b - a for a, b in blocks]
            assert max(sizes) - min(sizes) <= 1
    assert Shard.parse("2/4") == Shard(2, 4) and Shard.parse(None) is None
    for bad in ("4/4", "-1/3", "1", "a/b", "0/0"):
        with pytest.raises(SarvlmError, match="--shard"):
            Shard.parse(bad)
    assert Shard(1, 3).output_path("out/preds.jsonl", directory=False).name == "preds.shard-1-of-3.jsonl"
    assert Shard(1, 3).output_path("out/data", directory=True).name == "data.shard-1-of-3"


def test_build_sharded_then_merged_equals_unsharded(tmp_path, capsys):
    samples = _world(tmp_path / "world", n=40)
    args = [str(samples), "--tasks", "count,grid,detect,caption", "--seed", "3"]
    assert cli_main(["build", *args, str(tmp_path / "whole")]) == 0
    for k in range(3):
        assert cli_main(["build", *args, str(tmp_path / "data"), "--shard", f"{k}/3"]) == 0
    assert [p.name for p in find_parts(tmp_path / "data", directory=True)] == [f"data.shard-{k}-of-3" for k in range(3)]
    assert cli_main(["merge", str(tmp_path / "data"), "--remove-parts"]) == 0
    _same_tree(tmp_path / "whole", tmp_path / "data")
    assert not list(tmp_path.glob("data.shard-*"))
    assert "merged 3 build shards" in capsys.readouterr().err


def test_merge_refuses_missing_or_mixed_parts(tmp_path, capsys):
    samples = _world(tmp_path / "world", n=12)
    assert cli_main(["build", str(samples), str(tmp_path / "data"), "--shard", "0/3"]) == 0
    assert cli_main(["build", str(samples), str(tmp_path / "data"), "--shard", "2/3"]) == 0
    assert cli_main(["merge", str(tmp_path / "data")]) == 2
    assert "shard(s) 1/3 missing" in capsys.readouterr().err
    assert cli_main(["build", str(samples), str(tmp_path / "data"), "--shard", "1/3", "--seed", "9"]) == 0
    assert cli_main(["merge", str(tmp_path / "data")]) == 2
    assert "other inputs or options" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # nothing half-written
    assert cli_main(["merge", str(tmp_path / "nothing")]) == 2
    assert "no shard outputs" in capsys.readouterr().err


def test_priors_sharded_then_merged_equals_unsharded(tmp_path, capsys):
    from _priors_world import build_tiles
    from sarvlm.core.record import write_samples
    from test_priors_cache import _records

    aef = tmp_path / "aef"
    build_tiles(aef)
    samples = tmp_path / "samples.jsonl"
    write_samples(samples, _records())  # 11 samples → 6 cache shards of 2
    args = ["priors", str(samples), "--source", f"aef-cog:{aef}", "--grid", "3x2", "--shard-size", "2"]
    assert cli_main([*args, "--out", str(tmp_path / "whole")]) == 0
    for k in range(4):
        assert cli_main([*args, "--out", str(tmp_path / "cache"), "--shard", f"{k}/4"]) == 0
    assert not (tmp_path / "cache.shard-0-of-4" / "summary.json").exists()  # a part is not a usable cache
    assert cli_main(["merge", str(tmp_path / "cache")]) == 0
    _same_tree(tmp_path / "whole", tmp_path / "cache")
    assert "merged 4 priors shards" in capsys.readouterr().err


def test_predict_sharded_then_merged_equals_unsharded(tmp_path, capsys):
    from sarvlm.models.loading import load_model
    from test_training_data import make_dataset

    data = make_dataset(tmp_path / "ds", n_samples=8) / "train.jsonl"  # 18 examples of 4 tasks
    whole, parts = tmp_path / "whole.jsonl", tmp_path / "preds.jsonl"
    common = ["--model", "tiny-qwen2.5-vl", "--data", str(data), "--batch-size", "4", "--max-new-tokens", "3"]
    assert cli_main(["predict", *common, "--out", str(whole)]) == 0
    assert "ran on device cpu, dtype float32, attention sdpa" in capsys.readouterr().err
    for k in range(3):
        assert cli_main(["predict", *common, "--out", str(parts), "--shard", f"{k}/3"]) == 0
    sizes = [len((tmp_path / f"preds.shard-{k}-of-3.jsonl").read_text().splitlines()) for k in range(3)]
    assert sum(sizes) == 18 and all(sizes)
    assert cli_main(["merge", str(parts)]) == 0
    assert parts.read_bytes() == whole.read_bytes()
    # the Python API merges the same way, and refuses parts of other data
    from sarvlm.inference.predict import merge_prediction_shards, predict

    model = load_model("tiny-qwen2.5-vl")
    other = make_dataset(tmp_path / "other", n_samples=10) / "train.jsonl"
    predict(model, other, parts, batch_size=4, max_new_tokens=3, shard="1/3")
    with pytest.raises(SarvlmError, match="other data"):
        merge_prediction_shards(parts)


def preprocess_world(root: Path, n: int = 5) -> Path:
    """n dual-pol scenes with masks (tiles, screening and previews all have work to do)."""
    import numpy as np

    from sarvlm.core.record import SampleRecord, write_samples
    from sarvlm.io.raster import write_raster
    from test_preprocess_pipeline import GEOREF, _scene

    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        rel = f"images/s{i}.tif"
        pixels = _scene(rng)
        if i == 3:  # mostly no-data: empty tiles are skipped, mostly-empty ones screened out
            pixels[:, :, :100] = np.nan
        write_raster(root / rel, pixels, georef=GEOREF, band_descriptions=["VV", "VH"])
        mask = np.where(np.arange(128)[None] < 64, 1, 2).repeat(96, 0).astype(np.uint8)
        write_raster(root / f"masks/s{i}.png", mask)
        records.append(
            SampleRecord(
                id=f"s{i}",
                image=rel,
                width=128,
                height=96,
                polarizations=["VV", "VH"],
                resolution_m=2.0,
                date="2021-05-01",
                georef=GEOREF,
                objects=[{"category": "ship", "bbox": [20, 40, 30, 44]}],
                landcover={"mask": f"masks/s{i}.png", "classes": {1: "water", 2: "land"}},
            )
        )
    write_samples(root / "samples.jsonl", records)
    return root / "samples.jsonl"


PREPROCESS_ARGS = ["--pol", "VV", "--filter", "lee", "--tile-m", "128", "--screen", "--screen-k", "2"]


def test_preprocess_sharded_then_merged_equals_unsharded(tmp_path, capsys):
    samples = preprocess_world(tmp_path / "world")
    assert cli_main(["preprocess", str(samples), "--out", str(tmp_path / "whole"), *PREPROCESS_ARGS]) == 0
    for k in range(3):
        argv = ["preprocess", str(samples), "--out", str(tmp_path / "prep"), *PREPROCESS_ARGS, "--shard", f"{k}/3"]
        assert cli_main(argv) == 0
    assert cli_main(["merge", str(tmp_path / "prep")]) == 0
    whole = tmp_path / "whole"
    assert (whole / "screening.jsonl").read_text()  # screening dropped something: the merge must redo it globally
    assert (whole / "preview.png").is_file() and (whole / "screening.png").is_file()
    _same_tree(whole, tmp_path / "prep")
