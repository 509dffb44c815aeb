"""Prometheus metrics of one server: requests by endpoint and status, latency, requests in flight, rows predicted.

Each app has its own registry (tests build many apps in one process). With several worker processes, the CLI sets
``PROMETHEUS_MULTIPROC_DIR`` before any worker starts; each worker then writes its values there and ``/metrics``
adds up every worker's, whichever worker answers.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

# seconds: single-row predictions take milliseconds; big requests and timeouts take seconds
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("neuraltab_requests", "HTTP requests answered, by endpoint and status code",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("neuraltab_request_duration_seconds", "Time from a request's arrival to its "
                                 "response, by endpoint", ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("neuraltab_requests_in_progress", "Requests being answered (health probes and "
                               "/metrics aside)", registry=self.registry, multiprocess_mode="livesum")
        self.rows = Counter("neuraltab_rows_predicted", "Rows predicted, by model", ["model"], registry=self.registry)
        self.batch_rows = Histogram("neuraltab_batch_rows", "Rows per prediction (several requests' rows when "
                                    "batching), by model", ["model"], buckets=BATCH_BUCKETS, registry=self.registry)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def predicted(self, model: str, rows: int) -> None:
        self.rows.labels(model).inc(rows)
        self.batch_rows.labels(model).observe(rows)

    def render(self) -> bytes:
        """The text exposition format: this process's metrics, or every worker's when they share a folder."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
