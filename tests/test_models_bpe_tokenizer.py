"""The tiny models' BPE tokenizer: exact round trip of everything the builder emits, determinism,
saved and loaded with the model, shorter sequences than the byte-level tokenizer."""

from __future__ import annotations

import string
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sarvlm.core.errors import SarvlmError
from sarvlm.core.example import read_examples
from sarvlm.core.record import SampleRecord, write_samples
from sarvlm.data.builder import BuildOptions, build_dataset
from sarvlm.models.tokenizer import QWEN_SPECIAL_TOKENS, bpe_tokenizer, byte_level_tokenizer

PLACES = ("São Paulo", "Zürich", "Łódź", "東京湾", "Île-d'Orléans", "Ελευσίνα", "Москва", "Çanakkale")


def _builder_texts(root: Path) -> list[str]:
    """Prompts and answers of every task the builder makes, over records with non-ASCII names."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    recs = []
    for i in range(12):
        img = f"img/im{i}.png"
        Image.fromarray(rng.integers(0, 255, (60, 80), dtype=np.uint8)).save(root / img)
        objs = []
        for _ in range(int(rng.integers(1, 4))):
            x, y = float(rng.integers(0, 70)), float(rng.integers(0, 50))
            objs.append({"category": str(rng.choice(["ship", "öltank", "aircraft"])), "bbox": [x, y, x + 8, y + 6]})
        place = PLACES[i % len(PLACES)]
        recs.append(
            SampleRecord(
                id=f"s{i}",
                image=img,
                width=80,
                height=60,
                date="2022-03-04",
                georef={"bbox_wgs84": [120.0, 30.0, 120.01, 30.01]},
                objects=objs,
                captions=[{"text": f"A harbour near {place}: {len(objs)} targets, 12.5% water (≈ 3 km²)."}],
                qa=[{"question": f"Where is this? ({place})", "answer": place}],
            )
        )
    write_samples(root / "samples.jsonl", recs)
    out = root / "data"
    build_dataset(root / "samples.jsonl", out, BuildOptions(tasks=["all"], seed=1))
    texts: list[str] = []
    for split in ("train", "val", "test"):
        for ex in read_examples(out / f"{split}.jsonl"):
            texts += [m.content for m in ex.messages]
    return texts


@pytest.fixture(scope="module")
def builder_texts(tmp_path_factory) -> list[str]:
    return _builder_texts(tmp_path_factory.mktemp("bpe"))


def test_round_trips_every_character_the_builder_emits(builder_texts):
    # trained on half the texts: the other half (and each character alone) must still round-trip
    tok = bpe_tokenizer(builder_texts[::2], vocab_size=512)
    chars = sorted(set("".join(builder_texts)))
    assert set("0123456789()[],.:?") <= set(chars) and any(ord(c) > 127 for c in chars)
    extra = [
        string.printable,
        "<|box_start|>(12,34),(56,78)<|box_end|> <|object_ref_start|>ship<|object_ref_end|>",
        *PLACES,
        "emoji 🚢 and tabs\tand\r\nnewlines",
    ]
    for text in [*builder_texts, *chars, *extra]:
        text = unicodedata.normalize("NFC", text)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text, text
    # box and vision tokens stay single special tokens
    for special in QWEN_SPECIAL_TOKENS:
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1


def test_training_is_deterministic_and_shortens_sequences(builder_texts):
    a, b = bpe_tokenizer(builder_texts, 512), bpe_tokenizer(builder_texts, 512)
    assert a.get_vocab() == b.get_vocab()
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    assert bpe_tokenizer(builder_texts[:10], 512).get_vocab() != a.get_vocab()  # the texts matter
    byte = byte_level_tokenizer()
    n_bpe = sum(len(a(t)["input_ids"]) for t in builder_texts)
    n_byte = sum(len(byte(t)["input_ids"]) for t in builder_texts)
    assert n_byte / n_bpe > 2.0
    # Qwen's special tokens keep their order, after the learned vocabulary
    ids = a.convert_tokens_to_ids(list(QWEN_SPECIAL_TOKENS))
    assert ids == list(range(len(a) - len(QWEN_SPECIAL_TOKENS), len(a)))


def test_vocab_too_small_is_an_error():
    with pytest.raises(SarvlmError, match="vocab_size"):
        bpe_tokenizer(["abc"], vocab_size=200)


def test_saved_and_loaded_with_the_model(builder_texts, tmp_path):
    import torch

    from sarvlm.models.loading import build_tiny, load_model, save_model

    tok = bpe_tokenizer(builder_texts, 512)
    model, processor = build_tiny("tiny-qwen2.5-vl", seed=0, tokenizer=tok)
    assert model.config.text_config.vocab_size >= len(tok)
    save_model(model, processor, tmp_path / "m")
    model2, processor2 = load_model(str(tmp_path / "m"))
    text = builder_texts[1]
    assert processor2.tokenizer(text)["input_ids"] == tok(text)["input_ids"]
    assert processor2.tokenizer.get_vocab() == tok.get_vocab()
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, model2(input_ids=ids).logits)
