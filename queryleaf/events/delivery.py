"""Delivering one change event (or one batch): sinks, timeouts, retries with backoff.

``Delivery.deliver(payload)`` is the one step between the stream and the event log. A payload is
an event, or a list of events for ``batch_processing`` subscriptions; every sink must accept it
for the attempt to succeed. User code (Python handlers, webhooks) runs on a helper thread so that
an attempt running longer than ``processing_timeout_ms`` can be given up on: it counts as a
failed attempt (``HandlerTimeout``) and is retried like any other failure. Python cannot stop a
thread, so the abandoned call runs on in the background; its side effects may still happen
(delivery is at-least-once anyway).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.errors import ConnectionFailure

from queryleaf.events.retry import RetryPolicy
from queryleaf.events.sinks import GroupSink, Payload, Sink

# How long a handler in flight may still finish once the worker is asked to stop.
SHUTDOWN_GRACE_S = 5.0
# A delivery running longer than this gets its event-log row marked 'processing' meanwhile.
SLOW_MARK_S = 1.0
_SLICE_S = 0.1


class HandlerTimeout(Exception):
    """A handler ran longer than processing_timeout_ms."""


class Abandoned(Exception):
    """The worker is stopping and the call was given up (the event stays unacknowledged)."""


@dataclass(frozen=True)
class Outcome:
    status: str  # 'completed' | 'failed' | 'dead_letter'
    retries: int
    error: str | None = None
    duration_ms: float = 0.0


class _Job:
    __slots__ = ("function", "payload", "done", "error")

    def __init__(self, function: Callable[[Any], Any], payload: Any):
        self.function = function
        self.payload = payload
        self.done = threading.Event()
        self.error: BaseException | None = None


class _HelperThread(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="queryleaf-handler", daemon=True)
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                job.function(job.payload)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                job.error = exc
            job.done.set()


class Caller:
    """Runs calls on a helper thread, waiting at most a timeout (one caller per thread)."""

    def __init__(self) -> None:
        self.helper: _HelperThread | None = None
        self.calling = False  # a call is in flight (the worker's stop waits for it)

    def call(
        self,
        function: Callable[[Any], Any],
        payload: Any,
        timeout_s: float,
        stop: threading.Event,
        on_slow: Callable[[], None] | None = None,
    ) -> None:
        if self.helper is None or not self.helper.is_alive():
            self.helper = _HelperThread()
            self.helper.start()
        job = _Job(function, payload)
        self.helper.jobs.put(job)
        self.calling = True
        try:
            self._wait(job, timeout_s, stop, on_slow)
        finally:
            self.calling = False

    def _wait(
        self, job: _Job, timeout_s: float, stop: threading.Event, on_slow: Callable[[], None] | None
    ) -> None:
        started = time.monotonic()
        slow_at = started + SLOW_MARK_S if on_slow is not None else None
        deadline = started + timeout_s
        grace_end: float | None = None
        while not job.done.wait(_SLICE_S if timeout_s > _SLICE_S else timeout_s):
            now = time.monotonic()
            if slow_at is not None and now >= slow_at:
                slow_at = None
                on_slow()  # type: ignore[misc]
            if now >= deadline:
                self._abandon()
                raise HandlerTimeout(
                    f"the handler ran longer than processing_timeout_ms={round(timeout_s * 1000)}"
                )
            if stop.is_set():
                grace_end = grace_end or now + SHUTDOWN_GRACE_S
                if now >= grace_end:
                    self._abandon()
                    raise Abandoned()
        if job.error is not None:
            raise job.error

    def close(self) -> None:
        self._abandon()

    def _abandon(self) -> None:
        if self.helper is not None:
            self.helper.jobs.put(None)  # it exits after the call it is stuck in
            self.helper = None


class Delivery:
    """Delivers payloads of one subscription to its sinks with its retry policy."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        policy: RetryPolicy,
        stop: threading.Event,
        timeout_ms: int = 30_000,
    ):
        self.sinks = list(sinks)
        self.policy = policy
        self.stop = stop
        self.timeout_s = timeout_ms / 1000
        self.local = threading.local()
        self.callers: list[Caller] = []
        self.callers_lock = threading.Lock()

    @property
    def calling(self) -> bool:
        """A call to user code (a handler, a webhook) is in flight."""
        with self.callers_lock:
            return any(caller.calling for caller in self.callers)

    @property
    def group_sinks(self) -> list[GroupSink]:
        """Sinks that can apply a whole group of events in one call (``deliver_group``)."""
        return [s for s in self.sinks if isinstance(s, GroupSink)]

    def deliver(
        self,
        payload: Payload,
        skip: Sequence[Sink] = (),
        on_retry: Callable[[int, str], None] | None = None,
        on_slow: Callable[[], None] | None = None,
    ) -> Outcome | None:
        """Deliver to every sink (but those in ``skip``, already done), retrying per policy.

        None means abandoned: the worker is stopping (while waiting to retry, or after the grace
        period of a handler in flight); the event stays unacknowledged and is delivered again.
        A connection error of a built-in sink propagates (the runner reconnects).
        """
        started = time.monotonic()
        sinks = [s for s in self.sinks if s not in skip]
        error = ""
        for attempt in range(self.policy.attempts):
            if attempt:
                if on_retry is not None:
                    on_retry(attempt, error)
                if self.stop.wait(self.policy.delay(attempt)):
                    return None
            try:
                for sink in sinks:
                    self._call(sink, payload, on_slow)
            except Abandoned:
                return None
            except ServerUnavailable:
                raise
            except Exception as exc:  # any failure of user code or a target counts
                error = f"{type(exc).__name__}: {exc}"
                on_slow = None  # the row is marked 'retrying' from now on
                continue
            return Outcome("completed", attempt, None, _ms_since(started))
        return Outcome(
            self.policy.exhausted_status, self.policy.max_retry_attempts, error, _ms_since(started)
        )

    def close(self) -> None:
        """Let the helper threads exit (after the call they are in, if any)."""
        with self.callers_lock:
            callers, self.callers = self.callers, []
        for caller in callers:
            caller.close()

    def _call(self, sink: Sink, payload: Payload, on_slow: Callable[[], None] | None) -> None:
        if sink.builtin:
            try:
                sink.deliver(payload)
            except ConnectionFailure as exc:
                raise ServerUnavailable(exc) from exc
            return
        caller = getattr(self.local, "caller", None)
        if caller is None:
            caller = self.local.caller = Caller()
            with self.callers_lock:
                self.callers.append(caller)
        caller.call(sink.deliver, payload, self.timeout_s, self.stop, on_slow)


class ServerUnavailable(Exception):
    """A built-in sink lost the server: not the event's fault; the runner reconnects."""

    def __init__(self, cause: ConnectionFailure):
        super().__init__(str(cause))
        self.cause = cause


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
