"""The retry policy of a subscription: how many attempts, and how long to wait between them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RetryPolicy:
    max_retry_attempts: int = 3  # retries after the first attempt
    retry_delay_ms: int = 1000
    exponential_backoff: bool = True
    dead_letter_queue_enabled: bool = True

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> RetryPolicy:
        return cls(
            options["max_retry_attempts"],
            options["retry_delay_ms"],
            options["exponential_backoff"],
            options["dead_letter_queue_enabled"],
        )

    @property
    def attempts(self) -> int:
        return 1 + self.max_retry_attempts

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        factor = 2 ** (retry - 1) if self.exponential_backoff else 1
        return self.retry_delay_ms * factor / 1000

    @property
    def exhausted_status(self) -> str:
        """The event log status of an event whose every attempt failed."""
        return "dead_letter" if self.dead_letter_queue_enabled else "failed"
