"""A tiny sarvlm model taught (by real gradient steps) to answer a detection question with one box.

The serve tests need answers that contain boxes; a randomly initialised tiny model emits byte
noise. A few dozen AdamW steps on a handful of images make the tiny model reproduce
``ANSWER`` for ``QUESTION`` about any image, through the same processor and chat template the
server uses.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from sarvlm.core.example import IMAGE_PLACEHOLDER

QUESTION = "Detect the ships."
ANSWER = "[8, 12, 30, 40]"


def taught_model(name: str = "tiny-qwen2.5-vl", steps: int = 100, seed: int = 0):
    """``(model, processor)`` of ``name`` after ``steps`` steps on QUESTION → ANSWER (eval mode).

    Images of a few sizes (the tests send 64×48 PNGs and 64×64 GeoTIFFs) so the answer does not
    depend on the number of image tokens. Runs single-threaded (restored after): on a shared
    2-core machine OpenMP threads fighting for cores make tiny steps ~40× slower.
    """
    from sarvlm.models.loading import load_model

    model, processor = load_model(name, seed=seed)
    rng = np.random.default_rng(seed)
    sizes = [(56, 56), (64, 48), (64, 64), (48, 80)]
    messages = [
        {"role": "user", "content": IMAGE_PLACEHOLDER + "\n" + QUESTION},
        {"role": "assistant", "content": ANSWER},
    ]
    batches = []
    from sarvlm.models.processor import stretch_to_uint8

    images = []
    for w, h in sizes:  # uniform noise, and speckle as a float SAR GeoTIFF looks after the stretch
        images.append(Image.fromarray((rng.random((h, w)) * 255).astype(np.uint8)))
        images.append(Image.fromarray(stretch_to_uint8(rng.gamma(1.0, 0.05, size=(h, w)))))
    for img in images:
        enc = processor.encode(messages, [img])
        ids = torch.tensor([enc["input_ids"]])
        batches.append(
            {
                "input_ids": ids,
                "attention_mask": torch.ones_like(ids),
                "mm_token_type_ids": torch.tensor([enc["mm_token_type_ids"]]),
                "pixel_values": enc["pixel_values"],
                "image_grid_thw": enc["image_grid_thw"],
                "labels": torch.where(torch.tensor([enc["assistant_mask"]]), ids, torch.full_like(ids, -100)),
            }
        )
    threads = torch.get_num_threads()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / steps)  # decay to 0 to settle
    try:
        torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for step in range(steps):
                loss = model(**batches[step % len(batches)]).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return model, processor


def shared_taught_model(tmp_path_factory):
    """:func:`taught_model`, trained once per test run and shared by the pytest-xdist workers
    (saved with ``save_model`` under the run's common temp dir, guarded by a file lock)."""
    import os

    from filelock import FileLock

    from sarvlm.models.loading import load_model, save_model

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "serve-taught-model"
    with FileLock(str(root) + ".lock"):
        if not (root / "config.json").is_file():
            model, processor = taught_model()
            save_model(model, processor, root)
    return load_model(root)
