"""Recipes: shipped recipes match the papers, overrides are validated, bad keys fail in one line."""

from __future__ import annotations

import pytest

from sarvlm.cli.main import main
from sarvlm.core.errors import SarvlmError
from sarvlm.training.recipe import apply_common_overrides, list_recipes, load_recipe, parse_set_options


def test_shipped_recipes_are_listed_and_valid():
    names = list_recipes()
    assert set(names) == {"fusar-gpt", "lunaros", "sarlang-lora"}
    for name in names:
        load_recipe(name)


def test_fusar_gpt_matches_the_paper():
    r = load_recipe("fusar-gpt")
    s1, s2 = r.stages
    assert r.fusion == "tlm" and r.needs_priors
    # stage 1: only the TLM MLP, lr 1e-4, 30 epochs, captions
    assert s1.train_fusion and not s1.lora.enabled and not s1.train_merger
    assert (s1.lr, s1.epochs, s1.warmup_ratio, s1.tasks) == (1e-4, 30, 0.05, ["caption"])
    # stage 2: TLM frozen, LoRA r=8 alpha=32 on all linear layers of the LLM, lr 1e-5, 5 epochs
    assert not s2.train_fusion and s2.lora.enabled
    assert (s2.lora.r, s2.lora.alpha, s2.lora.targets, s2.lora.scope) == (8, 32, "all-linear", ["language_model"])
    assert (s2.lr, s2.epochs, s2.warmup_ratio) == (1e-5, 5, 0.05)
    assert set(s2.tasks) == {"count", "grid", "classify_box", "detect"}


def test_lunaros_and_sarlang_match_the_papers():
    lun = load_recipe("lunaros")
    a, b = lun.stages
    assert a.lora.targets == ["q_proj", "k_proj", "v_proj", "o_proj"] and a.lora.scope == ["language_model"]
    assert not a.train_merger and b.lora.scope == ["merger", "language_model"]
    assert b.tasks == ["dialogue"] and lun.fusion == "none"
    sar = load_recipe("sarlang-lora")
    (only,) = sar.stages
    assert (only.lora.r, only.epochs, only.lr, only.warmup_ratio, only.batch_size) == (8, 3, 1e-4, 0.1, 1)


def test_set_overrides_are_parsed_and_validated():
    r = load_recipe(
        "fusar-gpt",
        parse_set_options(
            [
                "stage2.lora.r=16",
                "fusion=sum",
                "stage1.tasks=caption,count",
                "stage1.lr=2e-4",
                "stage1.lora.enabled=true",
                "max_length=512",
            ]
        ),
    )
    assert r.stages[1].lora.r == 16 and r.fusion == "sum"
    assert r.stages[0].tasks == ["caption", "count"] and r.stages[0].lr == 2e-4 and r.stages[0].lora.enabled
    assert r.max_length == 512


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"stage2.lora.rank": "4"}, "stage2.lora.rank: unknown key 'rank'"),
        ({"bogus": "1"}, "unknown key 'bogus'"),
        ({"stage1.lr": "fast"}, "stage1.lr"),
        ({"fusion": "add"}, "fusion"),
        ({"stage3.lr": "1"}, "unknown key 'stage3'"),
        ({"stage1.lr.x": "1"}, "has no sub-keys"),
        ({"stage2.lora.r": "0"}, "stage2.lora.r"),
    ],
)
def test_bad_overrides_fail_with_one_line(override, message):
    with pytest.raises(SarvlmError) as exc:
        load_recipe("fusar-gpt", override)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_unknown_recipe_and_malformed_set():
    with pytest.raises(SarvlmError, match="unknown recipe 'nope'"):
        load_recipe("nope")
    with pytest.raises(SarvlmError, match="expected key=value"):
        parse_set_options(["stage1.lr"])


def test_user_recipe_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\nstages:\n  - {name: only, tasks: ['*'], lora: {enabled: true}, lr: 1.0e-3, epochs: 1}\n"
    )
    r = load_recipe(path)
    assert r.stages[0].lora.enabled and r.fusion == "none"
    path.write_text("name: mine\nstages: []\n")
    with pytest.raises(SarvlmError, match="at least one stage"):
        load_recipe(path)


def test_common_overrides_apply_to_every_stage():
    r = apply_common_overrides(load_recipe("fusar-gpt"), lr=3e-4, max_steps=7, lora_r=4, seed=5, workers=2)
    assert all(s.lr == 3e-4 and s.max_steps == 7 and s.lora.r == 4 for s in r.stages)
    assert (r.seed, r.workers) == (5, 2)
    with pytest.raises(SarvlmError, match="batch_size"):
        apply_common_overrides(r, batch_size=0)


def test_cli_list_show_and_errors(capsys):
    assert main(["train", "--list-recipes"]) == 0
    assert "fusar-gpt" in capsys.readouterr().out
    assert main(["train", "--recipe", "lunaros", "--lora-r", "4", "--show"]) == 0
    assert "r: 4" in capsys.readouterr().out
    assert main(["train", "--recipe", "lunaros", "--set", "stage9.lr=1", "--show"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stage9" in err
    assert main(["train", "--recipe", "lunaros"]) == 2
    assert "--model, --data, --out required" in capsys.readouterr().err
    assert main(["train", "--recipe", "sarlang-lora", "--model", "m", "--data", "d", "--out", "o", "--stage", "2"]) == 2
    assert "has 1 stage" in capsys.readouterr().err
