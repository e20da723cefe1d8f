"""Forms: public forms whose submissions start executions or resume a waiting step.

A form is an entity on the log like a trigger (``form:<id>``, a seq of its own, state
in ``PartitionState.forms``). Its commands are decided here:

* ``form.register``: a new or changed definition -> ``form.registered``; an identical
  one is ignored. ``enabled`` comes from the definition.
* ``form.submit``: one submission, already parsed, sanitised and validated by the API
  (its ``verdict``), decided in this order:

  1. form unknown -> ``command.rejected`` ``FORM_NOT_FOUND``; disabled ->
     ``form.rejected`` ``disabled``;
  2. verdict ``spam`` / ``invalid`` / ``captcha_failed`` -> ``form.rejected`` with that
     reason (kept for the record, and counted against the rate limits);
  3. a rate limit (per address, per form) reached -> ``form.rejected``
     ``rate_limited`` with ``retry_after_ms``;
  4. the same content (hash) accepted within the duplicate window -> ``form.rejected``
     ``duplicate`` naming the first submission and its execution;
  5. with a token (a ``form-submit`` step waits): ``form.submitted`` (``resumed``) and
     a follow-up ``execution.resume`` of that execution with the token and the data
     (the execution's partition decides whether the token is good);
  6. else ``form.submitted`` and a follow-up ``execution.start`` of the form's flow
     (execution id derived from the form and the submission, so the start is made
     once whatever is redelivered).

Because every submission to a form is decided by its one partition, the limits and
the duplicate window hold across any number of API processes.
"""

from __future__ import annotations

import ipaddress
from hashlib import blake2b
from typing import Any

import orjson

from flowmonkey.events import names as n
from flowmonkey.events.envelope import ms_to_datetime
from flowmonkey.kernel import limits as lim
from flowmonkey.kernel.decision import Decision, Txn
from flowmonkey.kernel.form_apply import windowed
from flowmonkey.kernel.form_checks import describe, form_problems
from flowmonkey.kernel.form_state import FormState, form_definition
from flowmonkey.kernel.inputs import InputError, resolve_input
from flowmonkey.kernel.registering import registered_model
from flowmonkey.model.form import Form

REJECT_FORM_NOT_FOUND = "FORM_NOT_FOUND"
EXECUTION_ID_PREFIX = "frm-"
_ID_HEX = 24
IPV6_PREFIX = 64
"""An IPv6 client is limited by its /64 network: one subscriber usually has a whole
one, and rotating addresses within it must not reset the per-address window."""


# --------------------------------------------------------------------------- keys


