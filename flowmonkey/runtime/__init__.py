"""What an Engine runs on, below its public API: the wiring of the log, projection,
processors and projector (:mod:`.wiring`), the flows-topic sync (:mod:`.flow_sync`),
the waiters that turn events into answers (:mod:`.waiters`), and opt-in process
tuning (:mod:`.gc_tuning`)."""
