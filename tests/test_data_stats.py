"""Dataset statistics: MTLD and overall similarity on hand-computed cases, the real Sentence-BERT
model, the SAR image extractor, and the stats verb end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sarvlm.cli.main import main as cli_main
from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import SampleRecord, write_samples
from sarvlm.data.builder import BuildOptions, build_dataset
from sarvlm.data.image_features import efficientnet_lite0_features, resolve_extractor, sar_handcrafted_features
from sarvlm.data.statistics import dataset_statistics, mtld, overall_similarity, sentence_embeddings, words


def test_mtld_hand_computed():
    # forward and backward: TTR hits 2/3 <= 0.72 after every 3rd token -> 2 full factors -> 6 / 2
    assert mtld(words("a b a b a b")) == pytest.approx(3.0)
    # forward: 1 factor (a b a), remainder "c" has TTR 1 -> partial 0 -> 4 / 1;
    # backward (c a b a): no full factor, remainder TTR 3/4 -> partial 0.25 / 0.28 -> 4 / 0.892857
    assert mtld(words("a b a c")) == pytest.approx((4.0 + 4 / (0.25 / 0.28)) / 2)
    assert mtld([]) == 0.0
    assert mtld(words("the ship the ship the ship")) < mtld(words("a ship near two tanks beside the old harbor"))


def test_overall_similarity_hand_computed():
    s = overall_similarity(np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]))
    r = 1 / np.sqrt(2)
    assert s["pairs"] == 3 and s["items"] == 3
    assert s["mean"] == pytest.approx(2 * r / 3)
    assert s["variance"] == pytest.approx(np.var([0.0, r, r]))


def test_sentence_bert_embeddings():
    emb = sentence_embeddings(["A ship sails at sea.", "A vessel moves on the ocean.", "Oil is stored in round tanks."])
    assert emb.shape == (3, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2


def test_sar_image_features(tmp_path):
    rng = np.random.default_rng(0)
    speckle = (rng.gamma(1.0, 60, (64, 64))).clip(0, 255).astype(np.uint8)
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.float64), (64, 1)).astype(np.uint8)
    Image.fromarray(speckle).save(tmp_path / "a.png")
    Image.fromarray(speckle).save(tmp_path / "b.png")
    Image.fromarray(smooth).save(tmp_path / "c.png")
    fa, fb, fc = (sar_handcrafted_features(tmp_path / n) for n in ("a.png", "b.png", "c.png"))
    assert fa.shape == (164,) and np.linalg.norm(fa) == pytest.approx(1, abs=1e-5)
    assert np.array_equal(fa, fb)
    assert float(fa @ fc) < 0.9
    feats = resolve_extractor("sar-handcrafted")([tmp_path / "a.png", tmp_path / "c.png"])
    assert feats.shape == (2, 164)
    with pytest.raises(SarvlmError, match="unknown extractor 'vgg16'"):
        resolve_extractor("vgg16")


def test_efficientnet_lite0_is_the_real_imagenet_network(tmp_path):
    import matplotlib.cbook as cbook
    import torch

    from sarvlm.data.image_features import LITE_MEAN, LITE_STD, efficientnet_lite0

    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    x = torch.from_numpy(np.asarray(photo.resize((224, 224), Image.BILINEAR)) / 255.0).permute(2, 0, 1)[None].float()
    x = (x - torch.tensor(LITE_MEAN).view(1, 3, 1, 1)) / torch.tensor(LITE_STD).view(1, 3, 1, 1)
    model = efficientnet_lite0()
    with torch.inference_mode():
        top = model._fc(model(x)).softmax(-1)[0].topk(3).indices.tolist()
    assert top[0] == 652  # ImageNet "military uniform", the classic answer for this photo
    Image.fromarray(np.asarray(photo.convert("L"))).save(tmp_path / "g.png")
    feats = efficientnet_lite0_features([tmp_path / "g.png", tmp_path / "g.png"])
    assert feats.shape == (2, 1280) and np.allclose(feats[0], feats[1])


@pytest.fixture()
def built(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "img").mkdir()
    recs = []
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
        recs.append(
            SampleRecord(
                id=f"s{i}",
                image=f"img/{i}.png",
                width=40,
                height=40,
                objects=[{"category": "ship" if i % 3 else "tank", "bbox": [2, 2, 10 + i, 12]}],
            )
        )
    write_samples(tmp_path / "s.jsonl", recs)
    build_dataset(tmp_path / "s.jsonl", tmp_path / "out", BuildOptions(tasks=["count", "caption"], split="2:1"))
    return tmp_path / "out"


def test_dataset_statistics(built):
    manifest = json.loads((built / "manifest.json").read_text())
    st = dataset_statistics(built, text_sample=5, image_sample=6)
    assert st.examples == sum(manifest["totals"].values())
    assert {t: sum(c.values()) for t, c in st.per_task_split.items()} == {
        t: sum(manifest["counts"][s].get(t, 0) for s in manifest["counts"]) for t in ("caption", "count")
    }
    assert st.text_similarity["items"] == 5 and st.text_similarity["pairs"] == 10
    assert st.image_similarity["items"] == 6 and st.images == 12
    assert st.answer_tokens["texts"] == 5 and st.mtld > 0
    assert st.per_category["ship"] > st.per_category["tank"]
    again = dataset_statistics(built, text_sample=5, image_sample=6)
    assert again.to_dict() == st.to_dict()  # seeded samples


def test_stats_cli(built, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in built.iterdir())
    assert cli_main(["stats", str(built), "--text-sample", "4", "--image-sample", "4"]) == 0
    assert sorted(p.name for p in built.iterdir()) == before  # the dataset is not written to
    out = tmp_path / f"{built.resolve().name}_stats"
    for name in (
        "stats.md",
        "stats.json",
        "tasks.png",
        "categories.png",
        "answer_length.png",
        "text_similarity.png",
        "image_similarity.png",
    ):
        assert (out / name).stat().st_size > 0, name
    md = (out / "stats.md").read_text()
    assert "| caption |" in md and "overall image similarity" in md and "4 images sampled, 6 pairs" in md
    assert cli_main(["stats", str(built / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
