"""Golden histories (``tests/golden``): stored logs must keep replaying to the stored states,
and the kernel must keep emitting the stored events for the same commands.

A failure here means the meaning of the log changed. If that was deliberate, regenerate
with ``.venv/bin/python -m tests.golden.regenerate`` and review the diff (see that
script's docstring); otherwise the kernel has drifted.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import pytest

from flowmonkey.events.codec import decode_event
from flowmonkey.events.envelope import Event
from flowmonkey.kernel.apply import replay
from tests.golden.regenerate import SCENARIOS, build, load, path_of

NAMES = sorted(SCENARIOS)


def stored_events(document: dict[str, Any]) -> dict[str, list[Event]]:
    """The stored events, decoded as the log's reader does, per execution."""
    by_execution: dict[str, list[Event]] = defaultdict(list)
    for raw in document["events"]:
        event = decode_event(orjson.dumps(raw))
        if event.seq > 0:
            by_execution[event.execution_id].append(event)
    return by_execution


def test_there_are_golden_files_for_every_scenario() -> None:
    assert len(NAMES) >= 4
    for name in NAMES:
        assert path_of(name).is_file(), f"missing {path_of(name)}; run the regenerate script"


@pytest.mark.parametrize("name", NAMES)
def test_the_stored_history_replays_to_the_stored_final_state(name: str) -> None:
    document = load(name)
    histories = stored_events(document)

    assert set(histories) == set(document["final_states"])
    for execution_id, events in histories.items():
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        state = replay(events)
        assert state is not None
        replayed = state.to_execution().model_dump(mode="json")
        assert replayed == document["final_states"][execution_id], (
            f"{name}: replaying {execution_id}'s stored events no longer gives its stored "
            "state (an applier changed the meaning of an old event)")


@pytest.mark.parametrize("name", NAMES)
def test_the_kernel_still_emits_the_stored_events(name: str) -> None:
    stored = load(name)

    fresh = build(name)

    for index, (now, then) in enumerate(zip(fresh["events"], stored["events"], strict=False)):
        assert now == then, f"{name}: event #{index} drifted"
    assert len(fresh["events"]) == len(stored["events"]), f"{name}: event count drifted"
    assert fresh["final_states"] == stored["final_states"]
