"""Issue 12 battery: hostile and broken inputs over every verb.

Each case runs the CLI in-process and asserts: exit status != 0, exactly one stderr line that names
the culprit, no traceback, and no output left behind. The bomb/VRT cases also run in a child with a
memory cap (RLIMIT_AS) so a regression that allocates the declared size fails instead of swapping;
kill -9 tests check that a killed build/preprocess leaves no stale temp after the rerun.
Fixtures come from tests/data/hostile/make_fixtures.py.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data" / "hostile"))
from make_fixtures import make_fixtures, sample, write_jsonl  # noqa: E402

from sarvlm.cli.main import main as cli_main  # noqa: E402

MODEL = "tiny-qwen2.5-vl"
MEMORY_CAP = 4 << 30  # bytes of address space for the capped children (the bombs declare 9.3 GiB)


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return make_fixtures(tmp_path_factory.mktemp("hostile"))


def _samples(f, tmp, name, rows):
    """A samples file inside the dataset root (ds/) so only the checked field can stop it."""
    return write_jsonl(f["ds"] / f"{name}-{tmp.name}.jsonl", rows)


def _examples(f, tmp, images, name="test"):
    """An examples JSONL inside the built dataset naming ``images`` (relative to it)."""
    d = f["built"] / f"x-{tmp.name}"
    d.mkdir(exist_ok=True)
    ref = json.loads((f["built"] / "train.jsonl").read_text().splitlines()[0])
    ref["images"] = images
    ref.pop("split", None)
    path = d / f"{name}.jsonl"
    path.write_text(json.dumps(ref) + "\n")
    (d / "manifest.json").write_text(json.dumps({"image_root": "../..", "options": {}}))
    return path


def _two_examples(f, t, bad):
    """Two examples, one good image and ``bad``, so image statistics have a pair to compare."""
    path = _examples(f, t, [bad])
    row = json.loads(path.read_text())
    good = dict(row, id=row["id"] + "-good", images=["../../images/im0.png"])
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    return path


def _show(f, t, image, width, height):
    """`priors show` of a georeferenced record (the world's) whose image is ``image``."""
    rec = f["world_record"].model_dump(mode="json", exclude_none=True)
    rec.update(id="show", image=image, width=width, height=height, objects=[], captions=[])
    rec.pop("landcover", None)
    return [
        "priors",
        "show",
        str(_samples(f, t, "show", [rec])),
        "--source",
        f"aef-cog:{f['aef']}",
        "--out",
        str(t / "o.png"),
    ]


def _predictions_for_other_data(f, t):
    ex = json.loads((f["built"] / "train.jsonl").read_text().splitlines()[0])
    preds = t / "in" / "p.jsonl"
    preds.parent.mkdir()
    preds.write_text(json.dumps({"id": ex["id"], "task": ex["task"], "prediction": "1"}) + "\n")
    (t / "in" / "p.jsonl.dataset.json").write_text(json.dumps({"data": "other/test.jsonl", "sha256": "0" * 64}))
    return preds


def _rel(f, path):
    return os.path.relpath(path, f["ds"])


# (case id, argv builder, culprit text expected in the error, output path the verb would write)
CASES = [
    # --- preprocess ------------------------------------------------------------------------
    ("preprocess-vrt", lambda f, t: ["preprocess", str(f["vrt"]), "--out", str(t / "o")], "GDAL VRT", "o"),
    ("preprocess-bomb-tif", lambda f, t: ["preprocess", str(f["bomb_tif"]), "--out", str(t / "o")], "bomb.tif", "o"),
    ("preprocess-bomb-png", lambda f, t: ["preprocess", str(f["bomb_png"]), "--out", str(t / "o")], "bomb.png", "o"),
    ("preprocess-big-float", lambda f, t: ["preprocess", str(f["big_tif"]), "--out", str(t / "o")], "1.5 GiB", "o"),
    ("preprocess-fifo", lambda f, t: ["preprocess", str(f["fifo"]), "--out", str(t / "o")], "not a regular file", "o"),
    ("preprocess-nan", lambda f, t: ["preprocess", str(f["nan_tif"]), "--out", str(t / "o")], "nan.tif", "o"),
    (
        "preprocess-outside-root",
        lambda f, t: [
            "preprocess",
            str(_samples(f, t, "pre", [sample("a", "../secret/secret.png")])),
            "--out",
            str(t / "o"),
        ],
        "outside the dataset root",
        "o",
    ),
    (
        "preprocess-absolute",
        lambda f, t: [
            "preprocess",
            str(_samples(f, t, "pre", [sample("a", str(f["secret_png"]))])),
            "--out",
            str(t / "o"),
        ],
        "absolute path",
        "o",
    ),
    (
        "preprocess-symlink-out",
        lambda f, t: [
            "preprocess",
            str(_samples(f, t, "pre", [sample("a", "images/link.png")])),
            "--out",
            str(t / "o"),
        ],
        "images/link.png",
        "o",
    ),
    (
        "preprocess-record-vrt",
        lambda f, t: [
            "preprocess",
            str(_samples(f, t, "pre", [sample("a", "images/evil.tif", 8, 4)])),
            "--out",
            str(t / "o"),
        ],
        "evil.tif",
        "o",
    ),
    (
        "preprocess-mask-outside",
        lambda f, t: [
            "preprocess",
            str(
                _samples(
                    f,
                    t,
                    "pre",
                    [sample("a", "images/im0.png", landcover={"mask": "../secret/secret.png", "classes": {}})],
                )
            ),
            "--out",
            str(t / "o"),
        ],
        "landcover.mask",
        "o",
    ),
    ("preprocess-latin1", lambda f, t: ["preprocess", str(f["latin1"]), "--out", str(t / "o")], "not UTF-8", "o"),
    (
        "preprocess-out-is-file",
        lambda f, t: ["preprocess", str(f["ds"] / "images/im0.png"), "--out", str(f["a_file"])],
        "a_file",
        None,
    ),
    (
        "preprocess-bad-limit",
        lambda f, t: ["preprocess", str(f["float_tif"]), "--out", str(t / "o"), "--max-image-bytes", "-5"],
        "--max-image-bytes",
        "o",
    ),
    # --- import ----------------------------------------------------------------------------
    *[
        (
            f"import-coco-{name}",
            (
                lambda name_of: (
                    lambda f, t: [
                        "import",
                        "coco",
                        str(
                            write_jsonl(
                                f["ds"] / f"coco-{t.name}.json",
                                [
                                    {
                                        "images": [{"id": 1, "file_name": name_of(f), "width": 32, "height": 32}],
                                        "annotations": [],
                                        "categories": [],
                                    }
                                ],
                            )
                        ),
                        "--out",
                        str(t / "s.jsonl"),
                    ]
                )
            )(fname),
            culprit,
            "s.jsonl",
        )
        for name, fname, culprit in [
            ("dotdot", lambda f: "../secret/secret.png", "outside the dataset root"),
            ("absolute", lambda f: str(f["passwd"]), "absolute path"),
            ("etc-passwd", lambda f: "../../../../../../../../etc/passwd", "etc/passwd"),
            ("vrt", lambda f: "images/evil.tif", "GDAL VRT"),
            ("bomb-png", lambda f: "images/bomb.png", "bomb.png"),
            ("fifo", lambda f: "images/fifo.png", "not a regular file"),
            ("symlink", lambda f: "images/link.png", "link.png"),
        ]
    ],
    (
        "import-coco-duplicate-image-id",
        lambda f, t: [
            "import",
            "coco",
            str(
                write_jsonl(
                    f["ds"] / f"dup-{t.name}.json",
                    [
                        {
                            "images": [
                                {"id": 1, "file_name": "images/im0.png"},
                                {"id": 1, "file_name": "images/im1.png"},
                            ],
                            "annotations": [],
                            "categories": [],
                        }
                    ],
                )
            ),
            "--out",
            str(t / "s.jsonl"),
        ],
        "duplicate image id 1",
        "s.jsonl",
    ),
    (
        "import-swift-empty",
        lambda f, t: ["import", "swift", str(f["empty_jsonl"]), "--out", str(t / "s.jsonl")],
        "no samples",
        "s.jsonl",
    ),
    (
        "import-swift-latin1",
        lambda f, t: ["import", "swift", str(f["latin1"]), "--out", str(t / "s.jsonl")],
        "latin1.jsonl",
        "s.jsonl",
    ),
    (
        "import-unknown-format",
        lambda f, t: ["import", "xml", str(f["samples"]), "--out", str(t / "s.jsonl")],
        "xml",
        "s.jsonl",
    ),
    # --- build -----------------------------------------------------------------------------
    (
        "build-duplicate-ids",
        lambda f, t: [
            "build",
            str(_samples(f, t, "b", [sample("a", "images/im0.png"), sample("a", "images/im1.png")])),
            str(t / "o"),
        ],
        "duplicate id",
        "o",
    ),
    (
        "build-outside-root",
        lambda f, t: ["build", str(_samples(f, t, "b", [sample("a", "../secret/secret.png")])), str(t / "o")],
        "outside the dataset root",
        "o",
    ),
    (
        "build-absolute",
        lambda f, t: ["build", str(_samples(f, t, "b", [sample("a", str(f["passwd"]))])), str(t / "o")],
        "absolute path",
        "o",
    ),
    (
        "build-mask-vrt",
        lambda f, t: [
            "build",
            str(
                _samples(
                    f,
                    t,
                    "b",
                    [sample("a", "images/im0.png", landcover={"mask": "images/evil.tif", "classes": {"1": "water"}})],
                )
            ),
            str(t / "o"),
            "--tasks",
            "landform_main",
        ],
        "evil.tif",
        "o",
    ),
    (
        "build-mask-outside",
        lambda f, t: [
            "build",
            str(
                _samples(
                    f,
                    t,
                    "b",
                    [sample("a", "images/im0.png", landcover={"mask": "../secret/secret.png", "classes": {"1": "w"}})],
                )
            ),
            str(t / "o"),
            "--tasks",
            "landform_main",
        ],
        "landcover.mask",
        "o",
    ),
    (
        "build-mask-bomb",
        lambda f, t: [
            "build",
            str(
                _samples(
                    f,
                    t,
                    "b",
                    [sample("a", "images/im0.png", landcover={"mask": "images/bomb.tif", "classes": {"1": "w"}})],
                )
            ),
            str(t / "o"),
            "--tasks",
            "landform_main",
        ],
        "bomb.tif",
        "o",
    ),
    (
        "build-bad-date",
        lambda f, t: [
            "build",
            str(_samples(f, t, "b", [sample("a", "images/im0.png", date="2022-13-45")])),
            str(t / "o"),
        ],
        "2022-13-45",
        "o",
    ),
    ("build-empty", lambda f, t: ["build", str(f["empty_jsonl"]), str(t / "o")], "empty.jsonl", "o"),
    ("build-latin1", lambda f, t: ["build", str(f["latin1"]), str(t / "o")], "not UTF-8", "o"),
    ("build-out-is-file", lambda f, t: ["build", str(f["samples"]), str(f["a_file"])], "a_file", None),
    (
        "build-max-pixels-negative",
        lambda f, t: ["build", str(f["samples"]), str(t / "o"), "--max-pixels", "-5"],
        "--max-pixels",
        "o",
    ),
    # --- stats -----------------------------------------------------------------------------
    (
        "stats-outside-root",
        lambda f, t: ["stats", str(_examples(f, t, ["../../../secret/secret.png"])), "--out", str(t / "o")],
        "outside the dataset root",
        "o",
    ),
    # --- stats / priors show (image statistics and prior renderings read images too) -----------
    (
        "stats-vrt",
        lambda f, t: [
            "stats",
            str(_two_examples(f, t, "../../images/evil.tif")),
            "--out",
            str(t / "o"),
            "--no-text-similarity",
        ],
        "evil.tif",
        "o",
    ),
    (
        "stats-bomb",
        lambda f, t: [
            "stats",
            str(_two_examples(f, t, "../../images/bomb.tif")),
            "--out",
            str(t / "o"),
            "--no-text-similarity",
        ],
        "bomb.tif",
        "o",
    ),
    (
        "priors-show-outside-root",
        lambda f, t: _show(f, t, "../secret/secret.png", 32, 32),
        "outside the dataset root",
        "o.png",
    ),
    ("priors-show-vrt", lambda f, t: _show(f, t, "images/evil.tif", 8, 4), "evil.tif", "o.png"),
    ("priors-show-bomb", lambda f, t: _show(f, t, "images/bomb.tif", 100000, 100000), "bomb.tif", "o.png"),
    ("priors-show-fifo", lambda f, t: _show(f, t, "images/fifo.png", 32, 32), "not a regular file", "o.png"),
    # --- silent damage that is now refused ------------------------------------------------------
    (
        "preprocess-3band-declared-vv",
        lambda f, t: ["preprocess", str(_samples(f, t, "rgb", [sample("a", "images/rgb.png")])), "--out", str(t / "o")],
        "polarizations",
        "o",
    ),
    (
        "eval-other-dataset",
        lambda f, t: [
            "eval",
            str(_predictions_for_other_data(f, t)),
            "--data",
            str(f["built"] / "train.jsonl"),
            "--out",
            str(t / "r"),
        ],
        "different dataset",
        "r",
    ),
    (
        "eval-out-is-file",
        lambda f, t: [
            "eval",
            str(f["empty_jsonl"]),
            "--data",
            str(f["built"] / "train.jsonl"),
            "--out",
            str(f["a_file"]),
        ],
        "a_file",
        None,
    ),
    # --- train -----------------------------------------------------------------------------
    (
        "train-outside-root",
        lambda f, t: [
            "train",
            "--recipe",
            "sarlang-lora",
            "--model",
            MODEL,
            "--data",
            str(_examples(f, t, ["../../../secret/secret.png"], "train").parent),
            "--out",
            str(t / "run"),
            "--max-steps",
            "1",
        ],
        "outside the dataset root",
        "run",
    ),
    (
        "train-vrt",
        lambda f, t: [
            "train",
            "--recipe",
            "sarlang-lora",
            "--model",
            MODEL,
            "--data",
            str(_examples(f, t, ["../../images/evil.tif"], "train").parent),
            "--out",
            str(t / "run"),
            "--max-steps",
            "1",
        ],
        "evil.tif",
        "run",
    ),
    (
        "train-max-steps-negative",
        lambda f, t: [
            "train",
            "--recipe",
            "sarlang-lora",
            "--model",
            MODEL,
            "--data",
            str(f["built"]),
            "--out",
            str(t / "run"),
            "--max-steps",
            "-3",
        ],
        "--max-steps",
        "run",
    ),
    # --- ask -------------------------------------------------------------------------------
    *[
        (
            f"ask-{name}",
            (lambda k: lambda f, t: ["ask", "--model", MODEL, str(f[k]), "How many ships?"])(key),
            culprit,
            None,
        )
        for name, key, culprit in [
            ("vrt", "vrt", "GDAL VRT"),
            ("bomb-tif", "bomb_tif", "bomb.tif"),
            ("bomb-png", "bomb_png", "bomb.png"),
            ("big-float", "big_tif", "big.tif"),
            ("fifo", "fifo", "not a regular file"),
            ("nan", "nan_tif", "nan.tif"),
            ("empty-file", "empty_img", "empty.png"),
            ("truncated", "truncated", "truncated.png"),
        ]
    ],
    (
        "ask-vsicurl",
        lambda f, t: ["ask", "--model", MODEL, "/vsicurl/http://127.0.0.1:9/x.tif", "How many?"],
        "vsicurl",
        None,
    ),
    (
        "ask-unknown-task",
        lambda f, t: ["ask", "--model", MODEL, str(f["ds"] / "images/im0.png"), "How many?", "--task", "foo"],
        "foo",
        None,
    ),
    (
        "ask-empty-question",
        lambda f, t: ["ask", "--model", MODEL, str(f["ds"] / "images/im0.png"), "  "],
        "question",
        None,
    ),
    # --- predict ---------------------------------------------------------------------------
    (
        "predict-outside-root",
        lambda f, t: [
            "predict",
            "--model",
            MODEL,
            "--data",
            str(_examples(f, t, ["../../../secret/secret.png"])),
            "--out",
            str(t / "p.jsonl"),
        ],
        "outside the dataset root",
        "p.jsonl",
    ),
    (
        "predict-vrt",
        lambda f, t: [
            "predict",
            "--model",
            MODEL,
            "--data",
            str(_examples(f, t, ["../../images/evil.tif"])),
            "--out",
            str(t / "p.jsonl"),
        ],
        "evil.tif",
        "p.jsonl",
    ),
    (
        "predict-bomb-png",
        lambda f, t: [
            "predict",
            "--model",
            MODEL,
            "--data",
            str(_examples(f, t, ["../../images/bomb.png"])),
            "--out",
            str(t / "p.jsonl"),
        ],
        "bomb.png",
        "p.jsonl",
    ),
    (
        "predict-empty",
        lambda f, t: ["predict", "--model", MODEL, "--data", str(f["empty_jsonl"]), "--out", str(t / "p.jsonl")],
        "empty.jsonl",
        "p.jsonl",
    ),
    (
        "predict-latin1",
        lambda f, t: ["predict", "--model", MODEL, "--data", str(f["latin1"]), "--out", str(t / "p.jsonl")],
        "not UTF-8",
        "p.jsonl",
    ),
    (
        "predict-out-under-file",
        lambda f, t: [
            "predict",
            "--model",
            MODEL,
            "--data",
            str(f["built"] / "train.jsonl"),
            "--out",
            str(f["a_file"] / "p.jsonl"),
        ],
        "a_file",
        None,
    ),
    # --- eval / synth ----------------------------------------------------------------------
    (
        "eval-latin1",
        lambda f, t: ["eval", str(f["latin1"]), "--data", str(f["built"] / "train.jsonl"), "--out", str(t / "r")],
        "latin1.jsonl",
        "r",
    ),
    ("synth-bad-pols", lambda f, t: ["synth", str(t / "w"), "--pols", "HH"], "--pols", "w"),
    ("synth-bad-years", lambda f, t: ["synth", str(t / "w"), "--years", "12a"], "--years", "w"),
    (
        "synth-out-under-file",
        lambda f, t: ["synth", str(f["a_file"] / "w"), "--scenes", "1", "--size", "32"],
        "a_file",
        None,
    ),
]


def _one_line_error(capsys, rc, culprit):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc != 0, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("sarvlm: error: "), lines[0]
    assert culprit in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_error_and_no_output(case, fx, tmp_path, capsys, monkeypatch):
    _, argv, culprit, output = case
    monkeypatch.setenv("SARVLM_NO_PROGRESS", "1")
    args = argv(fx, tmp_path)
    capsys.readouterr()
    try:
        rc = cli_main(args)
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    _one_line_error(capsys, rc, culprit)
    if output is not None:
        left = [p.name for p in tmp_path.iterdir() if p.name.startswith(output)]  # incl. journals (.partial)
        assert not left, f"{left} left behind"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"
    assert (fx["secret_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # nothing the user gave changed


def test_enough_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 45
    assert {c[0].split("-")[0] for c in CASES} >= {
        "preprocess",
        "import",
        "build",
        "stats",
        "priors",
        "train",
        "ask",
        "predict",
        "eval",
        "synth",
    }


def test_outside_root_allowed_explicitly_and_recorded(fx, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SARVLM_NO_PROGRESS", "1")
    samples = _samples(fx, tmp_path, "ok", [sample("a", "../secret/secret.png")])
    assert cli_main(["build", str(samples), str(tmp_path / "o"), "--allow-outside-root"]) == 0
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["options"]["allow_outside_root"] is True
    assert cli_main(["preprocess", str(samples), "--out", str(tmp_path / "p"), "--allow-outside-root"]) == 0
    assert json.loads((tmp_path / "p" / "preprocess.json").read_text())["config"]["allow_outside_root"] is True


def test_raising_the_limit_opens_a_large_scene(fx, tmp_path, capsys, monkeypatch):
    """The limit is a setting, not a wall: the 100000^2 PNG is refused, but a 20000^2 float GeoTIFF
    is read window by window with --tile-m (each window within the limit)."""
    monkeypatch.setenv("SARVLM_NO_PROGRESS", "1")
    monkeypatch.setenv("SARVLM_MAX_IMAGE_BYTES", "8M")
    rc = cli_main(["ask", "--model", MODEL, str(fx["ds"] / "images/float.tif"), "q", "--task", "nope"])
    _one_line_error(capsys, rc, "nope")
    from sarvlm.io.raster import read_raster
    from sarvlm.io.raster_policy import raster_policy

    with raster_policy(max_image_bytes="2G"):
        assert read_raster(fx["big_tif"], window=(0, 19990, 64, 10)).shape == (1, 10, 64)
    with pytest.raises(Exception, match="over the image size limit"):
        read_raster(fx["big_tif"])


# --- memory-capped children: a regression that allocates the declared size fails, not swaps --------


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _sarvlm(args, cwd, **kw):
    env = {**os.environ, "SARVLM_NO_PROGRESS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    return subprocess.run(
        [sys.executable, "-m", "sarvlm.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=_cap_memory,
        timeout=120,
        **kw,
    )


@pytest.mark.parametrize(
    "verb,key",
    [
        ("preprocess", "bomb_tif"),
        ("preprocess", "vrt"),
        ("ask", "bomb_tif"),
        ("ask", "bomb_png"),
        ("import", "bomb_png"),
    ],
)
def test_bombs_and_vrt_under_a_memory_cap(verb, key, fx, tmp_path):
    if verb == "preprocess":
        args = ["preprocess", str(fx[key]), "--out", str(tmp_path / "o")]
    elif verb == "ask":
        args = ["ask", "--model", MODEL, str(fx[key]), "How many ships?"]
    else:
        rel = _rel(fx, fx[key])
        coco = write_jsonl(
            fx["ds"] / f"cap-{tmp_path.name}.json",
            [{"images": [{"id": 1, "file_name": rel}], "annotations": [], "categories": []}],
        )
        args = ["import", "coco", str(coco), "--out", str(tmp_path / "s.jsonl")]
    proc = _sarvlm(args, tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and fx[key].name in lines[0] and "Traceback" not in proc.stderr
    assert "MemoryError" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_gdal_process_settings_take_effect(tmp_path):
    """configure_gdal's settings, each verified on a fresh GDAL against the same probe without them:
    GDAL_SKIP unregisters VRT (a VRT no longer opens even through plain rasterio),
    GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR hides a .tfw world file next to a GeoTIFF,
    GDAL_PAM_ENABLED=NO ignores an .aux.xml side-car's metadata, and CPL_VSIL_CURL_ALLOWED_EXTENSIONS
    stops /vsicurl/ from fetching a URL (served by a local HTTP server)."""
    import numpy as np

    from sarvlm.io.raster import write_raster

    write_raster(tmp_path / "a.tif", np.zeros((4, 4), np.uint8), compress=None)
    (tmp_path / "a.tfw").write_text("10\n0\n0\n-10\n500000\n4000000\n")
    write_raster(tmp_path / "b.tif", np.zeros((4, 4), np.uint8), compress=None)
    (tmp_path / "b.tif.aux.xml").write_text(
        '<PAMDataset><Metadata><MDI key="SIDECAR">yes</MDI></Metadata></PAMDataset>'
    )
    (tmp_path / "v.vrt").write_text(
        '<VRTDataset rasterXSize="4" rasterYSize="4"><VRTRasterBand dataType="Byte" band="1"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{tmp_path / "a.tif"}</SourceFilename><SourceBand>1</SourceBand>'
        "</SimpleSource></VRTRasterBand></VRTDataset>"
    )
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(server.stdout.readline().split(" port ")[1].split()[0])
        probe = f"""
import warnings
warnings.simplefilter("ignore")
import rasterio
d = {str(tmp_path)!r}
out = {{}}
with rasterio.Env() as env:
    out["vrt_registered"] = "VRT" in env.drivers()
try:
    rasterio.open(d + "/v.vrt").close(); out["vrt_opens"] = True
except Exception:
    out["vrt_opens"] = False
with rasterio.open(d + "/a.tif") as ds:
    out["tfw_seen"] = ds.transform.a == 10
with rasterio.open(d + "/b.tif") as ds:
    out["aux_xml_seen"] = ds.tags().get("SIDECAR") == "yes"
try:
    with rasterio.open("/vsicurl/http://127.0.0.1:{port}/a.tif") as ds:
        out["curl_fetches"] = ds.width == 4
except Exception:
    out["curl_fetches"] = False
print(out)
"""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GDAL_", "CPL_"))}
        env["PYTHONPATH"] = str(Path(__file__).parents[1] / "src")
        env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1"
        results = {}
        for hardened in (False, True):
            harden = "from sarvlm.io.raster_policy import configure_gdal\nconfigure_gdal()\n" if hardened else ""
            proc = subprocess.run(
                [sys.executable, "-c", harden + probe], env=env, capture_output=True, text=True, timeout=60
            )
            assert proc.returncode == 0, proc.stderr
            results[hardened] = eval(proc.stdout.strip().splitlines()[-1])  # noqa: S307 - our own dict literal
    finally:
        server.kill()
        server.wait()
    keys = ("vrt_registered", "vrt_opens", "tfw_seen", "aux_xml_seen", "curl_fetches")
    assert results[False] == dict.fromkeys(keys, True)
    assert results[True] == dict.fromkeys(keys, False)


def test_open_raster_bytes_applies_the_same_checks(fx):
    from sarvlm.core.errors import SarvlmError
    from sarvlm.io.raster import open_raster_bytes

    with open_raster_bytes((fx["ds"] / "images/im0.png").read_bytes(), "upload.png") as ds:
        assert (ds.width, ds.height, ds.driver) == (32, 32, "PNG")
    for key, text in (("vrt", "GDAL VRT"), ("bomb_png", "over the image size limit"), ("empty_img", "empty upload")):
        with pytest.raises(SarvlmError, match=text):
            with open_raster_bytes(fx[key].read_bytes(), "upload"):
                pass


# --- kill -9: no stale temporary directory survives the rerun -------------------------------------


@pytest.mark.parametrize("verb", ["build", "preprocess"])
def test_killed_run_leaves_no_stale_temp_after_rerun(verb, fx, tmp_path):
    rows = [sample(f"r{i}", f"images/im{i % 2}.png") for i in range(2000 if verb == "build" else 40)]
    samples = write_jsonl(fx["ds"] / f"kill-{verb}-{tmp_path.name}.jsonl", rows)
    out = tmp_path / "o"
    args = (
        ["build", str(samples), str(out), "--tasks", "count,caption", "--split", "1:0"]
        if verb == "build"
        else ["preprocess", str(samples), "--out", str(out), "--filter", "refined-lee", "--window", "5"]
    )
    env = {**os.environ, "SARVLM_NO_PROGRESS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sarvlm.cli.main", *args], env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")] and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]
    assert stale and not out.exists(), "the run was killed mid-way, leaving its temp"
    rerun = subprocess.run(
        [sys.executable, "-m", "sarvlm.cli.main", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    assert out.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["o"], "stale temporary directory survived the rerun"
