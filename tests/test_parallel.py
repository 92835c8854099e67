"""Process-level parallelism (``--workers``) and the Dask engine (``--scheduler``) give the same bytes
as one process; worker errors reach the caller as one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarvlm.cli.main import main as cli_main
from sarvlm.core.errors import SarvlmError
from sarvlm.core.parallel import run_blocks, split_blocks
from test_sharding import PREPROCESS_ARGS, _same_tree, preprocess_world


def _square_block(offset: int, block: list[int]) -> list[int]:
    if -1 in block:
        raise SarvlmError("record -1: bad value")
    return [offset + v * v for v in block]


def test_blocks_come_back_in_order_whatever_the_engine():
    items = list(range(23))
    blocks = split_blocks(items, 5)
    assert [len(b) for b in blocks] == [4, 5, 4, 5, 5] and sum(blocks, []) == items
    assert split_blocks([], 4) == [] and split_blocks([1], 4) == [[1]]
    expected = [10 + v * v for v in items]
    done: list[int] = []
    assert sum(run_blocks(_square_block, blocks, args=(10,), workers=1, progress=done.append), []) == expected
    assert done == [1, 2, 3, 4, 5]
    assert sum(run_blocks(_square_block, blocks, args=(10,), workers=2), []) == expected
    with pytest.raises(SarvlmError, match="record -1"):
        run_blocks(_square_block, [[1], [-1]], args=(0,), workers=2)
    with pytest.raises(SarvlmError, match="--workers"):
        run_blocks(_square_block, blocks, args=(0,), workers=0)


def test_preprocess_workers_and_dask_equal_one_process(tmp_path: Path):
    from dask.distributed import LocalCluster

    samples = preprocess_world(tmp_path / "world", n=4)
    assert cli_main(["preprocess", str(samples), "--out", str(tmp_path / "one"), *PREPROCESS_ARGS]) == 0
    argv = ["preprocess", str(samples), "--out", str(tmp_path / "two"), *PREPROCESS_ARGS, "--workers", "2"]
    assert cli_main(argv) == 0
    _same_tree(tmp_path / "one", tmp_path / "two")
    # a real dask.distributed scheduler (in-process workers keep the test to a few seconds)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        argv = ["preprocess", str(samples), "--out", str(tmp_path / "dask"), *PREPROCESS_ARGS]
        assert cli_main([*argv, "--scheduler", cluster.scheduler_address, "--workers", "2"]) == 0
    _same_tree(tmp_path / "one", tmp_path / "dask")


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, capsys):
    samples = preprocess_world(tmp_path / "world", n=1)
    argv = ["preprocess", str(samples), "--out", str(tmp_path / "x"), "--scheduler", "tcp://127.0.0.1:9"]
    assert cli_main(argv) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_priors_workers_and_dask_equal_one_process(tmp_path):
    from dask.distributed import LocalCluster

    from _priors_world import build_tiles
    from sarvlm.core.record import write_samples
    from test_priors_cache import _records

    aef = tmp_path / "aef"
    build_tiles(aef)
    samples = tmp_path / "samples.jsonl"
    write_samples(samples, _records())
    args = ["priors", str(samples), "--source", f"aef-cog:{aef}", "--grid", "3x2", "--shard-size", "3"]
    assert cli_main([*args, "--out", str(tmp_path / "one")]) == 0
    assert cli_main([*args, "--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    _same_tree(tmp_path / "one", tmp_path / "two")
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        assert cli_main([*args, "--out", str(tmp_path / "dask"), "--scheduler", cluster.scheduler_address]) == 0
    _same_tree(tmp_path / "one", tmp_path / "dask")


def test_build_workers_and_dask_equal_one_process(tmp_path, capsys):
    from dask.distributed import LocalCluster

    from test_data_build import _world

    samples = _world(tmp_path / "world", n=30)
    args = ["build", str(samples), "--tasks", "count,grid,detect,caption", "--seed", "3", "--qc", "flag"]
    assert cli_main([*args, str(tmp_path / "one")]) == 0
    assert cli_main([*args, str(tmp_path / "two"), "--workers", "2"]) == 0
    _same_tree(tmp_path / "one", tmp_path / "two")
    assert not list(tmp_path.glob(".*"))  # no block or temp directory left behind
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        assert (
            cli_main([*args, str(tmp_path / "dask"), "--scheduler", cluster.scheduler_address, "--workers", "3"]) == 0
        )
    _same_tree(tmp_path / "one", tmp_path / "dask")
    # sarvlm-format export and another task mix through the pool, too
    args = ["build", str(samples), "--tasks", "classify_box,detect", "--format", "swift", "--categories", "ship,tank"]
    assert cli_main([*args, str(tmp_path / "swift1")]) == 0
    assert cli_main([*args, str(tmp_path / "swift2"), "--workers", "2"]) == 0
    _same_tree(tmp_path / "swift1", tmp_path / "swift2")


def test_build_workers_errors_match_one_process(tmp_path, capsys):
    import json

    from test_data_build import _world

    samples = _world(tmp_path / "world", n=12)
    lines = samples.read_text().splitlines()
    dup = list(lines)
    dup[9] = dup[2]  # a repeated id late in the file
    (tmp_path / "world" / "dup.jsonl").write_text("\n".join(dup) + "\n")
    missing = [json.loads(line) for line in lines]
    missing[4]["image"] = "img/nope.png"
    missing[10]["image"] = "img/gone.png"
    (tmp_path / "world" / "missing.jsonl").write_text("\n".join(json.dumps(r) for r in missing) + "\n")
    for name in ("dup.jsonl", "missing.jsonl"):
        errors = []
        for extra in ([], ["--workers", "3"]):
            out = tmp_path / f"out-{name}-{len(extra)}"
            assert cli_main(["build", str(tmp_path / "world" / name), str(out), *extra]) == 2
            errors.append(capsys.readouterr().err)
            assert not out.exists()
        assert errors[0] == errors[1] and errors[0].count("\n") == 1, errors
    assert "duplicate id" in errors[0] or "nope.png" in errors[0]
    assert cli_main(["build", str(samples), str(tmp_path / "b"), "--workers", "2", "--split-method", "balanced"]) == 2
    assert "--split-method hash" in capsys.readouterr().err
    assert cli_main(["build", str(samples), str(tmp_path / "b"), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
