"""A FlowMonkey process on a durable embedded log, for the crash-recovery test.

    python -m tests.recovery.durable_app DATA_DIR create N   # start N, keep running
    python -m tests.recovery.durable_app DATA_DIR finish     # reopen, run until all end

It runs the Kafka crash test's ``crashy`` flow and handlers (``kafka_app``).

Prints progress lines the test reads ("created N", "progress K", "all done").
"""

from __future__ import annotations

import asyncio
import sys

from flowmonkey import Engine
from flowmonkey.log import EmbeddedLog
from flowmonkey.model.execution import ExecutionStatus
from tests.recovery.kafka_app import CRASHY, flaky, nap, noop


async def main(data_dir: str, mode: str, count: int) -> None:
    engine = Engine(flows=[CRASHY], handlers=[noop, nap, flaky],
                    log=EmbeddedLog(path=data_dir, partitions=4))
    async with engine:
        if mode == "create":
            await asyncio.gather(*(engine.create("crashy", {"i": i}) for i in range(count)))
            print(f"created {count}", flush=True)
        while True:
            page = await engine.list(limit=10_000)
            done = sum(1 for e in page.items if e.status.is_terminal)
            print(f"progress {done}/{len(page.items)}", flush=True)
            if page.items and done == len(page.items) and \
                    all(e.status == ExecutionStatus.COMPLETED for e in page.items):
                print("all done", flush=True)
                return
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0))
