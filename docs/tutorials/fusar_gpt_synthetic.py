# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # FUSAR-GPT on the synthetic SAR world
#
# This tutorial runs the whole FUSAR-GPT path — synthetic world → preprocessing → instruction data →
# AlphaEarth priors → two-stage training → evaluation → asking a question — with a tiny Qwen2.5-VL, so it
# runs on a laptop CPU in about a minute. Every step is the same code that trains a 7B model on GPUs; only
# the sizes change. The notebook is executed in CI (tests/test_docs_site.py), so what you see is what the
# code does today.
#
# Each step is a `sarvlm` verb; we call them from Python through the CLI entry point so the commands read
# exactly as in a shell.

# %%
import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import rasterio

from sarvlm.cli.main import main as sarvlm

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")
work = Path(os.environ.get("SARVLM_TUTORIAL_DIR") or tempfile.mkdtemp(prefix="sarvlm-tutorial-"))
print("working in", work)


def show(fig) -> None:
    """Display a figure as PNG whatever matplotlib backend is active."""
    import io

    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    display(Image(buf.getvalue()))


def run(*argv: str) -> None:
    print("$ sarvlm", " ".join(argv))
    code = sarvlm(list(argv))
    assert code == 0, f"sarvlm {argv[0]} failed with exit code {code}"


# %% [markdown]
# ## 1. A synthetic world
#
# `sarvlm synth` writes float32 intensity GeoTIFFs in UTM, land-cover masks, objects with boxes, optical
# twins and an AlphaEarth-layout embedding field (int8 COG tiles plus `aef_index.csv`). Farmland and
# grassland have identical backscatter but orthogonal embeddings: the prior carries what SAR hides.

# %%
run("synth", str(work / "world"), "--scenes", "10", "--seed", "0", "--size", "128")
samples = [json.loads(line) for line in (work / "world" / "samples.jsonl").read_text().splitlines()]
print(len(samples), "scenes; first:", {k: samples[0][k] for k in ("id", "width", "height", "date")})

# %%
with rasterio.open(work / "world" / samples[0]["image"]) as src:
    sar = src.read(1)
fig, ax = plt.subplots(1, 2, figsize=(8, 4))
ax[0].imshow(10 * np.log10(np.maximum(sar, 1e-6)), cmap="gray")
ax[0].set_title("SAR intensity (dB)")
with rasterio.open(work / "world" / samples[0]["landcover"]["mask"]) as src:
    ax[1].imshow(src.read(1), cmap="tab10", interpolation="nearest")
ax[1].set_title("land cover (truth)")
for a in ax:
    a.axis("off")
show(fig)

# %% [markdown]
# ## 2. Preprocessing
#
# Refined Lee despeckling, a log + percentile stretch and uint8 quantisation, as SARLANG-1M and FUSAR-KLIP
# prepare their images. The output is a new dataset directory with updated sample records.

# %%
run(
    "preprocess",
    str(work / "world" / "samples.jsonl"),
    "--out",
    str(work / "pre"),
    "--filter",
    "refined-lee",
    "--stretch",
    "--uint8",
)

# %% [markdown]
# ## 3. Instruction data
#
# The FUSAR-GPT task family (counting, 3×3 grid localisation, in-box classification, detection) plus
# captions, split 6:2:2 by scene (a real dataset would use 8:1:1).

# %%
run(
    "build",
    str(work / "pre" / "samples.jsonl"),
    str(work / "data"),
    "--tasks",
    "fusar-gpt,caption",
    "--split",
    "6:2:2",
    "--seed",
    "0",
)
print(sorted(p.name for p in (work / "data").iterdir()))
print((work / "data" / "train.jsonl").read_text().splitlines()[0][:400])

# %% [markdown]
# ## 4. AlphaEarth priors
#
# The prior of each image is the 64-d embedding sampled on a spatiotemporal anchor grid over its
# footprint (FUSAR-GPT Eq. 1–3), read from the AlphaEarth COG layout through the same reader that reads
# Google's public tiles.

# %%
run(
    "priors",
    str(work / "pre" / "samples.jsonl"),
    "--source",
    f"aef-cog:{work / 'world' / 'aef'}",
    "--grid",
    "4x4",
    "--out",
    str(work / "priors"),
)

# %% [markdown]
# ## 5. Two-stage decoupled training
#
# Stage 1 trains only the TLM fusion (the LLM frozen) so the prior learns to steer the visual tokens;
# stage 2 trains LoRA on the language model for the tasks. A few steps each here.

# %%
run(
    "train",
    "--recipe",
    "fusar-gpt",
    "--model",
    "tiny-qwen2.5-vl",
    "--data",
    str(work / "data"),
    "--priors",
    str(work / "priors"),
    "--out",
    str(work / "run"),
    "--batch-size",
    "2",
    "--set",
    "stage1.max_steps=4",
    "--set",
    "stage2.max_steps=8",
    "--seed",
    "0",
)
print(sorted(p.name for p in (work / "run").iterdir()))

# %% [markdown]
# ## 6. Predict and evaluate
#
# Batched generation over the test split, then the papers' metrics in their table layouts.

# %%
run(
    "predict",
    "--model",
    str(work / "run"),
    "--data",
    str(work / "data" / "test.jsonl"),
    "--priors",
    str(work / "priors"),
    "--out",
    str(work / "pred.jsonl"),
    "--max-new-tokens",
    "16",
)
run(
    "eval",
    str(work / "pred.jsonl"),
    "--data",
    str(work / "data" / "test.jsonl"),
    "--out",
    str(work / "report"),
    "--no-plots",
)
metrics = json.loads((work / "report" / "metrics.json").read_text())
print(json.dumps({k: v for k, v in metrics["tasks"].items() if k in ("count", "grid")}, indent=1)[:800])

# %% [markdown]
# A tiny model trained from random weights for a dozen steps gives no usable answers (the counts above
# show how many answers could be parsed at all): the point here is the path, not the numbers. [The demo](../demo.md) trains longer and reports what the prior does, with intervals.
#
# ## 7. Ask about a scene
#
# `sarvlm ask` applies the model to one image and question; the answer says whether a prior was used.

# %%
first = json.loads((work / "pre" / "samples.jsonl").read_text().splitlines()[0])
run(
    "ask",
    "--model",
    str(work / "run"),
    str(work / "pre" / first["image"]),
    "How many ships are there?",
    "--max-new-tokens",
    "8",
)
