"""PartitionState <-> bytes: the stored form of a processor snapshot.

The bytes are ``MAGIC``, one format byte, then zlib-compressed JSON (orjson)::

    {"topic": …, "partition": …, "events_offset": …, "anchor_crc": …,
     "fields": [<ExecutionState field names>],   # the order of each execution's values
     "options": [<ExecutionOptions>, …],          # each distinct options object once
     "executions": [[<value of each field>], …],  # as state_to_json writes them, but
                                                  # "options" is an index into options
     "idempotency": [[scope, execution id, expires at ms], …],
     "seen_commands": [command id, …],            # oldest first: eviction order
     "forgotten": [execution id, …],              # ended executions no longer kept
     "triggers": [<TriggerState as trigger_to_json writes it>, …],
     "forms": [<FormState as form_to_json writes it>, …]}

Everything ``decide`` reads is in it. An execution's fields use
:func:`flowmonkey.kernel.state_codec.state_to_json`, the Postgres projection's
stored form. ``anchor_crc`` is the CRC-32 of the value of the record at
``events_offset - 1``: recovery reads that record back and ignores a snapshot whose
anchor differs (a topic deleted and created again under the same name, a snapshot
filed under the wrong partition), since a snapshot must never outrank the log.

Decoding is the part of recovery a snapshot adds, so it takes the fast path of the
clone: every field at once, positionally (keyword construction of the 37-field state
costs ~6x more). A snapshot written when ExecutionState had other fields is read
through ``state_from_json``, which gives missing fields their defaults. A change to
anything else needs a new format byte and a reader for the old one: format 1 had no
"forgotten" (it is read as empty: a processor of that version forgot nothing);
format 2 had no "triggers" (read as none: that version had no triggers). Format 3
added them: a version that cannot read them refuses the snapshot and replays the log
instead of losing the triggers' state. Format 4 added "forms" (format 3 is read as
having none), for the same reason.
"""

from __future__ import annotations

import operator
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

import orjson

from flowmonkey.errors import FlowMonkeyError
from flowmonkey.kernel.apply import ending_heap
from flowmonkey.kernel.form_state import FormState, form_from_json, form_to_json
from flowmonkey.kernel.job_state import job_from_json
from flowmonkey.kernel.state import (
    ExecutionOptions,
    ExecutionState,
    PartitionState,
    TokenState,
)
from flowmonkey.kernel.state_codec import state_from_json, state_to_json
from flowmonkey.kernel.trigger_state import TriggerState, trigger_from_json, trigger_to_json
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.limits import (
    DEFAULT_MAX_CHILDREN,
    DEFAULT_MAX_SUBFLOW_DEPTH,
    ContextLimits,
    TimeoutConfig,
)

MAGIC: Final = b"FMSNAP"
FORMAT: Final = 4
_READABLE: Final = frozenset({1, 2, 3, FORMAT})
# level 1: several times faster than the default for most of its ratio on this JSON,
# and a snapshot is encoded while the processor runs
_LEVEL: Final = 1

# __init__'s parameters, in order (every field is an init field)
_FIELDS: Final = tuple(f.name for f in fields(ExecutionState))
_values_of = operator.itemgetter(*_FIELDS)
_I = {name: i for i, name in enumerate(_FIELDS)}
_STATUS, _OPTIONS, _TOKENS, _TIMEOUT, _HISTORY, _JOB = (
    _I["status"], _I["options"], _I["tokens"], _I["timeout"], _I["history"], _I["job"])
_MAYBE_EMPTY = (_I["retry_attempts"], _I["children"], _I["ended_jobs"])
_STATUSES = {s.value: s for s in ExecutionStatus}

# Shared empty containers, as the appliers use: appliers never change a container in
# place, so decoded states may share them (fewer dicts per resting execution).
_NO_DICT: dict[str, Any] = {}


class SnapshotDecodeError(FlowMonkeyError):
    """The bytes are not a snapshot this version can read, or not the one expected."""

    code = "SNAPSHOT_UNREADABLE"


@dataclass(slots=True)
class DecodedSnapshot:
    state: PartitionState
    anchor_crc: int


def anchor_of(value: bytes) -> int:
    """The anchor of a snapshot whose last covered record has ``value``."""
    return zlib.crc32(value)


def encode_partition_state(
    executions: Mapping[str, ExecutionState],
    idempotency: Mapping[str, tuple[str, int]],
    seen_commands: Iterable[str],
    forgotten: Iterable[str] = (),
    *,
    topic: str,
    partition: int,
    events_offset: int,
    anchor_crc: int,
    triggers: Mapping[str, TriggerState] | None = None,
    forms: Mapping[str, FormState] | None = None,
) -> bytes:
    """The snapshot bytes of a partition state (given as its parts, so a caller can
    hand in copies taken at a batch boundary and encode them off the loop)."""
    options: list[dict[str, Any]] = []
    option_index: dict[int, int] = {}
    rows: list[tuple[Any, ...]] = []
    for state in executions.values():
        row = state_to_json(state)
        opts = state.options
        index = option_index.get(id(opts))
        if index is None:
            index = option_index[id(opts)] = len(options)
            options.append(row["options"])
        row["options"] = index
        rows.append(_values_of(row))
    doc = {
        "topic": topic, "partition": partition, "events_offset": events_offset,
        "anchor_crc": anchor_crc, "fields": _FIELDS, "options": options, "executions": rows,
        "idempotency": [[scope, eid, expires] for scope, (eid, expires) in idempotency.items()],
        "seen_commands": list(seen_commands),
        "forgotten": sorted(forgotten),
        "triggers": [trigger_to_json(t) for t in (triggers or {}).values()],
        "forms": [form_to_json(f) for f in (forms or {}).values()],
    }
    return MAGIC + bytes([FORMAT]) + zlib.compress(orjson.dumps(doc, default=_default), _LEVEL)


