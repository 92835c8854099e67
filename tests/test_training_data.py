"""Training data: labels cover assistant tokens only, over-long examples are dropped and counted,
mixed batches (priors / no priors, image sizes, SAR + optical) collate correctly.

The helpers at the top build a tiny dataset directory; the other training tests import them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sarvlm.core.errors import SarvlmError
from sarvlm.core.example import InstructionExample, Message, write_jsonl
from sarvlm.core.record import GeoRef
from sarvlm.priors.prior_grid import PriorGrid
from sarvlm.training.collator import IGNORE_INDEX, SftCollator
from sarvlm.training.dataset import SftDataset, split_path

# One intra-op thread: the tiny model gains nothing from more, and on a shared machine spinning
# OpenMP threads make it several times slower.
torch.set_num_threads(1)

SIZES = [(56, 56), (84, 56), (112, 84), (56, 112)]
WORDS = ["ship", "tank", "plane", "bridge"]


def _image(path: Path, size: tuple[int, int], rng: np.random.Generator, bright: int) -> str:
    w, h = size
    arr = (rng.gamma(1.0, 30.0, (h, w))).clip(0, 255).astype(np.uint8)
    arr[h // 4 : h // 4 + 8, w // 4 : w // 4 + 8] = bright
    Image.fromarray(arr, mode="L").save(path)
    return path.name


def make_dataset(root: Path, n_samples: int = 8, seed: int = 0, long_text: bool = False) -> Path:
    """A built-dataset directory: caption / count / grid / dialogue examples over small PNGs.

    Samples alternate image sizes; every third sample is a SAR + optical pair; the
    answers depend on the image (a count of bright squares) so the loss can fall.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    img_dir = root / "images"
    img_dir.mkdir(exist_ok=True)
    splits: dict[str, list[InstructionExample]] = {"train": [], "val": [], "test": []}
    for i in range(n_samples):
        sid = f"s{i:03d}"
        split = "train" if i < n_samples - 2 else ("val" if i == n_samples - 2 else "test")
        count = i % 4
        sar = _image(img_dir / f"{sid}.png", SIZES[i % len(SIZES)], rng, 60 * count + 40)
        images = [f"images/{sar}"]
        user = "<image>\n"
        if i % 3 == 0:
            opt = _image(img_dir / f"{sid}_opt.png", SIZES[i % len(SIZES)], rng, 200)
            images.append(f"images/{opt}")
            user = "<image>\n<image>\n"
        caption = f"A SAR scene with {count} {WORDS[count]} target(s)." + (
            " Very long. " * 80 if long_text and i == 0 else ""
        )
        # every sample but s001 is georeferenced (s001 gets the cache's explicit "no prior")
        georef = None if i == 1 else GeoRef(bbox_wgs84=[10.0 + 0.01 * i, 50.0, 10.005 + 0.01 * i, 50.005])
        common = dict(
            sample_id=sid,
            images=images,
            width=SIZES[i % len(SIZES)][0],
            height=SIZES[i % len(SIZES)][1],
            split=split,
            georef=georef,
            year=2021,
        )
        splits[split] += [
            InstructionExample(
                id=f"{sid}-cap",
                task="caption",
                answer=caption,
                params={"style": "concise"},
                messages=[
                    Message(role="user", content=user + "Describe the image."),
                    Message(role="assistant", content=caption),
                ],
                **common,
            ),
            InstructionExample(
                id=f"{sid}-cnt",
                task="count",
                answer=count,
                params={"category": None},
                messages=[
                    Message(role="user", content=user + "How many targets?"),
                    Message(role="assistant", content=str(count)),
                ],
                **common,
            ),
            InstructionExample(
                id=f"{sid}-dlg",
                task="dialogue",
                answer=["yes", str(count), "SAR"],
                messages=[
                    Message(role="user", content=user + "Is this SAR?"),
                    Message(role="assistant", content="yes"),
                    Message(role="user", content="How many?"),
                    Message(role="assistant", content=str(count)),
                    Message(role="user", content="Which sensor?"),
                    Message(role="assistant", content="SAR"),
                ],
                **common,
            ),
        ]
    for split, rows in splits.items():
        write_jsonl(root / f"{split}.jsonl", rows)
    (root / "manifest.json").write_text(json.dumps({"name": "tiny-training", "seed": seed}))
    return root


class FieldSource:
    """A smooth synthetic embedding field (the ``PriorSource`` protocol) for building real prior caches."""

    spec = "test:field"
    prior_dim = 64

    def years_covering(self, lon: np.ndarray, lat: np.ndarray) -> list[int]:
        return [2021]

    def sample(self, lon: np.ndarray, lat: np.ndarray, year: int) -> tuple[np.ndarray, np.ndarray]:
        k = np.arange(self.prior_dim)
        vec = np.sin(np.outer(lon, k + 1) * 7.0 + np.outer(lat, k + 3) * 5.0).astype(np.float32)
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        return vec, np.ones(len(lon), dtype=bool)

    def close(self) -> None:
        pass


