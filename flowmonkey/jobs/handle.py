"""``params.job``: what a stateful handler holds of its job while a worker runs it.

Every method talks to the job's execution partition through the worker (a command on
the commands topic, its answer a view on the jobs topic). What the worker learns
from any answer (a heartbeat's, a checkpoint's) marks the handle: once it is
superseded or cancelled, every later call raises at once, without a round trip.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from flowmonkey.errors import FlowMonkeyError, JobCancelledError, JobSupersededError
from flowmonkey.events import names as n
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.job_checks import MAX_MESSAGE_CHARS
from flowmonkey.kernel.jobs import PROGRESS_INTERVAL_MS
from flowmonkey.processors.clock import Clock, TimerHandle

SUPERSEDED = "superseded"
CANCELLED = "cancelled"


class Sender(Protocol):
    """The worker's side of a job's commands (see ``Worker``)."""

    clock: Clock

    async def ask(self, type: str, view: dict[str, Any],
                  data: dict[str, Any]) -> dict[str, Any] | None:
        """Send a command about the job ``view`` names; its answer (None: none came)."""
        ...

    def tell(self, type: str, view: dict[str, Any], data: dict[str, Any]) -> None:
        """Send a command and wait for nothing."""
        ...


class JobHandle:
    """``params.job`` (:class:`~flowmonkey.handlers.base.JobControl`)."""

    def __init__(self, sender: Sender, claimed: dict[str, Any]) -> None:
        """``claimed``: the view that answered this worker's won claim."""
        self._sender = sender
        self._view = claimed
        self._checkpoint = claimed.get("checkpoint_data")
        self.ended: str | None = None  # SUPERSEDED or CANCELLED, once learnt
        self.reason = ""
        self._progress_next: tuple[float, str | None] | None = None
        self._progress_sent_at: int | None = None
        self._progress_timer: TimerHandle | None = None

    @property
    def id(self) -> str:
        return str(self._view["job_id"])

    @property
    def instance_id(self) -> str:
        return str(self._view["instance_id"])

    @property
    def attempt(self) -> int:
        return int(self._view["attempt"])

    @property
    def checkpoint_data(self) -> Any:
        """The last checkpoint taken (the one a re-claimed job resumes from)."""
        return self._checkpoint

    @property
    def view(self) -> dict[str, Any]:
        return self._view

    # ------------------------------------------------------------------ the handler's

    async def checkpoint(self, data: Any) -> None:
        """Record ``data`` as where the job has got to; returns once it is on the log."""
        self._raise_if_ended()
        answer = await self._sender.ask(n.CMD_JOB_CHECKPOINT, self._view, {"data": data})
        if answer is None:
            raise FlowMonkeyError(f"job {self.id}: the checkpoint got no answer in time",
                                  code="JOB_NO_ANSWER")
        if not answer["accepted"]:
            self.note(answer)
            self._raise_if_ended()
            raise FlowMonkeyError(f"job {self.id}: {answer.get('reason')}",
                                  code=str(answer.get("code") or "JOB_REFUSED"))
        self._checkpoint = private_copy(data)

    async def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress (0 to 100). Never waits: reports closer together than a
        second are coalesced, the last one sent when the second is up."""
        if isinstance(percent, bool) or not isinstance(percent, int | float) or \
                not math.isfinite(percent) or not 0 <= percent <= 100:
            raise ValueError(f"progress percent must be a number from 0 to 100, "
                             f"not {percent!r}")
        if message is not None and not isinstance(message, str):
            raise ValueError(f"progress message must be a string, not {type(message).__name__}")
        self._raise_if_ended()
        self._progress_next = (percent, None if message is None else
                               message.replace("\x00", "")[:MAX_MESSAGE_CHARS])
        if self._progress_timer is not None:
            return  # a flush is due: it sends the latest
        now = self._sender.clock.now_ms()
        due = now if self._progress_sent_at is None else \
            self._progress_sent_at + PROGRESS_INTERVAL_MS
        if due <= now:
            self._flush_progress()
        else:
            self._progress_timer = self._sender.clock.call_at(due, self._flush_progress)

    async def assert_active(self) -> None:
        """Raise if the job is no longer this worker's (superseded or cancelled), as far
        as the worker knows (it hears at every heartbeat)."""
        self._raise_if_ended()

    # ------------------------------------------------------------------ the worker's

    def note(self, answer: dict[str, Any]) -> None:
        """Learn from a refused command's answer whether the job is lost."""
        if answer.get("accepted") or self.ended is not None:
            return
        code = answer.get("code")
        if code == n.REJECT_JOB_SUPERSEDED:
            self.ended = SUPERSEDED
        elif code in (n.REJECT_JOB_CANCELLED, n.REJECT_JOB_NOT_FOUND):
            # not found: the job ended without this worker (timed out, or its
            # execution is gone): nothing it does counts any more
            self.ended = CANCELLED
        else:
            return
        self.reason = str(answer.get("reason") or code)

    def close(self) -> None:
        """The job is over here: a coalesced progress report still due is dropped."""
        if self._progress_timer is not None:
            self._progress_timer.cancel()
            self._progress_timer = None
        self._progress_next = None

    def _flush_progress(self) -> None:
        self._progress_timer = None
        pending, self._progress_next = self._progress_next, None
        if pending is None or self.ended is not None:
            return
        self._progress_sent_at = self._sender.clock.now_ms()
        percent, message = pending
        data: dict[str, Any] = {"percent": percent}
        if message is not None:
            data["message"] = message
        self._sender.tell(n.CMD_JOB_PROGRESS, self._view, data)

    def _raise_if_ended(self) -> None:
        if self.ended == SUPERSEDED:
            raise JobSupersededError(f"job {self.id}: this worker no longer holds it "
                                     f"({self.reason})")
        if self.ended == CANCELLED:
            raise JobCancelledError(f"job {self.id} was cancelled ({self.reason})")
