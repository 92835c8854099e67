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
# # Captions you can check, and a SAR foundation model
#
# Two of the papers build their text with an LLM and train a SAR image–text encoder on it. This
# tutorial does both, offline, with tiny settings:
#
# 1. `sarvlm annotate` writes FUSAR-GEOVL 8-field captions with the **offline, annotation-grounded
#    writer** (`--endpoint local`), validates every field against the record's annotations and writes a
#    run report; then the same command against an OpenAI-compatible endpoint — here `sarvlm serve`
#    started in this notebook with a tiny model — exactly as it would run against vLLM or a hosted API
#    ([annotation.md](../annotation.md)).
# 2. `sarvlm pretrain` trains a tiny FUSAR-KLIP (ITC + ITM + MLM) with SCIO on captions of which 20 % of
#    the fragments were corrupted on purpose, then `sarvlm retrieve` and `sarvlm zeroshot` evaluate it
#    ([foundation.md](../foundation.md)).
#
# A tiny encoder trained for a few dozen CPU steps learns little: read the numbers as the shape of the
# outputs, not as results (the docs give measured results and their limits).

# %%
import io
import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from sarvlm.cli.main import main as sarvlm

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")
work = Path(os.environ.get("SARVLM_TUTORIAL_DIR") or tempfile.mkdtemp(prefix="sarvlm-tutorial-"))


def run(*argv: str) -> None:
    print("$ sarvlm", " ".join(argv))
    code = sarvlm(list(argv))
    assert code == 0, f"sarvlm {argv[0]} failed with exit code {code}"


def show_png(path: Path) -> None:
    from IPython.display import Image, display

    display(Image(path.read_bytes()))


# %% [markdown]
# ## 1. A world whose captions carry planted errors
#
# `--geovl-corrupt 0.2` writes an 8-field caption per scene (Terrain, Functionality, Distribution,
# Layout, Boundary, Buildings, Roads, Water) and corrupts a fifth of the fragments — wrong land cover,
# wrong counts, swapped fields, the kinds of error FUSAR-KLIP's expert check found — recording which.

# %%
run("synth", str(work / "world"), "--scenes", "16", "--size", "64", "--seed", "0", "--geovl-corrupt", "0.2")
rec = json.loads((work / "world" / "samples.jsonl").read_text().splitlines()[0])
structured = [c for c in rec["captions"] if c.get("style") == "structured"]
print(structured[0]["text"][:600] if structured else rec["captions"][0]["text"][:600])
print("planted corruptions:", rec.get("meta", {}).get("geovl_corruptions"))

# %% [markdown]
# ## 2. Annotation you can audit
#
# The offline writer fills the GEOVL schema from the record's facts (objects with counts and
# positions, land-cover shares, sensor, place and year). Every field is validated against the
# annotations; the report counts accepted / flagged / unparsable replies per field.

# %%
run("annotate", str(work / "world" / "samples.jsonl"), "--out", str(work / "annotated.jsonl"), "--prompt", "geovl")
report = json.loads((work / "annotated_annotate" / "report.json").read_text())
print(json.dumps({k: report[k] for k in ("status", "requests_sent") if k in report}, indent=1))
ann = json.loads((work / "annotated.jsonl").read_text().splitlines()[0])
print(ann["captions"][-1]["text"][:500])

# %% [markdown]
# ### The same pipeline against an OpenAI-compatible endpoint
#
# `sarvlm serve` speaks the OpenAI chat API; here it serves an untrained tiny Qwen2.5-VL on a loopback
# port, and `sarvlm annotate` sends it every record through the `openai` SDK. The tiny model cannot write
# the 8-field JSON, so the report counts its replies as unparsable — nothing is lost or invented, and the
# records keep their annotations. `--max-requests 4` caps what this run may spend; the records beyond
# the budget are reported as `budget` and a `--resume` run picks them up. With `--endpoint http://gpu-box:8000/v1 --model Qwen2.5-VL-72B-Instruct`
# the same command annotates with a real model.

# %%
import threading  # noqa: E402
import time  # noqa: E402

import uvicorn  # noqa: E402

