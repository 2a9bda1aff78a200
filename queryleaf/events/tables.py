"""The event runtime's system tables as SQL sources: registered with the planner on import
(queryleaf/__init__.py imports this module), so the planner never imports the events package."""

from queryleaf.events import names
from queryleaf.planner.sources import TableFunction, register_table_function, reserve_prefix

reserve_prefix(names.PREFIX, "read it through its table function (e.g. CHANGE_STREAM_EVENTS())")

register_table_function(
    TableFunction(
        "CHANGE_STREAM_EVENTS",
        names.EVENT_LOG,
        names.event_log_rows,
        # Columns every row of a stored document shares, and those whose least and greatest
        # value the document records: filters on them also run on the stored documents.
        stored_fields=frozenset({"subscription_id", "subscription_name", "service_name"}),
        stored_ranges={"event_timestamp": ("event_timestamp_min", "event_timestamp_max")},
    )
)
register_table_function(
    TableFunction("EVENT_SUBSCRIPTIONS", names.SUBSCRIPTIONS, names.subscription_rows)
)
register_table_function(TableFunction("ACTIVE_CHANGE_STREAMS", names.LEASES))
register_table_function(TableFunction("DEAD_LETTER_EVENTS", names.DEAD_LETTERS))
