"""kill -9 of a process appending to a durable embedded log: the next start never
refuses, and every append the process was told had succeeded is there, at its offset.

The writer runs in a child process with tiny segments (a roll every few appends),
and is killed at random moments (seeded), so kills land inside frame writes, journal
writes and checkpoints alike; every other round it kills itself right after a segment
roll, the narrowest window (an empty segment for records not written yet).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import textwrap
import time
from pathlib import Path

from flowmonkey.log import EmbeddedLog

REPO = Path(__file__).resolve().parents[2]
SEGMENT_BYTES = 120

WRITER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    import flowmonkey.log._embedded_store as store
    import flowmonkey.log.embedded as embedded
    from flowmonkey.log import EmbeddedLog, OutRecord, TopicSpec

    embedded.JOURNAL_COMPACT_BYTES = 2048  # checkpoints inside rounds, often
    path, acks, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    kill_at_roll = int(sys.argv[5])  # > 0: kill -9 itself right after that roll
    rolls = 0
    roll = store.DiskStore._roll

    def roll_then_maybe_die(self, files, base):
        global rolls
        roll(self, files, base)
        rolls += 1
        if rolls == kill_at_roll:
            os.kill(os.getpid(), signal.SIGKILL)

    store.DiskStore._roll = roll_then_maybe_die

    async def main():
        log = EmbeddedLog(path, partitions=2, segment_bytes=int(sys.argv[4]))
        await log.start()
        await log.create_topics([TopicSpec("a", 2), TopicSpec("b", 1)])
        out = open(acks, "a", buffering=1)

        async def worker(w):
            i = 0
            while True:
                i += 1
                records = [OutRecord("ab"[(i + j) % 2], b"%d-%d-%d-%d" % (seed, w, i, j)
                                     * (1 + (i * 7 + j) % 9)) for j in range(1 + i % 4)]
                end = await log.end_offset("b", 0)
                positions = await log.append(records, commit_group="g",
                                             commit_offsets={("b", 0): end})
                out.write(" ".join(f"{p.topic},{p.partition},{p.offset},{r.value.decode()}"
                                   for p, r in zip(positions, records)) + "\\n")

        await asyncio.gather(*(worker(w) for w in range(6)))

    asyncio.run(main())
    """
)


def acknowledged(acks: Path) -> list[tuple[str, int, int, bytes]]:
    """The appends the writer was told had succeeded (a line cut by the kill is not)."""
    if not acks.exists():
        return []
    found = []
    for line in acks.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            continue
        for item in line.split():
            topic, partition, offset, value = item.split(",", 3)
            found.append((topic, int(partition), int(offset), value.encode()))
    return found


async def kill_while_appending(root: Path, acks: Path, seed: int, rng: random.Random) -> None:
    """Start the writer, let it acknowledge a random number of appends, kill -9 it."""
    before = len(acknowledged(acks))
    target = before + rng.randint(1, 150)
    # every other round the writer kills itself right after a segment roll, the
    # narrowest window (a new empty segment, its records not written yet)
    kill_at_roll = rng.randint(1, 100) if seed % 2 else 0
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(root), str(acks), str(seed), str(SEGMENT_BYTES),
        str(kill_at_roll), env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 30
    try:
        while len(acknowledged(acks)) < target:
            if child.returncode == -signal.SIGKILL and kill_at_roll:
                return
            assert child.returncode is None, f"the writer exited with {child.returncode}"
            assert time.monotonic() < deadline, "the writer acknowledged too few appends"
            await asyncio.sleep(0.005)  # polling the acks file, not waiting for a result
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGKILL)
        await child.wait()


async def test_kill_9_at_random_moments_never_stops_the_next_start(tmp_path: Path) -> None:
    rng = random.Random(20261204)
    root, acks = tmp_path / "data", tmp_path / "acks"
    for seed in range(8):
        await kill_while_appending(root, acks, seed, rng)
        log = EmbeddedLog(root, partitions=2, segment_bytes=SEGMENT_BYTES)
        await log.start()  # never refuses after a kill
        try:
            expected = acknowledged(acks)
            assert expected
            for topic, partition, offset, value in expected:
                records = await log.read(topic, partition, offset, 1)
                assert records, (topic, partition, offset)
                assert records[0].offset == offset
                assert records[0].value == value
            for topic, count in (("a", 2), ("b", 1)):
                for partition in range(count):
                    directory = root / topic / str(partition)
                    end = await log.end_offset(topic, partition)
                    bases = sorted(int(p.name[:20]) for p in directory.glob("*.log"))
                    # no segment is named past the partition's end: the next append
                    # never lands in a file named after a later offset
                    assert all(base <= end for base in bases), (directory, bases, end)
        finally:
            await log.close()
