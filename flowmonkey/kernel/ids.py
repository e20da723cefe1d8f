"""Ids the kernel derives for what it emits, of bounded length.

A follow-up command (a child's start, a cancel to a child, a ``child.finished`` to a
parent) needs an id that is the same each time its decision is made again (a
processor that crashed before its append decides the command again, and the target
partition must recognise the duplicate by id). The causing command's id with the type
and target appended would be deterministic too, but would grow by ~50 characters at
each hop of a chain of sub-flows (521 KB per event after 10,000 hops). Hashing the
same parts gives the same determinism at a fixed length.
"""

from __future__ import annotations

from hashlib import blake2b

FOLLOW_UP_PREFIX = "fu-"
_DIGEST_BYTES = 16  # 128 bits: collisions are out of reach for any log's lifetime
FOLLOW_UP_ID_LENGTH = len(FOLLOW_UP_PREFIX) + 2 * _DIGEST_BYTES
"""Every follow-up command id has exactly this many characters."""


def follow_up_command_id(cause_command_id: str, command_type: str, execution_id: str) -> str:
    """The id of the ``command_type`` command for ``execution_id`` that the command
    ``cause_command_id`` leads to: deterministic, and ``FOLLOW_UP_ID_LENGTH`` long."""
    digest = blake2b(digest_size=_DIGEST_BYTES)
    # lengths first, so no two different triples hash the same bytes
    for part in (cause_command_id, command_type, execution_id):
        raw = part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return FOLLOW_UP_PREFIX + digest.hexdigest()


__all__ = ["FOLLOW_UP_ID_LENGTH", "FOLLOW_UP_PREFIX", "follow_up_command_id"]
