"""What a write statement that failed partway did and did not apply, said in its error.

Outside a transaction every document is written on its own: an ordered insert stops at the
first row the server refuses and reports how many it stored before it (``nInserted``), so the
message names the rows on each side. A multi-row UPDATE or DELETE is one server statement that
changes documents one by one; when it fails, the reply does not count the documents it changed
before the error (it reports 0 for the failed statement), so the message says that some rows may
have been changed. Inside a transaction nothing is applied unless the transaction commits, so
the message only names the failing row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queryleaf.validation_errors import explain_validation


def _rows(first: int, last: int) -> str:
    return f"row {first}" if first == last else f"rows {first}-{last}"


def insert_failed(
    details: Mapping[str, Any], before: int, total: int | None, in_transaction: bool
) -> str | None:
    """The message of an ordered insert the server stopped at a row (``details`` of its
    BulkWriteError); None when it stopped for another reason (a write concern error).

    ``before``: rows the statement inserted in earlier batches; ``total``: rows the statement
    inserts (None for INSERT ... SELECT, whose rows stream from the query).
    """
    errors = details.get("writeErrors") or []
    if not errors:
        return None
    failed = before + int(errors[0].get("index", 0)) + 1  # 1-based, in the statement's rows
    reason = explain_validation(errors[0])
    if total == 1:
        return f"INSERT failed ({reason})" + (
            "" if in_transaction else ": the row was not inserted"
        )
    of = f" of {total}" if total is not None else ""
    message = f"INSERT failed at row {failed}{of} ({reason})"
    if not in_transaction:
        done = (
            "no row was inserted"
            if failed == 1
            else f"{_rows(1, failed - 1)} {'was' if failed == 2 else 'were'} inserted"
        )
        if total is None:
            rest = f"row {failed} and the rows after it were not"
        else:
            rest = f"{_rows(failed, total)} {'was' if failed == total else 'were'} not"
        message += f": {done}, {rest}"
    return message


def query_failed_during_insert(reason: str, inserted: int, in_transaction: bool) -> str:
    """INSERT ... SELECT whose query failed after some of its rows were stored."""
    message = f"INSERT ... SELECT failed: its query failed ({reason})"
    if in_transaction:
        return message
    if not inserted:
        return message + ": no row was inserted"
    return message + f": {_rows(1, inserted)} {'was' if inserted == 1 else 'were'} inserted"


_CHANGED = {"UPDATE": "changed", "DELETE": "deleted"}


def multi_write_failed(verb: str, reason: str, in_transaction: bool) -> str:
    """An UPDATE or DELETE the server stopped with an error."""
    message = f"{verb} failed ({reason})"
    if in_transaction:
        return message
    return message + (
        f": some rows may already have been {_CHANGED[verb]} (MongoDB applies it "
        "row by row and does not report how many rows it applied before the "
        "error); run it inside a transaction (BEGIN ... COMMIT) to make it "
        "all-or-nothing"
    )
