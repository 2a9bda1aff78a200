"""Reading a number of seconds typed by the user (``\\watch 2``, ``\\top 0.5``)."""

from __future__ import annotations


def positive_seconds(arg: str | float | None, default: float) -> float:
    """``arg`` as seconds (``default`` when empty); ValueError with the message to show."""
    if arg is None or arg == "":
        return default
    try:
        seconds = float(arg)
    except ValueError:
        raise ValueError(f"takes a number of seconds, not {arg!r}") from None
    if not 0 < seconds < float("inf"):
        raise ValueError("takes a positive number of seconds")
    return seconds