def make_priors(dataset_dir: Path, out_dir: Path, grid: tuple[int, int] = (4, 4)) -> Path:
    """A prior cache for a :func:`make_dataset` directory, written by the priors engineer's builder."""
    from sarvlm.priors.cache import build_prior_cache

    build_prior_cache(dataset_dir, FieldSource(), grid=grid, out_dir=out_dir)
    return out_dir


class FakePriorCache:
    """Duck-typed stand-in for ``sarvlm.priors.cache.PriorCache`` (get / __contains__ / settings)."""

    def __init__(self, grids: dict[str, PriorGrid | None], prior_dim: int = 64) -> None:
        self.grids = grids
        self.settings = {"prior_dim": prior_dim}

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self.grids

    def get(self, sample_id: str) -> PriorGrid | None:
        if sample_id not in self.grids:
            raise SarvlmError(f"prior cache: no entry {sample_id!r}")
        return self.grids[sample_id]


def make_grid(s: int, dim: int = 64, seed: int = 0, invalid: int = 0) -> PriorGrid:
    rng = np.random.default_rng(seed)
    vec = rng.normal(size=(s, dim)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    valid = np.ones(s, dtype=bool)
    valid[:invalid] = False
    vec[~valid] = 0
    pos = rng.uniform(size=(s, 2)).astype(np.float32)
    zeros = np.zeros(s)
    return PriorGrid(lon=zeros, lat=zeros, x=zeros, y=zeros, positions=pos, vectors=vec, valid=valid, year=2021)


@pytest.fixture(scope="module")
def processor():
    from sarvlm.models.loading import load_model

    return load_model("tiny-qwen2.5-vl", settings={"fusion": "tlm"}, seed=0)[1]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ds"))


def test_labels_cover_exactly_the_assistant_turns(processor, dataset_dir):
    ds = SftDataset(dataset_dir / "train.jsonl", processor, tasks=["dialogue", "caption"])
    assert ds.report.kept == len(ds) > 0
    for i, ex in enumerate(ds.examples):
        f = ds[i]
        labelled = f["labels"] != IGNORE_INDEX
        # every labelled position carries its own input id (the model shifts internally)
        assert torch.equal(f["labels"][labelled], f["input_ids"][labelled])
        # contiguous labelled spans, one per assistant turn, each = content + <|im_end|>
        spans, start = [], None
        for j, on in enumerate(labelled.tolist() + [False]):
            if on and start is None:
                start = j
            elif not on and start is not None:
                spans.append((start, j))
                start = None
        answers = [m.content for m in ex.messages if m.role == "assistant"]
        assert len(spans) == len(answers)
        for (a, b), answer in zip(spans, answers, strict=True):
            assert processor.decode(f["input_ids"][a:b], skip_special_tokens=False) == answer + "<|im_end|>"
        # instruction, image and system tokens are never labelled
        assert not labelled[f["mm_token_type_ids"] == 1].any()
        assert not labelled[f["input_ids"] == processor.image_token_id].any()


def test_task_selection_and_overlong_policy(processor, tmp_path):
    root = make_dataset(tmp_path / "ds", long_text=True)
    ds = SftDataset(root / "train.jsonl", processor, tasks=["caption"], max_length=400)
    rep = ds.report
    assert rep.total == 18 and rep.other_task == 12
    assert rep.too_long == 1 and rep.kept == 5  # the over-long caption is dropped, not truncated
    assert rep.max_tokens > 400 and all(n <= 400 for n in ds.lengths)
    assert "over-long dropped 1" in rep.summary()
    assert rep.tasks == {"caption": 5}


def test_mixed_batch_priors_sizes_and_pairs(processor, dataset_dir):
    grids = {f"s{i:03d}": make_grid(16 if i % 2 else 9, seed=i, invalid=i % 3) for i in range(8)}
    grids["s001"] = None  # explicit "no prior" (no georeference)
    cache = FakePriorCache(grids)
    ds = SftDataset(dataset_dir / "train.jsonl", processor, tasks=["count"], priors=cache, use_priors=True)
    assert ds.report.no_prior == 1
    feats = [ds[i] for i in range(4)]  # s000 (pair, S=9), s001 (no prior), s002, s003 (pair)
    batch = SftCollator(pad_token_id=processor.pad_token_id)(feats)
    n_img = sum(len(ex.images) for ex in ds.examples[:4])
    assert batch["image_grid_thw"].shape == (n_img, 3)
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(-1).sum())
    assert batch["geo_priors"].shape == (n_img, 16, 64)
    assert batch["geo_positions"].shape == (n_img, 16, 2) and batch["geo_mask"].dtype == torch.bool
    rows = []
    for ex in ds.examples[:4]:
        rows += [(ex.sample_id, k) for k in range(len(ex.images))]
    for r, (sid, k) in enumerate(rows):
        grid = grids[sid]
        if grid is None or k > 0:  # no prior, or the optical partner of a pair
            assert not batch["geo_mask"][r].any()
            continue
        s = grid.vectors.shape[0]
        assert torch.equal(batch["geo_mask"][r, :s], torch.from_numpy(grid.valid))
        assert not batch["geo_mask"][r, s:].any()  # padded nodes are masked
        assert torch.allclose(batch["geo_priors"][r, :s], torch.from_numpy(grid.vectors))
    # text is right-padded; padding is never labelled or attended
    lengths = batch["attention_mask"].sum(1)
    for i, f in enumerate(feats):
        assert lengths[i] == f["input_ids"].shape[0]
        assert (batch["labels"][i, lengths[i] :] == IGNORE_INDEX).all()
        assert (batch["input_ids"][i, lengths[i] :] == processor.pad_token_id).all()


