"""The running step's deadline, for synchronous work that cannot be cancelled.

The step timeout cancels a handler's task, but cancellation only lands when the task
waits: an expression evaluating for seconds holds the event loop, and the timer that
would cancel it cannot run. So the step runner also publishes the attempt's deadline
here (a context variable: each attempt runs in a context of its own), and long
synchronous work - the expression evaluator - calls :func:`check_deadline` as it goes.
Past the deadline it raises :class:`StepDeadlineExceeded`, a ``TimeoutError``, which the
runner records as the step's timeout (``HANDLER_TIMEOUT``), as if the timer had fired.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("flowmonkey_step_deadline", default=None)


class StepDeadlineExceeded(TimeoutError):
    """Synchronous handler work ran past the step's timeout."""


def step_deadline() -> float | None:
    """The running attempt's deadline on :func:`time.monotonic`'s clock, or None."""
    return _DEADLINE.get()


class running_until:  # named like the function it replaces (contextlib style)
    """Within the block, :func:`step_deadline` is ``deadline``. A class, not a
    generator-based context manager: it runs around every step's start, where the
    generator's machinery would cost more than the work it guards."""

    __slots__ = ("_deadline", "_token")

    def __init__(self, deadline: float | None) -> None:
        self._deadline = deadline

    def __enter__(self) -> None:
        self._token = _DEADLINE.set(self._deadline)

    def __exit__(self, *exc: object) -> None:
        _DEADLINE.reset(self._token)


def check_deadline(deadline: float | None) -> None:
    """Raise :class:`StepDeadlineExceeded` when ``deadline`` has passed."""
    if deadline is not None and time.monotonic() > deadline:
        raise StepDeadlineExceeded("the step ran past its timeout")
