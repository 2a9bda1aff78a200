"""queryleaf: a SQL dialect for MongoDB with event-driven change-stream processing."""

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
    "EngineError", "ErrorCode", "ExecutionError", "ParameterError", "PlanningError", "QueryLeaf",
    "QueryLeafError", "Result", "ScriptError", "SqlSyntaxError", "SubscriptionError", "connect",
]
__version__ = "0.1.0"
