"""The decoded-and-resized image cache: model inputs identical to the uncached path, each image decoded
once per processor setting, invalidated when the image or the resize settings change."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sarvlm.models.loading import build_tiny
from sarvlm.training.dataset import SftDataset
from sarvlm.training.image_cache import CACHE_DIR, ImageArrayCache
from test_training_data import make_dataset


@pytest.fixture(scope="module")
def processor():
    return build_tiny("tiny-qwen2.5-vl")[1]


def _same_features(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if a[key] is None:
            assert b[key] is None, key
        else:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_resized_arrays_give_the_processor_output(processor):
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (300, 200), dtype=np.uint8)),  # grey, downscaled
        Image.fromarray(rng.integers(0, 256, (40, 90, 3), dtype=np.uint8)),  # RGB, upscaled
        Image.fromarray(rng.integers(0, 256, (517, 333, 4), dtype=np.uint8)),  # RGBA, odd sizes
    ]
    reference = processor.image_inputs(images)
    arrays = [processor.resize_image(img) for img in images]
    assert all(a.dtype == np.uint8 and a.shape[0] == 3 and a.shape[1] % 28 == 0 for a in arrays)
    cached = processor.image_inputs(arrays)
    assert torch.equal(cached["pixel_values"], reference["pixel_values"])
    assert torch.equal(cached["image_grid_thw"], reference["image_grid_thw"])
    mixed = processor.image_inputs([arrays[0], images[1], arrays[2]])  # cached and fresh together
    assert torch.equal(mixed["pixel_values"], reference["pixel_values"])


def test_dataset_inputs_identical_cold_and_warm(processor, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "ds")
    plain = SftDataset(root / "train.jsonl", processor, length_cache=False, image_cache=False)
    assert plain.image_cache is None and not (root / CACHE_DIR / "images").exists()
    cold = SftDataset(root / "train.jsonl", processor, length_cache=False)
    n_images = len({p for ex in cold.examples for p in ex.images})
    # the start-up pass (token lengths) decoded every image once; the arrays are on disk
    assert cold.image_cache.misses == n_images
    entries = sorted((root / CACHE_DIR / "images").rglob("*.npy"))
    assert len(entries) == n_images
    reference = [plain[i] for i in range(len(plain))]
    for i in range(len(plain)):
        _same_features(reference[i], cold[i])
    # a new process (a data-loader worker, the next stage, the next run) decodes nothing
    decoded: list[str] = []
    original = processor.load_image

    def counting(path):
        decoded.append(str(path))
        return original(path)

    monkeypatch.setattr(processor, "load_image", counting)
    warm = SftDataset(root / "train.jsonl", processor, length_cache=False)
    for i in range(len(plain)):
        _same_features(reference[i], warm[i])
    assert decoded == [] and warm.image_cache.misses == 0 and warm.image_cache.hits > 0
    assert "0 decoded and resized" in warm.image_cache.describe()


def test_changed_image_or_settings_invalidate(processor, tmp_path):
    root = make_dataset(tmp_path / "ds")
    image = sorted((root / "images").glob("*.png"))[0]
    cache = ImageArrayCache.for_dataset(root / "train.jsonl", processor)
    before = cache.resized(image)
    entry = cache.entry(image)
    assert entry.is_file() and cache.misses == 1
    # the image edited in place: new content, new entry, the new pixels
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (70, 130), dtype=np.uint8)).save(image)
    after = cache.resized(image)
    assert cache.entry(image) != entry and cache.misses == 2
    assert before.shape != after.shape
    assert np.array_equal(after, processor.resize_image(processor.load_image(image)))
    # other resize settings (max_pixels): another settings directory, resized again
    _, small = build_tiny("tiny-qwen2.5-vl", {"max_pixels": 56 * 56})
    other = ImageArrayCache.for_dataset(root / "train.jsonl", small)
    assert other.root != cache.root
    assert other.resized(image).shape[1] * other.resized(image).shape[2] <= 56 * 56 and other.misses == 1
    # a damaged entry is recomputed, not trusted
    entry = cache.entry(image)
    entry.write_bytes(b"not an array")
    fresh = ImageArrayCache.for_dataset(root / "train.jsonl", processor)
    assert np.array_equal(fresh.resized(image), after) and fresh.misses == 1
    assert np.array_equal(np.load(entry), after)


def test_train_cli_can_turn_the_cache_off(tmp_path, capsys):
    from sarvlm.cli.main import main

    root = make_dataset(tmp_path / "ds")
    argv = ["train", "--recipe", "sarlang-lora", "--model", "tiny-qwen2.5-vl", "--data", str(root)]
    argv += ["--max-steps", "1", "--batch-size", "2", "--stage", "1"]
    assert main([*argv, "--out", str(tmp_path / "off"), "--no-image-cache"]) == 0
    assert not (root / CACHE_DIR / "images").exists()
    assert "image cache" not in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "on")]) == 0
    assert list((root / CACHE_DIR / "images").rglob("*.npy"))
    out = capsys.readouterr().out
    assert "decoded and resized" in out and "attention sdpa" in out  # the run says what it uses
