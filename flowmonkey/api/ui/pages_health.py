"""The health page: whether this process can serve, each partition's projection
progress and lag, the processors here, and the counts the services export (dead
letters, rejected commands, handler outcomes, projector lag), refreshed live.

Everything comes from this process: its engine (:func:`~flowmonkey.api.routes_health.
unhealthy_reason`, the projector's progress, the log's end offsets) and its
:class:`~flowmonkey.metrics.Metrics` (what ``/metrics`` serves). Processors and
projectors running in other processes export their own ``/metrics``; the page says
which parts run here. The metrics name no tenant, so every session sees the page; the
WAL's count (every tenant's) is shown to admins only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowmonkey.api.deps import EngineDep
from flowmonkey.api.routes_health import unhealthy_reason
from flowmonkey.api.ui.render import page, partial
from flowmonkey.api.ui.session import Session, UiSession
from flowmonkey.engine import Engine
from flowmonkey.errors import FlowMonkeyError
from flowmonkey.metrics import Metrics

router = APIRouter(include_in_schema=False)

#: partitions listed (a topic may have many; the rest are summed up)
MAX_PARTITIONS = 256
#: how long the log may take to tell its end offsets before the page goes without
END_OFFSETS_TIMEOUT_S = 2.0
#: WAL entries counted (beyond: "more than")
WAL_COUNT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class PartitionRow:
    """One events partition as this process projects it."""

    partition: int
    offset: int
    end: int | None
    applied: int
    skipped: int
    lag_ms: int | None
    last_event_ms: int | None

    @property
    def behind(self) -> int | None:
        return None if self.end is None else max(0, self.end - self.offset)


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: float


def samples(metrics: Metrics, family: str) -> list[Sample]:
    """The values of a metric family (a counter's ``_total``, a gauge's value)."""
    found: list[Sample] = []
    for metric in metrics.registry.collect():
        if metric.name != family:
            continue
        for sample in metric.samples:
            if sample.name in (family, family + "_total"):
                found.append(Sample(dict(sample.labels), sample.value))
    return found


def total(metrics: Metrics, family: str) -> float:
    return sum(s.value for s in samples(metrics, family))


def by_label(metrics: Metrics, family: str, label: str) -> list[tuple[str, float]]:
    """(label value, value) of a labelled family, largest first, zeros left out."""
    rows = [(s.labels.get(label, ""), s.value) for s in samples(metrics, family) if s.value]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


@dataclass(frozen=True, slots=True)
class LagSummary:
    """The projector's lag histogram: how many batches, their mean, and the bucket
    bound under which 95% of them fell."""

    count: int
    mean_s: float | None
    p95_under_s: float | None


def lag_summary(metrics: Metrics) -> LagSummary:
    family = "flowmonkey_projector_lag_seconds"
    count, sum_s, buckets = 0, 0.0, []
    for metric in metrics.registry.collect():
        if metric.name != family:
            continue
        for sample in metric.samples:
            if sample.name == family + "_count":
                count = int(sample.value)
            elif sample.name == family + "_sum":
                sum_s = sample.value
            elif sample.name == family + "_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    if not count:
        return LagSummary(0, None, None)
    p95 = next((bound for bound, seen in sorted(buckets) if seen >= 0.95 * count), None)
    return LagSummary(count, sum_s / count, p95)


async def _end_offsets(engine: Engine, partitions: Sequence[int]) -> dict[int, int]:
    """The events topic's end offsets, or {} when the log does not tell in time."""
    topic = engine.topics.events

    async def ends() -> list[int]:
        return await asyncio.gather(*(engine.log.end_offset(topic, p) for p in partitions))

    with contextlib.suppress(FlowMonkeyError, OSError, TimeoutError):
        found = await asyncio.wait_for(ends(), END_OFFSETS_TIMEOUT_S)
        return dict(zip(partitions, found, strict=True))
    return {}


async def _context(engine: Engine, session: UiSession) -> dict[str, Any]:
    metrics = engine.metrics
    projector = engine.projector
    progress = projector.progress() if projector is not None else []
    listed = progress[:MAX_PARTITIONS]
    ends = await _end_offsets(engine, [p.partition for p in listed]) if engine.started else {}
    rows = [PartitionRow(p.partition, p.offset, ends.get(p.partition), p.applied_events,
                         p.skipped_records, p.lag_ms, p.last_event_ms) for p in listed]
    wal_count = None
    if session.admin:
        with contextlib.suppress(FlowMonkeyError, OSError):
            wal_count = len(await engine.projection.wal_pending(WAL_COUNT_LIMIT + 1))
    return {
        "reason": unhealthy_reason(engine),
        "partitions": engine.partitions,
        "processed_here": sorted(p.partition for p in engine.processors),
        "runs_processors": engine.run_processors,
        "projector_here": projector is not None,
        "rows": rows, "unlisted": len(progress) - len(listed),
        "behind": sum(r.behind or 0 for r in rows),
        "ends_known": bool(ends),
        "dead_lettered": total(metrics, "flowmonkey_processor_dead_lettered"),
        "topic_dead_letters": [
            (s.labels.get("trigger", ""), s.value)
            for s in samples(metrics, "flowmonkey_trigger_consumer_records")
            if s.labels.get("outcome") == "dead_lettered" and s.value],
        "rejected": by_label(metrics, "flowmonkey_processor_commands_rejected", "code"),
        "handler_runs": by_label(metrics, "flowmonkey_processor_handler_runs", "outcome"),
        "decided": total(metrics, "flowmonkey_processor_commands_decided"),
        "appended": total(metrics, "flowmonkey_processor_events_appended"),
        "applied": total(metrics, "flowmonkey_projector_events_applied"),
        "skipped": total(metrics, "flowmonkey_projector_records_skipped"),
        "in_flight": total(metrics, "flowmonkey_processor_handlers_in_flight"),
        "jobs_running": total(metrics, "flowmonkey_worker_jobs_running"),
        "lag": lag_summary(metrics),
        "wal_count": wal_count, "wal_limit": WAL_COUNT_LIMIT,
    }


@router.get("/ui/health")
async def health(request: Request, engine: EngineDep, session: Session) -> HTMLResponse:
    return page(request, "health.html", session, **await _context(engine, session))


@router.get("/ui/health/live")
async def health_live(request: Request, engine: EngineDep,
                      session: Session) -> HTMLResponse:
    """The page's panels alone: htmx polls this while the page is open."""
    return partial(request, "health_panels.html", session, **await _context(engine, session))
