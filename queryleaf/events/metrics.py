"""Per-subscription metrics kept by a runner and written with its checkpoints.

Counters are exact: they are ``$inc``-ed in the same write that stores the resume token of the
events they count, so a crash never counts an event twice or loses a count that was
checkpointed. Processing-time percentiles come from the most recent ``WINDOW`` delivery
durations (a sliding window, not all time) and are recomputed at most once a second.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

WINDOW = 1024
PERCENTILE_EVERY_S = 1.0

COUNTER_FOR_STATUS = {
    "completed": ("events_processed",),
    "failed": ("events_failed",),
    "dead_letter": ("events_failed", "events_dead_lettered"),
}


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n*q/100), at least 1
    return sorted_values[int(rank) - 1]


@dataclass
class Metrics:
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    pending: dict[str, int] = field(default_factory=dict)  # counters not yet written
    computed_at: float = 0.0
    dirty: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: str, retries: int, duration_ms: float | None) -> None:
        with self.lock:
            self._add("events_received", 1)
            for counter in COUNTER_FOR_STATUS.get(status, ()):
                self._add(counter, 1)
            if retries:
                self._add("events_retried", retries)
            if duration_ms is not None:
                self.durations.append(duration_ms)
                self.dirty = True

    def _add(self, counter: str, n: int) -> None:
        self.pending[counter] = self.pending.get(counter, 0) + n

    def take_increments(self) -> dict[str, int]:
        """The counters to ``$inc`` with the next checkpoint (reset here)."""
        with self.lock:
            out, self.pending = self.pending, {}
        return out

    def percentiles(self, force: bool = False) -> dict[str, Any] | None:
        """``{processing_time_p50_ms, processing_time_p99_ms}`` when due, else None."""
        now = time.monotonic()
        with self.lock:
            if not self.dirty or (not force and now - self.computed_at < PERCENTILE_EVERY_S):
                return None
            values = sorted(self.durations)
            self.dirty = False
            self.computed_at = now
        return {
            "processing_time_p50_ms": percentile(values, 50),
            "processing_time_p99_ms": percentile(values, 99),
        }