def encode_snapshot_state(state: PartitionState, *, topic: str, partition: int,
                          events_offset: int, anchor_crc: int) -> bytes:
    return encode_partition_state(state.executions, state.idempotency, state.seen_commands,
                                  state.forgotten, topic=topic, partition=partition,
                                  events_offset=events_offset, anchor_crc=anchor_crc,
                                  triggers=state.triggers, forms=state.forms)


def decode_partition_state(data: bytes, *, topic: str, partition: int,
                           events_offset: int) -> DecodedSnapshot:
    """The state in ``data``, which must be the snapshot of ``topic[partition]`` as of
    ``events_offset``; SnapshotDecodeError otherwise."""
    if not data.startswith(MAGIC) or len(data) <= len(MAGIC):
        raise SnapshotDecodeError("not a FlowMonkey snapshot (bad magic bytes)")
    fmt = data[len(MAGIC)]
    if fmt not in _READABLE:
        raise SnapshotDecodeError(f"unknown snapshot format {fmt} (this version reads "
                                  f"{', '.join(map(str, sorted(_READABLE)))})", format=fmt)
    try:
        doc = orjson.loads(zlib.decompress(data[len(MAGIC) + 1:]))
        where = (doc["topic"], doc["partition"], doc["events_offset"])
        if where != (topic, partition, events_offset):
            raise SnapshotDecodeError(
                f"the snapshot is of {where[0]}[{where[1]}] as of offset {where[2]}, not "
                f"{topic}[{partition}] as of offset {events_offset}")
        return DecodedSnapshot(_partition_state(doc), int(doc["anchor_crc"]))
    except SnapshotDecodeError:
        raise
    except Exception as exc:  # truncated, garbled or hand-edited: refuse, never guess
        raise SnapshotDecodeError(f"the snapshot cannot be decoded: "
                                  f"{type(exc).__name__}: {exc}") from exc


def _partition_state(doc: dict[str, Any]) -> PartitionState:
    options = [_options(raw) for raw in doc["options"]]
    timeouts: dict[tuple[Any, ...], TimeoutConfig] = {}
    fast = tuple(doc["fields"]) == _FIELDS
    executions: dict[str, ExecutionState] = {}
    for values in doc["executions"]:
        if fast:
            state = _state(values, options, timeouts)
        else:
            state = _state_by_name(doc["fields"], values, options)
        executions[state.id] = state
    idempotency = {scope: (eid, expires) for scope, eid, expires in doc["idempotency"]}
    seen: OrderedDict[str, None] = OrderedDict.fromkeys(doc["seen_commands"])
    triggers = {t.entity_id: t for t in map(trigger_from_json, doc.get("triggers", ()))}
    forms = {f.entity_id: f for f in map(form_from_json, doc.get("forms", ()))}
    return PartitionState(executions, idempotency, seen, set(doc.get("forgotten", ())),
                          ending_heap(executions), triggers, forms)


def _state(values: list[Any], options: list[ExecutionOptions],
           timeouts: dict[tuple[Any, ...], TimeoutConfig]) -> ExecutionState:
    """One execution from its values in ``_FIELDS`` order, converted in place as
    ``state_from_json`` converts them."""
    values[_STATUS] = _STATUSES[values[_STATUS]]
    values[_OPTIONS] = options[values[_OPTIONS]]
    tokens = values[_TOKENS]
    values[_TOKENS] = {key: TokenState(t["token"], t["status"], t["created_at"],
                                       t.get("expires_at"))
                       for key, t in tokens.items()} if tokens else _NO_DICT
    timeout = values[_TIMEOUT]
    if timeout is not None:
        key = tuple(sorted(timeout.items()))
        found = timeouts.get(key)
        if found is None:  # frozen: executions with the same timeouts share one
            found = timeouts[key] = TimeoutConfig(**timeout)
        values[_TIMEOUT] = found
    values[_HISTORY] = tuple(values[_HISTORY])
    if values[_JOB] is not None:
        values[_JOB] = job_from_json(values[_JOB])
    for index in _MAYBE_EMPTY:
        if not values[index]:
            values[index] = _NO_DICT
    return ExecutionState(*values)


def _state_by_name(names: list[str], values: list[Any],
                   options: list[ExecutionOptions]) -> ExecutionState:
    """The slow path, for a snapshot written with other fields than this version's."""
    raw = dict(zip(names, values, strict=True))
    shared = options[raw.pop("options")]
    state = state_from_json(raw)
    state.options = shared
    return state


def _options(raw: dict[str, Any]) -> ExecutionOptions:
    limits = raw.get("limits")
    return ExecutionOptions(
        record_history=bool(raw.get("record_history", False)),
        max_steps=int(raw.get("max_steps", 1000)),
        limits=ContextLimits(**limits) if limits else ContextLimits(),
        max_subflow_depth=int(raw.get("max_subflow_depth", DEFAULT_MAX_SUBFLOW_DEPTH)),
        max_children=int(raw.get("max_children", DEFAULT_MAX_CHILDREN)),
    )


def _default(value: Any) -> Any:
    # as the events codec: a model in a handler's output is stored as its JSON form,
    # which is what replaying the event would give
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot encode {type(value).__name__}")
