"""Prometheus metrics of the processors, the projector and the HTTP API.

Every metric lives in one :class:`Metrics` object with a registry of its own (not
``prometheus_client``'s global one), so tests and several engines in one process
can each count by themselves: pass ``Engine(metrics=Metrics())``. Without one, the
engine, the projector and the services share the process-wide
:func:`default_metrics`, which is what ``flowmonkey processor|projector|api`` serve.

The hot path stays cheap: the processor and the projector count per batch (a plain
dict or int while a batch is decided, one increment per label at its end), since a
``prometheus_client`` increment takes a lock and costs about a microsecond. Handler
durations go to :class:`BulkHistogram`, a lock-free histogram read at scrape time.

Labels have low cardinality by design: command types, reject codes, handler
outcomes, partition numbers, route templates and status codes (and form ids, a
deployment's fixed set of public forms). Execution, tenant and flow ids never become
labels, so the metrics reveal no tenant data. The API's request
labels come from fixed sets whatever a client sends (a method outside the standard
ones is ``other``, a path no route matches ``unmatched``; see
:mod:`flowmonkey.api.metrics`).
"""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["CONTENT_TYPE_LATEST", "BulkHistogram", "Metrics", "MetricsServer",
           "default_metrics", "serve_metrics"]

_FAST_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_HANDLER_S = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_SLOW_S = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_LAG_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_BATCH = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


