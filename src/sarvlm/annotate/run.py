"""One annotation run: samples in, the same samples with captions or dialogues added out.

For each record, in input order: facts (:mod:`~sarvlm.annotate.facts`) -> does the prompt have what
it needs -> cache key -> cached reply, or a request to the endpoint (images rendered as data URLs)
-> parse -> validate -> caption/dialogue added according to ``on_conflict``. Records stream through a
bounded window of worker threads (``concurrency`` x 4 in flight), so memory does not grow with the
number of samples; output order is input order whatever the concurrency.

Per-record status: ``accepted`` (no conflict), ``conflict`` (kept, flagged or dropped by
``on_conflict``), ``unparsable``, ``failed`` (the request failed after retries: 429/5xx/timeout/
unreadable reply), ``missing_facts``, ``image_error``, ``budget`` (request budget spent), ``resumed``
(already annotated in the output being resumed). A record that is not annotated is written unchanged.
A wrong key (401/403), an unknown model (404) or an unreachable endpoint stops the run with a one-line
error; the output is then not written (atomic), and every reply received so far is in the cache, so
the rerun pays only for the rest.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sarvlm.annotate.cache import ReplyCache, cache_key
from sarvlm.annotate.client import Prices
from sarvlm.annotate.endpoint import Endpoint
from sarvlm.annotate.facts import Facts, record_facts
from sarvlm.annotate.images import data_url, file_digest, render_png
from sarvlm.annotate.outcome import Outcome
from sarvlm.annotate.parse import DEFAULT_MAX_CHARS, ParsedReply, parse_reply
from sarvlm.annotate.report import RunReport
from sarvlm.annotate.templates import ANNOTATE_SOURCE, PromptTemplate
from sarvlm.annotate.validate import ON_CONFLICT, Validation, validate_reply
from sarvlm.core.atomic import atomic_open
from sarvlm.core.errors import InputError, SarvlmError
from sarvlm.core.llm_client import LLMRequestError
from sarvlm.core.record import Caption, Dialogue, SampleRecord, Turn, read_samples
from sarvlm.core.sharding import Shard, write_shard_info

FATAL_KINDS = ("auth", "not_found", "connection")


@dataclass
class AnnotateOptions:
    """Options of one run (the CLI's flags)."""

    on_conflict: str = "flag"
    image_size: int = 512
    max_reply_chars: int = DEFAULT_MAX_CHARS
    concurrency: int = 4
    dry_run: bool = False
    resume: bool = False
    overwrite: bool = False
    run_dir: Path | None = None
    prices: Prices = field(default_factory=Prices)


def default_run_dir(out: Path) -> Path:
    return out.with_name(f"{out.stem}_annotate")


def _source(tpl: PromptTemplate, endpoint: Endpoint) -> str:
    return f"{ANNOTATE_SOURCE}:{tpl.key}:{endpoint.model}"


class _Annotator:
    def __init__(
        self, tpl: PromptTemplate, endpoint: Endpoint, cache: ReplyCache, base_dir: Path, opts: AnnotateOptions
    ):
        self.tpl, self.endpoint, self.cache, self.base_dir, self.opts = tpl, endpoint, cache, base_dir, opts
        self.source = _source(tpl, endpoint)
        self.sends_images = bool(tpl.images) and endpoint.supports_images
        self.first_request: list[dict[str, Any]] | None = None

    # -- request ---------------------------------------------------------------------------------
    def _image_paths(self, rec: SampleRecord) -> list[tuple[str, Path]]:
        out = []
        for kind in self.tpl.images if self.sends_images else ():
            if kind == "sar":
                out.append(("sar", rec.image_path(self.base_dir)))
            elif kind == "optical" and rec.optical:
                out.append(("optical", rec.optical_path(self.base_dir)))  # type: ignore[arg-type]
        return out

    def _messages(self, facts: Facts, images: list[tuple[str, Path]], hashes: list[str]) -> tuple[list, list]:
        """(messages sent, the same with images replaced by their hashes for the audit log)."""
        system, user = self.tpl.render_text(facts)
        if not images:
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            return msgs, msgs
        parts: list[dict[str, Any]] = []
        audit: list[dict[str, Any]] = []
        for (kind, path), digest in zip(images, hashes):
            png = render_png(path, sar=kind == "sar", max_side=self.opts.image_size)
            parts.append({"type": "image_url", "image_url": {"url": data_url(png)}})
            audit.append({"type": "image_url", "image_url": {"url": f"{kind} image sha256:{digest}"}})
        parts.append({"type": "text", "text": user})
        audit.append({"type": "text", "text": user})
        sys_msg = {"role": "system", "content": system}
        return [sys_msg, {"role": "user", "content": parts}], [sys_msg, {"role": "user", "content": audit}]

    def process(self, rec: SampleRecord) -> Outcome:
        try:
            facts = record_facts(rec, self.base_dir)
        except SarvlmError as exc:
            return Outcome(rec, "missing_facts", f"facts unreadable: {exc}")
        missing = self.tpl.missing_facts(facts)
        if missing:
            return Outcome(rec, "missing_facts", missing)
        images = self._image_paths(rec)
        try:
            hashes = [file_digest(p) for _, p in images]
        except InputError as exc:
            return Outcome(rec, "image_error", str(exc))
        key = cache_key(
            {
                "prompt": self.tpl.key,
                "endpoint": self.endpoint.kind,
                "model": self.endpoint.model,
                "images": hashes,
                "image_size": self.opts.image_size if images else None,
                "facts": cache_key(self.tpl.facts_used(facts)),
                "params": self.endpoint.params,
            }
        )
        entry = self.cache.get(key)
        out = Outcome(rec, "accepted")
        if entry is not None:
            out.cached = True
        elif self.opts.dry_run:
            if self.first_request is None:
                try:
                    self.first_request = self._messages(facts, images, hashes)[1]
                except InputError as exc:
                    return Outcome(rec, "image_error", str(exc))
            return Outcome(rec, "would_request")
        else:
            try:
                messages, audit = self._messages(facts, images, hashes)
            except InputError as exc:
                return Outcome(rec, "image_error", str(exc))
            try:
                reply = self.endpoint.answer(self.tpl, facts, messages)
            except LLMRequestError as exc:
                if exc.kind in FATAL_KINDS:
                    raise
                return Outcome(rec, "budget" if exc.kind == "budget" else "failed", f"{exc.kind}: {exc}")
            out.requested = True
            out.prompt_tokens, out.completion_tokens = reply.prompt_tokens, reply.completion_tokens
            entry = {
                "key": key,
                "sample_id": rec.id,
                "prompt": self.tpl.key,
                "endpoint": self.endpoint.kind,
                "model": self.endpoint.model,
                "params": self.endpoint.params,
                "messages": audit,
                "reply": reply.text,
                "finish_reason": reply.finish_reason,
                "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens},
                "attempts": reply.attempts,
                "seconds": round(reply.seconds, 4),
                "received": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self.cache.put(key, entry)
        out.reply = entry["reply"]
        parsed = parse_reply(entry["reply"], self.tpl, self.opts.max_reply_chars)
        out.parsed = parsed
        if not parsed.ok:
            out.status = "unparsable"
            out.detail = parsed.error or f"missing fields: {', '.join(parsed.missing)}"
            if entry.get("finish_reason") == "length":
                out.detail += " (reply cut at max_tokens)"
            return out
        validation = validate_reply(self.tpl, facts, parsed)
        out.validation = validation
        conflicts = validation.conflicts
        if conflicts:
            out.status = "conflict"
            out.action = self.opts.on_conflict
            out.detail = "; ".join(f"{c.field}: {c.detail}" for c in conflicts[:3])
        if out.action == "drop":
            return out
        out.record = self._annotated(rec, parsed, validation, key, flagged=bool(conflicts) and out.action == "flag")
        return out

    # -- result ----------------------------------------------------------------------------------
    def _annotated(
        self, rec: SampleRecord, parsed: ParsedReply, validation: Validation, key: str, flagged: bool
    ) -> SampleRecord:
        meta: dict[str, Any] = {
            "prompt": self.tpl.key,
            "model": self.endpoint.model,
            "endpoint": self.endpoint.kind,
            "cache_key": key,
            "flagged": flagged,
            "checks": [c.to_dict() for c in validation.checks],
        }
        if parsed.reasoning:
            meta["reasoning"] = parsed.reasoning
        kind = self.tpl.output["kind"]
        if kind == "dialogue":
            turns = []
            for t in parsed.turns[: int(self.tpl.output.get("turns", 3))]:
                turns += [Turn(role="user", content=t["question"]), Turn(role="assistant", content=t["answer"])]
            dialogues = [d for d in rec.dialogues if d.source != self.source]
            dialogues.append(Dialogue(turns=turns, source=self.source, meta=meta))
            return rec.model_copy(update={"dialogues": dialogues})
        captions = [c for c in rec.captions if c.source != self.source]
        if kind == "captions":
            for style in ("concise", "complex"):
                text = parsed.fields.get(style)
                if text:
                    captions.append(Caption(text=text, style=style, source=self.source, meta=meta))
        else:
            fields = {k: v for k, v in parsed.fields.items() if isinstance(v, str)}
            if "caption" in fields:
                text = fields.pop("caption")
            else:
                text = "\n".join(f"{k}: {fields[k]}" for k in self.tpl.fields if k in fields)
            captions.append(
                Caption(
                    text=text,
                    style=str(self.tpl.output.get("style", "structured")),
                    fields=fields or None,
                    source=self.source,
                    meta=meta,
                )
            )
        return rec.model_copy(update={"captions": captions})


def _rebase(rec: SampleRecord, src_dir: Path, dst_dir: Path) -> SampleRecord:
    """The record with its relative paths (image, optical, land-cover mask) valid from ``dst_dir``.

    ``src_dir`` and ``dst_dir`` are resolved directories; call only when they differ.
    """

    def move(p: str) -> str:
        if Path(p).is_absolute():
            return p
        return Path(os.path.relpath(os.path.normpath(src_dir / p), dst_dir)).as_posix()

    update: dict[str, Any] = {"image": move(rec.image)}
    if rec.optical:
        update["optical"] = move(rec.optical)
    if rec.landcover is not None:
        update["landcover"] = rec.landcover.model_copy(update={"mask": move(rec.landcover.mask)})
    return rec.model_copy(update=update)


def _already_done(out: Path, source: str) -> dict[str, str]:
    """Lines of an existing output whose record already carries this prompt's annotation."""
    done: dict[str, str] = {}
    for rec in read_samples(out):
        if any(c.source == source for c in rec.captions) or any(d.source == source for d in rec.dialogues):
            done[rec.id] = rec.to_json()
    return done


def _check_paths(samples: Path, out: Path | None, opts: AnnotateOptions) -> None:
    if not samples.is_file():
        raise InputError(f"{samples}: no such samples file")
    if out is None:
        return
    if out.exists() and out.resolve() == samples.resolve():
        raise InputError(f"{out}: the output would replace the input samples; choose another --out")
    if out.exists() and not (opts.resume or opts.overwrite):
        raise InputError(f"{out}: exists (use --resume to continue it or --overwrite to replace it)")
    if opts.resume and opts.overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    if opts.on_conflict not in ON_CONFLICT:
        raise InputError(f"--on-conflict {opts.on_conflict!r}: choose from {', '.join(ON_CONFLICT)}")


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def annotate_samples(
    samples: str | Path,
    out: str | Path | None,
    tpl: PromptTemplate,
    endpoint: Endpoint,
    opts: AnnotateOptions | None = None,
    shard: Shard | str | None = None,
) -> RunReport:
    """Annotate every record of ``samples`` into ``out`` (see the module docstring); returns the run report.

    With ``opts.dry_run`` nothing is sent or written: the report counts what would be requested and
    ``report.first_request`` shows the first request (images as hashes).

    ``shard="K/N"`` annotates only the K-th contiguous block of the records into
    ``STEM.shard-K-of-N.jsonl`` with its own run directory ``RUN_DIR.shard-K-of-N`` (replies cache +
    report); :func:`sarvlm.annotate.merge.merge_annotate_shards` joins the N parts into ``out`` and
    ``RUN_DIR``, as one unsharded run writes them.
    """
    from sarvlm.core.progress import track

    opts = opts or AnnotateOptions()
    samples = Path(samples)
    shard = Shard.parse(shard)
    final_out = Path(out) if out is not None else None
    out_path = shard.output_path(final_out, directory=False) if (shard and final_out) else final_out
    if final_out is not None and samples.is_file() and final_out.exists() and final_out.resolve() == samples.resolve():
        raise InputError(f"{final_out}: the output would replace the input samples; choose another --out")
    _check_paths(samples, out_path, opts)
    final_run_dir = opts.run_dir or (
        default_run_dir(final_out) if final_out else samples.with_name(f"{samples.stem}_annotate")
    )
    run_dir = shard.output_path(final_run_dir, directory=True) if shard else final_run_dir
    cache = ReplyCache(run_dir / "replies")
    worker = _Annotator(tpl, endpoint, cache, samples.parent, opts)
    done = _already_done(out_path, worker.source) if (opts.resume and out_path and out_path.exists()) else {}
    report = RunReport(tpl, endpoint, opts.on_conflict, prices=opts.prices, samples=str(samples), out=str(out_path))
    n_records = _count_lines(samples)
    first, stop = shard.bounds(n_records) if shard else (0, n_records)
    total = stop - first
    window = max(1, opts.concurrency) * 4
    start = time.perf_counter()

    def outcomes(pool: ThreadPoolExecutor) -> Iterator[Outcome]:
        pending: deque[Future[Outcome] | Outcome] = deque()
        for i, rec in enumerate(read_samples(samples)):
            if i < first:
                continue  # parsed all the same: a broken line anywhere fails every shard alike
            if i >= stop:
                break
            if rec.id in done:
                pending.append(Outcome(SampleRecord.model_validate_json(done[rec.id]), "resumed"))
            else:
                pending.append(pool.submit(worker.process, rec))
            while len(pending) >= window:
                item = pending.popleft()
                yield item if isinstance(item, Outcome) else item.result()
        while pending:
            item = pending.popleft()
            yield item if isinstance(item, Outcome) else item.result()

    src, dst = samples.parent.resolve(), (out_path.parent if out_path else samples.parent).resolve()

    def consume(fh: Any) -> None:
        with ThreadPoolExecutor(max_workers=max(1, opts.concurrency)) as pool:
            try:
                for outcome in track(outcomes(pool), f"annotating ({tpl.id})", total=total):
                    report.add(outcome)
                    if fh is not None:
                        rec = outcome.record
                        if src != dst and outcome.status != "resumed":
                            rec = _rebase(rec, src, dst)
                        fh.write(rec.to_json())
                        fh.write("\n")
            except LLMRequestError as exc:
                pool.shutdown(wait=True, cancel_futures=True)
                hint = {"auth": " (check --api-key-env)", "not_found": " (check --model and the URL)"}.get(exc.kind, "")
                raise SarvlmError(
                    f"{exc}{hint}; {len(cache)} replies are cached in {cache.root} — nothing was written; "
                    "rerun to resume"
                ) from None

    try:
        if opts.dry_run or out_path is None:
            consume(None)
        else:
            with atomic_open(out_path) as fh:
                consume(fh)
    finally:
        endpoint.close()
    report.seconds = time.perf_counter() - start
    report.requests_made = endpoint.requests_made
    report.first_request = worker.first_request
    if not opts.dry_run:
        report.write(run_dir)
        if shard is not None and out_path is not None and final_out is not None:
            write_shard_info(
                out_path,
                "annotate",
                shard,
                {
                    "samples": str(samples),
                    "samples_digest": _file_digest(samples),
                    "records": n_records,
                    "out": str(final_out),
                    # absolute: `sarvlm merge` may run from another working directory
                    "run_dir": str(Path(final_run_dir).resolve()),
                    "part_run_dir": str(Path(run_dir).resolve()),
                    "settings": {
                        "prompt": tpl.key,
                        "endpoint": endpoint.kind,
                        "model": endpoint.model,
                        "params": endpoint.params,
                        "on_conflict": opts.on_conflict,
                        "image_size": opts.image_size,
                        "max_reply_chars": opts.max_reply_chars,
                    },
                },
            )
    return report


def _file_digest(path: Path) -> str:
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def describe_request(messages: list[dict[str, Any]] | None) -> str:
    """The first request of a dry run as readable text."""
    if not messages:
        return "(no request would be sent: every reply is cached or no record needs one)"
    return json.dumps(messages, indent=2, ensure_ascii=False)


__all__ = ["AnnotateOptions", "Outcome", "annotate_samples", "default_run_dir", "describe_request"]
