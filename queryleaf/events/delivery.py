"""Delivering one change event: sinks, retries with backoff, the outcome.

``Delivery.deliver(event)`` is the one step between the stream and the event log; batching,
timeouts and concurrency (issue 4) grow here without touching the stream loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from queryleaf.events.retry import RetryPolicy
from queryleaf.events.sinks import Sink


@dataclass(frozen=True)
class Outcome:
    status: str  # 'completed' | 'failed' | 'dead_letter'
    retries: int
    error: str | None = None


class Delivery:
    def __init__(self, sinks: Sequence[Sink], policy: RetryPolicy, stop: threading.Event,
                 on_retry: Callable[[int, str], None] | None = None):
        self.sinks = list(sinks)
        self.policy = policy
        self.stop = stop
        self.on_retry = on_retry  # called (retry number, last error) before each retry

    def deliver(self, event: dict[str, Any]) -> Outcome | None:
        """Deliver to every sink, retrying per the policy.

        None means abandoned: the worker is stopping while waiting to retry (the event stays
        unacknowledged and is delivered again by the next worker).
        """
        error = ""
        for attempt in range(self.policy.attempts):
            if attempt:
                if self.on_retry is not None:
                    self.on_retry(attempt, error)
                if self.stop.wait(self.policy.delay(attempt)):
                    return None
            try:
                for sink in self.sinks:
                    sink.deliver(event)
            except Exception as exc:  # any failure of user code or a target counts
                error = f"{type(exc).__name__}: {exc}"
                continue
            return Outcome("completed", attempt)
        return Outcome(self.policy.exhausted_status, self.policy.max_retry_attempts, error)