class BulkHistogram:
    """A histogram whose ``observe`` is a bisect and two additions, with no lock.

    It is written by one event loop and read by scrapes (possibly from the metrics
    server's thread): a scrape may see a sum one observation ahead of the buckets,
    which monitoring tolerates, and costs the hot path nothing.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(sorted(buckets))
        self._counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self.bounds, value)] += 1
        self._sum += value

    @property
    def count(self) -> int:
        return sum(self._counts)

    def collect(self) -> Iterator[Metric]:
        counts, total = list(self._counts), self._sum
        running, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            running += count
            buckets.append((_bound_text(bound), float(running)))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets,
                                    sum_value=total)

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)


def _bound_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class Metrics:
    """FlowMonkey's metric objects, in a registry of their own (``registry``)."""

    def __init__(self, *, process: bool = False) -> None:
        """``process``: also export the process's CPU, memory, file descriptors and
        garbage collector (as the default registry of ``prometheus_client`` would)."""
        r = self.registry = CollectorRegistry(auto_describe=True)
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        # ---------------------------------------------------------------- processor
        self.commands_decided = Counter(
            "flowmonkey_processor_commands_decided", "Commands decided, by command type",
            ["type"], registry=r)
        self.events_appended = Counter(
            "flowmonkey_processor_events_appended", "Events appended to the events topic",
            registry=r)
        self.commands_rejected = Counter(
            "flowmonkey_processor_commands_rejected", "Commands rejected, by reject code",
            ["code"], registry=r)
        self.dead_lettered = Counter(
            "flowmonkey_processor_dead_lettered", "Command records sent to the dead-letter "
            "topic (undecodable, forged or misrouted)", registry=r)
        self.batches = Counter(
            "flowmonkey_processor_batches", "Batches of commands decided", registry=r)
        self.batch_size = Histogram(
            "flowmonkey_processor_batch_size", "Commands per decided batch", buckets=_BATCH,
            registry=r)
        self.append_seconds = Histogram(
            "flowmonkey_processor_append_seconds", "Time to append a group of decided "
            "batches with their command offsets (one Kafka transaction)", buckets=_FAST_S,
            registry=r)
        self.handler_runs = Counter(
            "flowmonkey_processor_handler_runs", "Handler runs, by outcome (success, "
            "failure, wait, timeout, raised)", ["outcome"], registry=r)
        self.handler_seconds = BulkHistogram(
            "flowmonkey_processor_handler_seconds", "Handler run duration", _HANDLER_S)
        r.register(self.handler_seconds)
        self.partitions_owned = Gauge(
            "flowmonkey_processor_partitions_owned", "Commands partitions processed here",
            registry=r)
        self.handlers_in_flight = Gauge(
            "flowmonkey_processor_handlers_in_flight", "Handlers running, by partition",
            ["partition"], registry=r)
        self.recovery_seconds = Histogram(
            "flowmonkey_processor_recovery_seconds", "Time to rebuild a partition's state "
            "from its snapshot and events", buckets=_SLOW_S, registry=r)
        self.job_events = Counter(
            "flowmonkey_processor_job_events", "Job events decided, by type (created, "
            "claimed, lease_expired, superseded, timed_out, completed, failed, cancelled, "
            "released, ...)", ["type"], registry=r)
        self.job_claim_latency = Histogram(
            "flowmonkey_processor_job_claim_latency_seconds", "From a job being offered "
            "(created, released or its lease expired) to a worker's claim", buckets=_LAG_S,
            registry=r)
        # ---------------------------------------------------------------- projector
        self.events_applied = Counter(
            "flowmonkey_projector_events_applied", "Events applied to the projection",
            registry=r)
        self.records_skipped = Counter(
            "flowmonkey_projector_records_skipped", "Undecodable event records skipped",
            registry=r)
        self.projector_batches = Counter(
            "flowmonkey_projector_batches", "Batches applied to the projection", registry=r)
        self.projector_batch_seconds = Histogram(
            "flowmonkey_projector_batch_seconds", "Time to apply a batch (with its offsets, "
            "one database transaction)", buckets=_FAST_S, registry=r)
        self.projector_lag_seconds = Histogram(
            "flowmonkey_projector_lag_seconds", "From the newest event of a batch's "
            "partition to its application", buckets=_LAG_S, registry=r)
        self.projector_next_offset = Gauge(
            "flowmonkey_projector_next_offset", "Next events offset to apply, by partition",
            ["partition"], registry=r)
        # ---------------------------------------------------------------- workers
        self.jobs_claimed = Counter(
            "flowmonkey_worker_jobs_claimed", "Jobs this process's workers claimed",
            registry=r)
        self.jobs_claims_lost = Counter(
            "flowmonkey_worker_claims_lost", "Claims refused (another worker was first, "
            "or the job ended)", registry=r)
        self.jobs_completed = Counter(
            "flowmonkey_worker_jobs_completed", "Jobs completed (accepted)", registry=r)
        self.jobs_failed = Counter(
            "flowmonkey_worker_jobs_failed", "Jobs failed (accepted): a failure result "
            "or an exception", registry=r)
        self.jobs_superseded = Counter(
            "flowmonkey_worker_jobs_superseded", "Jobs this worker lost while running them "
            "(its lease ran out and another claimed them)", registry=r)
        self.jobs_cancelled = Counter(
            "flowmonkey_worker_jobs_cancelled", "Running jobs cancelled with their "
            "execution", registry=r)
        self.jobs_released = Counter(
            "flowmonkey_worker_jobs_released", "Jobs released on a graceful stop",
            registry=r)
        self.jobs_running = Gauge(
            "flowmonkey_worker_jobs_running", "Job handlers running now", registry=r)
        self.job_claim_seconds = Histogram(
            "flowmonkey_worker_claim_seconds", "From sending a claim to its answer",
            buckets=_FAST_S, registry=r)
        # ---------------------------------------------------------------- topic triggers
        self.topic_trigger_consumed = Counter(
            "flowmonkey_trigger_consumer_records", "Records a topic trigger consumed, by "
            "trigger and outcome (fired: a trigger.fire command sent; dead_lettered: not "
            "JSON, too large or unstorable)", ["trigger", "outcome"], registry=r)
        # ---------------------------------------------------------------- api
        self.api_requests = Counter(
            "flowmonkey_api_requests", "HTTP requests, by method, route template and status",
            ["method", "route", "status"], registry=r)
        self.api_request_seconds = Histogram(
            "flowmonkey_api_request_seconds", "HTTP request duration, by method and route "
            "template", ["method", "route"], buckets=_FAST_S, registry=r)
        # a trigger id is a label: triggers are a deployment's fixed set, and a delivery
        # to an unknown id is counted by the request metrics only
        self.trigger_webhooks = Counter(
            "flowmonkey_trigger_webhooks", "Webhook deliveries, by trigger and outcome "
            "(accepted, duplicate, bad_signature, too_large, unauthorized, invalid_body, "
            "disabled, failed)", ["trigger", "outcome"], registry=r)
        # a form id is a label: forms are a deployment's fixed set, and a submission to an
        # unknown id is counted by the request metrics only
        self.form_submissions = Counter(
            "flowmonkey_form_submissions", "Form submissions, by form and outcome "
            "(accepted, duplicate, spam, invalid, rate_limited, captcha_failed, "
            "captcha_unavailable, disabled, too_large, bad_body, unsupported_media_type, "
            "token_refused, refused, failed)", ["form", "outcome"], registry=r)
        self.inbound_emails = Counter(
            "flowmonkey_inbound_emails", "Posts to the inbound email endpoint, by outcome "
            "(resumed, unsigned, forged, unmatched, refused: the token no longer works, "
            "invalid, too_large, disabled, failed)", ["outcome"], registry=r)
        # labelled children, cached: labels() costs more than the increment itself
        self._children: dict[tuple[int, str], Any] = {}

    def _child(self, metric: Any, value: str) -> Any:
        key = (id(metric), value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(value)
        return child

    # -------------------------------------------------------------------- processor

    def batch_decided(self, partition: int, commands: int, types: Mapping[str, int],
                      rejected: Mapping[str, int] | None, outcomes: Mapping[str, int] | None,
                      in_flight: int, job_events: Mapping[str, int] | None = None,
                      claim_latencies_ms: Sequence[int] = ()) -> None:
        """One decided batch: its size, its commands by type, its rejections, the
        handler outcomes gathered since the last batch, the handlers now running, and
        its job events by type with the claim latencies of its claims."""
        self.batches.inc()
        self.batch_size.observe(commands)
        for type_, count in types.items():
            self._child(self.commands_decided, type_).inc(count)
        if rejected:
            for code, count in rejected.items():
                self._child(self.commands_rejected, code).inc(count)
        if outcomes:
            for outcome, count in outcomes.items():
                self._child(self.handler_runs, outcome).inc(count)
        self._child(self.handlers_in_flight, str(partition)).set(in_flight)
        if job_events:
            for type_, count in job_events.items():
                self._child(self.job_events, type_).inc(count)
        for latency_ms in claim_latencies_ms:
            self.job_claim_latency.observe(latency_ms / 1000)

    def partition_released(self, partition: int) -> None:
        self.partitions_owned.dec()
        self._children.pop((id(self.handlers_in_flight), str(partition)), None)
        with contextlib.suppress(KeyError):  # no batch was decided there
            self.handlers_in_flight.remove(str(partition))

    # -------------------------------------------------------------------- projector

    def projected(self, partition: int, events: int, skipped: int, next_offset: int,
                  lag_s: float | None) -> None:
        """One partition's share of an applied batch."""
        if events:
            self.events_applied.inc(events)
        if skipped:
            self.records_skipped.inc(skipped)
        self._child(self.projector_next_offset, str(partition)).set(next_offset)
        if lag_s is not None:
            self.projector_lag_seconds.observe(lag_s)

    # -------------------------------------------------------------------- topic triggers

    def topic_trigger_records(self, trigger_id: str, fired: int, dead_lettered: int) -> None:
        """One appended batch of a topic trigger's consumer."""
        if fired:
            self.topic_trigger_consumed.labels(trigger_id, "fired").inc(fired)
        if dead_lettered:
            self.topic_trigger_consumed.labels(trigger_id, "dead_lettered").inc(dead_lettered)

    # -------------------------------------------------------------------- exposition

    def render(self) -> bytes:
        """The registry in Prometheus' text format (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)


_default: Metrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> Metrics:
    """The process-wide metrics (with the process's own CPU and memory)."""
    global _default
    metrics = _default
    if metrics is None:
        with _default_lock:
            if _default is None:
                _default = Metrics(process=True)
            metrics = _default
    return metrics


class MetricsServer:
    """``/metrics`` served from a daemon thread (``prometheus_client``'s server)."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        port: int = self._server.server_port
        return port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


def serve_metrics(metrics: Metrics, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``metrics`` on ``http://host:port/metrics`` until ``close()``. Port 0 picks
    a free one (see ``port``). Raises ``OSError`` when the address cannot be bound."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsServer(server, thread)
