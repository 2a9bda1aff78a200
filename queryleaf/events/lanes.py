"""Concurrent delivery for ``preserve_order = false``: one lane per changed document.

Events of the same document (same ``documentKey``) go to the same lane and are delivered one
after the other in oplog order; different lanes run concurrently on a small thread pool. The
runner checkpoints only up to the oldest event that is not finished yet, so a crash never skips
an event that was still in a lane.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from queryleaf.events.eventlog import Row

DEFAULT_CONCURRENCY = 8


class Lanes:
    def __init__(
        self, size: int, deliver: Callable[[Row], bool], may_start: Callable[[], bool], name: str
    ):
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, size), thread_name_prefix=f"queryleaf-lane-{name}"
        )
        self.deliver = deliver  # False: abandoned (stopping); the lane gives up its queue
        self.may_start = may_start
        self.queues: dict[bytes, deque[Row]] = {}
        self.changed = threading.Condition()
        self.error: BaseException | None = None

    def submit(self, key: bytes, row: Row) -> None:
        with self.changed:
            queued = self.queues.get(key)
            if queued is not None:
                queued.append(row)
                return
            self.queues[key] = deque([row])
        self.pool.submit(self._run, key)

    def _run(self, key: bytes) -> None:
        while True:
            with self.changed:
                queued = self.queues[key]
                if not queued or self.error is not None or not self.may_start():
                    del self.queues[key]  # what is left stays unfinished (not checkpointed)
                    self.changed.notify_all()
                    return
                row = queued[0]
            try:
                delivered = self.deliver(row)
            except BaseException as exc:  # noqa: BLE001 - handed to the runner thread
                delivered = False
                with self.changed:
                    self.error = self.error or exc
            with self.changed:
                queued.popleft()
                if not delivered:
                    queued.clear()
                self.changed.notify_all()

    @property
    def busy(self) -> bool:
        with self.changed:
            return bool(self.queues)

    def wait(self, timeout: float) -> None:
        """Until some event finishes (or ``timeout``)."""
        with self.changed:
            if self.queues:
                self.changed.wait(timeout)

    def wait_idle(self) -> None:
        with self.changed:
            while self.queues:
                self.changed.wait(0.1)

    def take_error(self) -> BaseException | None:
        with self.changed:
            error, self.error = self.error, None
        return error

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
