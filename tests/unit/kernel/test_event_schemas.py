"""Every event the kernel emits matches the schema registered for its type and version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.codec import decode_event
from flowmonkey.events.types import EVENT_SCHEMAS, json_schemas, payload

GOLDEN = sorted((Path(__file__).parents[2] / "golden").glob("*.json"))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_every_event_in_a_golden_history_matches_its_schema(path: Path) -> None:
    stored = json.loads(path.read_text())
    events = stored["events"] if isinstance(stored, dict) else stored
    assert events
    for raw in events:
        event = decode_event(json.dumps(raw).encode())
        payload(event)  # raises if the data does not match


def test_every_history_event_type_has_a_schema() -> None:
    history_types = {value for name, value in vars(n).items()
                     if isinstance(value, str) and (name.startswith(("EXECUTION_", "STEP_",
                                                                      "TOKEN_", "CHILD_", "JOB_"))
                                                    or name in ("TRANSITION", "IDEMPOTENCY_HIT",
                                                                "PIPE_ROW", "COMMAND_REJECTED"))}
    assert history_types <= {type_ for type_, _ in EVENT_SCHEMAS}


def test_schemas_are_published_as_json_schema() -> None:
    schemas = json_schemas()
    assert "step.completed@v1" in schemas
    assert schemas["step.completed@v1"]["properties"]["outcome"]["enum"] == [
        "success", "failure", "wait"]