def submission_execution_id(form_id: str, submission_id: str) -> str:
    """The execution a submission starts: the same whenever its command is decided."""
    return EXECUTION_ID_PREFIX + _digest(_ID_HEX // 2, form_id, submission_id)


def address_key(form_id: str, address: str) -> str:
    """The key of a client address in a form's windows: a hash keyed by the form, so
    the log and the snapshots never hold the address itself (an IPv6 address counts
    as its /64 network)."""
    return _digest(16, form_id, _network(address))


def content_hash(data: Any, token: str | None = None) -> str:
    """The hash of a submission's normalised content (its sanitised data, keys in
    order, and the token it answers: one step's approval is no duplicate of
    another's)."""
    body = orjson.dumps([data, token], option=orjson.OPT_SORT_KEYS)
    return blake2b(body, digest_size=16).hexdigest()


def _network(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def _digest(size: int, *parts: str) -> str:
    digest = blake2b(digest_size=size)
    for part in parts:  # lengths first, so no two different tuples hash the same bytes
        raw = part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest.hexdigest()


# --------------------------------------------------------------------------- entry


def decide_form_command(tx: Txn) -> Decision:
    if tx.cmd.type == n.CMD_FORM_REGISTER:
        return _register(tx)
    return _submit(tx)


def _form_id(tx: Txn) -> str:
    return tx.cmd.execution_id.partition(":")[2]


def _register(tx: Txn) -> Decision:
    d = tx.cmd.data
    model = registered_model(tx, Form, "form", form_problems, describe)
    if isinstance(model, Decision):
        return model
    definition = form_definition(model)
    fs = tx.form(tx.cmd.execution_id)
    if fs is not None and fs.definition == definition:
        return tx.ignore("identical form definition")
    tx.emit_form(fs, tx.cmd.execution_id, n.FORM_REGISTERED, {
        "definition": definition, "by": d.get("by"), "changed": fs is not None},
        tenant_id=model.tenant_id)
    return tx.decision


def _submit(tx: Txn) -> Decision:
    fs = tx.form(tx.cmd.execution_id)
    if fs is None or (tx.cmd.tenant_id is not None and fs.tenant_id != tx.cmd.tenant_id):
        return tx.reject(REJECT_FORM_NOT_FOUND, f"form {_form_id(tx)!r} is not registered")
    d = tx.cmd.data
    base: dict[str, Any] = {"submission_id": d["submission_id"],
                            "address_key": d.get("address_key"),
                            "content_hash": d["content_hash"]}
    if not fs.enabled:
        return _rejected(tx, fs, base, "disabled")
    verdict = d["verdict"]
    if verdict != "valid":
        kept = d.get("data") if verdict == "invalid" else None
        return _rejected(tx, fs, base, verdict, errors=d.get("errors") or [], data=kept)
    model = fs.model()
    retry_after = _retry_after(fs, model, d.get("address_key"), tx.now)
    if retry_after is not None:
        return _rejected(tx, fs, base, "rate_limited", retry_after_ms=retry_after)
    first = fs.duplicates.get(d["content_hash"]) if model.duplicate_window_s else None
    if first is not None and first[2] > tx.now:
        return _rejected(tx, fs, base, "duplicate", first_submission_id=first[0],
                         execution_id=first[1])
    data = d["data"]
    token = d.get("token")
    if token is not None:
        execution_id = d["execution_id"]
        tx.emit_form(fs, fs.entity_id, n.FORM_SUBMITTED, {
            **base, "execution_id": execution_id, "data": data, "resumed": True})
        tx.follow_up(n.CMD_RESUME, execution_id, {"token": token, "data": data},
                     fs.tenant_id)
        return tx.decision
    if model.flow_id is None:
        return _rejected(tx, fs, base, "invalid", data=data, errors=[{
            "pointer": "", "message": f"form {model.id!r} starts no flow: a submission "
                                      "must carry the token of the step waiting for it"}])
    try:
        context = _context(model, data, d["submission_id"], tx.now)
    except _ContextError as exc:
        return _rejected(tx, fs, base, "invalid", data=data,
                         errors=[{"pointer": "", "message": str(exc)[:500]}])
    execution_id = submission_execution_id(model.id, d["submission_id"])
    tx.emit_form(fs, fs.entity_id, n.FORM_SUBMITTED, {
        **base, "execution_id": execution_id, "data": data, "resumed": False})
    start: dict[str, Any] = {
        "flow_id": model.flow_id, "context": context,
        "metadata": {"form": {"id": model.id, "submission": d["submission_id"]}}}
    if model.flow_version is not None:
        start["flow_version"] = model.flow_version
    tx.follow_up(n.CMD_START, execution_id, start, fs.tenant_id)
    return tx.decision


def _rejected(tx: Txn, fs: FormState, base: dict[str, Any], reason: str,
              **more: Any) -> Decision:
    tx.emit_form(fs, fs.entity_id, n.FORM_REJECTED, {**base, "reason": reason, **{
        k: v for k, v in more.items() if v is not None}})
    return tx.decision


def _retry_after(fs: FormState, model: Form, key: str | None, now: int) -> int | None:
    """How long until a submission fits the rate limits (ms), None if it fits now."""
    limits = model.rate_limit
    if limits is None:
        return None
    waits: list[int] = []
    if limits.per_form is not None:
        waits.append(_wait(windowed(fs.recent, now, limits.per_form), limits.per_form.count,
                           limits.per_form.window_s, now))
    if limits.per_address is not None and key is not None:
        times = windowed(fs.addresses.get(key, ()), now, limits.per_address)
        waits.append(_wait(times, limits.per_address.count, limits.per_address.window_s, now))
    longest = max(waits, default=0)
    return longest if longest > 0 else None


def _wait(times: tuple[int, ...], count: int, window_s: int, now: int) -> int:
    if len(times) < count:
        return 0
    # the submission that must leave the window before one more fits
    return max(1, times[-count] + window_s * 1000 - now)


class _ContextError(Exception):
    pass


def _context(model: Form, data: dict[str, Any], submission_id: str,
             now: int) -> dict[str, Any]:
    if model.context is not None:
        document = {"data": data, "form": model.id,
                    "submission": {"id": submission_id,
                                   "submittedAt": ms_to_datetime(now).isoformat()}}
        try:
            value = resolve_input(model.context, document)
        except (InputError, TypeError, ValueError) as exc:
            raise _ContextError(f"context: {exc}") from None
    else:
        value = data
    try:
        return lim.started_context(value)
    except lim.LimitViolation as violation:
        raise _ContextError(f"context: {violation.message}") from None


__all__ = ["EXECUTION_ID_PREFIX", "REJECT_FORM_NOT_FOUND", "address_key", "content_hash",
           "decide_form_command", "submission_execution_id"]
