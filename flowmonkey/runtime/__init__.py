"""What an :class:`~flowmonkey.engine.Engine` runs on, below its public API.

* :mod:`.wiring`: the log, projection, projector and partition processors of an
  engine, started and stopped in order (group processors where the log's
  capabilities offer consumer groups);
* :mod:`.flow_sync`: the flows topic, adopted and published to;
* :mod:`.waiters`: the futures of ``create``/``resume``/``cancel`` answers and of
  ``wait``, resolved by the projector's batches;
* :mod:`.commands`: a command's record, its routing, and the error a rejection raises;
* :mod:`.registration`: handlers and flows given to an engine, validated;
* :mod:`.replay`: an execution rebuilt from the events topic;
* :mod:`.gc_tuning`: opt-in garbage-collector tuning for busy processes.

It sits between the processors and projections below it and the public face
(``engine``, ``settings``) above it.
"""
