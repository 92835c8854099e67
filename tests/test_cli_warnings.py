"""Warnings: the CLI no longer hides every FutureWarning/DeprecationWarning around each verb; the one
third-party notice that fired in the verbs (PEFT reading transformers' deprecated
``is_gradient_checkpointing`` when it wraps a model) is silenced only around PEFT's calls."""

from __future__ import annotations

import argparse
import warnings

import pytest
import torch

from sarvlm.cli import main as cli_main
from sarvlm.models.peft_warnings import peft_checkpointing_notice_silenced
from sarvlm.training.recipe import load_recipe
from sarvlm.training.stages import merge_stage, prepare_stage

torch.set_num_threads(1)


def test_a_verbs_own_warnings_reach_the_user(monkeypatch):
    """A FutureWarning or DeprecationWarning raised while a verb runs is not swallowed by the entry point."""

    def run(args: argparse.Namespace) -> int:
        warnings.warn("sarvlm-test: old option", FutureWarning, stacklevel=1)
        warnings.warn("sarvlm-test: old call", DeprecationWarning, stacklevel=1)
        return 0

    parser = cli_main.build_parser()
    real_parse = parser.parse_args

    def parse_args(argv=None):
        args = real_parse(argv)
        args._run = run
        return args

    monkeypatch.setattr(parser, "parse_args", parse_args)
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert cli_main.main(["synth", "unused-out-dir"]) == 0
    messages = {(w.category, str(w.message)) for w in seen}
    assert (FutureWarning, "sarvlm-test: old option") in messages
    assert (DeprecationWarning, "sarvlm-test: old call") in messages


def test_lora_wrapping_and_merging_raise_no_future_warning():
    """PEFT's wrap and load of a transformers 5 model would warn about is_gradient_checkpointing."""
    from sarvlm.models.loading import load_model

    model = load_model("tiny-qwen2.5-vl", settings={"fusion": "tlm"}, seed=0)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        trained, plan = prepare_stage(model, load_recipe("fusar-gpt").stage("stage2"), "tlm")
        assert plan.lora_targets
        merge_stage(trained)


def test_the_scoped_filter_drops_only_that_notice_and_only_inside():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with peft_checkpointing_notice_silenced():
            warnings.warn(
                "`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning, stacklevel=1
            )
            warnings.warn("another library's notice", FutureWarning, stacklevel=1)
        warnings.warn(
            "`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning, stacklevel=1
        )
    assert [str(w.message)[:26] for w in seen] == ["another library's notice", "`is_gradient_checkpointing"]


@pytest.mark.parametrize("module", ["sarvlm.cli.main"])
def test_the_entry_point_installs_no_blanket_warning_filter(module):
    import importlib
    import inspect

    source = inspect.getsource(importlib.import_module(module))
    assert "simplefilter(" not in source and "filterwarnings(" not in source
