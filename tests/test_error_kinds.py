"""Library callers can tell error kinds apart; the CLI still prints one line and exits non-zero.

InputError (bad data in a file/record/field/option), NotFoundError (a named thing is absent),
ConfigurationError (a recipe/config/setting is invalid), MissingDependency (an optional extra
is not installed, with the install command). All are SarvlmError.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from sarvlm.cli.main import main
from sarvlm.core.errors import ConfigurationError, InputError, MissingDependency, NotFoundError, SarvlmError


def test_importer_errors_are_input_or_not_found(tmp_path):
    from sarvlm.data.importers import import_dataset

    with pytest.raises(NotFoundError, match="nope.json: no such file"):
        import_dataset("coco", tmp_path / "nope.json", tmp_path / "out.jsonl")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "annotations": "oops"}))
    with pytest.raises(InputError, match="bad.json"):
        import_dataset("coco", bad, tmp_path / "out.jsonl", check_images=False)
    with pytest.raises(InputError, match="--split: unknown split"):
        import_dataset("coco", bad, tmp_path / "out.jsonl", split="holdout")
    assert not (tmp_path / "out.jsonl").exists()


def test_builder_names_a_missing_samples_file(tmp_path):
    from sarvlm.data.builder import BuildOptions, build_dataset

    with pytest.raises(NotFoundError, match="samples.jsonl: no such file"):
        build_dataset(tmp_path / "samples.jsonl", tmp_path / "out", BuildOptions())


def test_recipe_errors_are_configuration_or_not_found(tmp_path):
    from sarvlm.training.recipe import load_recipe

    with pytest.raises(NotFoundError, match="unknown recipe 'no-such-recipe'"):
        load_recipe("no-such-recipe")
    broken = tmp_path / "r.yaml"
    broken.write_text("name: r\nfusion: tlm\nstages: [{name: s1, tasks: ['*'], lr: -1, epochs: 1}]\n")
    with pytest.raises(ConfigurationError, match="r.yaml"):
        load_recipe(broken)
    with pytest.raises(ConfigurationError, match="--set stages.s9"):
        load_recipe("fusar-gpt", {"stages.s9.lr": 1e-4})


def test_model_loading_errors(tmp_path):
    from sarvlm.models.loading import load_model

    with pytest.raises(NotFoundError, match="no such model directory"):
        load_model(tmp_path / "missing")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(InputError, match="not a supported backbone"):
        load_model(tmp_path / "m")


def test_preprocess_options_are_configuration_errors():
    from sarvlm.preprocess.pipeline import PreprocessConfig

    with pytest.raises(ConfigurationError, match="filter: must be one of"):
        PreprocessConfig(filter="median").validate()


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed here")
def test_missing_optional_extra_names_the_install_command():
    from sarvlm.training.trainer import resolve_deepspeed

    with pytest.raises(MissingDependency, match=r"pip install -e '\.\[deepspeed\]'") as info:
        resolve_deepspeed("zero2")
    assert (info.value.package, info.value.extra) == ("deepspeed", "deepspeed")
    assert isinstance(info.value, SarvlmError)


def test_cli_reports_every_kind_as_one_line(tmp_path, capsys):
    for argv in (
        ["import", "coco", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o.jsonl")],
        [
            "train",
            "--recipe",
            "no-such-recipe",
            "--model",
            "tiny-qwen2.5-vl",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
        ],
    ):
        assert main(argv) != 0
        err = capsys.readouterr().err.strip()
        assert err.startswith("sarvlm: error: ") and "\n" not in err and "Traceback" not in err, err
