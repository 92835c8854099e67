"""The model behind the server: one generation thread, batching, a bounded queue, cancellation.

- **Batching.** Requests wait in a bounded FIFO queue. The generation thread takes the oldest
  one and, when it decodes greedily, every waiting greedy request with the same ``min_tokens``
  (up to ``max_batch``) and runs them as one left-padded ``generate`` batch
  (:func:`sarvlm.inference.generate.model_inputs`, the path ``sarvlm ask``/``predict`` use).
  Sampled requests run alone so that a ``seed`` reproduces the same text whoever else is waiting.
- **Back-pressure.** At most ``max_batch`` requests generate at once; at most ``max_queue`` wait.
  Beyond that :meth:`Engine.submit` raises :class:`QueueFull` (the app answers 503 + Retry-After).
- **Streaming and cancellation.** A ``StoppingCriteria`` sees each new token of every row: it
  decodes the row's text, sends the new characters to the request's asyncio queue, applies the
  row's stop strings and token budget, and marks a row finished when its client went away
  (:meth:`GenerationJob.cancel`). Finished rows stop; when all rows are finished ``generate``
  returns at the next step, so a disconnected client costs at most one more decoding step.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import StoppingCriteria

from sarvlm.inference.generate import Query


class QueueFull(Exception):
    """The bounded queue is full (or the engine is shutting down): answer 503 + Retry-After."""


@dataclass(frozen=True)
class EngineConfig:
    max_batch: int = 8  # concurrency cap: requests generated together
    max_queue: int = 64  # requests allowed to wait beyond those
    retry_after_s: int = 2  # Retry-After of a 503


@dataclass
class GenerationJob:
    """One request's generation: the encoded query, its decoding options and its event stream.

    Events put on ``events`` (an asyncio queue of the request's loop): ``("delta", text)``,
    then exactly one of ``("done", finish_reason, completion_tokens, text)`` or ``("error", message)``.
    ``finish_reason`` is ``stop`` (end token or stop string), ``length`` or ``cancelled``.
    """

    query: Query
    encoding: dict[str, Any]
    max_new_tokens: int
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: Sequence[str] = ()
    events: asyncio.Queue | None = None
    loop: asyncio.AbstractEventLoop | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: bool = False

    @property
    def prompt_tokens(self) -> int:
        return len(self.encoding["input_ids"])

    def batch_key(self) -> tuple | None:
        """Jobs with equal keys may share a batch; None = runs alone."""
        return None if self.do_sample else ("greedy", self.min_new_tokens)

    def cancel(self) -> None:
        """Ask the engine to stop this job (client gone, server shutting down)."""
        self.cancelled.set()

    def emit(self, *event: Any) -> None:
        """Hand an event to the request's event loop (thread-safe; a closed loop drops it)."""
        if event[0] in ("done", "error"):
            self.finished = True
        if self.loop is None or self.events is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class _Row:
    """Decoding state of one job inside a batch."""

    def __init__(self, job: GenerationJob, processor: Any) -> None:
        self.job = job
        self.processor = processor
        self.ids: list[int] = []
        self.count = 0
        self.text = ""
        self.sent = 0
        self.done = False
        self.hold = max((len(s) for s in job.stop), default=1) - 1

    def add(self, token: int, eos: set[int]) -> None:
        self.count += 1
        if token in eos:
            self.finish("stop")
            return
        self.ids.append(token)
        text = self.processor.decode(self.ids)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for its next byte
            text = self.text
        self.text = text
        for stop in self.job.stop:
            at = self.text.find(stop)
            if at >= 0:
                self.text = self.text[:at]
                self.finish("stop")
                return
        if self.count >= self.job.max_new_tokens:
            self.finish("length")
            return
        safe = len(self.text) - self.hold
        if safe > self.sent:
            self.job.emit("delta", self.text[self.sent : safe])
            self.sent = safe

    def finish(self, reason: str) -> None:
        if self.done:
            return
        self.done = True
        if reason != "cancelled" and len(self.text) > self.sent:
            self.job.emit("delta", self.text[self.sent :])
            self.sent = len(self.text)
        self.job.emit("done", reason, self.count, self.text)


class RowTracker(StoppingCriteria):
    """Per-row streaming, stop strings, budgets and cancellation (called after every decoding step).

    A module-level class on purpose: a class defined per batch inside a function is a reference
    cycle (type ↔ its dict/MRO) that holds its closure — the batch's rows, jobs, prompt tensors
    and images — until a full (generation-2) collection, which in a process holding a model's
    hundreds of thousands of long-lived objects comes only every few thousand requests: memory grew with each request
    (docs/bench/serve.md).
    """

    def __init__(self, rows: list[_Row], eos: set[int]) -> None:
        self.rows = rows
        self.eos = eos
        self.steps = 0  # decoding steps the batch ran: every row is computed in each, finished or not

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """``input_ids`` (batch, sequence so far) → (batch,) bool: rows that are finished."""
        self.steps += 1
        tokens = input_ids[:, -1].tolist()
        for row, token in zip(self.rows, tokens):
            if row.done:
                continue
            if row.job.cancelled.is_set():
                row.finish("cancelled")
                continue
            row.add(int(token), self.eos)
        return torch.tensor([row.done for row in self.rows], dtype=torch.bool, device=input_ids.device)


class Engine:
    """Runs :class:`GenerationJob` s on one model in a background thread (see module docs)."""

    def __init__(self, model: Any, processor: Any, config: EngineConfig | None = None, metrics: Any = None) -> None:
        self.model = model
        self.processor = processor
        self.config = config or EngineConfig()
        self.metrics = metrics
        self._waiting: deque[GenerationJob] = deque()
        self._running: list[GenerationJob] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        eos = model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list | tuple) else [eos]
        self.eos_ids = {int(e) for e in [*eos_ids, processor.eos_token_id] if e is not None}

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="sarvlm-engine", daemon=True)
            self._thread.start()

    def cancel_all(self) -> None:
        """Refuse new jobs and cancel waiting and running ones, without waiting (thread-safe).

        Waiting jobs end at once, running ones at the end of the current decoding step, each
        with ``("done", "cancelled", ...)``: their clients get a complete answer (streams end
        with ``finish_reason: "abort"`` and ``[DONE]``) instead of a cut connection.
        """
        with self._cond:
            self._stopping = True
            waiting = list(self._waiting)
            self._waiting.clear()
            running = list(self._running)
            self._cond.notify_all()
        for job in waiting:
            job.cancel()
            job.emit("done", "cancelled", 0, "")
        for job in running:
            job.cancel()
        self._set_gauges()

    def stop(self, timeout: float = 10.0) -> None:
        """:meth:`cancel_all`, then join the generation thread (at most ``timeout`` s)."""
        self.cancel_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set_gauges()

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._running)

    # -- submission -----------------------------------------------------------------------
    def submit(self, job: GenerationJob) -> GenerationJob:
        """Queue a job (call from the event loop); raises :class:`QueueFull` beyond the queue bound."""
        job.loop = asyncio.get_running_loop()
        job.events = asyncio.Queue()
        with self._cond:
            if self._stopping:
                raise QueueFull("server is shutting down")
            if len(self._waiting) >= self.config.max_queue:
                if self.metrics is not None:
                    self.metrics.rejected.inc()
                raise QueueFull(f"{len(self._waiting)} requests already waiting")
            self._waiting.append(job)
            self._cond.notify()
        self._set_gauges()
        return job

    def withdraw(self, job: GenerationJob) -> None:
        """The client of ``job`` went away before it finished: drop it from the queue or stop its generation."""
        if job.finished:
            return
        job.cancel()
        with self._cond:
            queued = job in self._waiting
            if queued:
                self._waiting.remove(job)
        if queued:
            job.emit("done", "cancelled", 0, "")
        if self.metrics is not None:
            self.metrics.cancelled.inc()
        self._set_gauges()

    # -- the generation thread ------------------------------------------------------------
    def _take_batch(self) -> list[GenerationJob] | None:
        with self._cond:
            while not self._waiting and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            first = self._waiting.popleft()
            batch = [first]
            key = first.batch_key()
            if key is not None:
                for job in list(self._waiting):
                    if len(batch) >= self.config.max_batch:
                        break
                    if job.batch_key() == key:
                        self._waiting.remove(job)
                        batch.append(job)
            batch = [j for j in batch if not j.cancelled.is_set()]
            self._running = batch
        self._set_gauges()
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            if batch:
                self._run(batch)
            del batch  # do not keep the finished jobs (images, encodings) alive while waiting
            with self._cond:
                self._running = []
            self._set_gauges()

    def _run(self, batch: list[GenerationJob]) -> None:
        from transformers import StoppingCriteriaList

        from sarvlm.inference.generate import model_inputs

        rows = [_Row(job, self.processor) for job in batch]
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(batch))
            self.metrics.prompt_tokens.inc(sum(j.prompt_tokens for j in batch))
        first = batch[0]
        tracker: RowTracker | None = None
        try:
            inputs = model_inputs(self.model, self.processor, [j.query for j in batch], [j.encoding for j in batch])
            tracker = RowTracker(rows, self.eos_ids)
            kwargs: dict[str, Any] = {
                "max_new_tokens": max(j.max_new_tokens for j in batch),
                "pad_token_id": self.processor.pad_token_id,
                "stopping_criteria": StoppingCriteriaList([tracker]),
                "do_sample": first.do_sample,
                "num_beams": 1,
            }
            if first.min_new_tokens:
                kwargs["min_new_tokens"] = first.min_new_tokens
            if first.do_sample:
                kwargs.update(temperature=first.temperature, top_p=first.top_p, top_k=0)
            with self._rng(first.seed if first.do_sample else None), torch.no_grad():
                self.model.generate(**inputs, **kwargs)
            for row in rows:
                row.finish("cancelled" if row.job.cancelled.is_set() else "length")
        except Exception as exc:  # noqa: BLE001 - one failed batch must not take the server down
            import logging

            logging.getLogger("sarvlm.serve").exception("generation failed")
            for row in rows:
                if not row.done:
                    row.done = True
                    row.job.emit("error", f"generation failed ({type(exc).__name__})")
        if self.metrics is not None:
            self.metrics.completion_tokens.inc(sum(r.count for r in rows))
            if tracker is not None:
                self.metrics.row_steps.inc(len(rows) * tracker.steps)

    def _rng(self, seed: int | None) -> Any:
        """A seeded RNG scope for sampling that leaves the process's generators as they were."""
        if seed is None:
            return contextlib.nullcontext()
        device = next(self.model.parameters()).device
        devices = [device.index or 0] if device.type == "cuda" else []

        @contextlib.contextmanager
        def scope() -> Any:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(int(seed))
                yield

        return scope()

    def _set_gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(len(self._waiting))
            self.metrics.running.set(len(self._running))


def resolve_device(device: str | None) -> str:
    """``auto`` → CUDA, then MPS, then CPU (sarvlm's shared resolver,
    :func:`sarvlm.models.device.resolve_device`); an absent device is a one-line error."""
    from sarvlm.models.device import resolve_device as shared_resolve_device

    return str(shared_resolve_device(None if device == "" else device))
