"""PostgreSQL's built-in types the catalog names: OIDs, names and how format_type prints them.

A column's SQL type (column_types.ColumnType) maps to one PostgreSQL type; the OIDs are
PostgreSQL's own (fixed since 8.x), so clients that know them decode values right.
"""

from __future__ import annotations

from dataclasses import dataclass

from queryleaf.column_types import ColumnType


@dataclass(frozen=True)
class PgType:
    oid: int
    name: str  # pg_type.typname
    formatted: str  # format_type(oid, -1)
    length: int  # typlen: bytes, -1 for variable length
    category: str  # typcategory
    array_oid: int


PG_TYPES: tuple[PgType, ...] = (
    PgType(16, "bool", "boolean", 1, "B", 1000),
    PgType(17, "bytea", "bytea", -1, "U", 1001),
    PgType(18, "char", '"char"', 1, "Z", 1002),
    PgType(19, "name", "name", 64, "S", 1003),
    PgType(20, "int8", "bigint", 8, "N", 1016),
    PgType(21, "int2", "smallint", 2, "N", 1005),
    PgType(23, "int4", "integer", 4, "N", 1007),
    PgType(25, "text", "text", -1, "S", 1009),
    PgType(26, "oid", "oid", 4, "N", 1028),
    PgType(114, "json", "json", -1, "U", 199),
    PgType(700, "float4", "real", 4, "N", 1021),
    PgType(701, "float8", "double precision", 8, "N", 1022),
    PgType(1043, "varchar", "character varying", -1, "S", 1015),
    PgType(1082, "date", "date", 4, "D", 1182),
    PgType(1114, "timestamp", "timestamp without time zone", 8, "D", 1115),
    PgType(1184, "timestamptz", "timestamp with time zone", 8, "D", 1185),
    PgType(1700, "numeric", "numeric", -1, "N", 1231),
    PgType(2205, "regclass", "regclass", 4, "N", 2210),
    PgType(2206, "regtype", "regtype", 4, "N", 2211),
    PgType(2950, "uuid", "uuid", 16, "U", 2951),
    PgType(3802, "jsonb", "jsonb", -1, "U", 3807),
)

BY_OID = {t.oid: t for t in PG_TYPES}
BY_NAME = {t.name: t for t in PG_TYPES} | {t.formatted: t for t in PG_TYPES}

PG_TYPE_OF_COLUMN: dict[ColumnType, PgType] = {
    ColumnType.BOOLEAN: BY_NAME["bool"],
    ColumnType.INTEGER: BY_NAME["int4"],
    ColumnType.BIGINT: BY_NAME["int8"],
    ColumnType.DOUBLE: BY_NAME["float8"],
    ColumnType.DECIMAL: BY_NAME["numeric"],
    ColumnType.TEXT: BY_NAME["text"],
    ColumnType.TIMESTAMP: BY_NAME["timestamptz"],
    ColumnType.DOCUMENT: BY_NAME["jsonb"],
    ColumnType.BINARY: BY_NAME["bytea"],
}


def format_type(oid: int | None, typmod: int | None = None) -> str | None:
    if oid is None:
        return None
    known = BY_OID.get(oid)
    if known is not None:
        return known.formatted
    array = next((t for t in PG_TYPES if t.array_oid == oid), None)
    return f"{array.formatted}[]" if array else "???"
