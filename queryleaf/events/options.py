"""The options of ``CREATE EVENT_SUBSCRIPTION``: names, types, defaults and validation.

``validate(name, options, positions)`` turns the planner's option dict into a complete, checked
dict (every option present, defaults filled in). Errors are ``SubscriptionError`` naming the
option, where it was written, and the valid options (with the nearest name suggested).

An option declared ``secret`` holds a credential: a literal value of it comes out of
``validate`` (and ``concealed``) as a ``queryleaf.secret.Secret``, which every display shows as
``'***'``; the SQL-text and system-table redactions read ``SECRET_OPTIONS``. An ``'env:NAME'``
value is a reference resolved by the worker, not a credential, and stays visible.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from queryleaf.errors import Position, SubscriptionError
from queryleaf.events import names
from queryleaf.secret import Secret
from queryleaf.sql.redact import register_secret_options

EVENT_TYPES = ("insert", "update", "replace", "delete", "drop", "rename", "dropDatabase")
FULL_DOCUMENT = ("default", "updateLookup", "whenAvailable", "required")
FULL_DOCUMENT_BEFORE_CHANGE = ("off", "whenAvailable", "required")
DELIVER_TO_FORMS = (
    "'log'",
    "'collection:<name>'",
    "'http://...'",
    "'https://...'",
    "'python:<module>:<function>'",
    "'handler:<name>'",
)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOTTED_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

Check = Callable[[Any], str | None]  # returns an error message, or None when the value is fine


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type_name: str  # as shown to users: 'string', 'integer', 'boolean', 'array of strings', ...
    default: Any
    description: str
    check: Check
    nullable: bool = False  # NULL accepted (means: the default)
    secret: bool = False  # a credential: a literal value is never displayed


# ------------------------------------------------------------------ value checks


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _string(v: Any) -> str | None:
    return None if isinstance(v, str) else "expected string"


def _nonempty_string(v: Any) -> str | None:
    if not isinstance(v, str):
        return "expected string"
    return None if v.strip() else "must not be empty"


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected TRUE or FALSE"


def _int_at_least(minimum: int) -> Check:
    def check(v: Any) -> str | None:
        if not _is_int(v):
            return "expected integer"
        return None if v >= minimum else f"must be at least {minimum}"

    return check


def _one_of(allowed: tuple[str, ...]) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return "expected string"
        if v in allowed:
            return None
        return f"{v!r} is not one of {', '.join(repr(a) for a in allowed)}{_nearest(v, allowed)}"

    return check


def _collection_name_problem(coll: Any) -> str | None:
    if not isinstance(coll, str) or not coll:
        return "expected non-empty collection names"
    if names.is_reserved(coll):
        return f"{coll!r} is a queryleaf system collection and cannot be watched"
    if "$" in coll or "\0" in coll or coll.startswith("system."):
        return f"{coll!r} is not a valid collection name"
    return None


def _collections(v: Any) -> str | None:
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list):
        return "expected JSON_ARRAY('collection', ...) or a string"
    for coll in items:
        problem = _collection_name_problem(coll)
        if problem:
            return problem
    return None


def _event_types(v: Any) -> str | None:
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items:
        return "expected a non-empty JSON_ARRAY of event types"
    for item in items:
        problem = _one_of(EVENT_TYPES)(item)
        if problem:
            return problem
    return None


def _filter(v: Any) -> str | None:
    return None if isinstance(v, dict) else "expected a JSON_OBJECT(...) query filter"


def deliver_to_problem(v: Any) -> str | None:
    """Why ``v`` is not a valid ``deliver_to`` target, or None."""
    if not isinstance(v, str):
        return "expected string"
    if v == "log":
        return None
    scheme, _, rest = v.partition(":")
    if scheme == "collection":
        return _collection_name_problem(rest)
    if scheme in ("http", "https"):
        parsed = urlparse(v)
        return None if parsed.netloc else f"{v!r} is not a valid URL"
    if scheme == "python":
        module, _, function = rest.rpartition(":")
        if _DOTTED_IDENT.match(module) and _IDENT.match(function):
            return None
        return f"{v!r} is not of the form 'python:<module>:<function>'"
    if scheme == "handler":
        return None if rest else "'handler:' needs the name the handler was registered with"
    return f"{v!r} is not a valid target; expected one of {', '.join(DELIVER_TO_FORMS)}"


SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "subscription_id",
        "string",
        None,
        "identifier recorded in the event log (default: the subscription's name)",
        _nonempty_string,
        nullable=True,
    ),
    OptionSpec(
        "service_name",
        "string",
        None,
        "owning service, recorded in the event log",
        _string,
        nullable=True,
    ),
    OptionSpec(
        "watch_collections",
        "array of strings",
        [],
        "collections to watch; empty: every collection of the database",
        _collections,
    ),
    OptionSpec(
        "event_types",
        "array of strings",
        None,
        f"operation types to deliver ({', '.join(EVENT_TYPES)}); default: all",
        _event_types,
        nullable=True,
    ),
    OptionSpec(
        "event_filter",
        "object",
        None,
        "MongoDB query filter on the change event (normalized, see docs)",
        _filter,
        nullable=True,
    ),
    OptionSpec(
        "batch_processing", "boolean", False, "deliver events to handlers in lists", _boolean
    ),
    OptionSpec("preserve_order", "boolean", True, "deliver in oplog order", _boolean),
    OptionSpec(
        "full_document",
        "string",
        "updateLookup",
        f"post-image of updates: {', '.join(FULL_DOCUMENT)}",
        _one_of(FULL_DOCUMENT),
    ),
    OptionSpec(
        "full_document_before_change",
        "string",
        "off",
        f"pre-image: {', '.join(FULL_DOCUMENT_BEFORE_CHANGE)}",
        _one_of(FULL_DOCUMENT_BEFORE_CHANGE),
    ),
    OptionSpec(
        "max_retry_attempts",
        "integer",
        3,
        "retries after the first failed attempt",
        _int_at_least(0),
    ),
    OptionSpec("retry_delay_ms", "integer", 1000, "delay before the first retry", _int_at_least(0)),
    OptionSpec("exponential_backoff", "boolean", True, "double the delay on every retry", _boolean),
    OptionSpec(
        "dead_letter_queue_enabled",
        "boolean",
        True,
        "park events that exhausted their retries in DEAD_LETTER_EVENTS()",
        _boolean,
    ),
    OptionSpec(
        "batch_size",
        "integer",
        100,
        "events per handler batch (batch_processing)",
        _int_at_least(1),
    ),
    OptionSpec(
        "processing_timeout_ms",
        "integer",
        30000,
        "time a delivery may take before it counts as failed",
        _int_at_least(1),
    ),
    OptionSpec("created_by", "string", None, "free-form metadata", _string, nullable=True),
    OptionSpec("description", "string", None, "free-form metadata", _string, nullable=True),
    OptionSpec(
        "deliver_to",
        "string",
        "log",
        f"where events go: {', '.join(DELIVER_TO_FORMS)}",
        deliver_to_problem,
    ),
    OptionSpec(
        "webhook_secret",
        "string",
        None,
        "HMAC-SHA256 key signing webhook POSTs ('env:NAME' reads the worker's "
        "environment variable NAME)",
        _nonempty_string,
        nullable=True,
        secret=True,
    ),
)
BY_NAME: dict[str, OptionSpec] = {spec.name: spec for spec in SPECS}
VALID_NAMES: tuple[str, ...] = tuple(sorted(BY_NAME))
SECRET_OPTIONS: frozenset[str] = frozenset(spec.name for spec in SPECS if spec.secret)
ENV_PREFIX = "env:"  # 'env:NAME': the worker's environment variable NAME holds the value
register_secret_options(SECRET_OPTIONS, ENV_PREFIX)  # errors and logs mask their values


def conceal(option: str, value: Any) -> Any:
    """``value`` as a Secret when ``option`` is secret and the value is a literal credential."""
    if (
        option.lower() in SECRET_OPTIONS
        and isinstance(value, str)
        and not isinstance(value, Secret)
        and not value.startswith(ENV_PREFIX)
    ):
        return Secret(value)
    return value


def concealed(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with their literal credentials concealed (see ``conceal``)."""
    return {option: conceal(option, value) for option, value in options.items()}


