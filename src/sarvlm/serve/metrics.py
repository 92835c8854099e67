"""Prometheus metrics of one server (``GET /metrics``, text exposition format).

Each :class:`ServerMetrics` owns its own ``CollectorRegistry`` (no process-wide registry), so
several apps in one process (tests) do not mix their counts.
"""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ServerMetrics:
    """Requests by endpoint/status, latency histogram, tokens, queue depth, running and cancelled requests."""

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError:
            from sarvlm.core.errors import MissingDependency

            raise MissingDependency("prometheus_client", "serve", "sarvlm serve metrics") from None
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sarvlm_requests", "HTTP requests answered", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "sarvlm_request_latency_seconds",
            "Time from request to the last byte of the answer",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter("sarvlm_prompt_tokens", "Prompt tokens processed", registry=self.registry)
        self.completion_tokens = Counter(
            "sarvlm_completion_tokens", "Completion tokens generated", registry=self.registry
        )
        self.queue_depth = Gauge("sarvlm_queue_depth", "Requests waiting for the model", registry=self.registry)
        self.running = Gauge("sarvlm_running_requests", "Requests being generated", registry=self.registry)
        self.cancelled = Counter(
            "sarvlm_cancelled_requests", "Generations stopped because the client went away", registry=self.registry
        )
        self.rejected = Counter(
            "sarvlm_rejected_requests", "Requests refused with 503 (queue full)", registry=self.registry
        )
        self.batch_size = Histogram(
            "sarvlm_batch_size", "Requests per model batch", buckets=(1, 2, 4, 8, 16, 32), registry=self.registry
        )
        self.row_steps = Counter(
            "sarvlm_batch_row_steps",
            "Rows x decoding steps computed (rows that finished early included; completion tokens / this = batch occupancy)",
            registry=self.registry,
        )
        self.priors = Counter(
            "sarvlm_prior_requests", "Requests by whether a prior was used", ["used"], registry=self.registry
        )

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def value(self, name: str, labels: dict[str, Any] | None = None) -> float:
        """One sample's value (tests and the benchmark read counters this way)."""
        got = self.registry.get_sample_value(name, {k: str(v) for k, v in (labels or {}).items()})
        return float(got or 0.0)
