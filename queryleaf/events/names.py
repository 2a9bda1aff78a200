"""Names of queryleaf's system collections (in the user's database).

The ``__queryleaf_`` prefix is reserved: user statements cannot write to these collections; SQL
reads them through the table functions below.
"""

PREFIX = "__queryleaf_"
SUBSCRIPTIONS = PREFIX + "subscriptions"
EVENT_LOG = PREFIX + "event_log"
DEAD_LETTERS = PREFIX + "dead_letters"
LEASES = PREFIX + "leases"
WORKERS = PREFIX + "workers"

# Table functions usable in FROM, and the collection each one reads.
TABLE_FUNCTIONS = {
    "CHANGE_STREAM_EVENTS": EVENT_LOG,
    "EVENT_SUBSCRIPTIONS": SUBSCRIPTIONS,
    "ACTIVE_CHANGE_STREAMS": LEASES,
    "DEAD_LETTER_EVENTS": DEAD_LETTERS,
}


def is_reserved(collection: str) -> bool:
    return collection.startswith(PREFIX)
