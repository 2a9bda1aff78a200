"""The write concern of everything the event runtime writes.

The runtime's promises rest on its own writes surviving a crash of the server: a checkpoint
that is acknowledged and then lost moves the position back (redelivery, counters counted
twice), and a sink write or event-log row that is acknowledged and then lost means an event
reported as delivered that is not there. So every write of the worker and of the subscription
statements waits until it is journaled, and on a replica set until a majority has it (a write
only the old primary had is rolled back after a failover). docs/events.md "Delivery guarantees".
"""

from __future__ import annotations

from pymongo.database import Database
from pymongo.write_concern import WriteConcern

DURABLE_DOCUMENT: dict[str, str | bool] = {"w": "majority", "j": True}  # as commands carry it
DURABLE = WriteConcern(w="majority", j=True)


def durable(db: Database) -> Database:
    """``db`` with the durable write concern (collections taken from it inherit it)."""
    return db.with_options(write_concern=DURABLE)
