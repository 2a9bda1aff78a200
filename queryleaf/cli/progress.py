"""The progress line of ``queryleaf run`` on a terminal: the statement running and its elapsed
time, redrawn on stderr and erased when it ends. Off a terminal it writes nothing."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

REDRAW_S = 0.1
ERASE = "\r\x1b[2K"


@contextmanager
def progress_line(label: str, stream: TextIO | None = None) -> Iterator[None]:
    """Show ``label`` and the elapsed seconds while the block runs (when ``stream``, stderr by
    default, is a terminal)."""
    stream = stream or sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        yield
        return
    started = time.monotonic()
    done = threading.Event()
    width = max(shutil.get_terminal_size().columns - 1, 20)
    label = " ".join(label.split())  # one line

    def draw() -> None:
        text = f"running {label}"
        elapsed = f" {time.monotonic() - started:.1f}s"
        if len(text) + len(elapsed) > width:
            text = text[: max(width - len(elapsed) - 1, 0)] + "…"
        stream.write(f"{ERASE}{text}{elapsed}")
        stream.flush()

    def redraw() -> None:
        while not done.wait(REDRAW_S):
            draw()

    draw()
    thread = threading.Thread(target=redraw, name="queryleaf-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        stream.write(ERASE)
        stream.flush()
