"""End to end on the synthetic world: real AlphaEarth-layout COGs -> prior cache -> predict / ask with priors."""

from __future__ import annotations

import json

import pytest
import torch

from sarvlm.cli.main import main as cli_main
from sarvlm.core.example import InstructionExample, Message, read_predictions, write_jsonl
from sarvlm.core.record import read_samples
from sarvlm.inference.ask import ask
from sarvlm.inference.generate import GenerationOptions
from sarvlm.inference.predict import predict
from sarvlm.models.loading import fusion_module, load_model, save_model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sarvlm.priors.cache import build_prior_cache
    from sarvlm.synth.world import generate_world

    root = tmp_path_factory.mktemp("e2e")
    generate_world(root / "world", scenes=2, seed=0, size=128)
    samples = list(read_samples(root / "world" / "samples.jsonl"))
    examples = [
        InstructionExample(
            id=f"{s.id}/count",
            sample_id=s.id,
            task="count",
            images=[s.image],
            width=s.width,
            height=s.height,
            year=s.year,
            messages=[
                Message(role="user", content="<image>\nHow many ships are there?"),
                Message(role="assistant", content="0"),
            ],
        )
        for s in samples
    ]
    write_jsonl(root / "world" / "test.jsonl", examples)
    build_prior_cache(
        root / "world" / "samples.jsonl", f"aef-cog:{root / 'world' / 'aef'}", grid=(4, 4), out_dir=root / "priors"
    )
    model, processor = load_model("tiny-qwen2.5-vl", settings={"prior_source": f"aef-cog:{root / 'world' / 'aef'}"})
    with torch.no_grad():
        for p in fusion_module(model).parameters():
            p.normal_(0, 1.0, generator=torch.Generator().manual_seed(p.numel()))
    save_model(model, processor, root / "model")
    return root, samples


def test_predict_with_a_real_prior_cache(world):
    root, samples = world
    data = root / "world" / "test.jsonl"
    with_p = predict(root / "model", data, root / "with.jsonl", priors_dir=root / "priors", max_new_tokens=6)
    predict(root / "model", data, root / "without.jsonl", max_new_tokens=6)
    assert with_p.generated == len(samples)
    a = [r.prediction for r in read_predictions(root / "with.jsonl")]
    b = [r.prediction for r in read_predictions(root / "without.jsonl")]
    assert a != b  # the sampled AlphaEarth vectors reach the visual tokens


def test_ask_samples_the_prior_from_the_geotiff_footprint(world, capsys):
    root, samples = world
    image = root / "world" / samples[0].image
    opts = GenerationOptions(max_new_tokens=6)
    with_prior = ask(str(root / "model"), image, "How many ships?", year=samples[0].year, options=opts)
    assert with_prior.prior_valid == 16 and with_prior.prior_year is not None
    plain = ask(str(root / "model"), image, "How many ships?", no_prior=True, options=opts)
    assert plain.prior_valid == 0 and plain.answer != with_prior.answer
    assert (
        cli_main(
            [
                "ask",
                "--model",
                str(root / "model"),
                str(image),
                "How many ships?",
                "--year",
                str(samples[0].year),
                "--json",
                "--max-new-tokens",
                "6",
            ]
        )
        == 0
    )
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["answer"] == with_prior.answer and shown["prior"]["valid_nodes"] == 16