def test_mixed_batch_runs_through_the_model(dataset_dir):
    from sarvlm.models.loading import load_model

    model, proc = load_model("tiny-qwen2.5-vl", settings={"fusion": "tlm"}, seed=0)
    cache = FakePriorCache({f"s{i:03d}": (make_grid(9, seed=i) if i % 2 == 0 else None) for i in range(8)})
    ds = SftDataset(dataset_dir / "train.jsonl", proc, tasks=["count", "dialogue"], priors=cache, use_priors=True)
    batch = SftCollator(proc.pad_token_id)([ds[i] for i in range(len(ds))])
    out = model(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()


def test_real_prior_cache_feeds_the_sar_image(processor, dataset_dir, tmp_path):
    from sarvlm.priors.cache import PriorCache

    cache = PriorCache(make_priors(dataset_dir, tmp_path / "priors"))
    ds = SftDataset(dataset_dir / "train.jsonl", processor, tasks=["caption"], priors=cache, use_priors=True)
    assert ds.report.no_prior == 1 and ds.report.missing_prior == 0  # s001 has no georeference
    f0, f1 = ds[0], ds[1]
    assert f0["geo_priors"].shape == (2, 16, 64) and f0["geo_mask"][0].all() and not f0["geo_mask"][1].any()
    assert not f1["geo_mask"].any()


def test_missing_priors_are_an_error_unless_allowed(processor, dataset_dir):
    cache = FakePriorCache({"s000": make_grid(4)})
    with pytest.raises(SarvlmError, match="s001.*prior cache|no entry 's001'"):
        SftDataset(dataset_dir / "train.jsonl", processor, tasks=["count"], priors=cache, use_priors=True)
    ds = SftDataset(
        dataset_dir / "train.jsonl",
        processor,
        tasks=["count"],
        priors=cache,
        use_priors=True,
        allow_missing_priors=True,
    )
    assert ds.report.missing_prior == 5
    assert not ds[1]["geo_mask"].any() and ds[0]["geo_mask"][0].all()
    with pytest.raises(SarvlmError, match="--priors"):
        SftDataset(dataset_dir / "train.jsonl", processor, tasks=["count"], priors=None, use_priors=True)


def test_bad_inputs_name_the_culprit(processor, tmp_path, dataset_dir):
    with pytest.raises(SarvlmError, match="no train.jsonl"):
        split_path(tmp_path, "train")
    bad = tmp_path / "bad.jsonl"
    row = json.loads((dataset_dir / "train.jsonl").read_text().splitlines()[0])
    row["images"] = row["images"] + ["images/missing.png"]
    bad.write_text(json.dumps(row) + "\n")
    with pytest.raises(SarvlmError, match=r"example 's000-cap': images: .* placeholder"):
        SftDataset(bad, processor)
    row["images"] = ["images/missing.png"] * (len(row["images"]) - 1)
    (tmp_path / "images").mkdir()
    bad.write_text(json.dumps(row) + "\n")
    with pytest.raises(SarvlmError, match="no such file"):
        SftDataset(bad, processor)


def test_token_lengths_live_in_no_module_level_state(processor, dataset_dir):
    # Regression (issue 11): the lengths used to live in a module-level dict that outlived every run;
    # they now persist only in the explicit, content-keyed cache next to the data
    # (sarvlm.training.length_cache; tests/test_training_length_cache.py covers it).
    import sarvlm.training.dataset as dataset_module

    assert not any(isinstance(v, dict) and k.isupper() for k, v in vars(dataset_module).items())
    path = dataset_dir / "train.jsonl"
    a = SftDataset(path, processor, tasks=["caption"], length_cache=False)
    b = SftDataset(path, processor, tasks=["caption"], length_cache=False)
    assert a.lengths == b.lengths and a.length_cache is None
