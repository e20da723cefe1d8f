"""Testing helpers: the TestHarness with simulated time (services live in ``.services``)."""

from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.testing.harness import RunResult, TestHarness

__all__ = ["RunResult", "SimulatedClock", "TestHarness"]
