"""What trains in each stage: the LoRA / fusion / adapter split of every recipe on real tiny models."""

from __future__ import annotations

import pytest
import torch

from sarvlm.core.errors import SarvlmError
from sarvlm.training.recipe import load_recipe
from sarvlm.training.stages import lora_target_names, module_part, plan_stage, prepare_stage, trainable_summary

torch.set_num_threads(1)


def _model(backbone: str = "tiny-qwen2.5-vl", fusion: str = "tlm"):
    from sarvlm.models.loading import load_model

    return load_model(backbone, settings={"fusion": fusion}, seed=0)[0]


def _trainable_names(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def test_module_parts():
    assert module_part("model.geo_fusion.mlp.0.weight") == "fusion"
    assert module_part("model.visual.merger.mlp.0") == "merger"
    assert module_part("model.visual.blocks.0.attn.qkv") == "vision"
    assert module_part("model.language_model.layers.0.self_attn.q_proj") == "language_model"
    assert module_part("lm_head") == "lm_head"


def test_fusar_gpt_stage1_trains_only_the_fusion_module():
    model = _model()
    recipe = load_recipe("fusar-gpt")
    trained, plan = prepare_stage(model, recipe.stage("stage1"), "tlm")
    names = _trainable_names(trained)
    assert names and all(".geo_fusion." in f".{n}" for n in names)
    per_part, n, _ = trainable_summary(trained)
    assert set(per_part) == {"fusion"} and n == sum(p.numel() for p in model.model.geo_fusion.parameters())
    assert plan.lora_targets == []


def test_fusar_gpt_stage1_lora_switch_matches_fig2():
    recipe = load_recipe("fusar-gpt", {"stage1.lora.enabled": True})
    trained, plan = prepare_stage(_model(), recipe.stage("stage1"), "tlm")
    per_part, _, _ = trainable_summary(trained)
    assert set(per_part) == {"fusion", "lora:language_model"}


def test_fusar_gpt_stage2_lora_on_every_linear_layer_of_the_llm_only():
    model = _model()
    recipe = load_recipe("fusar-gpt")
    lm_linear = [
        n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and module_part(n) == "language_model"
    ]
    trained, plan = prepare_stage(model, recipe.stage("stage2"), "tlm")
    assert sorted(plan.lora_targets) == sorted(lm_linear) and len(lm_linear) == 14  # 2 layers x 7 projections
    names = _trainable_names(trained)
    assert names and all("lora_" in n and ".language_model." in n for n in names)  # TLM, vision, merger frozen


def test_lunaros_stages():
    recipe = load_recipe("lunaros")
    model = _model("tiny-qwen3-vl", "none")
    plan1 = plan_stage(model, recipe.stage("stage1"), "none")
    assert {n.rsplit(".", 1)[1] for n in plan1.lora_targets} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert all(module_part(n) == "language_model" for n in plan1.lora_targets)
    trained, plan2 = prepare_stage(model, recipe.stage("stage2"), "none")
    parts = {module_part(n) for n in plan2.lora_targets}
    assert parts == {"merger", "language_model"}  # adapter + LLM; vision tower frozen
    per_part, _, _ = trainable_summary(trained)
    assert set(per_part) == {"lora:merger", "lora:language_model"}


def test_sarlang_lora_wraps_all_linear_layers():
    model = _model(fusion="none")
    recipe = load_recipe("sarlang-lora")
    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"]
    assert sorted(lora_target_names(model, recipe.stages[0])) == sorted(linear)


def test_stage_that_trains_nothing_is_an_error():
    recipe = load_recipe("fusar-gpt", {"fusion": "none", "needs_priors": False})
    with pytest.raises(SarvlmError, match="trains nothing"):
        plan_stage(_model(fusion="none"), recipe.stage("stage1"), "none")
    with pytest.raises(SarvlmError, match="no linear layer matches"):
        plan_stage(_model(), load_recipe("fusar-gpt", {"stage2.lora.targets": "[nope_proj]"}).stage("stage2"), "tlm")


def test_lora_init_is_seeded():
    recipe = load_recipe("fusar-gpt")
    a, _ = prepare_stage(_model(), recipe.stage("stage2"), "tlm", seed=3)
    b, _ = prepare_stage(_model(), recipe.stage("stage2"), "tlm", seed=3)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_full_model_stage_trains_every_parameter_and_excludes_lora():
    from sarvlm.demo.pipeline import BASE_RECIPE
    from sarvlm.training.stages import trained_full_state

    model = _model(fusion="none")
    recipe = load_recipe(BASE_RECIPE)
    trained, plan = prepare_stage(model, recipe.stage("pretrain"), "none")
    assert plan.full_modules == [""] and not plan.lora_targets
    assert all(p.requires_grad for p in trained.parameters())
    per_part, n, total = trainable_summary(trained)
    assert n == total and {"language_model", "lm_head", "vision", "merger"} <= set(per_part)
    state = trained_full_state(trained, plan)
    assert set(state) == set(model.state_dict())  # saved under the model's own names, no "." prefix
    with pytest.raises(SarvlmError, match="full_model"):
        load_recipe(BASE_RECIPE, {"pretrain.lora.enabled": True})
