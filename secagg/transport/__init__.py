"""Transports that carry secagg messages: `memory` runs a whole round in one process."""

from secagg.transport.memory import AggregateResult, TranscriptEntry, aggregate, secure_sum

__all__ = ["AggregateResult", "TranscriptEntry", "aggregate", "secure_sum"]
