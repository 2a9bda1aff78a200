"""queryleaf: a SQL dialect for MongoDB with event-driven change-stream processing."""

# The event runtime plugs into the layers below it: its system tables become planner sources,
# its statements are planned (into plans that run themselves) by its own planning functions,
# its secret options are masked in every error and log line.
import queryleaf.events.options  # noqa: F401
import queryleaf.events.planning  # noqa: F401
import queryleaf.events.tables  # noqa: F401
import queryleaf.introspection  # noqa: F401  (SHOW TABLES, DESCRIBE, USE ...)
from queryleaf.api import QueryLeaf, connect
from queryleaf.errors import (
    EngineError,
    ErrorCode,
    ExecutionError,
    ParameterError,
    PlanningError,
    QueryLeafError,
    ScriptError,
    SqlSyntaxError,
    SubscriptionError,
)
from queryleaf.result import Result

__all__ = [
    "EngineError",
    "ErrorCode",
    "ExecutionError",
    "ParameterError",
    "PlanningError",
    "QueryLeaf",
    "QueryLeafError",
    "Result",
    "ScriptError",
    "SqlSyntaxError",
    "SubscriptionError",
    "connect",
]
__version__ = "0.1.0"