from sarvlm.models.loading import load_model  # noqa: E402
from sarvlm.serve.app import ServeConfig, create_app  # noqa: E402

model, processor = load_model("tiny-qwen2.5-vl", seed=0)
server = uvicorn.Server(
    uvicorn.Config(
        create_app(model, processor, ServeConfig(model_id="tiny")), host="127.0.0.1", port=0, log_level="warning"
    )
)
threading.Thread(target=server.run, daemon=True).start()
while not server.started:
    time.sleep(0.05)
endpoint = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/v1"
run(
    "annotate",
    str(work / "world" / "samples.jsonl"),
    "--out",
    str(work / "served.jsonl"),
    "--prompt",
    "geovl",
    "--endpoint",
    endpoint,
    "--model",
    "tiny",
    "--response-format",
    "none",
    "--max-tokens",
    "24",
    "--max-retries",
    "0",
    "--max-requests",
    "4",
)
served = json.loads((work / "served_annotate" / "report.json").read_text())
print(json.dumps({k: served[k] for k in ("status", "requests_sent") if k in served}, indent=1))
server.should_exit = True

# %% [markdown]
# ## 3. Pretraining with SCIO
#
# SCIO (FUSAR-KLIP Algorithm 1) runs in three phases: cross-modal learning on the full texts;
# screening, which scores every fragment by ITC similarity and ITM probability and drops the
# low-confidence ones; and reconstruction, where the image-grounded decoder rewrites dropped fragments
# and keeps a rewrite only when it beats the original on both measures.

# %%
run(
    "pretrain",
    "--config",
    "tiny-klip",
    "--data",
    str(work / "world" / "samples.jsonl"),
    "--out",
    str(work / "klip"),
    "--steps",
    "45",
    "--scio",
    "--seed",
    "0",
)
summary = json.loads((work / "klip" / "scio" / "summary.json").read_text())
print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (dict, list))}, indent=1)[:800])
show_png(work / "klip" / "loss.png")

# %% [markdown]
# Each fragment's phase-2 scores and action are in `scio/fragments.jsonl`; with the planted truth the
# synthetic world records, screening precision and recall are measurable (`summary.json`).

# %%
lines = (work / "klip" / "scio" / "fragments.jsonl").read_text().splitlines()
print(len(lines), "fragments scored; first:", lines[0][:300])

# %% [markdown]
# ## 4. What a foundation model is for: retrieval and zero-shot classification
#
# Retrieval reports FUSAR-KLIP's Table 6 recalls as its released code computes them (`txt_r*`:
# image → text, `img_r*`: text → image, `r_mean`), after an ITM re-rank of the ITC top-k.

# %%
run(
    "retrieve",
    "--model",
    str(work / "klip" / "final"),
    "--data",
    str(work / "world" / "samples.jsonl"),
    "--out",
    str(work / "retrieval"),
    "--k",
    "4",
)
metrics = json.loads((work / "retrieval" / "metrics.json").read_text())
print({k: round(v, 1) for k, v in metrics.items() if k.startswith(("txt_r", "img_r", "r_mean"))})

# %% [markdown]
# Zero-shot scene classification: each image is matched against text prompts built from class names
# (templates are data); the truth is the synthetic scene kind.

# %%
run(
    "zeroshot",
    "--model",
    str(work / "klip" / "final"),
    "--data",
    str(work / "world" / "samples.jsonl"),
    "--classes",
    "port,coast,river,airport,rural",
    "--out",
    str(work / "zeroshot"),
)
zs = json.loads((work / "zeroshot" / "metrics.json").read_text())
print({k: v for k, v in zs.items() if not isinstance(v, (dict, list))})
pngs = sorted((work / "zeroshot").glob("*.png"))
if pngs:
    show_png(pngs[0])

# %%
sim = __import__("numpy").load(work / "retrieval" / "similarity.npy")
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(sim, cmap="viridis")
ax.set_xlabel("text")
ax.set_ylabel("image")
ax.set_title("image–text similarity (ITC)")
buf = io.BytesIO()
fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
plt.close(fig)
from IPython.display import Image, display  # noqa: E402

display(Image(buf.getvalue()))
