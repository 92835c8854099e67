"""LLM judges through any OpenAI-compatible endpoint (the ``openai`` SDK).

Two protocols from the papers:

- SARLANG-1M §4.1.2 binary match: the judge answers 1 (match) or 0.
- LunarOS-Mini's five dimensions: fluency (FL), question relevance (QR), ground-truth
  alignment (GTA), multi-turn consistency (MC), professional information density (PID),
  0-20 each, total 100; several judges score independently and are averaged.

Every call uses temperature 0. Replies are parsed strictly; a reply that does not
parse is counted under ``unparsable`` and never scored as 0. Replies are cached on
disk, one file per key = sha256(endpoint, model, prompt, parameters), written
atomically, so an interrupted run resumes where it stopped and a rerun costs nothing.
Requests go through :class:`sarvlm.core.llm_client.ChatClient` (shared with annotation):
transient failures (connection, timeout, 429, 5xx) are retried with exponential backoff; when the endpoint stays down a one-line error says how much is cached.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sarvlm.core.atomic import atomic_open
from sarvlm.core.errors import SarvlmError
from sarvlm.core.llm_client import RETRYABLE, ChatClient, LLMRequestError

# SARLANG-1M's judge, verbatim from the released Evaluate_VQA.py (check_match_with_gpt): the
# script fills it with the lower-cased question, truth and prediction, sends it as one user
# message to gpt-4o-mini with max_tokens=100 and no other parameter, and reads int(reply).
SARLANG_PROMPT = (
    "Question: {question}\nGround Truth Answer: {ground_truth}\nPredicted Answer: {predicted_answer}\n"
    "Does the predicted answer match the ground truth? Answer 1 for match and 0 for not match. "
    "Use semantic meaning not exact match. Synonyms are also treated as a match, e.g., football and soccer, "
    "playground and ground track field, building and rooftop, pond and swimming pool. Do not explain the reason.\n"
)
SARLANG_JUDGE_MODEL = "gpt-4o-mini"
SARLANG_JUDGE_MAX_TOKENS = 100
DIMENSIONS = ("FL", "QR", "GTA", "MC", "PID")
DIMENSION_NAMES = {
    "FL": "fluency",
    "QR": "question relevance",
    "GTA": "ground-truth annotation alignment",
    "MC": "multi-turn consistency",
    "PID": "professional information density",
}
FIVE_DIM_PROMPT = """You are an expert in SAR and optical remote sensing interpretation. Score the model answer below on five dimensions, each an integer from 0 to 20:
FL (fluency): naturalness and logical coherence of the response.
QR (question relevance): whether the response matches the user's question intent.
GTA (ground-truth annotation alignment): consistency with the reference annotation in content, format, terminology and style.
MC (multi-turn consistency): logical coherence and complementary information across the dialogue turns (judge the single turn's coherence if there is only one).
PID (professional information density): density of useful domain information.

Dialogue so far:
{history}

Question: {question}
Reference annotation: {reference}
Model answer: {answer}

Reply with only a JSON object of the form {{"FL": n, "QR": n, "GTA": n, "MC": n, "PID": n}}."""

_BINARY_RE = re.compile(r"^\s*[\"'`]*\s*([01])\s*[\"'`]*\s*\.?\s*$")


def parse_binary(reply: str) -> bool | None:
    """``"1"`` -> True, ``"0"`` -> False, anything else -> None (unparsable)."""
    m = _BINARY_RE.match(reply or "")
    return None if m is None else m.group(1) == "1"


def parse_sarlang_reply(reply: str | None) -> bool | None:
    """The script's reading of its judge: ``int(reply)``; 1 -> True, 0 -> False.

    What ``int()`` accepts is accepted (surrounding whitespace, ``+1``, ``01``). Anything
    else -> None (unparsable): the script would stop with a ValueError on a non-integer
    reply, and would add any other integer to its correct count; sarvlm counts both as
    unparsable and leaves them out of the score.
    """
    try:
        value = int(reply)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if value not in (0, 1) else value == 1


def parse_five_dimensions(reply: str) -> dict[str, int] | None:
    """The JSON object with exactly FL/QR/GTA/MC/PID as integers 0..20 (a ```json fence is allowed)."""
    text = (reply or "").strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.S)
    if fence:
        text = fence.group(1)
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(obj, dict) or set(obj) != set(DIMENSIONS):
        return None
    out: dict[str, int] = {}
    for k in DIMENSIONS:
        v = obj[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or not 0 <= v <= 20:
            return None
        out[k] = int(v)
    return out


class JudgeUnavailable(SarvlmError):
    """The endpoint could not be reached after all retries."""


class LLMJudge:
    """One judge model behind an OpenAI-compatible endpoint, with cache, retries and a concurrency limit.

    ``base_url``/``api_key`` default to ``SARVLM_JUDGE_BASE_URL``/``SARVLM_JUDGE_API_KEY``
    and then ``OPENAI_BASE_URL``/``OPENAI_API_KEY``.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        cache_dir: str | Path | None = None,
        concurrency: int = 4,
        max_retries: int = 4,
        backoff: float = 1.0,
        timeout: float = 60.0,
        max_tokens: int = 64,
        name: str | None = None,
        temperature: float | None = 0.0,
    ) -> None:
        self.model = model
        self.base_url = (
            base_url
            or os.environ.get("SARVLM_JUDGE_BASE_URL")
            or os.environ.get("OPENAI_BASE_URL")
            or "https://api.openai.com/v1"
        )
        self.api_key = api_key or os.environ.get("SARVLM_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY") or "unused"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.concurrency = max(1, int(concurrency))
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        self.timeout = float(timeout)
        self.max_tokens = int(max_tokens)
        self.temperature = temperature  # None: not sent (the endpoint's default)
        self.name = name or model
        self._client: ChatClient | None = None
        self._memory: dict[str, str] = {}  # replies of this session (the disk cache is optional)

    # -- plumbing -------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"max_tokens": self.max_tokens}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        return params

    def with_request(self, max_tokens: int, temperature: float | None) -> LLMJudge:
        """The same judge (endpoint, cache, client) sending other request parameters."""
        other = copy.copy(self)
        other.max_tokens, other.temperature = int(max_tokens), temperature
        return other

    def cache_key(self, prompt: str) -> str:
        blob = json.dumps(
            {"endpoint": self.base_url.rstrip("/"), "model": self.model, "prompt": prompt, "params": self._params()},
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def cached(self, prompt: str) -> str | None:
        key = self.cache_key(prompt)
        if key in self._memory:
            return self._memory[key]
        path = self._cache_path(key)
        if path is None or not path.exists():
            return None
        try:
            reply = json.loads(path.read_text(encoding="utf-8"))["reply"]
        except (OSError, ValueError, KeyError):
            return None  # a damaged entry is simply asked again
        self._memory[key] = reply
        return reply

    def _store(self, prompt: str, reply: str) -> None:
        key = self.cache_key(prompt)
        self._memory[key] = reply
        path = self._cache_path(key)
        if path is None:
            return
        with atomic_open(path) as fh:
            json.dump(
                {
                    "model": self.model,
                    "endpoint": self.base_url,
                    "params": self._params(),
                    "prompt": prompt,
                    "reply": reply,
                },
                fh,
                sort_keys=True,
                ensure_ascii=False,
            )

    def _get_client(self) -> ChatClient:
        if self._client is None:
            self._client = ChatClient(
                self.model,
                self.base_url,
                self.api_key,
                concurrency=self.concurrency,
                max_retries=self.max_retries,
                backoff=self.backoff,
                timeout=self.timeout,
                name=f"judge {self.name}",
            )
        return self._client

    @property
    def requests_made(self) -> int:
        """Requests sent to the endpoint by this judge (retries included)."""
        return 0 if self._client is None else self._client.requests_made

    def _request(self, prompt: str) -> str:
        try:
            reply = self._get_client().chat([{"role": "user", "content": prompt}], **self._params())
        except LLMRequestError as exc:
            if exc.kind in RETRYABLE:
                raise JudgeUnavailable(
                    f"judge {self.name} at {self.base_url}: no reply after {exc.attempts} attempts ({exc.kind})"
                ) from None
            raise SarvlmError(str(exc)) from None
        return reply.text

    # -- public ---------------------------------------------------------------
    def complete(self, prompt: str) -> str:
        """The judge's reply to ``prompt`` (from the cache when present)."""
        hit = self.cached(prompt)
        if hit is not None:
            return hit
        reply = self._request(prompt)
        self._store(prompt, reply)
        return reply

    def complete_many(self, prompts: Sequence[str], description: str = "judging") -> list[str]:
        """Replies for many prompts, at most ``concurrency`` requests in flight.

        Finished replies are cached as they arrive, so after a failure (raised as
        :class:`JudgeUnavailable` naming how many are cached) a rerun resumes.
        """
        from sarvlm.core.progress import track

        todo = [i for i, p in enumerate(prompts) if self.cached(p) is None]
        failures: list[Exception] = []
        if todo:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                futures = [pool.submit(self.complete, prompts[i]) for i in todo]
                for fut in track(futures, f"{description} ({self.name})", total=len(futures)):
                    try:
                        fut.result()
                    except SarvlmError as exc:
                        failures.append(exc)
        if failures:
            done = sum(1 for p in prompts if self.cached(p) is not None)
            where = f" in {self.cache_dir}" if self.cache_dir else " (no cache dir: nothing kept)"
            raise JudgeUnavailable(
                f"{failures[0]}; {done} of {len(prompts)} replies are cached{where} — rerun to resume"
            )
        return [self.complete(p) for p in prompts]


def sarlang_judge(judge: LLMJudge) -> LLMJudge:
    """``judge`` sending SARLANG-1M's request: max_tokens=100, no temperature (the script's call)."""
    return judge.with_request(max_tokens=SARLANG_JUDGE_MAX_TOKENS, temperature=None)


def sarlang_binary_judgements(judge: LLMJudge, items: Sequence[tuple[str, str, str]]) -> list[bool | None]:
    """SARLANG-1M judge verdicts for ``(question, ground_truth, prediction)`` triples, read as the script does."""
    prompts = [SARLANG_PROMPT.format(question=q, ground_truth=g, predicted_answer=p) for q, g, p in items]
    return [parse_sarlang_reply(r) for r in sarlang_judge(judge).complete_many(prompts, "SARLANG-1M judge")]


def five_dimension_scores(judges: Sequence[LLMJudge], items: Sequence[dict[str, str]]) -> dict[str, Any]:
    """LunarOS-Mini five-dimension scores, per judge and averaged over judges.

    ``items``: dicts with ``question``, ``reference``, ``answer`` and optional ``history``.
    Per judge, each dimension is the mean over the replies that parsed; ``unparsable``
    counts the others. The panel average is the mean of the judges' means.
    """
    prompts = [
        FIVE_DIM_PROMPT.format(
            history=it.get("history") or "(none)",
            question=it["question"],
            reference=it["reference"],
            answer=it["answer"],
        )
        for it in items
    ]
    per_judge: dict[str, Any] = {}
    for judge in judges:
        parsed = [parse_five_dimensions(r) for r in judge.complete_many(prompts, "five-dimension judge")]
        ok = [p for p in parsed if p is not None]
        means = {d: (sum(p[d] for p in ok) / len(ok) if ok else float("nan")) for d in DIMENSIONS}
        means["overall"] = sum(means[d] for d in DIMENSIONS)
        per_judge[judge.name] = {
            **means,
            "n": len(items),
            "scored": len(ok),
            "unparsable": len(parsed) - len(ok),
            "per_sample": parsed,
        }
    valid = [v for v in per_judge.values() if v["scored"]]
    avg = {d: (sum(v[d] for v in valid) / len(valid) if valid else float("nan")) for d in (*DIMENSIONS, "overall")}
    return {"judges": per_judge, "average": avg, "n": len(items)}


def judges_from_spec(specs: Sequence[str], cache_dir: str | Path | None, **kwargs: Any) -> list[LLMJudge]:
    """Build judges from ``MODEL`` or ``MODEL@BASE_URL`` strings (the CLI's ``--judge``)."""
    out = []
    for spec in specs:
        model, _, url = spec.partition("@")
        if not model:
            raise SarvlmError(f"--judge {spec!r}: expected MODEL or MODEL@BASE_URL")
        out.append(LLMJudge(model=model, base_url=url or None, cache_dir=cache_dir, **kwargs))
    return out
