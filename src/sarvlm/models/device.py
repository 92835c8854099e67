"""Where and how a model runs: device ``auto`` (CUDA → MPS → CPU), dtype ``auto``, attention kernel.

Used by ``sarvlm predict`` / ``sarvlm ask`` (``--device auto`` is their default) and meant for any
other verb that runs a model locally (a server: ``resolve_device("auto")``, then
:func:`resolve_dtype` and :func:`resolve_attention` for that device)::

    device = resolve_device("auto")            # torch.device("cuda") on a GPU machine, "cpu" here
    dtype = resolve_dtype("auto", device)      # bfloat16 where the GPU supports it, float32 on CPU
    attn = resolve_attention("auto", device, dtype)  # flash_attention_2 if installed, else sdpa

``auto`` never picks a slower path than the explicit choice would: bf16 only on CUDA GPUs that
support it (fp16 on older CUDA GPUs, fp32 on MPS and CPU, where half precision is slower or less
exact), FlashAttention 2 only on CUDA in half precision with the ``flash_attn`` package, otherwise
PyTorch's scaled-dot-product attention (SDPA), which picks its fused kernels itself.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from sarvlm.core.errors import SarvlmError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
DTYPE_NAMES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
ATTENTION_CHOICES = ("auto", "sdpa", "flash_attention_2", "eager")


def _mps_available(torch: Any) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(spec: Any = "auto") -> Any:
    """A ``torch.device`` for ``spec``: ``auto``/None (CUDA, then MPS, then CPU), ``cpu``, ``cuda``,
    ``cuda:N``, ``mps`` or a ``torch.device``. Asking for a device that is absent is an error."""
    import torch

    if isinstance(spec, torch.device):
        return spec
    name = "auto" if spec is None else str(spec).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available(torch):
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise SarvlmError(f"--device: unknown device {spec!r} (expected {DEVICE_CHOICES})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SarvlmError(f"--device {spec}: no CUDA GPU is available here (use auto or cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SarvlmError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps" and not _mps_available(torch):
        raise SarvlmError(f"--device {spec}: MPS is not available here (use auto or cpu)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise SarvlmError(f"--device: unsupported device {spec!r} (expected {DEVICE_CHOICES})")
    return device


def resolve_dtype(spec: Any, device: Any) -> Any:
    """A ``torch.dtype`` for ``spec`` on ``device``; ``auto`` → bf16 on CUDA GPUs that support it,
    fp16 on other CUDA GPUs, fp32 elsewhere; None → None (keep the dtype the model was saved in)."""
    import torch

    if spec is None or isinstance(spec, torch.dtype):
        return spec
    name = str(spec).strip().lower()
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if name not in table:
        raise SarvlmError(f"--dtype: unknown dtype {spec!r} (expected one of {', '.join(DTYPE_NAMES)})")
    return table[name]


def flash_attention_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def resolve_attention(spec: str | None, device: Any, dtype: Any) -> str:
    """The attention implementation to load with: ``auto`` → ``flash_attention_2`` on CUDA in
    bf16/fp16 when ``flash_attn`` is installed, else ``sdpa``; explicit names are checked."""
    import torch

    name = "auto" if spec is None else str(spec)
    if name not in ATTENTION_CHOICES:
        raise SarvlmError(f"--attention: unknown implementation {spec!r} (expected {', '.join(ATTENTION_CHOICES)})")
    half = dtype in (torch.bfloat16, torch.float16)
    if name == "auto":
        return "flash_attention_2" if device.type == "cuda" and half and flash_attention_available() else "sdpa"
    if name == "flash_attention_2":
        if not flash_attention_available():
            raise SarvlmError("--attention flash_attention_2: the flash_attn package is not installed")
        if device.type != "cuda" or not half:
            raise SarvlmError("--attention flash_attention_2: needs a CUDA device and --dtype bf16 or fp16")
    return name


def attention_in_use(model: Any) -> str:
    """The attention implementation a loaded model runs (``sdpa``, ``flash_attention_2``, ``eager``)."""
    config = getattr(model, "config", None)
    return str(getattr(config, "_attn_implementation", None) or "unknown")


def describe_placement(model: Any) -> str:
    """One line for logs: ``device cuda:0, dtype bfloat16, attention sdpa``."""
    try:
        param = next(model.parameters())
        where, dtype = str(param.device), str(param.dtype).replace("torch.", "")
    except (StopIteration, AttributeError):
        where, dtype = "unknown", "unknown"
    return f"device {where}, dtype {dtype}, attention {attention_in_use(model)}"


def process_state() -> Any:
    """Accelerate's ``PartialState`` for this process, created so that a multi-process launch
    (``accelerate launch --multi_gpu --num_processes N``, ``torchrun``) on a machine without GPUs
    joins a gloo (CPU) process group instead of silently running N independent copies.

    (``PartialState()`` with its default ``cpu=False`` finds no GPU backend and falls back to a
    single, non-distributed process; the first state created in a process is the one every later
    ``Accelerator``/``Trainer`` shares.)
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())
