"""The long-running commands' garbage-collector option."""

from __future__ import annotations

import argparse
import gc

from flowmonkey.cli.options import add_gc_option
from flowmonkey.cli.service import apply_gc_option
from flowmonkey.runtime.gc_tuning import DEFAULT_THRESHOLDS, restore_gc


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_gc_option(parser)
    return parser.parse_args(list(argv))


def test_a_dedicated_process_tunes_the_collector_by_default() -> None:
    before = gc.get_threshold()
    try:
        apply_gc_option(_args())
        assert gc.get_threshold() == DEFAULT_THRESHOLDS
    finally:
        restore_gc((before[0], before[1], before[2]))
    assert gc.get_threshold() == before


def test_no_tune_gc_keeps_the_defaults() -> None:
    before = gc.get_threshold()
    apply_gc_option(_args("--no-tune-gc"))
    assert gc.get_threshold() == before