def _nearest(word: str, candidates: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def where_written(option: str, positions: Mapping[str, Any]) -> tuple[Position | None, str]:
    """(position for the error, text suffix) of where ``option`` was written."""
    pos = positions.get(option)
    if isinstance(pos, Position):
        return pos, ""
    return None, (f" at {pos}" if pos is not None else "")


def option_error(option: str, problem: str, positions: Mapping[str, Any]) -> SubscriptionError:
    pos, suffix = where_written(option, positions)
    return SubscriptionError(f"invalid value for option {option!r}{suffix}: {problem}", pos)


def validate(
    name: str,
    options: Mapping[str, Any],
    positions: Mapping[str, Any] | None = None,
    *,
    partial: bool = False,
) -> dict[str, Any]:
    """Check ``options`` and return them complete with defaults (only the given ones if partial).

    List-valued options given as a single string become one-element lists.
    """
    positions = positions or {}
    checked: dict[str, Any] = {}
    for option, value in options.items():
        key = option.lower()
        spec = BY_NAME.get(key)
        if spec is None:
            pos, suffix = where_written(option, positions)
            raise SubscriptionError(
                f"unknown subscription option {option!r}{suffix}{_nearest(key, VALID_NAMES)}; "
                f"valid options: {', '.join(VALID_NAMES)}",
                pos,
            )
        if value is None and spec.nullable:
            checked[key] = None
            continue
        value = conceal(key, value)  # before the check: a message quoting it shows '***'
        problem = spec.check(value)
        if problem:
            raise option_error(option, problem, positions)
        if spec.type_name == "array of strings" and isinstance(value, str):
            value = [value]
        checked[key] = value
    if partial:
        return checked
    complete = {spec.name: _copy(spec.default) for spec in SPECS}
    complete.update(checked)  # None only for nullable options, whose default is None
    if complete["subscription_id"] is None:
        complete["subscription_id"] = name
    check_combination(complete, positions)
    return complete


def check_combination(options: Mapping[str, Any], positions: Mapping[str, Any]) -> None:
    """Rules between options (the complete, checked set)."""
    secret = options.get("webhook_secret")
    target = options.get("deliver_to") or "log"
    if secret is not None and not target.startswith(("http://", "https://")):
        raise option_error(
            "webhook_secret",
            f"only applies to webhook targets "
            f"(deliver_to 'http://...' or 'https://...'), not {target!r}",
            positions,
        )
    if (
        isinstance(secret, str)
        and secret.startswith(ENV_PREFIX)
        and not _IDENT.match(secret[len(ENV_PREFIX) :])
    ):
        raise option_error(
            "webhook_secret",
            f"{secret!r}: 'env:' must be followed by an environment variable name",
            positions,
        )


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
