"""Device, dtype and attention defaults: ``auto`` picks the CPU here and CUDA when a GPU is present
(mocked), explicit choices are checked, and the loaded model reports what it runs."""

from __future__ import annotations

import pytest
import torch

from sarvlm.core.errors import SarvlmError
from sarvlm.models import device as dev
from sarvlm.models.device import (
    attention_in_use,
    describe_placement,
    resolve_attention,
    resolve_device,
    resolve_dtype,
)
from sarvlm.models.loading import load_model


def test_auto_picks_cpu_on_this_machine():
    assert not torch.cuda.is_available()  # the CI machines have no GPU
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_attention("auto", torch.device("cpu"), torch.float32) == "sdpa"


def test_auto_picks_cuda_then_bf16_when_a_gpu_is_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cuda = resolve_device("auto")
    assert cuda == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(SarvlmError, match="only 2 CUDA"):
        resolve_device("cuda:2")
    assert resolve_dtype("auto", cuda) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("auto", cuda) == torch.float16  # e.g. a V100
    # FlashAttention 2 only when the package is there and the dtype is half precision
    monkeypatch.setattr(dev, "flash_attention_available", lambda: True)
    assert resolve_attention("auto", cuda, torch.bfloat16) == "flash_attention_2"
    assert resolve_attention("auto", cuda, torch.float32) == "sdpa"
    monkeypatch.setattr(dev, "flash_attention_available", lambda: False)
    assert resolve_attention("auto", cuda, torch.bfloat16) == "sdpa"


def test_mps_comes_after_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda torch: True)
    mps = resolve_device("auto")
    assert mps == torch.device("mps")
    assert resolve_dtype("auto", mps) == torch.float32


def test_explicit_choices_are_checked():
    with pytest.raises(SarvlmError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(SarvlmError, match="unknown device"):
        resolve_device("gpu0")
    with pytest.raises(SarvlmError, match="unknown dtype"):
        resolve_dtype("float8", torch.device("cpu"))
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert resolve_dtype(None, torch.device("cpu")) is None
    with pytest.raises(SarvlmError, match="flash_attn|CUDA"):
        resolve_attention("flash_attention_2", torch.device("cpu"), torch.float32)
    with pytest.raises(SarvlmError, match="unknown implementation"):
        resolve_attention("xformers", torch.device("cpu"), torch.float32)


def test_load_model_auto_reports_placement():
    model, _ = load_model("tiny-qwen2.5-vl", device="auto", dtype="auto", attention="auto")
    assert next(model.parameters()).device.type == "cpu"
    assert attention_in_use(model) == "sdpa"
    assert describe_placement(model) == "device cpu, dtype float32, attention sdpa"
    eager, _ = load_model("tiny-qwen2.5-vl", attention="eager")
    assert attention_in_use(eager) == "eager"
    assert eager.config.vision_config._attn_implementation == "eager"
