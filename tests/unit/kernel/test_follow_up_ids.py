"""Follow-up command ids: fixed length at every hop, the same for the same decision."""

from __future__ import annotations

from flowmonkey.events import names as n
from flowmonkey.kernel.ids import FOLLOW_UP_ID_LENGTH, FOLLOW_UP_PREFIX, follow_up_command_id


def test_a_follow_up_id_is_the_same_each_time_the_decision_is_made() -> None:
    first = follow_up_command_id("result:e1:4", n.CMD_START, "child-1")

    assert follow_up_command_id("result:e1:4", n.CMD_START, "child-1") == first
    assert first.startswith(FOLLOW_UP_PREFIX)
    assert len(first) == FOLLOW_UP_ID_LENGTH


def test_ids_chained_over_ten_thousand_hops_keep_their_length() -> None:
    command_id = "cancel-root"
    seen = set()
    for hop in range(10_000):
        command_id = follow_up_command_id(command_id, n.CMD_CANCEL, f"child-{hop}")
        seen.add(command_id)

    assert len(command_id) == FOLLOW_UP_ID_LENGTH
    assert len(seen) == 10_000


def test_each_part_of_the_cause_changes_the_id() -> None:
    ids = {
        follow_up_command_id("c1", n.CMD_CANCEL, "e1"),
        follow_up_command_id("c2", n.CMD_CANCEL, "e1"),
        follow_up_command_id("c1", n.CMD_START, "e1"),
        follow_up_command_id("c1", n.CMD_CANCEL, "e2"),
        # the same characters split differently are another cause
        follow_up_command_id("c1e", n.CMD_CANCEL, "1"),
    }

    assert len(ids) == 5


def test_odd_text_in_a_cause_is_hashed_too() -> None:
    assert len(follow_up_command_id("lone \ud800 surrogate", n.CMD_CANCEL, "e")) == \
        FOLLOW_UP_ID_LENGTH
